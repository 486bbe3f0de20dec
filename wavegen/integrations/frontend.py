"""What the adapters share: checking a framework's feature settings against the vocoder's
preset, and vocoding a batch of (n_mels, T) natural-log mels."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from ..core.errors import WavegenError
from ..data.tts_mels import to_preset
from ..inference.vocoder import Vocoder

# The preset fields a framework's settings are compared with, and the tolerance of each.
FIELDS = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax")


def check_settings(vocoder: Vocoder, settings: dict, where: str, names: dict[str, str]) -> None:
    """Refuse settings that do not fit the vocoder's preset; one line naming the setting.

    ``settings``: {preset field: the framework's value} (None: not set, skipped); ``names``:
    {preset field: the framework's name for it}, for the message. An fmax of None means
    sample_rate / 2 in every framework here.
    """
    preset = vocoder.preset
    for key in FIELDS:
        value = settings.get(key)
        if value is None and key == "fmax" and settings.get("sample_rate"):
            value = settings["sample_rate"] / 2
        if value is None:
            continue
        want = getattr(preset, key)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise WavegenError(f"{where}: {names.get(key, key)} is {value!r}; expected a number")
        if not math.isclose(float(value), float(want), rel_tol=1e-6, abs_tol=1e-6):
            raise WavegenError(
                f"{where}: {names.get(key, key)} is {value!r}, but the vocoder's {preset.name} preset has "
                f"{want!r} (use a vocoder trained with the TTS model's features)"
            )


def vocode_natural_log(vocoder: Vocoder, ln_mels: torch.Tensor, lengths=None, **kwargs) -> list[torch.Tensor]:
    """(B, n_mels, T) ln mels (frames beyond ``lengths[b]`` ignored) -> B waveforms (T_b·hop,)."""
    mels = []
    for b, mel in enumerate(ln_mels.detach().float().cpu().numpy()):
        frames = int(lengths[b]) if lengths is not None else mel.shape[-1]
        mels.append(torch.from_numpy(to_preset(mel[:, :frames].astype(np.float64), vocoder.preset)))
    return vocoder.batch(mels, **kwargs)


def pad_batch(waves: list[torch.Tensor]) -> torch.Tensor:
    """B waveforms -> (B, 1, max length), zero-padded."""
    out = torch.zeros(len(waves), 1, max(len(w) for w in waves))
    for b, wav in enumerate(waves):
        out[b, 0, : len(wav)] = wav.cpu()
    return out


def as_mels(mel, where: str) -> torch.Tensor:
    """A float tensor, array or nested list -> float32 tensor; anything else (an object or string
    array, None, a complex or integer tensor) is a one-line error naming ``where``."""
    if not isinstance(mel, torch.Tensor):
        mel = np.asarray(mel)
        if mel.dtype.kind != "f":
            raise WavegenError(f"{where}: expected a float tensor or array of mels, got dtype {mel.dtype}")
        return torch.from_numpy(mel.astype(np.float32))
    if not mel.is_floating_point():
        raise WavegenError(f"{where}: expected a float tensor or array of mels, got dtype {mel.dtype}")
    return mel.float()


def batch_of(mel, n_mels: int, where: str) -> torch.Tensor:
    """A tensor or array (n_mels, T) or (B, n_mels, T) -> float (B, n_mels, T), B ≥ 1."""
    mel = as_mels(mel, where)
    if mel.dim() == 2:
        mel = mel[None]
    if mel.dim() != 3 or mel.shape[1] != n_mels:
        raise WavegenError(f"{where}: expected (batch, {n_mels}, frames), got shape {tuple(mel.shape)}")
    if mel.shape[0] == 0:
        raise WavegenError(f"{where}: an empty batch (no mels)")
    return mel


def check_lengths(lengths, batch: int, frames: int, where: str, name: str) -> list[int]:
    """Per-row frame counts (a tensor, array or list) -> B ints in 1..``frames``; a count that does
    not fit the (B, n_mels, frames) batch is a one-line error naming ``name``."""
    values = np.asarray(lengths.detach().cpu() if isinstance(lengths, torch.Tensor) else lengths)
    if values.ndim != 1 or len(values) != batch:
        count = values.shape[0] if values.ndim else 1
        raise WavegenError(f"{where}: {name} has {count} lengths for a batch of {batch}")
    out = []
    for b, value in enumerate(values.tolist()):
        whole = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not whole or value != int(value):
            shown = f"{value:g}" if isinstance(value, float) else repr(value)
            raise WavegenError(f"{where}: {name}[{b}] is {shown}; expected a whole number of frames")
        if value > frames:
            raise WavegenError(f"{where}: {name}[{b}] is {value:g}, longer than the batch's {frames} frames")
        if value < 1:
            raise WavegenError(f"{where}: {name}[{b}] is {value:g}; expected 1 to {frames} frames")
        out.append(int(value))
    return out
