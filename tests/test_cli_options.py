"""Options shared by several commands mean the same in each (wavegen.cli.options): --speaker is a
speaker's name or its index for synthesize, score and compress alike; --device is checked."""

import json

import numpy as np
import soundfile as sf
import torch

from tests.helpers import save_model_run
from wavegen.cli import run as run_cli
from wavegen.core.config import ModelConfig
from wavegen.model import WaveNet


def speaker_model_run(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(
        layers=2,
        stacks=1,
        residual_channels=4,
        gate_channels=8,
        skip_channels=4,
        n_speakers=2,
        gin_channels=4,
    )
    with torch.no_grad():
        model = WaveNet(config)
        model.speaker_embed.weight.mul_(10)  # two clearly different speakers
    return save_model_run(tmp_path / "run", model, speakers=("anna", "bert"))


def a_wav(path):
    t = np.arange(11025) / 22050
    sf.write(
        path, (0.3 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32), 22050
    )
    return path


def test_speaker_is_a_name_or_its_index_in_synthesize_and_score(tmp_path, capsys):
    run, wav = speaker_model_run(tmp_path), a_wav(tmp_path / "x.wav")
    audio, bits = {}, {}
    for speaker in ("bert", "1", "0"):
        out = tmp_path / f"out_{speaker}"
        args = ["synthesize", "-c", str(run), "--wav", str(wav), "-o", str(out), "--seed", "3"]
        assert run_cli([*args, "--speaker", speaker]) == 0, capsys.readouterr().err
        audio[speaker] = sf.read(out / "x.wav")[0]
        capsys.readouterr()
        assert run_cli(["score", "-c", str(run), str(wav), "--speaker", speaker, "--json"]) == 0
        bits[speaker] = json.loads(capsys.readouterr().out)["bits_per_sample"]
    np.testing.assert_array_equal(audio["bert"], audio["1"])
    assert bits["bert"] == bits["1"] != bits["0"]


def test_device_is_checked_the_same_way_by_score_and_warmup(tmp_path, capsys):
    run, wav = speaker_model_run(tmp_path), a_wav(tmp_path / "x.wav")
    for args in (["score", "-c", str(run), str(wav), "--speaker", "anna"], ["warmup"]):
        capsys.readouterr()
        assert run_cli([*args, "--device", "tpu"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("wavegen: error: --device 'tpu'"), err


def test_only_ascii_digits_are_a_speaker_index():
    """ "²" passed str.isdigit and then int() failed ("internal error: ValueError"); "١" (an
    Arabic-Indic one) silently chose speaker 1. Either is a name, refused if the model has none."""
    from wavegen.cli.options import speaker_value

    assert speaker_value(["anna", "bert"], "1") == 1 and speaker_value(["anna", "bert"], "01") == 1
    for text in ("²", "١", "1\u0301"):
        assert speaker_value(["anna", "bert"], text) == text
    assert speaker_value(["²"], "²") == "²"
