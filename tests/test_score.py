"""wavegen.score and `wavegen score`: windowed, batched scoring equals the whole-utterance
forward for unconditional, speaker and mel models; a Vocoder scores with the mel of the audio
itself (a conditional likelihood); the CLI's JSON and per-sample trace."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

import wavegen
from tests.helpers import save_model_run
from wavegen.cli import main
from wavegen.core.config import ModelConfig
from wavegen.core.errors import WavegenError
from wavegen.core.mulaw import mulaw_encode
from wavegen.model import WaveNet


def small_model(cin: int = 0, speakers: int = 0, scales=(2, 4), seed: int = 0) -> WaveNet:
    torch.manual_seed(seed)
    config = ModelConfig(
        quantize_channels=256,
        layers=6,
        stacks=2,
        residual_channels=16,
        gate_channels=24,
        skip_channels=16,
        cin_channels=cin,
        upsample_scales=list(scales),
        n_speakers=speakers,
        gin_channels=4,
    )
    model = WaveNet(config).eval()
    model.post_logits.weight.data.mul_(4.0)  # sharper than at init: per-sample bits vary more
    if cin:
        model.mel_mean.copy_(torch.randn(cin))
        model.mel_std.copy_(torch.rand(cin) + 0.5)
    return model


def speechlike(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 22050
    x = np.sin(2 * np.pi * 140 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(n)
    return (0.6 * x / np.abs(x).max()).astype(np.float32)


def reference_bits(model, wav, mel, speaker) -> np.ndarray:
    """Per-sample bits from one teacher-forced forward over the whole utterance."""
    codes = torch.from_numpy(mulaw_encode(wav, model.config.quantize_channels))[None]
    if mel is not None:
        frames = min(mel.shape[1], codes.shape[1] // model.hop_length)
        codes = codes[:, : frames * model.hop_length]
        mel = model.pad_mel(torch.from_numpy(mel[:, :frames])[None])
    spk = None if speaker is None else torch.tensor([speaker])
    with torch.no_grad():
        logits = model(codes, mel, spk)
    logp = torch.log_softmax(logits, dim=1).gather(1, codes[:, None, :])[0, 0]
    return (-logp / math.log(2)).numpy()


@pytest.mark.parametrize("cin,speakers", [(0, 0), (0, 3), (8, 0), (8, 3)])
def test_chunked_scoring_equals_the_whole_utterance_forward(cin, speakers):
    """Windows shorter than the receptive field, longer, and one for everything; batched 3 at a
    time (the last batch partly padded): every sample's bits equal the whole forward's."""
    model = small_model(cin, speakers)
    wav = speechlike(3001)
    mel = np.random.default_rng(1).normal(-4, 1, (cin, 3001 // 8)).astype(np.float32) if cin else None
    speaker = 2 if speakers else None
    expected = reference_bits(model, wav, mel, speaker)
    assert model.receptive_field > 17
    for chunk in (17, 500, 10**6):
        result = wavegen.score(model, wav, mel, speaker, chunk_samples=chunk, batch=3)
        assert result.samples == len(expected) == (3000 if cin else 3001)
        assert result.trace.dtype == np.float32
        delta = np.abs(result.trace - expected).max()
        assert delta < 2e-5, (chunk, delta)
        assert abs(result.bits - expected.astype(np.float64).sum()) < 1e-6 * result.bits
        assert result.conditional == bool(cin)
    assert result.bits_per_sample == pytest.approx(expected.mean(), rel=1e-6)
    assert expected.std() > 0.1  # the samples differ: a trace, not a constant


@pytest.mark.parametrize("cin,speakers", [(0, 3), (8, 0)])
def test_scoring_through_a_sampler_kernel(cin, speakers):
    """precision fp32 scores with the fp32 kernel's teacher-forced logits: the forward's bits up
    to float rounding. bf16 scores with the cpp-bf16 kernel's: close (its weights move by at
    most 2^-8 of themselves), not equal, and never the forward's bits by accident."""
    from wavegen.generation import backends

    if backends.get_kernel("cpp-bf16") is None:
        pytest.skip("no C++ compiler builds the cpp-bf16 kernel here")
    model = small_model(cin, speakers)
    wav = speechlike(3001)
    mel = np.random.default_rng(1).normal(-4, 1, (cin, 3001 // 8)).astype(np.float32) if cin else None
    speaker = 2 if speakers else None
    expected = reference_bits(model, wav, mel, speaker)
    fp32 = wavegen.score(model, wav, mel, speaker, chunk_samples=700, precision="fp32")
    assert np.abs(fp32.trace - expected).max() < 2e-5
    bf16 = wavegen.score(model, wav, mel, speaker, chunk_samples=700, precision="bf16")
    delta = np.abs(bf16.trace - expected)
    assert 1e-5 < delta.max() < 0.05 and abs(bf16.bits_per_sample - fp32.bits_per_sample) < 0.01
    with pytest.raises(WavegenError, match="precision must be one of forward, fp32, bf16"):
        wavegen.score(model, wav, mel, speaker, precision="int8")


def test_files_are_batched_together_with_the_same_result():
    model = small_model(speakers=3)
    waves = [speechlike(n, seed=n) for n in (700, 2100, 50)]
    alone = [wavegen.score(model, w, speaker=1, chunk_samples=300) for w in waves]
    together = wavegen.score(model, waves, speaker=1, chunk_samples=300, batch=4)
    assert [s.samples for s in together] == [700, 2100, 50]
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a.trace, b.trace, atol=2e-5)


def test_score_needs_what_the_model_needs():
    with pytest.raises(WavegenError, match="needs a mel"):
        wavegen.score(small_model(cin=8), speechlike(100))
    with pytest.raises(WavegenError, match="speaker"):
        wavegen.score(small_model(speakers=3), speechlike(100))
    with pytest.raises(WavegenError, match="no speaker conditioning"):
        wavegen.score(small_model(), speechlike(100), speaker=1)
    with pytest.raises(WavegenError, match="non-empty 1-D"):
        wavegen.score(small_model(), np.zeros((2, 5)))


def test_a_vocoder_scores_with_the_mel_of_the_audio(tmp_path):
    model = small_model(cin=80, scales=(4, 4, 4, 4))
    vocoder = wavegen.load_vocoder(save_model_run(tmp_path / "run", model))
    wav = speechlike(4000)
    result = wavegen.score(vocoder, wav)
    explicit = wavegen.score(vocoder.model, wav, mel=vocoder.mel(wav).numpy())
    assert result.conditional and result.samples == 4000 // 256 * 256
    np.testing.assert_array_equal(result.trace, explicit.trace)


def _cli(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err
    return captured.out


def test_cli_json_trace_and_speaker(tmp_path, capsys):
    run = save_model_run(tmp_path / "run", small_model(speakers=2), speakers=("anna", "bob"))
    for name, n in (("a", 3000), ("b", 1234)):
        sf.write(tmp_path / f"{name}.wav", speechlike(n, seed=n), 22050, subtype="FLOAT")
    files = [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]
    out = _cli(
        capsys,
        "score",
        *files,
        "-c",
        str(run),
        "--speaker",
        "bob",
        "--json",
        "--trace",
        str(tmp_path / "t.npy"),
    )
    summary = json.loads(out)
    assert [f["samples"] for f in summary["files"]] == [3000, 1234]
    assert not summary["conditional"] and "mu-law" in summary["likelihood"]
    trace = np.load(tmp_path / "t.npy")
    assert trace.dtype == np.float32 and len(trace) == 4234
    for f in summary["files"]:
        part = trace[f["trace_offset"] : f["trace_offset"] + f["samples"]]
        assert part.mean() == pytest.approx(f["bits_per_sample"], abs=1e-4)
    assert summary["bits_per_sample"] == pytest.approx(trace.astype(np.float64).mean(), abs=1e-4)
    by_id = json.loads(_cli(capsys, "score", *files, "-c", str(run), "--speaker", "1", "--json"))
    assert by_id["bits_per_sample"] == summary["bits_per_sample"]
    text = _cli(capsys, "score", files[0], "-c", str(run), "--speaker", "anna")
    assert "bits/sample" in text and "a.wav" in text


def test_trace_never_overwrites_an_input_or_the_model(tmp_path, capsys):
    """`--trace a.wav` once replaced the audio it scored with a .npy array."""
    run = save_model_run(tmp_path / "run", small_model())
    sf.write(tmp_path / "a.wav", speechlike(2000), 22050, subtype="FLOAT")
    audio, ckpt = (tmp_path / "a.wav").read_bytes(), next((tmp_path / "run" / "checkpoints").glob("*.pt"))
    for target, what in ((tmp_path / "a.wav", "an input"), (ckpt, "the model")):
        with pytest.raises(SystemExit) as exit_info:
            main(["score", str(tmp_path / "a.wav"), "-c", str(run), "--trace", str(target)])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"would overwrite {what}" in err[0], err
    assert (tmp_path / "a.wav").read_bytes() == audio


def test_cli_says_a_mel_model_gives_a_conditional_likelihood(tmp_path, capsys):
    run = save_model_run(tmp_path / "run", small_model(cin=80, scales=(4, 4, 4, 4)))
    sf.write(tmp_path / "a.wav", speechlike(3000), 22050, subtype="FLOAT")
    summary = json.loads(_cli(capsys, "score", str(tmp_path / "a.wav"), "-c", str(run), "--json"))
    assert summary["conditional"] and "P(x | mel(x))" in summary["likelihood"]
    assert "conditional" in _cli(capsys, "score", str(tmp_path / "a.wav"), "-c", str(run))


def test_cli_names_the_file_too_short_for_the_mel(tmp_path, capsys):
    """Found by the #18 hunt: "audio too short for the tacotron2 preset" named no file."""
    from wavegen.cli import run as run_cli

    run = save_model_run(tmp_path / "run", small_model(cin=80, scales=(4, 4, 4, 4)))
    sf.write(tmp_path / "a.wav", speechlike(3000), 22050, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", speechlike(100), 22050, subtype="FLOAT")
    capsys.readouterr()
    assert run_cli(["score", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "-c", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"wavegen: error: {tmp_path / 'b.wav'}: audio too short for the tacotron2"), err
