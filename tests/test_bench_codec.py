"""``wavegen bench --codec``: the codec's section beside FLAC -8 and xz on the same μ-law stream."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tests.helpers import save_model_run
from tests.test_bench import TINY_RECIPE
from tests.test_codec import codec_model
from wavegen.bench.codec import flac_bytes, xz_bytes
from wavegen.cli import main
from wavegen.core.mulaw import mulaw_encode


def test_flac_and_xz_code_the_mulaw_stream():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 20000)
    silence = np.full(20000, 128)
    tone = mulaw_encode(0.5 * np.sin(np.arange(20000) * 2 * np.pi * 200 / 22050))
    # Noise cannot shrink below 8 bits/sample; silence and a tone shrink a lot. (flac_bytes
    # decodes its file and checks it against the input.)
    assert 8 * flac_bytes(noise, 22050) > 7.9 * 20000 and 8 * xz_bytes(noise) > 7.9 * 20000
    assert flac_bytes(silence, 22050) < 2000 and xz_bytes(silence) < 500
    assert flac_bytes(tone, 22050) < 0.6 * 20000 and xz_bytes(tone) < 0.2 * 20000


def test_bench_codec_section(tmp_path, capsys):
    run = save_model_run(tmp_path / "run", codec_model())
    sf.write(tmp_path / "a.wav", 0.3 * np.sin(np.arange(3000) * 0.07), 22050, subtype="PCM_16")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    args = ["bench", "--json", "--config", str(recipe), "--seconds", "0.02", "--batch", "1"]
    args += ["--baseline-samples", "0", "--train-steps", "1", "--codec", str(run)]
    args += ["--codec-audio", str(tmp_path / "a.wav"), "--codec-audio", str(tmp_path / "a.wav")]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert not exit_info.value.code
    codec = json.loads(capsys.readouterr().out)["codec"]
    assert codec["files"] == 2 and codec["samples"] == 6000 and codec["sample_rate"] == 22050
    for key in ("wavegen", "wavegen_payload", "wavegen_ideal", "score", "flac8", "xz"):
        assert codec[f"{key}_bits_per_sample"] > 0
    assert codec["compress_samples_per_s"] > 0 and codec["decompress_samples_per_s"] > 0
    assert codec["wavegen_bits_per_sample"] > codec["wavegen_payload_bits_per_sample"]  # the header


def test_bench_codec_needs_audio(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--json", "--codec", str(tmp_path)])
    assert exit_info.value.code == 1
    assert "--codec-audio" in capsys.readouterr().err
