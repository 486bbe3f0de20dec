"""Loading an export or a checkpoint that was edited by hand: config.json is validated like a
recipe, and a stored recipe that no longer fits its weights is refused, each in one line that
names the file and the key (never an internal error)."""

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import wavegen
from wavegen.artifacts.checkpoint import load_checkpoint, save_checkpoint
from wavegen.artifacts.export import export_model, load_exported
from wavegen.core.errors import WavegenError

from .test_vocoder import make_run


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return export_model(make_run(root, speakers=("a", "b", "c")), root / "export")


def edited(folder, tmp_path, edit):
    """A copy of the export ``folder`` with its config.json passed through ``edit``."""
    out = tmp_path / "edited"
    out.mkdir()
    (out / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config = edit(config) or config
    (out / "config.json").write_text(json.dumps(config))
    return out


def drop(key):
    def edit(config):
        config.pop(key)

    return edit


def put(path, value):
    def edit(config):
        node = config
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        node[last] = value

    return edit


def drop_in(section, key):
    def edit(config):
        config[section].pop(key)

    return edit


CASES = [
    (drop("speakers"), "missing key 'speakers'"),
    (put("extra", 1), "unknown key 'extra'"),
    (put("format", "other"), "not a wavegen vocoder config"),
    (lambda c: [c], "not a wavegen vocoder config"),
    (put("sample_rate", 0), "key 'sample_rate': expected the tacotron2 preset's 22050, got 0"),
    (put("sample_rate", "22050"), "key 'sample_rate': expected an integer"),
    (put("hop_length", 300), "key 'hop_length': expected 256"),
    (put("mel_normalize", "yes"), "key 'mel_normalize': expected true or false"),
    (put("step", -1), "key 'step'"),
    (put("speakers", "a"), "key 'speakers': expected a list"),
    (put("speakers", ["a", 2, "c"]), "key 'speakers': expected a list of distinct speaker names"),
    (put("speakers", ["a", "b", "c", "d"]), "4 speakers for model.n_speakers 3"),
    (put("mel_stats", {"mean": []}), "key 'mel_stats'"),
    (put("mel_stats.std", [0.0] * 80), "mel_stats.std"),
    (put("preset.hop_length", 300), "preset.hop_length is 300, but wavegen's tacotron2 preset has 256"),
    (put("preset.name", "nope"), "unknown mel preset 'nope'"),
    (put("preset.n_fft", "x"), "preset.n_fft'? ?: expected an integer"),
    (drop_in("preset", "floor"), "preset.floor: missing"),
    (put("preset", [1]), "preset'?: expected a mapping"),
    (put("model", "x"), "key 'model': expected a mapping"),
    (drop_in("model", "layers"), "model.layers: missing"),
    (put("model.foo", 1), "unknown config key 'model.foo'"),
    (put("model.layers", "four"), "model.layers'?: expected an integer"),
    (put("model.layers", 5), r"model.layers \(5\) must be a multiple of model.stacks \(2\)"),
    (put("model.stacks", 0), "model.stacks must be at least 1, got 0"),
    (put("model.residual_channels", -8), "model.residual_channels must be at least 1"),
    (put("model.upsample_scales", [4, 4, 4]), "multiply to 64, but the tacotron2 preset's hop_length is 256"),
    (put("model.n_speakers", -1), "model.n_speakers must be at least 0"),
    (put("model.cin_channels", 64), "model.cin_channels is 64, but the tacotron2 preset has 80"),
    (put("model.layers", 6), "model.safetensors: the weights do not fit the model: missing layers.4"),
    (
        put("model.residual_channels", 16),
        r"embed.weight has shape \(256, 8\), the model \(256, 16\) \(config.json's model",
    ),
]


@pytest.mark.parametrize("edit,message", CASES)
def test_edited_config_json_is_one_line_naming_file_and_key(exported, tmp_path, edit, message):
    folder = edited(exported, tmp_path, edit)
    with pytest.raises(WavegenError, match=message) as err:
        load_exported(folder)
    text = str(err.value)
    assert "\n" not in text and str(folder) in text, text
    if "weights do not fit" not in text:
        assert text.startswith(f"{folder / 'config.json'}: "), text


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "wavegen", *args], capture_output=True, text=True)


def test_cli_reports_a_bad_export_in_one_line(exported, tmp_path):
    folder = edited(exported, tmp_path, put("sample_rate", 0))
    (tmp_path / "m.npy").write_bytes(b"")  # never read: the model fails first
    r = run_cli("synthesize", "-c", str(folder), "--mel", str(tmp_path / "m.npy"), "-o", str(tmp_path / "o"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "internal error" not in r.stderr, r.stderr
    assert lines[0].startswith(f"wavegen: error: {folder / 'config.json'}: key 'sample_rate'")


def resave_with(run, edit):
    """Edit the stored recipe of the run's checkpoint and save it again (valid checksum)."""
    path = run / "checkpoints" / "step_00000010.pt"
    ckpt = load_checkpoint(path)
    edit(ckpt["recipe"])
    ckpt.pop("format")
    save_checkpoint(path, ckpt)
    return path


@pytest.mark.parametrize(
    "edit,message",
    [
        (put("model.layers", 6), "the weights do not fit the model: missing layers.4"),
        (
            put("model.gate_channels", 32),
            r"layers.0.conv.weight has shape \(16, 8, 3\), the model \(32, 8, 3\)",
        ),
        (put("model.layers", 5), r"model.layers \(5\) must be a multiple of model.stacks"),
        (put("model.foo", 1), "unknown config key 'model.foo'"),
        (put("model.stacks", 0), "model.stacks must be at least 1"),
    ],
)
def test_checkpoint_whose_recipe_no_longer_fits_is_one_line(tmp_path, edit, message):
    run = make_run(tmp_path)
    path = resave_with(run, edit)
    for load in (wavegen.load_vocoder, lambda p: export_model(p, tmp_path / "export")):
        with pytest.raises(WavegenError, match=message) as err:
            load(run)
        assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value), str(err.value)
    r = run_cli("export", str(run), str(tmp_path / "export"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "internal error" not in r.stderr, r.stderr
    assert f"{path}: " in lines[0]


def test_valid_exports_and_checkpoints_still_load(exported, tmp_path):
    vocoder = wavegen.load_vocoder(exported)
    assert vocoder.speakers == ["a", "b", "c"] and vocoder.speaker_conditioned
    model, config = load_exported(exported)
    assert config["preset"] == wavegen.get_preset("tacotron2") and config["speakers"] == ["a", "b", "c"]
    torch.testing.assert_close(model.embed.weight, vocoder.model.embed.weight)


def test_export_into_a_file_and_a_failed_write_leave_no_half_export(tmp_path, monkeypatch):
    """Found by the #18 hunt: `export RUN a.wav` said "a.wav: File exists"; and a config.json
    write that failed after model.safetensors was written left new weights beside an old config."""
    import builtins

    run = make_run(tmp_path / "r")
    (tmp_path / "file").write_text("x")
    with pytest.raises(WavegenError, match=r"file: is a file; expected the folder to export into"):
        export_model(run, tmp_path / "file")
    out = export_model(run, tmp_path / "out")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_open = builtins.open

    def opener(file, mode="r", *args, **kwargs):  # ENOSPC from the config's low-level write
        if "w" in mode and Path(file).name.startswith(".config.json."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", opener)
    with pytest.raises(WavegenError, match=r"config.json: cannot write: No space left on device"):
        export_model(make_run(tmp_path / "r2", speakers=("a",)), out)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
