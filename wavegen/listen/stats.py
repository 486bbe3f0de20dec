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
SCALE_LIMITS = {"mushra": (0.0, 100.0), "mos": (1.0, 5.0), "ab": (0.0, 1.0), "abx": (0.0, 1.0)}
USEFUL_LISTENERS = 10  # fewer kept listeners than this: the report warns (wide intervals)
ALPHA = 0.05


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


EXACT_SIGNED_RANK_MAX_N = 100  # above this, the signed-rank distribution is taken as normal
MAX_WALSH_N = 4000  # Walsh averages grow as n^2 / 2: 8 M of them at this n


def signed_rank_cdf(n: int) -> np.ndarray:
    """P(T+ <= t) for t = 0 .. n(n+1)/2: the exact null distribution of Wilcoxon's signed-rank
    statistic for n non-tied differences (each rank's sign a fair coin).

    scipy computes this distribution only privately (scipy.stats._wilcoxon), hence these lines:
    adding rank k either contributes k or not, so the counts are a running convolution.
    """
    pmf = np.ones(1)
    for k in range(1, n + 1):
        pmf = np.concatenate([pmf, np.zeros(k)]) + np.concatenate([np.zeros(k), pmf])
        pmf /= 2
    return np.cumsum(pmf)


def hodges_lehmann(
    differences: Sequence[float], confidence: float = 0.95
) -> tuple[float, float | None, float | None]:
    """The Hodges-Lehmann estimate of a paired difference and its confidence interval.

    The estimate is the median of the n(n+1)/2 Walsh averages (d_i + d_j) / 2, i <= j (the
    pseudo-median, the estimator that goes with the signed-rank test); the interval runs from
    the C-th smallest to the C-th largest Walsh average, C from the signed-rank distribution
    (Hollander & Wolfe, Nonparametric Statistical Methods, 3.2), so its coverage is at least
    ``confidence`` for untied data. (low, high) are None when n is too small for any interval.
    """
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    n = len(d)
    if n == 0:
        return float("nan"), None, None
    if n > MAX_WALSH_N:  # keep memory bounded: a seeded subsample keeps the estimate's meaning
        d = np.random.default_rng(0).choice(d, MAX_WALSH_N, replace=False)
        n = MAX_WALSH_N
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2)
    estimate = float(np.median(walsh))
    total = len(walsh)  # n(n+1)/2
    alpha = 1 - confidence
    if n <= EXACT_SIGNED_RANK_MAX_N:
        c = int(np.count_nonzero(signed_rank_cdf(n) <= alpha / 2 + 1e-12))
    else:
        sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
        c = int(math.floor(total / 2 - float(stats.norm.ppf(1 - alpha / 2)) * sd))
    if c < 1:
        return estimate, None, None
    return estimate, float(walsh[c - 1]), float(walsh[total - c])


def smallest_p(test: str, n: int) -> float:
    """The smallest p-value a test can give with n observations (n decided answers, or n
    non-zero paired differences): if it is not below 0.05, no outcome is significant.

    wilcoxon (two-sided, exact): all n signs alike, 2 / 2^n; binomial two-sided: 2 / 2^n;
    binomial one-sided ("greater"): 1 / 2^n.
    """
    if n <= 0:
        return 1.0
    return min(1.0, (1.0 if test == "binomial-greater" else 2.0) * 0.5**n)


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


def failed_items(ratings: Iterable, kind: str) -> dict[str, tuple[int, int]]:
    """{listener: (items that failed a screening check, items checked)}: for MUSHRA the items
    with the hidden reference below 90 or the mid-range anchor above 90, for MOS the gold items
    rated below 4. Says when one slip decided an exclusion."""
    failed: dict[str, set[str]] = defaultdict(set)
    checked: dict[str, set[str]] = defaultdict(set)
    for r in ratings:
        if kind == "mushra":
            checked[r.listener].add(r.item)
            if (r.system == REFERENCE and r.score < MUSHRA_REFERENCE_MIN) or (
                r.system == MUSHRA_MID_ANCHOR and r.score > MUSHRA_ANCHOR_MAX
            ):
                failed[r.listener].add(r.item)
        elif r.system == REFERENCE:
            checked[r.listener].add(r.item)
            if r.score < GOLD_MIN:
                failed[r.listener].add(r.item)
    return {listener: (len(failed[listener]), len(items)) for listener, items in checked.items()}
