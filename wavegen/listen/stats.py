"""The statistics of a listening test: descriptive intervals, post-screening, paired tests, Holm.

Plain functions over lists of numbers or rating rows; scipy does the distributions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from .spec import REFERENCE

MUSHRA_REFERENCE_MIN = 90  # BS.1534-3 post-screening: the hidden reference rated below this ...
MUSHRA_ANCHOR_MAX = 90  # ... or the mid-range anchor rated above this ...
MUSHRA_MAX_FRACTION = 0.15  # ... for more than 15 % of the items excludes the listener
MUSHRA_MID_ANCHOR = "anchor70"
GOLD_MIN = 4  # MOS: a gold item (the reference) is expected at 4 (Good) or 5 (Excellent)


def describe_proportion(successes: int, n: int) -> dict:
    """A proportion of 0/1 outcomes with its exact (Clopper-Pearson) 95 % interval."""
    from scipy import stats

    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    p = successes / n
    std = math.sqrt(p * (1 - p) * n / (n - 1)) if n > 1 else None  # sample std of the 0/1 values
    ci = stats.binomtest(successes, n).proportion_ci(0.95, method="exact")
    return {"mean": p, "std": std, "ci95": [float(ci.low), float(ci.high)], "n": n}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Sorted ascending, the k-th smallest (k = 0..m-1) becomes max over j <= k of (m - j)·p_(j),
    capped at 1: step-down, so adjusted values keep the order of the raw ones.
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired scores -> (statistic, p).

    scipy's defaults: zero differences dropped ("wilcox"), exact distribution for small samples
    without ties, normal approximation otherwise. All differences zero -> (0, 1).
    """
    from scipy import stats

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if not np.any(d != 0):
        return 0.0, 1.0
    result = stats.wilcoxon(a, b)
    return float(result.statistic), float(result.pvalue)


def binomial(successes: int, n: int, alternative: str = "two-sided") -> float:
    """Exact binomial test against p = 0.5; n = 0 -> 1."""
    from scipy import stats

    if n == 0:
        return 1.0
    return float(stats.binomtest(successes, n, 0.5, alternative=alternative).pvalue)


def mushra_post_screening(ratings: Iterable) -> dict[str, str]:
    """ITU-R BS.1534-3 post-screening -> {listener: reason} of the listeners to exclude.

    A listener is excluded who, for more than 15 % of the items they rated, rates the hidden
    reference below 90, or rates the mid-range anchor (7 kHz) above 90.
    """
    scores: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in ratings:
        scores[r.listener][r.item][r.system] = r.score
    excluded = {}
    for listener, items in scores.items():
        reasons = []
        n = len(items)
        low_ref = sum(1 for s in items.values() if REFERENCE in s and s[REFERENCE] < MUSHRA_REFERENCE_MIN)
        high_anchor = sum(
            1 for s in items.values() if MUSHRA_MID_ANCHOR in s and s[MUSHRA_MID_ANCHOR] > MUSHRA_ANCHOR_MAX
        )
        if low_ref > MUSHRA_MAX_FRACTION * n:
            reasons.append(
                f"rated the hidden reference below {MUSHRA_REFERENCE_MIN} in {low_ref} of {n} items "
                f"({100 * low_ref / n:.0f}% > {100 * MUSHRA_MAX_FRACTION:.0f}%)"
            )
        if high_anchor > MUSHRA_MAX_FRACTION * n:
            reasons.append(
                f"rated the mid-range anchor above {MUSHRA_ANCHOR_MAX} in {high_anchor} of {n} items "
                f"({100 * high_anchor / n:.0f}% > {100 * MUSHRA_MAX_FRACTION:.0f}%)"
            )
        if reasons:
            excluded[listener] = "; ".join(reasons)
    return excluded


def gold_screening(ratings: Iterable, gold_system: str = REFERENCE) -> dict[str, str]:
    """MOS attention checks -> {listener: reason}: any gold item rated below 4 excludes.

    The gold items are the reference recordings: a listener who rates one of them Fair or
    worse was not listening (ITU-T P.808's gold-standard questions work the same way).
    """
    failures: dict[str, list[str]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for r in ratings:
        if r.system == gold_system:
            counts[r.listener] += 1
            if r.score < GOLD_MIN:
                failures[r.listener].append(f"{r.item}={r.score:g}")
    return {
        listener: f"rated {len(bad)} of {counts[listener]} gold items below {GOLD_MIN} ({', '.join(bad[:5])})"
        for listener, bad in failures.items()
    }
