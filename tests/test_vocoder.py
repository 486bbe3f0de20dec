"""The vocoder backend: export/load round trip, mel checks, speakers, pickle refusal, synthesis."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import wavegen
from wavegen.artifacts.checkpoint import save_checkpoint
from wavegen.artifacts.export import export_model
from wavegen.core.config import Recipe
from wavegen.core.errors import WavegenError
from wavegen.core.features import get_preset, mel_spectrogram
from wavegen.generation import backends
from wavegen.model import WaveNet

LJ = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "ljspeech-mini"


def speech(seconds=0.5, sr=22050, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 2 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 25)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * x / np.abs(x).max() + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def make_run(tmp_path, preset="tacotron2", speakers=(), mel_normalize=False) -> Path:
    """A run dir with one checkpoint per the training contract (tiny model, EMA != raw)."""
    recipe = Recipe()
    recipe.audio.preset = preset
    recipe.audio.mel_normalize = mel_normalize
    m = recipe.model
    m.layers, m.stacks, m.residual_channels, m.gate_channels, m.skip_channels = 4, 2, 8, 16, 8
    m.upsample_scales = [4, 4, 4, 4] if get_preset(preset).hop_length == 256 else [3, 4, 5, 5]
    m.n_speakers = len(speakers) if len(speakers) > 1 else 0
    torch.manual_seed(0)
    model = WaveNet(m)
    if mel_normalize:
        model.mel_mean.fill_(-5.0)
        model.mel_std.fill_(2.0)
    ema = {
        k: v + 0.01 if v.is_floating_point() and "mel_" not in k else v.clone()
        for k, v in model.state_dict().items()
    }
    run = tmp_path / "run"
    save_checkpoint(
        run / "checkpoints" / "step_00000010.pt",
        {
            "step": 10,
            "model": model.state_dict(),
            "ema": ema,
            "optimizer": None,
            "scheduler": None,
            "sampler": {},
            "rng": {},
            "recipe": recipe.to_dict(),
            "speakers": list(speakers),
            "preset": get_preset(preset).to_dict(),
            "valid_bits": None,
        },
    )
    return run


def test_export_writes_safetensors_and_config_with_ema_weights(tmp_path):
    run = make_run(tmp_path, speakers=("a", "b", "c"))
    out = export_model(run, tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["format"] == "wavegen-vocoder-1" and config["preset"]["name"] == "tacotron2"
    assert (config["sample_rate"], config["hop_length"], config["speakers"]) == (22050, 256, ["a", "b", "c"])
    assert config["model"]["layers"] == 4 and config["step"] == 10 and config["ema"] is True
    from safetensors.torch import load_file

    weights = load_file(out / "model.safetensors")
    ckpt = torch.load(run / "checkpoints" / "step_00000010.pt", weights_only=True)
    torch.testing.assert_close(weights["embed.weight"], ckpt["ema"]["embed.weight"])
    assert not torch.equal(weights["embed.weight"], ckpt["model"]["embed.weight"])


@pytest.mark.parametrize("source", ["export", "run", "file"])
def test_load_vocoder_properties(tmp_path, source):
    run = make_run(tmp_path)
    path = {
        "export": lambda: export_model(run, tmp_path / "e"),
        "run": lambda: run,
        "file": lambda: run / "checkpoints" / "step_00000010.pt",
    }[source]()
    voc = wavegen.load_vocoder(path)
    assert (voc.sample_rate, voc.hop_length, voc.mel_preset, voc.speakers) == (22050, 256, "tacotron2", [])
    # The sampler kernel is ready before the first request, and the repr says which one runs:
    # precision auto is the bf16 kernel where the CPU has a vector path for it.
    assert voc.backend in backends.KERNEL_NAMES and f"backend={voc.backend!r}" in repr(voc)
    assert backends.get_kernel(voc.backend) is not None
    assert voc.precision == backends.default_precision() and f"precision={voc.precision!r}" in repr(voc)
    exact = wavegen.load_vocoder(path, precision="fp32")
    assert exact.backend in backends.CPU_KERNELS and exact.precision == "fp32"
    # EMA weights are what the vocoder uses, whichever form it was loaded from.
    ema = torch.load(run / "checkpoints" / "step_00000010.pt", weights_only=True)["ema"]
    torch.testing.assert_close(voc.model.embed.weight, ema["embed.weight"])


def test_mel_front_end_matches_preset(tmp_path):
    voc = wavegen.load_vocoder(make_run(tmp_path))
    wav = speech()
    np.testing.assert_allclose(voc.mel(wav).numpy(), mel_spectrogram(wav, "tacotron2"), atol=1e-6)
    resampled = voc.mel(speech(sr=16000), sample_rate=16000)
    assert resampled.shape == (80, 1 + 11025 // 256)


def test_vocodes_to_exactly_frames_times_hop(tmp_path):
    voc = wavegen.load_vocoder(export_model(make_run(tmp_path), tmp_path / "e"))
    mel = voc.mel(speech(0.3))
    wav = voc(mel, seed=0)
    assert wav.shape == (mel.shape[1] * 256,) and wav.dtype == torch.float32
    assert wav.abs().max() <= 1.0
    torch.testing.assert_close(voc(mel.T.numpy(), seed=0), wav)  # [T, n_mels] numpy input
    batch = voc(torch.stack([mel, mel]), seed=0)
    assert batch.shape == (2, mel.shape[1] * 256)


def test_batch_of_different_lengths_and_streaming(tmp_path):
    voc = wavegen.load_vocoder(make_run(tmp_path))
    a, b = voc.mel(speech(0.3, seed=1)), voc.mel(speech(0.2, seed=2))
    outs = voc.batch([a, b], temperature=0)
    assert [len(o) for o in outs] == [a.shape[1] * 256, b.shape[1] * 256]
    torch.testing.assert_close(outs[1], voc(b, temperature=0))  # argmax: batch == alone
    one_shot = voc(a, seed=3)
    chunks = list(voc.stream(a, seed=3))
    assert len(chunks) > 1
    torch.testing.assert_close(torch.cat(chunks), one_shot)


@pytest.fixture(params=["ljspeech", "demo"])
def speech_source(request, tmp_path_factory):
    """A speech file: real LJSpeech (when ../shared is there) or wavegen's synthetic demo speech."""
    if request.param == "ljspeech":
        if not LJ.is_dir():
            pytest.skip(f"needs the shared LJSpeech excerpt at {LJ}")
        return LJ / "wavs" / "LJ001-0001.wav"
    from wavegen.data.corpora.demo import make_demo_corpus

    return sorted(make_demo_corpus(tmp_path_factory.mktemp("demo")).rglob("*.wav"))[0]


