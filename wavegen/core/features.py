"""Mel front-end with named presets matching what TTS front-ends produce.

Computed with ``torch.stft`` (runs on GPU) and ``librosa.filters.mel`` (slaney scale and norm).
All presets use a Hann window, centred frames with reflect padding and the magnitude (not power)
spectrum, so ``frames = 1 + len(wav) // hop_length``.

    tacotron2   NVIDIA Tacotron 2 / WaveGlow / Coqui tacotron2-DDC:
                22050 Hz, n_fft 1024, hop 256, win 1024, 80 mels 0–8000 Hz, ln(max(mel, 1e-5))
    espnet      ESPnet2 / ParallelWaveGAN LJSpeech:
                22050 Hz, n_fft 1024, hop 256, win 1024, 80 mels 80–7600 Hz, log10(max(mel, 1e-10))
    espnet-24k  ESPnet2 / ParallelWaveGAN VCTK:
                24000 Hz, n_fft 2048, hop 300, win 1200, 80 mels 80–7600 Hz, log10(max(mel, 1e-10))
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .errors import WavegenError


@dataclass(frozen=True)
class MelPreset:
    name: str
    sample_rate: int  # Hz
    n_fft: int  # samples
    hop_length: int  # samples between frames
    win_length: int  # samples (Hann window, centred in n_fft)
    n_mels: int
    fmin: float  # Hz
    fmax: float  # Hz
    log_base: str  # "e" (natural log) or "10"
    floor: float  # magnitudes below this are clamped before the log
    normalize: bool = False  # mean/variance normalisation with stats stored with the model

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, MelPreset] = {
    "tacotron2": MelPreset("tacotron2", 22050, 1024, 256, 1024, 80, 0.0, 8000.0, "e", 1e-5),
    "espnet": MelPreset("espnet", 22050, 1024, 256, 1024, 80, 80.0, 7600.0, "10", 1e-10),
    "espnet-24k": MelPreset("espnet-24k", 24000, 2048, 300, 1200, 80, 80.0, 7600.0, "10", 1e-10),
}


def get_preset(name: str) -> MelPreset:
    """Look up a preset by name; an unknown name lists the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise WavegenError(f"unknown mel preset {name!r}; expected one of: {', '.join(PRESETS)}") from None


@functools.lru_cache(maxsize=16)
def _mel_basis(preset: MelPreset) -> np.ndarray:
    import librosa

    return librosa.filters.mel(
        sr=preset.sample_rate,
        n_fft=preset.n_fft,
        n_mels=preset.n_mels,
        fmin=preset.fmin,
        fmax=preset.fmax,
    ).astype(np.float32)  # (n_mels, n_fft // 2 + 1), slaney scale and norm


def mel_spectrogram(wav, preset: str | MelPreset = "tacotron2") -> torch.Tensor | np.ndarray:
    """Log-mel spectrogram of a float waveform.

    Args:
        wav: (T,) or (B, T) float waveform in [-1, 1], numpy or torch (any device).
        preset: preset name or :class:`MelPreset`.

    Returns:
        (n_mels, 1 + T // hop) or (B, n_mels, 1 + T // hop) float32, numpy for numpy input.
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    as_numpy = not isinstance(wav, torch.Tensor)
    x = torch.from_numpy(np.asarray(wav, dtype=np.float32)) if as_numpy else wav.float()
    squeeze = x.dim() == 1
    if squeeze:
        x = x[None]
    if x.shape[-1] <= p.n_fft // 2:
        raise WavegenError(
            f"audio too short for the {p.name} preset: {x.shape[-1]} samples, need more than {p.n_fft // 2}"
        )
    window = torch.hann_window(p.win_length, device=x.device)
    spec = torch.stft(
        x,
        n_fft=p.n_fft,
        hop_length=p.hop_length,
        win_length=p.win_length,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    ).abs()  # (B, n_fft // 2 + 1, frames)
    basis = torch.from_numpy(_mel_basis(p)).to(x.device)
    mel = torch.matmul(basis, spec).clamp_min(p.floor)
    mel = torch.log(mel) if p.log_base == "e" else torch.log10(mel)
    if squeeze:
        mel = mel[0]
    return mel.cpu().numpy() if as_numpy else mel


def num_frames(num_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT: 1 + T // hop."""
    return 1 + num_samples // hop_length
