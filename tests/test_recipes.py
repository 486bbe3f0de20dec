"""Recipes: they load and validate, document every key, override the base without copying it,
and their run.sh scripts select stages; the demo recipe preprocesses its generated corpus."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wavegen.artifacts import bundled
from wavegen.artifacts.workdir import load_features_info, load_manifest
from wavegen.core.config import Recipe, load_recipe, validate
from wavegen.core.errors import WavegenError
from wavegen.core.features import get_preset
from wavegen.data.corpora.demo import SPEAKERS, UTTERANCES_PER_SPEAKER
from wavegen.data.preprocess import preprocess

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
NAMES = ("ljspeech", "vctk", "demo", "ljspeech-codec", "vctk-codec", "ljspeech-gta")


@pytest.mark.parametrize("name", NAMES)
def test_recipe_loads_and_validates(name):
    recipe = load_recipe(RECIPES / name / "config.yaml")
    assert recipe.name == name
    preset = get_preset(recipe.audio.preset)
    hop = 1
    for s in recipe.model.upsample_scales:
        hop *= s
    if recipe.model.cin_channels:  # a codec model has no mel to upsample
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
    for name, corpus, speakers in (("ljspeech-codec", "ljspeech", 0), ("vctk-codec", "vctk", -1)):
        codec = load_recipe(RECIPES / name / "config.yaml")
        assert (codec.model.cin_channels, codec.data.corpus, codec.model.n_speakers) == (0, corpus, speakers)
        assert codec.model.residual_channels <= 64  # trains on a CPU


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
    """One source of defaults: base.yaml states every key of wavegen.core.config with its default."""
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


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_run_sh_takes_any_corpus_steps_and_overrides(tmp_path):
    r = run_sh(
        "ljspeech",
        "--dry-run",
        "--corpus",
        str(tmp_path / "my corpus"),
        "--set",
        "model.layers=4",
        "--set",
        "data.batch_size=2",
        "--max-steps",
        "12",
        "--workdir",
        str(tmp_path / "w"),
        "--run-dir",
        str(tmp_path / "r"),
    )
    assert r.returncode == 0, r.stderr
    commands = [line[2:] for line in r.stdout.splitlines() if line.startswith("+ ")]
    assert not any(c.startswith(("curl", "tar", "check")) for c in commands)  # --corpus: no download
    assert "stage 0: download LJSpeech 1.1: skipped, --corpus" in r.stdout
    config = RECIPES / "ljspeech" / "config.yaml"
    overrides = "--set model.layers=4 --set data.batch_size=2"
    assert (
        f"wavegen preprocess {config} --corpus {tmp_path}/my corpus --workdir {tmp_path}/w {overrides}"
        in commands
    )
    assert (
        f"wavegen train {config} --workdir {tmp_path}/w --run-dir {tmp_path}/r {overrides} --max-steps 12"
        in (commands)
    )
    for bad in (
        ["--max-steps", "0"],
        ["--set", "layers"],
        ["--corpus"],
        ["--corpus", str(tmp_path / "none")],
    ):
        r = run_sh("ljspeech", *bad)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (bad, r.stderr)


SHARED = REPO.parent / "shared" / "corpora"


@pytest.mark.slow  # trains
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared corpora not found at {SHARED}")
def test_run_sh_stages_1_to_3_on_a_real_corpus_with_a_small_model(tmp_path):
    """Stages 1-3 for real on the 20-clip LJSpeech excerpt: preprocess, 3 training steps of a
    4-layer model, and the test split synthesized from it."""
    work, runs = tmp_path / "w", tmp_path / "r"
    small = ["model.layers=2", "model.stacks=1", "model.residual_channels=8", "model.gate_channels=8"]
    small += ["model.skip_channels=8", "data.valid_per_speaker=2", "data.test_per_speaker=2"]
    small += ["data.batch_size=2", "data.num_workers=0", "train.valid_interval=3"]
    args = [a for item in small for a in ("--set", item)]
    r = run_sh(
        "ljspeech",
        "--corpus",
        str(SHARED / "ljspeech-mini"),
        "--stage",
        "1",
        "--stop-stage",
        "3",
        "--max-steps",
        "3",
        "--workdir",
        str(work),
        "--run-dir",
        str(runs),
        *args,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    test = [row for row in load_manifest(work) if row["split"] == "test"]
    assert len(test) == 2
    assert sorted(p.stem for p in (runs / "test").glob("*.wav")) == sorted(row["id"] for row in test)
    assert load_recipe(runs / "recipe.yaml").model.layers == 2


# ---- bundled recipes: by name, listed, copied ---------------------------------------------------


def test_recipes_are_found_by_name_or_path(tmp_path):
    assert set(bundled.names()) >= set(NAMES)
    assert bundled.find_recipe("ljspeech") == bundled.recipes_dir() / "ljspeech" / "config.yaml"
    assert bundled.load("vctk").name == "vctk"
    own = tmp_path / "mine.yaml"
    own.write_text(
        "extends: " + str(RECIPES / "base.yaml") + "\nmodel:\n  layers: 6  # layers\n  stacks: 2\n"
    )
    assert bundled.load(own).model.layers == 6
    assert bundled.find_recipe(RECIPES / "demo") == RECIPES / "demo" / "config.yaml"  # a folder
    with pytest.raises(WavegenError, match="no such recipe file, and no bundled recipe .* ljspeech"):
        bundled.find_recipe("ljspeeech")
    assert bundled.recipes_dir() == RECIPES  # a checkout reads its own recipes/


def test_wavegen_recipes_lists_name_corpus_preset_and_description():
    r = subprocess.run(
        [sys.executable, "-m", "wavegen", "recipes", "--json"], capture_output=True, text=True, cwd="/"
    )
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert rows["ljspeech"]["corpus"] == "ljspeech" and rows["ljspeech"]["preset"] == "tacotron2"
    assert (
        rows["ljspeech"]["description"]
        == "LJSpeech 1.1 (one female speaker, 13,100 clips, ~24 h at 22050 Hz)."
    )
    assert rows["demo"]["description"].startswith("The tiny demo:") and rows["demo"]["description"].endswith(
        "."
    )


def test_recipes_copy_brings_its_base_and_scripts_and_never_overwrites(tmp_path):
    dest = tmp_path / "recipes"
    written = bundled.copy("ljspeech", dest)
    assert {p.relative_to(dest).as_posix() for p in written} == {
        "base.yaml",
        "stages.sh",
        "ljspeech/config.yaml",
        "ljspeech/run.sh",
    }
    assert os.access(dest / "ljspeech" / "run.sh", os.X_OK)
    copied = load_recipe(dest / "ljspeech" / "config.yaml")  # extends: ../base.yaml resolves
    assert copied.to_dict() | {"data": None} == load_recipe(
        RECIPES / "ljspeech" / "config.yaml"
    ).to_dict() | {"data": None}
    bundled.copy("vctk", dest)  # a second recipe beside it shares the same base
    with pytest.raises(WavegenError, match="already exists; wavegen recipes copy never overwrites"):
        bundled.copy("ljspeech", dest)
    other = tmp_path / "other"
    other.mkdir()
    (other / "base.yaml").write_text("# my own base\n")
    with pytest.raises(WavegenError, match="differs from the bundled one"):
        bundled.copy("demo", other)
    assert (other / "base.yaml").read_text() == "# my own base\n" and not (other / "demo").exists()
    with pytest.raises(WavegenError, match="expected a folder path"):  # "" once meant "here"
        bundled.copy("ljspeech", "")
    with pytest.raises(WavegenError, match="is a file; expected a folder"):
        bundled.copy("ljspeech", other / "base.yaml")
    # The copy's run.sh works from anywhere, with data/, exp/ and runs/ in the current directory.
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    r = subprocess.run(
        ["bash", str(dest / "vctk" / "run.sh"), "--dry-run", "--stage", "1", "--stop-stage", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert f"--corpus {tmp_path}/data/VCTK-Corpus-0.92 --workdir {tmp_path}/exp/vctk" in r.stdout
