"""Griffin-Lim from a preset's log-mel: the classic phase-reconstruction baseline.

The mel is taken back to linear magnitude (exp or 10^), to an STFT magnitude by librosa's
non-negative least squares against the preset's own mel basis, then to a waveform by
Griffin-Lim (librosa, "fast" Griffin-Lim with momentum 0.99) on the preset's STFT (n_fft, hop,
Hann window of win_length, centred frames). It is what vocoder papers compare against when they
want a vocoder with no training at all.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import WavegenError
from ..core.features import MelPreset, get_preset

DEFAULT_ITERATIONS = 32


def griffin_lim(mel, preset: str | MelPreset, n_iter: int = DEFAULT_ITERATIONS, seed: int = 0) -> np.ndarray:
    """(n_mels, F) raw preset log-mel -> (F·hop,) float32 waveform in [-1, 1].

    ``seed`` fixes the random initial phase, so the result is reproducible.
    """
    import librosa

    p = get_preset(preset) if isinstance(preset, str) else preset
    mel = np.asarray(mel, dtype=np.float64)
    if mel.ndim != 2 or mel.shape[0] != p.n_mels:
        raise WavegenError(f"mel: expected ({p.n_mels}, frames) for the {p.name} preset, got {mel.shape}")
    if n_iter < 1:
        raise WavegenError(f"Griffin-Lim needs at least one iteration, got {n_iter}")
    # F·hop samples have 1 + F centred frames; the cache drops the last (see preprocess), so it
    # is put back as a copy of its neighbour to keep Griffin-Lim's STFT and ours the same size.
    mel = np.concatenate([mel, mel[:, -1:]], axis=1)
    magnitude = np.exp(mel) if p.log_base == "e" else np.power(10.0, mel)
    stft = librosa.feature.inverse.mel_to_stft(
        magnitude, sr=p.sample_rate, n_fft=p.n_fft, power=1.0, fmin=p.fmin, fmax=p.fmax
    )
    wav = librosa.griffinlim(
        stft,
        n_iter=n_iter,
        hop_length=p.hop_length,
        win_length=p.win_length,
        window="hann",
        center=True,
        length=(mel.shape[1] - 1) * p.hop_length,
        random_state=seed,
    )
    return np.clip(wav, -1.0, 1.0).astype(np.float32)
