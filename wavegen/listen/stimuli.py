"""Stimulus signal processing: loudness (ITU-R BS.1770), anchors, fades, common gain.

All functions take and return (T,) float arrays at one sample rate.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import WavegenError

TARGET_LUFS = -23.0  # EBU R 128 programme loudness
PEAK_CEILING_DBFS = -1.0  # no stimulus peaks above this after its gain: never clipped
FADE_SECONDS = 0.005  # raised-cosine fade at both ends, so loops and cuts do not click
MIN_SECONDS = 0.5  # BS.1770 gates 400 ms blocks; shorter audio has no integrated loudness


def integrated_loudness(wav: np.ndarray, sample_rate: int, name: str) -> float:
    """(T,) audio -> integrated loudness in LUFS (ITU-R BS.1770-4 via pyloudnorm).

    Raises WavegenError (naming ``name``) for audio that is too short or silent.
    """
    import pyloudnorm

    check_measurable(wav, sample_rate, name)
    meter = pyloudnorm.Meter(sample_rate)  # K-weighting, 400 ms blocks, absolute + relative gates
    loudness = float(meter.integrated_loudness(np.asarray(wav, dtype=np.float64)))
    if not np.isfinite(loudness):
        raise WavegenError(f"{name}: silent (no block above BS.1770's -70 LUFS gate)")
    return loudness


def check_measurable(wav: np.ndarray, sample_rate: int, name) -> None:
    """Raise WavegenError (naming ``name``) if (T,) audio is too short for integrated loudness."""
    if len(wav) < MIN_SECONDS * sample_rate:
        raise WavegenError(
            f"{name}: {len(wav) / sample_rate:.2f} s of audio; "
            f"loudness matching needs at least {MIN_SECONDS} s"
        )


def lowpass(wav: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """(T,) -> (T,) with every frequency above ``cutoff_hz`` removed (zero-phase, brick-wall).

    The BS.1534-3 anchors are the reference low-passed at 3.5 and 7 kHz. Zeroing the DFT bins
    above the cut-off leaves exactly nothing there (up to 16-bit rounding, ~-100 dB), where an
    IIR or windowed FIR would leave a transition band above it. The signal is faded at both
    ends first (see :func:`fade`), so the DFT's circular wrap-around adds nothing audible.
    """
    if not 0 < cutoff_hz < sample_rate / 2:
        raise WavegenError(f"anchor cut-off {cutoff_hz:g} Hz must lie below Nyquist ({sample_rate / 2:g} Hz)")
    spectrum = np.fft.rfft(np.asarray(wav, dtype=np.float64))
    freqs = np.fft.rfftfreq(len(wav), 1.0 / sample_rate)
    spectrum[freqs > cutoff_hz] = 0.0
    return np.fft.irfft(spectrum, n=len(wav)).astype(np.float32)


def fade(wav: np.ndarray, sample_rate: int, seconds: float = FADE_SECONDS) -> np.ndarray:
    """(T,) -> (T,) with a raised-cosine fade-in and fade-out of ``seconds`` each."""
    n = min(int(round(seconds * sample_rate)), len(wav) // 2)
    out = np.array(wav, dtype=np.float32, copy=True)
    if n > 0:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
        out[:n] *= ramp
        out[-n:] *= ramp[::-1]
    return out


def peak_dbfs(wav: np.ndarray) -> float:
    peak = float(np.max(np.abs(wav))) if len(wav) else 0.0
    return 20 * np.log10(peak) if peak > 0 else -np.inf


def common_target(
    loudness: list[float],
    peaks_dbfs: list[float],
    target: float = TARGET_LUFS,
    ceiling: float = PEAK_CEILING_DBFS,
) -> float:
    """The loudness every stimulus is brought to: ``target``, or lower if that would clip one.

    A stimulus at L LUFS with peak P dBFS peaks at P + (T - L) after matching to T. If any
    would exceed ``ceiling``, T is lowered for all stimuli alike, so they stay matched.
    """
    excess = max((p + (target - lufs)) - ceiling for lufs, p in zip(loudness, peaks_dbfs))
    return target - max(0.0, excess)
