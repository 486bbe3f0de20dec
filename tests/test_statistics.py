"""wavegen.core.statistics: one convention for evaluate and listen (n < 2: no std, no interval)."""

import math

import numpy as np
import pytest
from scipy import stats

from wavegen.core.statistics import describe
from wavegen.evaluate.stats import summarize


def test_fewer_than_two_values_have_no_spread():
    assert describe([]) == {"mean": None, "std": None, "ci95": None, "n": 0}
    assert describe([None, math.nan, 4.5]) == {"mean": 4.5, "std": None, "ci95": None, "n": 1}


def test_interval_is_scipys_t_interval_of_the_finite_values():
    sample = np.array([71.0, 64.0, 80.0, 55.0, 90.0])
    d = describe([*sample, None, math.inf])
    expected = stats.t.interval(0.95, len(sample) - 1, loc=sample.mean(), scale=stats.sem(sample))
    assert d["n"] == 5 and d["mean"] == pytest.approx(sample.mean())
    assert d["std"] == pytest.approx(sample.std(ddof=1)) and d["ci95"] == pytest.approx(list(expected))


def test_evaluate_summarizes_with_the_same_helper():
    rows = [{"system": "a", "pesq": 3.0}, {"system": "a", "pesq": 3.4}, {"system": "b", "pesq": 2.0}]
    out = summarize(rows, ("pesq",))
    assert out["a"]["pesq"] == describe([3.0, 3.4])
    assert out["b"]["pesq"] == {"mean": 2.0, "std": None, "ci95": None, "n": 1}
