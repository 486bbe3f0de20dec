"""Recipes: they load and validate, document every key, override the base without copying it,
and their run.sh scripts select stages; the demo recipe preprocesses its generated corpus."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from wavegen.config import Recipe, load_recipe, validate
from wavegen.corpora.demo import SPEAKERS, UTTERANCES_PER_SPEAKER
from wavegen.errors import WavegenError
from wavegen.features import get_preset
from wavegen.preprocess import preprocess
from wavegen.workdir import load_features_info, load_manifest

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
NAMES = ("ljspeech", "vctk", "demo")


@pytest.mark.parametrize("name", NAMES)
def test_recipe_loads_and_validates(name):
    recipe = load_recipe(RECIPES / name / "config.yaml")
    assert recipe.name == name
    preset = get_preset(recipe.audio.preset)
    hop = 1
    for s in recipe.model.upsample_scales:
        hop *= s
    assert hop == preset.hop_length and recipe.model.cin_channels == preset.n_mels


def test_recipes_choose_what_the_issue_asks():
    lj = load_recipe(RECIPES / "ljspeech" / "config.yaml")
    assert (lj.audio.preset, lj.data.corpus) == ("tacotron2", "ljspeech")
    assert lj.data.corpus_path == str((REPO / "data" / "LJSpeech-1.1").resolve())
    vctk = load_recipe(RECIPES / "vctk" / "config.yaml")
    assert (vctk.audio.preset, vctk.data.corpus, vctk.model.n_speakers) == ("espnet-24k", "vctk", -1)
    demo = load_recipe(RECIPES / "demo" / "config.yaml")
    assert (demo.audio.preset, demo.data.corpus, demo.model.n_speakers) == ("tacotron2", "demo", -1)
    assert demo.model.layers <= 12 and demo.model.residual_channels <= 64  # trains on a CPU


def leaf_keys(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(leaf_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("name", NAMES)
def test_recipe_overrides_only_what_differs(name):
    base = leaf_keys(yaml.safe_load((RECIPES / "base.yaml").read_text()))
    own = leaf_keys(yaml.safe_load((RECIPES / name / "config.yaml").read_text()))
    assert own.pop("extends") == "../base.yaml"
    copies = {k: v for k, v in own.items() if k in base and base[k] == v}
    assert not copies, f"{name} repeats base.yaml values: {copies}"
    assert set(own) <= set(base), f"{name} sets keys base.yaml does not document"


def test_base_yaml_is_the_schema_defaults():
    """One source of defaults: base.yaml states every key of wavegen.config with its default."""
    base = leaf_keys(yaml.safe_load((RECIPES / "base.yaml").read_text()))
    defaults = leaf_keys(Recipe().to_dict())
    defaults.pop("name")
    assert base == defaults


def test_names_are_checked_as_literals(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  decay: linear\n")
    with pytest.raises(
        WavegenError, match="train.decay must be one of exponential, cosine, none, got 'linear'"
    ):
        load_recipe(path)
    recipe = Recipe()
    recipe.data.mic = "mic3"  # built in Python: validate() checks it
    with pytest.raises(WavegenError, match="data.mic must be one of mic1, mic2, both"):
        validate(recipe)


@pytest.mark.parametrize("path", ["base.yaml"] + [f"{n}/config.yaml" for n in NAMES])
def test_every_key_has_a_comment(path):
    for number, line in enumerate((RECIPES / path).read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("extends:"):
            continue
        if line[0] != " " and stripped.endswith(":"):
            continue  # a section header: audio:, model:, ...
        assert "#" in line, f"{path}:{number}: key without a comment: {line!r}"


# ---- run.sh ------------------------------------------------------------------------------------


def run_sh(name, *args):
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(RECIPES / name / "run.sh"), *args], capture_output=True, text=True, env=env
    )


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("name", ["ljspeech", "vctk"])
def test_run_sh_stages_and_dry_run(name, tmp_path):
    assert subprocess.run(["bash", "-n", str(RECIPES / name / "run.sh")]).returncode == 0
    work, runs = tmp_path / "w", tmp_path / "r"
    r = run_sh(name, "--dry-run", "--workdir", str(work), "--run-dir", str(runs))
    assert r.returncode == 0, r.stderr
    commands = [line[2:] for line in r.stdout.splitlines() if line.startswith("+ ")]
    archive = "LJSpeech-1.1.tar.bz2" if name == "ljspeech" else "VCTK-Corpus-0.92.zip"
    assert any(c.startswith("curl") and archive in c for c in commands)
    assert any(c.startswith(("check sha256", "check md5")) for c in commands)
    config = RECIPES / name / "config.yaml"
    assert f"wavegen preprocess {config} --corpus" in "\n".join(commands)
    assert f"wavegen train {config} --workdir {work} --run-dir {runs}" in commands
    assert f"wavegen synthesize --checkpoint {runs} --split test --workdir {work} -o {runs}/test" in commands
    assert f"wavegen evaluate --checkpoint {runs} --split test --workdir {work} -o {runs}/eval" in commands
    assert [line.split(":")[0] for line in r.stdout.splitlines() if line.startswith("stage ")] == [
        f"stage {i}" for i in range(5)
    ]

    r = run_sh(name, "--dry-run", "--stage", "2", "--stop-stage", "3")
    stages = [line.split(":")[0] for line in r.stdout.splitlines() if line.startswith("stage ")]
    assert stages == ["stage 2", "stage 3"]
    assert not any(c.startswith(("curl", "wavegen preprocess")) for c in r.stdout.split("+ "))

    for bad in (["--stage", "9"], ["--stop-stage", "x"], ["--bogus"]):
        r = run_sh(name, *bad)
        assert r.returncode == 2 and "Traceback" not in r.stderr, bad


# ---- the demo recipe ---------------------------------------------------------------------------


def test_demo_recipe_preprocesses_its_generated_corpus(tmp_path):
    recipe = load_recipe(RECIPES / "demo" / "config.yaml")
    summary = preprocess(recipe, tmp_path / "work", workers=2)
    total = len(SPEAKERS) * UTTERANCES_PER_SPEAKER
    assert summary.processed == total and summary.skipped == []
    assert summary.splits == {
        "train": total - 2 * len(SPEAKERS),
        "valid": len(SPEAKERS),
        "test": len(SPEAKERS),
    }
    assert (tmp_path / "work" / "demo_corpus" / "demo_corpus.json").is_file()
    info = load_features_info(tmp_path / "work")
    assert info["speakers"] == sorted(s[0] for s in SPEAKERS)
    entries = load_manifest(tmp_path / "work")
    # Trimming removed the generated leading/trailing silence, but no speech.
    assert all(1.2 < e["seconds"] < 3.0 for e in entries)
