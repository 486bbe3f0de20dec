"""Descriptive statistics of a sample of scores: mean, sample std and the 95 % t-interval.

The interval is mean ± t(0.975, n − 1) · s / √n with s the sample standard deviation (ddof 1):
the confidence interval of the mean for roughly normal per-utterance or per-listener scores,
which is what a reader needs to tell two systems apart (mean ± std says how much the scores
vary, not how sure the mean is). ``wavegen evaluate`` and ``wavegen listen analyze`` both report
it, with one convention: None (JSON null) is left out and so is NaN (a metric that could not be
computed), ``n`` says how many values remained, and with fewer than 2 values the std and the
interval are None, since there is no spread to estimate.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(lo, hi) of the two-sided t-interval of the mean; (nan, nan) for fewer than 2 values."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    mean, sem = x.mean(), x.std(ddof=1) / math.sqrt(n)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sem
    return float(mean - half), float(mean + half)


def describe(values) -> dict:
    """{"mean", "std", "ci95": [lo, hi] or None, "n"} of the finite values among ``values``."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 2:
        return {"mean": float(x[0]) if n else None, "std": None, "ci95": None, "n": n}
    lo, hi = t_interval(x)
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)), "ci95": [lo, hi], "n": n}
