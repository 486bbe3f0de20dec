"""Summary statistics per system and metric: mean, sample std and the 95 % t-interval.

The interval is mean ± t(0.975, n − 1) · s / √n with s the sample standard deviation (ddof 1):
the confidence interval of the mean for roughly normal per-utterance scores, which is what a
reader needs to tell two systems apart (mean ± std, what other toolkits print, says how much
utterances vary, not how sure the mean is). Scores that are NaN (a metric that could not be
computed, with its reason in the row's notes) are left out and ``n`` says how many remained.
"""

from __future__ import annotations

import math

import numpy as np

CONFIDENCE = 0.95


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(lo, hi) of the two-sided t-interval of the mean; (nan, nan) for fewer than 2 values."""
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    mean, sem = x.mean(), x.std(ddof=1) / math.sqrt(n)
    half = t.ppf(0.5 + confidence / 2, n - 1) * sem
    return float(mean - half), float(mean + half)


def describe(values) -> dict:
    """{"mean", "std", "ci95": [lo, hi], "n"} of the finite values (None where undefined)."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    lo, hi = t_interval(x)
    return {
        "mean": _num(x.mean()) if n else None,
        "std": _num(x.std(ddof=1)) if n > 1 else None,
        "ci95": [_num(lo), _num(hi)],
        "n": n,
    }


def summarize(rows: list[dict], metrics: tuple[str, ...]) -> dict[str, dict[str, dict]]:
    """{system: {metric: describe(...)}} over rows of {"system", METRIC: value, ...}."""
    systems: dict[str, list[dict]] = {}
    for row in rows:
        systems.setdefault(row["system"], []).append(row)
    return {
        name: {m: describe(r.get(m) for r in group) for m in metrics if any(m in r for r in group)}
        for name, group in systems.items()
    }


def _num(value: float) -> float | None:
    """JSON has no NaN: undefined numbers become null."""
    return None if value is None or not math.isfinite(value) else float(value)
