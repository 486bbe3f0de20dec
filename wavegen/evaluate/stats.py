"""Summary statistics per system and metric (see :mod:`wavegen.core.statistics`): mean, sample
std and the 95 % t-interval. Scores that are NaN (a metric that could not be computed, with its
reason in the row's notes) are left out and ``n`` says how many remained.
"""

from __future__ import annotations

from ..core.statistics import describe


def summarize(rows: list[dict], metrics: tuple[str, ...]) -> dict[str, dict[str, dict]]:
    """{system: {metric: describe(...)}} over rows of {"system", METRIC: value, ...}."""
    systems: dict[str, list[dict]] = {}
    for row in rows:
        systems.setdefault(row["system"], []).append(row)
    return {
        name: {m: describe(r.get(m) for r in group) for m in metrics if any(m in r for r in group)}
        for name, group in systems.items()
    }