def real_mel(path, preset):
    wav, _ = wavegen.read_audio(path, sample_rate=get_preset(preset).sample_rate)
    return torch.from_numpy(mel_spectrogram(wav[:44100], preset))


def test_real_mels_of_the_right_preset_pass_the_checks(tmp_path, speech_source):
    for preset in ("tacotron2", "espnet"):
        voc = wavegen.load_vocoder(make_run(tmp_path / preset, preset=preset))
        voc.check_values(real_mel(speech_source, preset)[None])


@pytest.mark.parametrize(
    "transform,message",
    [
        (lambda m: m / np.log(10), "look log10"),  # log10 mel to a ln model
        (lambda m: (m - m.mean(1, keepdim=True)) / m.std(1, keepdim=True), "look normalised"),
        (lambda m: 20 * m / np.log(10), "look like dB"),  # dB scale
        (lambda m: m.exp(), "look linear"),  # not log at all
        (lambda m: m[:64], "expected 80 mel bins"),
        (lambda m: m.clone().fill_(float("nan")), "NaN"),
    ],
)
def test_mismatched_mels_are_refused_with_what_was_expected(tmp_path, transform, message, speech_source):
    voc = wavegen.load_vocoder(make_run(tmp_path))
    with pytest.raises(WavegenError, match=message) as err:
        voc(transform(real_mel(speech_source, "tacotron2")))
    if "bins" not in message and "NaN" not in message:
        assert "expected 80 natural-log mel bins (tacotron2 preset" in str(err.value)


def test_natural_log_mel_refused_by_log10_model(tmp_path, speech_source):
    voc = wavegen.load_vocoder(make_run(tmp_path, preset="espnet"))
    with pytest.raises(WavegenError, match="expected 80 log10 mel bins.*look natural-log"):
        voc(real_mel(speech_source, "tacotron2"))


