"""``wavegen listen analyze``: answers -> summary.json, answers.csv, plots and a report.

summary.json::

    {"type", "test_id", "source", "listeners", "listeners_kept",
     "systems": {NAME: {"mean", "std", "ci95": [lo, hi], "ci95_clamped", "n", ...}},
     "excluded_listeners": [{"listener", "reason", "items_failed", "items_checked"}],
     "screening": "the rule applied",
     "pairwise": [{"a", "b", "test", "n", "statistic", "p", "p_holm", "smallest_p", ...}],
     "warnings": ["what a reader must know before trusting the numbers", ...]}

An interval that runs past the scale (a t-interval near 100, say) is cut at the scale's end and
``ci95_clamped`` says so. ``n`` of a pair is the number of observations the test used (AB: the
answers with a preference; MUSHRA/MOS: the pairs); ``smallest_p`` is the smallest p-value that
test could give with that n.

What the numbers are, per test type:

- MUSHRA (0-100) and MOS (1-5): per system the ratings of the kept listeners; ci95 is the
  Student-t interval of the mean. Pairs: Wilcoxon signed-rank on the ratings paired by
  listener x item, between every two systems but the anchors (hidden reference included); the
  size and direction of a difference is the Hodges-Lehmann estimate of a - b with its 95 %
  interval (``hodges_lehmann``, ``hl_ci95``), next to the plain ``median_difference``.
- AB: per system its preference score over its comparisons (1 preferred, 0.5 no preference,
  0 the other preferred) with a t-interval, and its wins, losses and ties. Pairs: two-sided
  exact binomial test of the wins of one against the other on the answers with a preference
  (``n``; the no-preference answers are counted apart), and the share of those won by ``a``
  with its exact interval.
- ABX: per system the proportion of trials where X was identified against the reference, with
  an exact (Clopper-Pearson) interval. Pairs: one-sided binomial test of that proportion > 0.5
  (can listeners tell the system from the reference?).

All p-values of one test are Holm-Bonferroni adjusted together (``p_holm``).
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from pathlib import Path

from ..core.audio import atomic_path
from ..core.errors import WavegenError
from ..core.statistics import describe
from . import stats
from .results import (
    Results,
    results_from_test,
    results_from_webmushra,
    write_answers_csv,
    write_questionnaire_csv,
)
from .spec import ANCHORS, REFERENCE

SCREENING = {
    "mushra": "ITU-R BS.1534-3 post-screening: a listener who rates the hidden reference below 90, or the "
    "mid-range anchor (7 kHz) above 90, for more than 15% of the items is excluded",
    "mos": "gold items: a listener who rates any reference (gold) trial below 4 is excluded",
    "mos-no-gold": "none (the test has no gold items)",
    "ab": "none",
    "abx": "none",
}


def summarize(results: Results) -> dict:
    """The analysis of ``results`` as the summary.json dict (JSON-ready: NaN never appears)."""
    excluded: dict[str, str] = {}
    if results.type == "mushra":
        excluded = stats.mushra_post_screening(results.ratings)
        screening = SCREENING["mushra"]
    elif results.type == "mos":
        excluded = stats.gold_screening(results.ratings) if results.gold else {}
        screening = SCREENING["mos" if results.gold else "mos-no-gold"]
    else:
        screening = SCREENING[results.type]
    if results.type in ("mushra", "mos"):
        kept = [r for r in results.ratings if r.listener not in excluded]
        # Every system is listed, with n = 0 if every listener who rated it was excluded.
        systems, pairwise = _rating_stats(kept, {r.system for r in results.ratings})
    elif results.type == "ab":
        systems, pairwise = _ab_stats(results.choices)
    else:
        systems, pairwise = _abx_stats(results.choices)
    for pair, adjusted in zip(pairwise, stats.holm([p["p"] for p in pairwise])):
        pair["p_holm"] = adjusted
    _clamp_intervals(systems, *stats.SCALE_LIMITS[results.type])
    kept_ratings = results.ratings if results.type in ("mushra", "mos") else []
    failures = stats.failed_items(kept_ratings, results.type) if excluded else {}
    summary = {
        "type": results.type,
        "test_id": results.test_id,
        "source": results.source,
        "listeners": len(results.listeners),
        "listeners_kept": len([x for x in results.listeners if x not in excluded]),
        "systems": systems,
        "excluded_listeners": [
            {"listener": k, "reason": v, "items_failed": failures[k][0], "items_checked": failures[k][1]}
            for k, v in sorted(excluded.items())
        ],
        "screening": screening,
        "pairwise": pairwise,
    }
    summary["warnings"] = warnings(summary)
    return _finite(summary)


def _clamp_intervals(systems: dict, low: float, high: float) -> None:
    for s in systems.values():
        ci = s.get("ci95")
        s["ci95_clamped"] = bool(ci) and (ci[0] < low or ci[1] > high)
        if s["ci95_clamped"]:
            s["ci95"] = [max(low, ci[0]), min(high, ci[1])]


def warnings(summary: dict) -> list[str]:
    """What a reader must know before trusting the numbers, in plain words."""
    out = []
    kept, total = summary["listeners_kept"], summary["listeners"]
    if kept < stats.USEFUL_LISTENERS:
        out.append(
            f"Only {kept} of {total} listener{'s' * (total != 1)} "
            + ("remain after screening" if summary["excluded_listeners"] else "took part")
            + f": fewer than {stats.USEFUL_LISTENERS}, so the intervals are wide and one listener "
            "moves the results. Treat the numbers as a pilot."
        )
    for e in summary["excluded_listeners"]:
        if e["items_failed"] == 1:
            out.append(
                f"Listener {e['listener']} was excluded because of a single item "
                f"(1 of {e['items_checked']}): one slip decided it. Check whether that is intended."
            )
    pairs = summary["pairwise"]
    hopeless = [p for p in pairs if p["smallest_p"] >= stats.ALPHA]
    for p in hopeless:
        out.append(
            f"{p['a']} vs {p['b']}: with n = {p['n']} this test cannot reach p < {stats.ALPHA:g} "
            f"(the smallest possible p is {p['smallest_p']:.3g}), whatever the answers; collect more."
        )
    if pairs and len(hopeless) == len(pairs):
        out.append("No comparison of this test can be significant with the answers at hand.")
    return out


def _order(names) -> list[str]:
    """Systems in report order: the reference first, the tested systems, the anchors last."""
    names = set(names)
    tested = sorted(n for n in names if n != REFERENCE and n not in ANCHORS)
    return [REFERENCE] * (REFERENCE in names) + tested + [a for a in ANCHORS if a in names]


def _rating_stats(ratings, all_systems: set[str]) -> tuple[dict, list]:
    by_system: dict[str, list[float]] = defaultdict(list)
    paired: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for r in ratings:
        by_system[r.system].append(float(r.score))
        paired[r.system][(r.listener, r.item)] = float(r.score)
    names = _order(all_systems)
    systems = {name: describe(by_system[name]) for name in names}
    pairwise = []
    for a, b in itertools.combinations([n for n in names if n not in ANCHORS], 2):
        keys = sorted(set(paired[a]) & set(paired[b]))
        if not keys:
            continue
        x, y = [paired[a][k] for k in keys], [paired[b][k] for k in keys]
        statistic, p = stats.wilcoxon(x, y)
        diffs = sorted(u - v for u, v in zip(x, y))
        median = (diffs[(len(diffs) - 1) // 2] + diffs[len(diffs) // 2]) / 2
        estimate, low, high = stats.hodges_lehmann(diffs)
        nonzero = sum(1 for d in diffs if d != 0)
        pairwise.append(
            {
                "a": a,
                "b": b,
                "test": "Wilcoxon signed-rank, two-sided, paired by listener x item",
                "n": len(keys),
                "n_nonzero": nonzero,
                "statistic": statistic,
                "median_difference": median,
                "hodges_lehmann": estimate,
                "hl_ci95": None if low is None else [low, high],
                "direction": _direction(a, b, estimate, low, high),
                "p": p,
                "smallest_p": stats.smallest_p("wilcoxon", nonzero),
            }
        )
    return systems, pairwise


def _ab_stats(choices) -> tuple[dict, list]:
    scores: dict[str, list[float]] = defaultdict(list)
    wins: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # (s, t) sorted: s, t, none
    for c in choices:
        pref = {"A": (1.0, 0.0), "B": (0.0, 1.0), "none": (0.5, 0.5)}[c.choice]
        scores[c.a].append(pref[0])
        scores[c.b].append(pref[1])
        s, t = sorted((c.a, c.b))
        slot = 2 if c.chosen is None else (0 if c.chosen == s else 1)
        wins[(s, t)][slot] += 1
    systems = {name: describe(scores[name]) for name in _order(scores)}
    for name, entry in systems.items():  # each system's record over all its comparisons
        entry["wins"] = sum(w[0 if name == s else 1] for (s, t), w in wins.items() if name in (s, t))
        entry["losses"] = sum(w[1 if name == s else 0] for (s, t), w in wins.items() if name in (s, t))
        entry["ties"] = sum(w[2] for (s, t), w in wins.items() if name in (s, t))
    pairwise = []
    for (s, t), (ws, wt, ties) in sorted(wins.items()):
        share = stats.describe_proportion(ws, ws + wt)
        if share["mean"] is None:
            direction = "no answer with a preference"
        else:  # a's share of the decided answers against one half
            low, high = share["ci95"]
            direction = _direction(s, t, share["mean"] - 0.5, low - 0.5, high - 0.5)
        pairwise.append(
            {
                "a": s,
                "b": t,
                "test": "exact binomial, two-sided, on the answers with a preference",
                "n": ws + wt,
                "answers": ws + wt + ties,
                "wins_a": ws,
                "wins_b": wt,
                "no_preference": ties,
                "statistic": ws,
                "share_a": share["mean"],
                "share_a_ci95": share["ci95"],
                "direction": direction,
                "p": stats.binomial(ws, ws + wt),
                "smallest_p": stats.smallest_p("binomial", ws + wt),
            }
        )
    return systems, pairwise


def _abx_stats(choices) -> tuple[dict, list]:
    outcomes: dict[str, list[int]] = defaultdict(list)
    for c in choices:
        system = c.b if c.a == REFERENCE else c.a
        outcomes[system].append(int(c.chosen == c.x))
    names = _order(outcomes)
    systems = {name: stats.describe_proportion(sum(outcomes[name]), len(outcomes[name])) for name in names}
    pairwise = [
        {
            "a": name,
            "b": REFERENCE,
            "test": "exact binomial, one-sided (X identified more often than chance)",
            "n": len(outcomes[name]),
            "correct": sum(outcomes[name]),
            "statistic": sum(outcomes[name]),
            "p": stats.binomial(sum(outcomes[name]), len(outcomes[name]), "greater"),
            "smallest_p": stats.smallest_p("binomial-greater", len(outcomes[name])),
        }
        for name in names
    ]
    return systems, pairwise


def _direction(a: str, b: str, estimate, low, high) -> str:
    """In words: which of a and b scored higher, and whether the 95 % interval excludes 0."""
    if estimate is None or estimate != estimate:
        return "no data"
    if estimate == 0:
        return "no difference"
    higher = a if estimate > 0 else b
    sure = low is not None and (low > 0 or high < 0)
    return f"{higher} higher" + ("" if sure else " (interval includes 0)")


def _finite(value):
    """NaN and infinities (which JSON cannot carry) -> None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def analyze(
    out_dir: str | Path,
    test_dir: str | Path | None = None,
    db_path: str | Path | None = None,
    webmushra: str | Path | None = None,
) -> dict:
    """Analyse a served test (``test_dir``) or a webMUSHRA mushra.csv into ``out_dir``.

    Writes summary.json, answers.csv (with the page comments), questionnaire.csv (a test with
    a questionnaire), boxplot.png (MUSHRA, MOS), ci.png, report.md and report.html, each
    atomically; returns the summary.
    """
    from .report import write_plots, write_report

    if (test_dir is None) == (webmushra is None):
        raise WavegenError("give either a TEST_DIR or --webmushra mushra.csv (one of them)")
    results = results_from_webmushra(webmushra) if webmushra else results_from_test(test_dir, db_path)
    if not results.ratings and not results.choices:
        raise WavegenError(f"{results.source}: no answers yet")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_answers_csv(results, out / "answers.csv")
    if results.questions:
        write_questionnaire_csv(results, out / "questionnaire.csv")
    plots = write_plots(results, summary, out)
    write_report(summary, plots, out)
    return summary
