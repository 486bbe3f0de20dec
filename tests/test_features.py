"""Mel presets against independent re-implementations of the TTS front-ends they must match.

- ``tacotron2``: NVIDIA tacotron2's ``TacotronSTFT.mel_spectrogram`` computes the STFT as a
  strided convolution with a windowed Fourier basis (``np.fft.fft(np.eye(n_fft))``) on a
  reflect-padded signal, takes the magnitude, applies librosa's mel basis and then
  ``log(clamp(x, 1e-5))``. We redo exactly that in numpy (float64).
- ``espnet``/``espnet-24k``: ParallelWaveGAN's ``logmelfilterbank`` is ``librosa.stft`` (centred,
  reflect padding), ``np.abs``, librosa's mel basis, ``log10(max(1e-10, ·))``. We call librosa.
"""

import librosa
import numpy as np
import pytest
import scipy.signal
import torch

from wavegen.core.errors import WavegenError
from wavegen.core.features import PRESETS, get_preset, mel_spectrogram, num_frames


def speechlike(sr: int, seconds: float = 1.3, seed: int = 0) -> np.ndarray:
    """Harmonic tone with vibrato plus noise: energy across the band, silence-free."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 30))
    x = x + 0.05 * rng.standard_normal(len(t))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def nvidia_tacotron_mel(wav: np.ndarray) -> np.ndarray:
    n_fft, hop, win = 1024, 256, 1024
    fourier = np.fft.fft(np.eye(n_fft))[: n_fft // 2 + 1]
    window = librosa.util.pad_center(scipy.signal.get_window("hann", win, fftbins=True), size=n_fft)
    real, imag = np.real(fourier) * window, np.imag(fourier) * window
    x = np.pad(wav.astype(np.float64), n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]  # (frames, n_fft)
    mag = np.sqrt((frames @ real.T) ** 2 + (frames @ imag.T) ** 2).T
    basis = librosa.filters.mel(sr=22050, n_fft=n_fft, n_mels=80, fmin=0.0, fmax=8000.0)
    return np.log(np.clip(basis @ mag, 1e-5, None))


def pwg_logmelfilterbank(wav, sr, fft_size, hop_size, win_length, fmin, fmax) -> np.ndarray:
    x_stft = librosa.stft(
        wav.astype(np.float64),
        n_fft=fft_size,
        hop_length=hop_size,
        win_length=win_length,
        window="hann",
        pad_mode="reflect",
    )
    spc = np.abs(x_stft).T
    basis = librosa.filters.mel(sr=sr, n_fft=fft_size, n_mels=80, fmin=fmin, fmax=fmax)
    return np.log10(np.maximum(1e-10, spc @ basis.T)).T


def assert_float32_close(got: np.ndarray, ref: np.ndarray) -> None:
    diff = np.abs(got - ref)
    assert np.quantile(diff, 0.999) <= 5e-4, np.quantile(diff, 0.999)
    assert diff.max() <= 5e-3, diff.max()


def test_tacotron2_preset_matches_nvidia_tacotron_stft():
    wav = speechlike(22050)
    assert_float32_close(mel_spectrogram(wav, "tacotron2"), nvidia_tacotron_mel(wav))


@pytest.mark.parametrize("name", ["espnet", "espnet-24k"])
def test_espnet_presets_match_parallel_wavegan_logmelfilterbank(name):
    p = get_preset(name)
    wav = speechlike(p.sample_rate, seed=1)
    ref = pwg_logmelfilterbank(wav, p.sample_rate, p.n_fft, p.hop_length, p.win_length, p.fmin, p.fmax)
    assert_float32_close(mel_spectrogram(wav, name), ref)


def test_preset_parameters():
    t, e, e24 = PRESETS["tacotron2"], PRESETS["espnet"], PRESETS["espnet-24k"]
    assert (t.sample_rate, t.n_fft, t.hop_length, t.win_length) == (22050, 1024, 256, 1024)
    assert (t.fmin, t.fmax, t.log_base, t.floor) == (0, 8000, "e", 1e-5)
    assert (e.fmin, e.fmax, e.log_base, e.floor) == (80, 7600, "10", 1e-10)
    assert (e24.sample_rate, e24.n_fft, e24.hop_length, e24.win_length) == (24000, 2048, 300, 1200)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("length", [5000, 5120, 22050])
def test_shapes_and_frame_count(name, length):
    p = get_preset(name)
    wav = speechlike(p.sample_rate)[:length]
    mel = mel_spectrogram(wav, name)
    assert mel.shape == (80, 1 + length // p.hop_length) == (80, num_frames(length, p.hop_length))
    assert mel.dtype == np.float32


def test_torch_batched_equals_numpy_per_item():
    wav = np.stack([speechlike(22050, seed=s)[:8000] for s in range(3)])
    batched = mel_spectrogram(torch.from_numpy(wav), "tacotron2")
    assert isinstance(batched, torch.Tensor) and batched.shape == (3, 80, 32)
    for i in range(3):
        np.testing.assert_allclose(batched[i].numpy(), mel_spectrogram(wav[i], "tacotron2"), atol=1e-5)


def test_log_floor_on_silence():
    silence = np.zeros(4096, dtype=np.float32)
    np.testing.assert_allclose(mel_spectrogram(silence, "tacotron2"), np.log(1e-5), rtol=1e-6)
    np.testing.assert_allclose(mel_spectrogram(silence, "espnet"), -10.0, rtol=1e-6)


def test_unknown_preset_and_too_short_audio():
    with pytest.raises(WavegenError, match="unknown mel preset 'nope'"):
        mel_spectrogram(np.zeros(4096, np.float32), "nope")
    with pytest.raises(WavegenError, match="too short"):
        mel_spectrogram(np.zeros(100, np.float32), "tacotron2")