def test_speakers_are_checked_and_listed(tmp_path):
    voc = wavegen.load_vocoder(make_run(tmp_path, speakers=("p225", "p226")))
    mel = voc.mel(speech(0.1))
    with pytest.raises(WavegenError, match="unknown speaker 'p999'; valid speakers: p225, p226"):
        voc(mel, speaker="p999")
    with pytest.raises(WavegenError, match="needs a speaker; valid speakers: p225, p226"):
        voc(mel)
    a = voc(mel, speaker="p225", temperature=0)
    b = voc(mel, speaker=1, temperature=0)
    assert a.shape == b.shape


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_bearing_files_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = str(marker)
    bad_ckpt = tmp_path / "evil.pt"
    torch.save({"format": "wavegen-checkpoint-1", "payload": evil}, bad_ckpt)
    with pytest.raises(WavegenError, match="evil.pt"):
        wavegen.load_vocoder(bad_ckpt)
    bad_mel = tmp_path / "mel.npy"
    np.save(bad_mel, np.array([evil], dtype=object), allow_pickle=True)
    from wavegen.inference.synthesize import load_mel_file

    with pytest.raises(WavegenError, match="mel.npy"):
        load_mel_file(bad_mel)
    bad_pt_mel = tmp_path / "mel.pt"
    with open(bad_pt_mel, "wb") as f:
        pickle.dump(evil, f)
    with pytest.raises(WavegenError, match="mel.pt"):
        load_mel_file(bad_pt_mel)
    assert not marker.exists()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "wavegen", *args], capture_output=True, text=True)


@pytest.mark.slow  # CLI subprocesses
def test_synthesize_cli_from_wavs_and_mels(tmp_path):
    model = export_model(make_run(tmp_path), tmp_path / "export")
    wavegen.write_audio(tmp_path / "in" / "a.wav", speech(0.2), 22050)
    wavegen.write_audio(tmp_path / "in" / "b.wav", speech(0.25, sr=16000), 16000)  # resampled
    r = run_cli(
        "synthesize",
        "--checkpoint",
        str(model),
        "--wav",
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "out"),
        "--seed",
        "1",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["synthesized"] == 2
    import soundfile as sf

    info = sf.info(tmp_path / "out" / "b.wav")
    assert info.samplerate == 22050 and info.subtype == "PCM_16"
    assert info.frames == (1 + int(0.25 * 22050) // 256) * 256
    mel = mel_spectrogram(speech(0.2), "tacotron2")
    np.save(tmp_path / "tts.npy", mel.T)  # [T, n_mels]
    r = run_cli(
        "synthesize",
        "--checkpoint",
        str(model),
        "--mel",
        str(tmp_path / "tts.npy"),
        "-o",
        str(tmp_path / "out2"),
    )
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "out2" / "tts.wav").frames == mel.shape[1] * 256
    np.save(tmp_path / "bad.npy", mel / np.log(10))
    r = run_cli(
        "synthesize",
        "--checkpoint",
        str(model),
        "--mel",
        str(tmp_path / "bad.npy"),
        "-o",
        str(tmp_path / "out3"),
    )
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "look log10" in r.stderr


def test_synthesize_shards_utterances_across_torchrun_ranks(monkeypatch):
    from wavegen.core.distributed import shard
    from wavegen.inference.synthesize import Item

    items = [Item(f"u{i}", torch.zeros(80, 3)) for i in range(7)]
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert shard(items) == items
    parts = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        parts.append([it.id for it in shard(items)])
    assert sorted(sum(parts, [])) == sorted(it.id for it in items)  # each exactly once
    assert all(set(a).isdisjoint(b) for a in parts for b in parts if a is not b)


# ---- mel and input checks (issue 10, item 10) ----------------------------------------------------


@pytest.mark.parametrize("preset", ["tacotron2", "espnet"])
def test_silence_from_the_vocoders_own_front_end_is_vocoded(tmp_path, preset):
    """A silent mel is every bin at the preset's floor: no sign of a scale, and nothing wrong."""
    voc = wavegen.load_vocoder(make_run(tmp_path, preset=preset))
    mel = voc.mel(np.zeros(22050, np.float32))
    floor = {"tacotron2": np.log(1e-5), "espnet": np.log10(1e-10)}[preset]
    assert mel.max() == mel.min() and mel.max().item() == pytest.approx(floor)
    wav = voc(mel, seed=0)
    assert wav.shape == (mel.shape[1] * 256,)
    voc.check_values(voc.mel(np.r_[np.zeros(20000), 0.3 * speech(0.05)].astype(np.float32))[None])


