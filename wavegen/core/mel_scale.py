"""What scale a speech mel's values are on: natural log, log10, normalised, dB or linear.

Used by the vocoder to refuse a mel of the wrong convention (wavegen.inference.vocoder) and by
preprocess --mels to diagnose a TTS model's mels (wavegen.data.tts_mels).
"""

from __future__ import annotations

import math

import torch

from .features import MelPreset

# Typical statistics of speech mels at full level (LJSpeech): the mean over all bins, and the
# spread (std) of the loudest 20% of the values. The spread tells the log base apart (ln values
# spread ln 10 = 2.3 times wider than log10) and does not change with the level: the loudest
# fifth stays clear of the floor clamp down to about -60 dB. Measured on the LJSpeech, VCTK and
# demo excerpts at 0 to -60 dB: ln 0.68-1.02, log10 0.28-0.43, normalised 0.34-0.52; with the
# tolerances in judge_scale every one of those mels (and their log10 <-> ln and normalised
# versions) is judged right. Pure tones and white noise are not speech and can be misjudged
# (the vocoder's ``check=False`` skips its check).
_SCALES = {
    "natural-log": (-5.2, 0.9),
    "log10": (-2.25, 0.39),
    "normalised": (0.0, 0.38),
}
_TOP = 0.2  # the fraction of values whose spread is measured


def judge_scale(mel: torch.Tensor, preset: MelPreset) -> tuple[str | None, str]:
    """What scale a speech mel's values look like, and its figures for a message.

    -> ("linear" | "dB" | "natural-log" | "log10" | "normalised" | None, "(min …, max …, mean …,
    std …)"). None: too few values above ``preset``'s floor to tell (silence). The log base is
    judged from the spread of the loudest 20% of the values and the level (see _SCALES).
    """
    values = mel.flatten().double()
    mean, std = values.mean().item(), values.std().item() if values.numel() > 1 else 0.0
    lo, hi = values.min().item(), values.max().item()
    seen = f"(min {lo:.2f}, max {hi:.2f}, mean {mean:.2f}, std {std:.2f})"
    if lo >= 0:
        return "linear", seen
    if mean < -15 or lo < -30:
        return "dB", seen
    floor = math.log(preset.floor) if preset.log_base == "e" else math.log10(preset.floor)
    top = values.topk(max(1, int(_TOP * values.numel()))).values
    spread = top.std().item() if top.numel() > 1 else 0.0
    if not (top.min().item() > floor + 0.01 and spread > 1e-6):
        return None, seen
    level = values[values > floor + 0.01].mean().item()  # of the sound, not the silence
    score = {}
    for name, (typical_mean, typical_spread) in _SCALES.items():
        shift = level - typical_mean
        # normalised mels have no level; a log mel is quieter (lower) more often than louder
        tolerance = 1.5 if name == "normalised" else 3.0 if shift < 0 else 2.0
        score[name] = (shift / tolerance) ** 2 + (math.log(spread / typical_spread) / 0.3) ** 2
    return min(score, key=score.get), seen
