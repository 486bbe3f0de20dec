"""A small synthetic multi-speaker speech-like corpus, generated deterministically.

Each utterance is a source-filter signal, the classic model of voiced speech:

- source: a Rosenberg glottal pulse train (open phase 40 %, closing phase 16 % of the period),
  differentiated for lip radiation, at a per-speaker pitch contour (declination plus a slow
  intonation wave) with per-period jitter (pitch) and shimmer (amplitude), plus a little
  aspiration noise;
- filter: a cascade of four two-pole formant resonators whose frequencies glide between vowel
  targets (Peterson & Barney style averages, scaled per speaker for vocal-tract length),
  updated every 10 ms;
- unvoiced fricative bursts (high-passed noise through a high resonance) and pauses between
  "words", with short silences at both ends that preprocessing trims.

4 speakers x 8 utterances x 1.5-3 s at 22050 Hz, 16-bit WAV, one sub-folder per speaker. The
same seed gives the same bytes: all randomness comes from seeded numpy generators and the
arithmetic is plain float64 numpy/scipy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...core.audio import atomic_path, write_audio

SAMPLE_RATE = 22050  # Hz: the tacotron2/espnet preset rate, so no resampling
UTTERANCES_PER_SPEAKER = 8
BLOCK = 220  # samples (10 ms) between formant updates
MARKER = "demo_corpus.json"  # written last: its presence marks a complete corpus
VERSION = 3  # bump when the generator changes, so old copies are regenerated

# name, mean F0 (Hz), formant scale (vocal-tract length), breathiness (aspiration noise std;
# the differentiated pulses peak at about 0.05-0.1 per sample)
SPEAKERS = (
    ("demo_f1", 210.0, 1.17, 0.002),
    ("demo_f2", 245.0, 1.12, 0.0035),
    ("demo_m1", 105.0, 1.00, 0.0015),
    ("demo_m2", 130.0, 0.95, 0.0025),
)
# The pitch contour: F0 falls linearly by DECLINATION of its mean over the utterance, swings by
# ±INTONATION in a slow sine, and varies per period by JITTER (relative std); each pulse's
# amplitude by SHIMMER. Steady, clean voices (version 3 halved the breathiness and lowered these
# from 0.2, 0.08, 0.01, 0.05) are what lets the demo's model learn their harmonics within its
# 3-minute budget; with the old values it produced noise with the right envelope.
DECLINATION = 0.05
INTONATION = 0.02
JITTER = 0.003
SHIMMER = 0.02
# F1, F2, F3, F4 (Hz) of an adult male; speakers scale them.
VOWELS = np.array(
    [
        [730, 1090, 2440, 3400],  # a
        [530, 1840, 2480, 3500],  # e
        [270, 2290, 3010, 3700],  # i
        [570, 840, 2410, 3300],  # o
        [300, 870, 2240, 3300],  # u
        [660, 1720, 2410, 3400],  # ae
    ],
    dtype=np.float64,
)
BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0])  # Hz, of the four formants


def make_demo_corpus(out_dir: str | Path, seed: int = 0) -> Path:
    """Write the demo corpus to ``out_dir/<speaker>/<NNN>.wav`` and return ``out_dir``.

    Does nothing if ``out_dir`` already holds a complete corpus of this seed and version. Every
    file is written atomically and the marker file last, so an interrupted run is redone.
    """
    out_dir = Path(out_dir)
    marker = out_dir / MARKER
    expected = {
        "version": VERSION,
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "speakers": [s[0] for s in SPEAKERS],
        "utterances_per_speaker": UTTERANCES_PER_SPEAKER,
    }
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == expected:
                return out_dir
        except ValueError:
            pass  # a corrupt marker: regenerate
    for s, (name, f0, scale, breath) in enumerate(SPEAKERS):
        for u in range(UTTERANCES_PER_SPEAKER):
            rng = np.random.default_rng([seed, s, u])
            wav = synthesize_utterance(rng, f0, scale, breath)
            write_audio(out_dir / name / f"{u + 1:03d}.wav", wav, SAMPLE_RATE)
    with atomic_path(marker) as tmp:
        tmp.write_text(json.dumps(expected, indent=1) + "\n")
    return out_dir


def synthesize_utterance(
    rng: np.random.Generator, f0_mean: float, formant_scale: float, breathiness: float
) -> np.ndarray:
    """One utterance, (T,) float64 in [-1, 1], T between 1.5 and 3 s at 22050 Hz."""
    from scipy.signal import lfilter  # imported here: scipy.signal takes a second to import

    sr = SAMPLE_RATE
    total = int(rng.uniform(1.5, 3.0) * sr)
    lead, tail = int(rng.uniform(0.08, 0.2) * sr), int(rng.uniform(0.08, 0.2) * sr)
    voiced = np.zeros(total, dtype=bool)
    fricative = np.zeros(total, dtype=bool)
    # Lay out "syllables": a voiced nucleus, sometimes a fricative before it, pauses between words.
    t = lead
    while t < total - tail - int(0.12 * sr):
        if rng.random() < 0.35:
            n = int(rng.uniform(0.05, 0.11) * sr)
            fricative[t : t + n] = True
            t += n
        n = min(int(rng.uniform(0.12, 0.35) * sr), total - tail - t)
        voiced[t : t + n] = True
        t += n
        if rng.random() < 0.3:
            t += int(rng.uniform(0.08, 0.22) * sr)
    source = _glottal_source(rng, total, f0_mean) * _smooth(voiced.astype(np.float64), 0.015)
    source += breathiness * rng.standard_normal(total) * _smooth(voiced.astype(np.float64), 0.015)
    formants = _formant_track(rng, total, formant_scale)
    speech = _resonators(source, formants)
    speech /= np.abs(speech).max() + 1e-12
    # Fricatives: high-passed noise through one broad resonance at 3.5-6 kHz.
    r, theta = np.exp(-np.pi * 1500 / sr), 2 * np.pi * rng.uniform(3500, 6000) / sr
    hiss = lfilter([1.0, -1.0], [1.0, -2 * r * np.cos(theta), r * r], rng.standard_normal(total))
    hiss *= 0.25 / (np.abs(hiss).max() + 1e-12) * _smooth(fricative.astype(np.float64), 0.01)
    wav = speech + hiss + 1e-4 * rng.standard_normal(total)  # faint room noise
    return 0.7 * rng.uniform(0.6, 1.0) * wav / np.abs(wav).max()


def _glottal_source(rng: np.random.Generator, total: int, f0_mean: float) -> np.ndarray:
    """Differentiated Rosenberg pulses, one period at a time (jitter and shimmer per period)."""
    sr = SAMPLE_RATE
    seconds = total / sr
    intonation_hz = rng.uniform(1.5, 3.0)
    phase0 = rng.uniform(0, 2 * np.pi)
    out = np.zeros(total + sr // 50)
    t = 0
    while t < total:
        time = t / sr
        declination = 1 + DECLINATION / 2 - DECLINATION * time / seconds
        intonation = 1 + INTONATION * np.sin(2 * np.pi * intonation_hz * time + phase0)
        f0 = f0_mean * declination * intonation
        f0 *= 1 + JITTER * rng.standard_normal()
        period = max(int(round(sr / f0)), 8)
        phi = np.arange(period) / period
        opening, closing = 0.4, 0.16
        pulse = np.where(
            phi < opening,
            0.5 * (1 - np.cos(np.pi * phi / opening)),
            np.where(phi < opening + closing, np.cos(np.pi * (phi - opening) / (2 * closing)), 0.0),
        )
        out[t : t + period] += pulse * (1 + SHIMMER * rng.standard_normal())
        t += period
    return np.diff(out[: total + 1])  # lip radiation ~ first difference


def _formant_track(rng: np.random.Generator, total: int, scale: float) -> np.ndarray:
    """(blocks, 4) formant frequencies gliding between random vowel targets."""
    blocks = total // BLOCK + 1
    track = np.empty((blocks, 4))
    b = 0
    current = VOWELS[rng.integers(len(VOWELS))]
    while b < blocks:
        target = VOWELS[rng.integers(len(VOWELS))] * rng.uniform(0.95, 1.05, size=4)
        glide, hold = int(rng.integers(4, 10)), int(rng.integers(5, 20))  # blocks of 10 ms
        ramp = np.linspace(0, 1, glide, endpoint=False)[:, None]
        segment = np.vstack([current + (target - current) * ramp, np.repeat(target[None], hold, 0)])
        track[b : b + len(segment)] = segment[: blocks - b]
        b += len(segment)
        current = target
    return track * scale


def _resonators(x: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Cascade of two-pole resonators (BANDWIDTHS), coefficients updated every BLOCK samples.

    The four sections are multiplied into one 8th-order filter per block (float64 keeps it
    well conditioned), a quarter of the lfilter calls of a section-by-section cascade.

    Args:
        x: (T,) excitation.
        freqs: (blocks, 4) centre frequencies in Hz.
    """
    from scipy.signal import lfilter

    sr = SAMPLE_RATE
    radius = np.exp(-np.pi * BANDWIDTHS / sr)
    y = np.empty(len(x))
    state = np.zeros(2 * len(BANDWIDTHS))
    for b, start in enumerate(range(0, len(x), BLOCK)):
        a = np.ones(1)
        gain = 1.0
        for r, f in zip(radius, freqs[b]):
            section = np.array([1.0, -2 * r * np.cos(2 * np.pi * min(f, 0.45 * sr) / sr), r * r])
            a = np.convolve(a, section)
            gain *= section.sum()  # unit gain at DC keeps levels comparable across vowels
        y[start : start + BLOCK], state = lfilter([gain], a, x[start : start + BLOCK], zi=state)
    return y


def _smooth(mask: np.ndarray, seconds: float) -> np.ndarray:
    """A 0/1 mask with smooth edges about ``seconds`` long (no clicks at on- and offsets)."""
    # A one-pole smoother run forwards and backwards: symmetric, cheap, and exact in float64.
    from scipy.signal import filtfilt

    pole = np.exp(-1.0 / (seconds * SAMPLE_RATE))
    return filtfilt([1 - pole], [1.0, -pole], mask)