@pytest.mark.parametrize("gain_db", [0, -20, -40, -60, -80])
def test_quiet_speech_passes_and_the_wrong_log_base_is_still_refused(tmp_path, speech_source, gain_db):
    wav, _ = wavegen.read_audio(speech_source, sample_rate=22050)
    wav = wav[:44100] * np.float32(10 ** (gain_db / 20))
    ln = wavegen.load_vocoder(make_run(tmp_path / "ln", preset="tacotron2"))
    log10 = wavegen.load_vocoder(make_run(tmp_path / "log10", preset="espnet"))
    ln.check_values(ln.mel(wav)[None])
    log10.check_values(log10.mel(wav)[None])
    with pytest.raises(WavegenError, match="look log10"):
        ln.check_values(log10.mel(wav)[None])
    with pytest.raises(WavegenError, match="look natural-log|below the preset's floor"):
        log10.check_values(ln.mel(wav)[None])


@pytest.mark.parametrize(
    "mel",
    [
        torch.zeros(80, 5, dtype=torch.complex64),
        np.zeros((80, 5), np.complex128),
        torch.zeros(80, 5, dtype=torch.int64),
        np.zeros((80, 5), np.int16),
        np.zeros((80, 5), bool),
        np.full((80, 5), "x", dtype=object),
    ],
    ids=["torch-complex", "numpy-complex", "torch-int", "numpy-int", "bool", "object"],
)
def test_complex_integer_and_other_dtypes_are_refused(tmp_path, mel):
    voc = wavegen.load_vocoder(make_run(tmp_path))
    with pytest.raises(WavegenError, match=r"^mel: expected real floating-point values, got dtype") as err:
        voc(mel)
    assert "\n" not in str(err.value)


def test_front_end_refuses_non_finite_and_integer_audio(tmp_path):
    voc = wavegen.load_vocoder(make_run(tmp_path))
    for bad in (np.float32("nan"), np.float32("inf"), -np.float32("inf")):
        wav = speech(0.2)
        wav[100] = bad
        with pytest.raises(WavegenError, match="audio: contains NaN or infinite samples"):
            voc.mel(wav)
        with pytest.raises(WavegenError, match="NaN or infinite"):
            voc.mel(torch.from_numpy(wav))
    with pytest.raises(WavegenError, match="got dtype int16 .divide 16-bit PCM by 32768"):
        voc.mel((speech(0.2) * 32767).astype(np.int16))


def test_batch_of_nothing_is_nothing(tmp_path):
    voc = wavegen.load_vocoder(make_run(tmp_path))
    assert voc.batch([]) == []


@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -float("inf"), -0.5])
def test_bad_temperatures_are_refused_everywhere(tmp_path, temperature):
    voc = wavegen.load_vocoder(make_run(tmp_path))
    mel = voc.mel(speech(0.05))
    expected = "temperature must be a finite number ≥ 0"
    with pytest.raises(WavegenError, match=expected):
        voc(mel, temperature=temperature)
    with pytest.raises(WavegenError, match=expected):
        voc.batch([mel], temperature=temperature)
    with pytest.raises(WavegenError, match=expected):
        next(iter(voc.stream(mel, temperature=temperature)))
    with pytest.raises(WavegenError, match=expected):
        wavegen.generate(voc.model, mel[None], temperature=temperature)
    with pytest.raises(WavegenError, match=expected):
        next(wavegen.stream(voc.model, mel[None], temperature=temperature))
    assert voc(mel, temperature=0).shape == (mel.shape[1] * 256,)  # 0 = argmax stays allowed


def test_a_model_without_speaker_conditioning_synthesizes_a_one_speaker_split(tmp_path):
    """LJSpeech's checkpoints list the corpus's one speaker ("LJ") although the model has no
    speaker table; `wavegen synthesize --split` passed that name on and was refused."""
    from wavegen.core.config import ModelConfig
    from wavegen.inference.synthesize import Item, synthesize
    from wavegen.inference.vocoder import Vocoder

    config = ModelConfig(
        layers=2, stacks=1, residual_channels=4, gate_channels=8, skip_channels=4, n_speakers=0
    )
    vocoder = Vocoder(WaveNet(config), get_preset("tacotron2"), speakers=["LJ"])
    assert vocoder.speakers == ["LJ"] and not vocoder.speaker_conditioned
    mel = torch.from_numpy(mel_spectrogram(speech(0.1), "tacotron2"))
    summary = synthesize(vocoder, [Item("a", mel, "LJ")], tmp_path, seed=0, progress=False)
    assert summary["synthesized"] == 1 and (tmp_path / "a.wav").is_file()
