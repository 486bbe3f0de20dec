"""Fine-tuning (--init-from): what is taken from the trained model, what is fresh, exact resume,
speakers matched by name, and the one-line refusals of a model that does not fit."""

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import make_feature_cache, save_model_run, write_recipe
from wavegen.artifacts import checkpoint as ck
from wavegen.artifacts.export import export_model
from wavegen.core.config import ModelConfig, load_recipe
from wavegen.core.errors import WavegenError
from wavegen.model import WaveNet
from wavegen.training import train
from wavegen.training.init_from import load_init_source

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # every test here trains


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A model trained 3 steps on speakers a and b, and a feature cache of speakers b and c."""
    root = tmp_path_factory.mktemp("base")
    old = make_feature_cache(root / "old", n_utts=3, speakers=("a", "b"), seed=1)
    new = make_feature_cache(root / "new", n_utts=3, speakers=("b", "c"), seed=2)
    r = load_recipe(write_recipe(root / "tiny.yaml", train={"max_steps": 3}))
    result = train(r, old, root / "run", progress=False)
    return {"root": root, "new": new, "run": root / "run", "checkpoint": result.checkpoint}


def recipe(tmp_path, overrides=(), **sections):
    return load_recipe(write_recipe(tmp_path / "tiny.yaml", **sections), list(overrides))


def test_step_0_of_a_fine_tune_is_the_trained_model_with_fresh_rows_for_new_speakers(base, tmp_path, caplog):
    trained = ck.load_checkpoint(base["checkpoint"])
    with caplog.at_level(logging.INFO):
        result = train(
            recipe(tmp_path, train={"max_steps": 0}),
            base["new"],
            tmp_path / "ft",
            progress=False,
            init_from=base["run"],
        )
    first = ck.load_checkpoint(result.checkpoint)
    assert first["step"] == 0 and first["optimizer"]["state"] == {}  # fresh optimiser and step
    assert first["scheduler"]["last_epoch"] == 0
    table = "speaker_embed.weight"
    for key in ("model", "ema"):
        for name, value in trained[key].items():
            if name != table:  # mel statistics included: the old model's input normalisation
                assert torch.equal(first[key][name], value), (key, name)
        # new speakers are [b, c]: b is the trained model's row 1, c a fresh row
        assert torch.equal(first[key][table][0], trained[key][table][1])
    scratch = ck.load_checkpoint(
        train(
            recipe(tmp_path, train={"max_steps": 0}), base["new"], tmp_path / "s", progress=False
        ).checkpoint
    )
    assert torch.equal(first["model"][table][1], scratch["model"][table][1])  # the seeded fresh row
    assert not torch.equal(first["model"][table][1], trained["model"][table][0])
    report = first["init_from"]
    assert report["speakers_taken"] == ["b"] and report["speakers_new"] == ["c"] and report["ema"]
    assert report["step"] == 3
    assert "1 taken from the trained model (b); 1 new with fresh rows (c)" in caplog.text
    assert "1 taken from the trained model (b)" in (tmp_path / "ft" / "train.log").read_text()


def test_a_fine_tune_resumes_bit_identically(base, tmp_path):
    """3 steps + stop + resume + 3 steps == 6 steps of a fine-tune, from a checkpoint file; the
    resumed call gives --init-from again (the same command) or not at all."""
    r6, r3 = (recipe(tmp_path, train={"max_steps": n, "checkpoint_interval": 100}) for n in (6, 3))
    full = train(r6, base["new"], tmp_path / "full", progress=False, init_from=base["checkpoint"])
    for again in (base["checkpoint"], None):
        run = tmp_path / f"split-{again is None}"
        assert train(r3, base["new"], run, progress=False, init_from=base["checkpoint"]).step == 3
        second = train(r6, base["new"], run, progress=False, init_from=again)
        a, b = ck.load_checkpoint(full.checkpoint), ck.load_checkpoint(second.checkpoint)
        for key in ("model", "ema"):
            assert a[key].keys() == b[key].keys()
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), (key, name)
        assert a["sampler"] == b["sampler"] and a["init_from"] == b["init_from"]
        assert b["init_from"]["source"] == str(base["checkpoint"])


def test_a_fine_tune_trains_from_the_trained_weights_not_from_scratch(base, tmp_path):
    r = recipe(tmp_path, train={"max_steps": 2})
    tuned = ck.load_checkpoint(
        train(r, base["new"], tmp_path / "ft", progress=False, init_from=base["run"]).checkpoint
    )
    scratch = ck.load_checkpoint(train(r, base["new"], tmp_path / "s", progress=False).checkpoint)
    trained = ck.load_checkpoint(base["checkpoint"])
    w = "embed.weight"
    assert (tuned["model"][w] - trained["model"][w]).abs().max() < (
        scratch["model"][w] - trained["model"][w]
    ).abs().max()
    assert torch.equal(tuned["model"]["mel_mean"], trained["model"]["mel_mean"])
    assert not torch.equal(scratch["model"]["mel_mean"], trained["model"]["mel_mean"])


def test_an_export_is_a_source_and_a_speaker_map_starts_a_new_speaker_from_a_known_one(base, tmp_path):
    export = export_model(base["run"], tmp_path / "export")
    trained = ck.load_checkpoint(base["checkpoint"])
    result = train(
        recipe(tmp_path, train={"max_steps": 0}),
        base["new"],
        tmp_path / "ft",
        progress=False,
        init_from=export,
        speaker_map={"c": "a"},
    )
    first = ck.load_checkpoint(result.checkpoint)
    table = trained["ema"]["speaker_embed.weight"]  # an export holds the EMA weights
    assert torch.equal(first["model"]["speaker_embed.weight"][1], table[0])  # c from a
    assert torch.equal(first["ema"]["embed.weight"], trained["ema"]["embed.weight"])
    assert torch.equal(first["model"]["embed.weight"], trained["ema"]["embed.weight"])
    assert first["init_from"]["speakers_mapped"] == {"c": "a"} and first["init_from"]["speakers_new"] == []
    with pytest.raises(WavegenError, match="the trained model knows no speaker 'zz'"):
        train(
            recipe(tmp_path),
            base["new"],
            tmp_path / "x",
            progress=False,
            init_from=export,
            speaker_map={"c": "zz"},
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.layers=2"], "model.layers is 2 in the recipe, 4 in the trained model"),
        (
            ["model.residual_channels=16"],
            "model.residual_channels is 16 in the recipe, 8 in the trained model",
        ),
        (
            ["audio.mel_normalize=false"],
            "audio.mel_normalize is False in the recipe, True in the trained model",
        ),
        (
            ["model.n_speakers=0"],
            "model.n_speakers is 0 in the recipe, 2 in the trained model (one has a speaker table, "
            "the other not: set model.n_speakers, e.g. to 1)",
        ),
    ],
)
def test_a_model_that_does_not_fit_is_one_line_naming_the_key(base, tmp_path, overrides, message):
    with pytest.raises(WavegenError) as err:
        train(
            recipe(tmp_path, overrides), base["new"], tmp_path / "ft", progress=False, init_from=base["run"]
        )
    assert str(err.value) == f"--init-from {base['run']}: {message}"
    assert not (tmp_path / "ft" / "checkpoints").exists()  # refused before anything is written


def test_cli_init_from_and_its_errors(base, tmp_path):
    write_recipe(tmp_path / "tiny.yaml", train={"max_steps": 1})

    def cli(*args):
        command = [sys.executable, "-m", "wavegen", "train", "tiny.yaml", "--workdir", str(base["new"])]
        return subprocess.run(
            [*command, "--no-progress", *args], capture_output=True, text=True, cwd=tmp_path
        )

    ok = cli("--run-dir", "ft", "--init-from", str(base["run"]))
    assert ok.returncode == 0, ok.stderr
    assert "initialised from" in (tmp_path / "ft" / "train.log").read_text()
    assert ck.load_checkpoint(tmp_path / "ft" / "checkpoints" / "step_00000001.pt")["init_from"]["step"] == 3
    bad = cli("--run-dir", "ft2", "--init-from", str(base["run"]), "--set", "model.layers=2")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"wavegen: error: --init-from {base['run']}: model.layers is 2 in the recipe, 4 in the trained model"
    ]
    missing = cli("--run-dir", "ft3", "--init-from", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert "no such checkpoint or run directory" in missing.stderr
    mapped = cli("--run-dir", "ft4", "--map-speaker", "c")
    assert mapped.returncode == 1 and "expected NEW=KNOWN" in mapped.stderr


def test_a_fine_tune_killed_with_sigkill_resumes_to_the_same_weights(base, tmp_path):
    """kill -9 of `wavegen train --init-from` after its first checkpoint (wherever the kill lands:
    mid-step or mid-write), then the same command again: the weights equal an uninterrupted run's."""
    sections = {"train": {"checkpoint_interval": 2, "valid_interval": 1_000_000, "max_steps": 1_000_000}}
    write_recipe(tmp_path / "tiny.yaml", **sections)
    run = tmp_path / "ft"
    command = [sys.executable, "-m", "wavegen", "train", "tiny.yaml", "--workdir", str(base["new"])]
    command += ["--run-dir", str(run), "--init-from", str(base["run"]), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None and ck.latest_checkpoint(run) is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.kill()
    proc.communicate()
    step = ck.load_checkpoint(ck.latest_checkpoint(run))["step"]
    r = recipe(tmp_path, **{"train": {**sections["train"], "max_steps": step + 2}})
    resumed = train(r, base["new"], run, progress=False, init_from=base["run"])
    whole = train(r, base["new"], tmp_path / "whole", progress=False, init_from=base["run"])
    a, b = ck.load_checkpoint(resumed.checkpoint), ck.load_checkpoint(whole.checkpoint)
    assert a["step"] == b["step"] == step + 2
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)


def test_init_from_into_a_run_dir_of_a_run_trained_from_scratch_is_refused(base, tmp_path):
    """`train --init-from M --run-dir R` where R holds a run trained from scratch silently continued
    that run: the weights asked for were never used and nothing said so."""
    shutil.copytree(base["run"], tmp_path / "run")
    with pytest.raises(WavegenError) as err:
        train(
            recipe(tmp_path, train={"max_steps": 3}),
            base["root"] / "old",
            tmp_path / "run",
            progress=False,
            init_from=base["run"],
        )
    assert str(err.value) == (
        f"{tmp_path / 'run'}: holds a run trained from scratch (step 3), not a fine-tune: --init-from "
        f"{base['run']} would be ignored; pick another --run-dir, or drop --init-from to continue it"
    )


@pytest.mark.parametrize("kind", ["checkpoint", "export"])
def test_a_model_with_non_finite_weights_is_refused_naming_the_tensor(tmp_path, kind):
    """A forged or damaged model with NaN weights trained one step, then said "training diverged at
    step 1 ...; lower train.lr and resume": the model was broken, not the learning rate."""
    torch.manual_seed(0)
    model = WaveNet(ModelConfig(layers=2, stacks=1, residual_channels=4, gate_channels=8, skip_channels=4))
    with torch.no_grad():
        model.layers[1].conv.weight[0, 0, 0] = float("nan")
    source = save_model_run(tmp_path / "run", model)
    if kind == "export":
        source = export_model(source, tmp_path / "export")
    with pytest.raises(WavegenError) as err:
        load_init_source(source)
    message = ": layers.1.conv.weight holds NaN or infinite values; not a usable trained model"
    assert str(err.value).endswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "speakers, message",
    [
        (["a", "b", "c"], "speakers: 3 names for a speaker table of 2 rows"),
        (["b", "b"], "speakers: 'b' is listed twice"),
    ],
)
def test_a_speaker_list_that_does_not_fit_the_table_is_refused(tmp_path, speakers, message):
    """A damaged or forged model listing 3 speakers for a 2-row table was "internal error:
    IndexError" when a new run's speaker matched the third; a name listed twice silently took the
    first row."""
    torch.manual_seed(0)
    shape = {"layers": 2, "stacks": 1, "residual_channels": 4, "gate_channels": 8, "skip_channels": 4}
    config = ModelConfig(**shape, n_speakers=2, gin_channels=4)
    source = save_model_run(tmp_path / "run", WaveNet(config), speakers=tuple(speakers))
    with pytest.raises(WavegenError) as err:
        load_init_source(source)
    assert str(err.value).endswith(message) and str(err.value).startswith(f"--init-from {source}")
    # A model without a speaker table keeps the name of the voice it was trained on: fine.
    single = save_model_run(tmp_path / "single", WaveNet(ModelConfig(**shape)), speakers=("LJ",))
    assert load_init_source(single).speakers == ["LJ"]
