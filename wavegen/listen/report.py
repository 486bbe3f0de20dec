"""Plots (matplotlib, Agg: no display needed) and the report of an analysis, in Markdown and HTML.

Written for a reader who is not a statistician: every table says what its numbers are, every
test is named with the n it used, a difference has a direction and a size with its interval,
and what should make the reader careful comes first, under "Warnings".
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from ..core.audio import atomic_path
from ..core.report_page import html_page, html_table, markdown_table
from .results import Results
from .stats import ALPHA, SCALE_LIMITS

SCALE = {
    "mushra": "MUSHRA score (0 Bad … 100 Excellent)",
    "mos": "MOS (1 Bad … 5 Excellent)",
    "ab": "preference score (1 preferred, 0.5 no preference, 0 not)",
    "abx": "proportion of X identified",
}
BANDS = ((80, "Excellent"), (60, "Good"), (40, "Fair"), (20, "Poor"), (0, "Bad"))
COLOR = "#24527a"
CLAMPED = "†"  # marks an interval cut at the end of the scale


def write_plots(results: Results, summary: dict, out: Path) -> list[str]:
    """boxplot.png (MUSHRA, MOS) and ci.png (means with 95 % intervals) -> their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    label, limits = SCALE[summary["type"]], SCALE_LIMITS[summary["type"]]
    names = [n for n, s in summary["systems"].items() if s["n"]]
    written = []
    if not names:  # every listener excluded: nothing to plot
        return written
    out.mkdir(parents=True, exist_ok=True)
    excluded = {e["listener"] for e in summary["excluded_listeners"]}
    width = max(5.0, 1.0 * len(names) + 2.5)
    if summary["type"] in ("mushra", "mos"):
        by_system = defaultdict(list)
        for r in results.ratings:
            if r.listener not in excluded:
                by_system[r.system].append(r.score)
        fig, ax = plt.subplots(figsize=(width, 4.6))
        ax.boxplot(
            [by_system[n] for n in names],
            showmeans=True,
            meanprops={"marker": "D", "markersize": 5, "markerfacecolor": COLOR, "markeredgecolor": COLOR},
            medianprops={"color": "#d4761c", "linewidth": 2},
        )
        ax.set_xticks(range(1, len(names) + 1), names, rotation=20, ha="right")
        handles = [
            Patch(facecolor="white", edgecolor="black", label="middle half of the ratings (25–75 %)"),
            Line2D([], [], color="#d4761c", linewidth=2, label="median"),
            Line2D([], [], marker="D", linestyle="", color=COLOR, label="mean"),
            Line2D([], [], color="black", label="whiskers: up to 1.5 × box height"),
            Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="black", label="outliers"),
        ]
        _finish(ax, label, limits, summary, handles)
        written.append(_save(fig, out / "boxplot.png"))
    fig, ax = plt.subplots(figsize=(width, 4.6))
    for x, name in enumerate(names, 1):
        s = summary["systems"][name]
        if s["mean"] is None:
            continue
        ax.plot([x], [s["mean"]], "o", color=COLOR)
        if s["ci95"]:
            low, high = s["ci95"]
            ax.errorbar(
                [x], [s["mean"]], yerr=[[s["mean"] - low], [high - s["mean"]]], capsize=6, color=COLOR
            )
            if s.get("ci95_clamped"):
                ax.annotate(
                    CLAMPED,
                    (x, high if high >= limits[1] else low),
                    xytext=(8, 0),
                    textcoords="offset points",
                    va="center",
                    color="#b3261e",
                )
    handles = [
        Line2D([], [], marker="o", linestyle="", color=COLOR, label="mean"),
        Line2D([], [], color=COLOR, label="95% confidence interval"),
    ]
    if any(s.get("ci95_clamped") for s in summary["systems"].values()):
        handles.append(
            Line2D(
                [], [], linestyle="", marker="$†$", color="#b3261e", label="interval cut at the scale's end"
            )
        )
    if summary["type"] == "abx":
        ax.axhline(0.5, color="#999", linestyle=":")
        handles.append(Line2D([], [], color="#999", linestyle=":", label="chance (0.5)"))
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20, ha="right")
    ax.set_xlim(0.5, len(names) + 0.5)
    _finish(ax, f"mean {label}", limits, summary, handles)
    written.append(_save(fig, out / "ci.png"))
    plt.close("all")
    return written


def _finish(ax, label: str, limits, summary: dict, handles) -> None:
    low, high = limits
    pad = 0.04 * (high - low)
    ax.set_ylim(low - pad, high + pad)
    ax.set_ylabel(label)
    if summary["type"] == "mushra":
        for edge, _ in BANDS[:-1]:
            ax.axhline(edge, color="#ddd", linewidth=0.8, zorder=0)
    kept, total = summary["listeners_kept"], summary["listeners"]
    ax.set_title(f"{summary['type'].upper()}: {kept} of {total} listeners kept", fontsize=10)
    # The legend sits below the axes, where it hides no data.
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8, frameon=False
    )


def _save(fig, path: Path) -> str:
    with atomic_path(path) as tmp:
        # bbox_inches="tight": the axis labels and the legend are never cut off
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path.name


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _p(value) -> str:
    if value is None:
        return "–"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"


def _ci(ci, clamped: bool = False) -> str:
    if not ci:
        return "–"
    return f"{_fmt(ci[0])} – {_fmt(ci[1])}" + (f" {CLAMPED}" if clamped else "")


def system_table(summary: dict) -> tuple[str, list[str], list[list[str]]]:
    """(what the numbers are, header, rows) of the per-system table."""
    kind, systems = summary["type"], summary["systems"]
    if kind == "ab":
        head = ["system", "preference score", "95% CI", "wins", "losses", "ties", "answers"]
        rows = [
            [
                n,
                _fmt(s["mean"]),
                _ci(s["ci95"], s["ci95_clamped"]),
                *(str(s.get(k, 0)) for k in ("wins", "losses", "ties")),
                str(s["n"]),
            ]
            for n, s in systems.items()
        ]
        note = (
            "Preference score: the share of its comparisons a system won, a no-preference answer "
            "counting one half (1: always preferred, 0.5: as often preferred as not). Wins, losses "
            "and ties (no preference) are counted over all its comparisons; 95% CI: Student t."
        )
    elif kind == "abx":
        head = ["system", "X identified", "95% CI", "trials"]
        rows = [[n, _fmt(s["mean"]), _ci(s["ci95"]), str(s["n"])] for n, s in systems.items()]
        note = (
            "X identified: the share of trials where listeners told correctly whether X was the "
            "system or the reference (0.5 is guessing); 95% CI: exact (Clopper–Pearson)."
        )
    else:
        head = ["system", "mean", "95% CI", "std", "ratings"]
        rows = [
            [n, _fmt(s["mean"]), _ci(s["ci95"], s["ci95_clamped"]), _fmt(s["std"]), str(s["n"])]
            for n, s in systems.items()
        ]
        note = f"Mean {SCALE[kind]} of the kept listeners; 95% CI: Student t of the mean."
    if any(s.get("ci95_clamped") for s in systems.values()):
        note += f" {CLAMPED} The interval ran past the end of the scale and is cut there."
    return note, head, rows


def pair_table(summary: dict) -> tuple[str, list[str], list[list[str]]]:
    """(the test named, header, rows) of the pairwise table."""
    kind, pairs = summary["type"], summary["pairwise"]
    if kind == "ab":
        head = [
            "a",
            "b",
            "a preferred",
            "b preferred",
            "no preference",
            "n tested",
            "a's share (95% CI)",
            "direction",
            "p",
            "p (Holm)",
        ]
        rows = [
            [
                p["a"],
                p["b"],
                str(p["wins_a"]),
                str(p["wins_b"]),
                str(p["no_preference"]),
                str(p["n"]),
                f"{_fmt(p['share_a'])} ({_ci(p['share_a_ci95'])})",
                p["direction"],
                _p(p["p"]),
                _p(p["p_holm"]),
            ]
            for p in pairs
        ]
        note = (
            "Test: exact binomial, two-sided, on the answers with a preference (n tested); the "
            "no-preference answers are left out of the test and shown apart. a's share: of the "
            "answers with a preference, the share preferring a (0.5: no difference)."
        )
    elif kind == "abx":
        head = ["system", "correct", "trials", "p", "p (Holm)"]
        rows = [[p["a"], str(p["correct"]), str(p["n"]), _p(p["p"]), _p(p["p_holm"])] for p in pairs]
        note = "Test: exact binomial, one-sided: is X identified more often than by guessing (0.5)?"
    else:
        head = ["a", "b", "a − b (Hodges–Lehmann)", "95% CI", "direction", "n pairs", "p", "p (Holm)"]
        rows = [
            [
                p["a"],
                p["b"],
                _fmt(p["hodges_lehmann"]),
                _ci(p["hl_ci95"]),
                p["direction"],
                str(p["n"]),
                _p(p["p"]),
                _p(p["p_holm"]),
            ]
            for p in pairs
        ]
        note = (
            "Test: Wilcoxon signed-rank, two-sided, on the ratings of a and b paired by listener "
            "and item (n pairs). a − b: the Hodges–Lehmann estimate of how much higher a is rated "
            "than b (the median of the averages of every two paired differences), with its 95% "
            "interval from the same test; a positive value means a is rated higher."
        )
    note += " p (Holm): adjusted for all the comparisons of this test together (Holm–Bonferroni)."
    return note, head, rows


def in_words(summary: dict) -> list[str]:
    """One sentence per comparison: what was found, how sure, in plain words (and short lines
    that read on a phone, where a wide table must scroll)."""
    lines = []
    for p in summary["pairwise"]:
        sure = "significant" if p["p_holm"] is not None and p["p_holm"] < ALPHA else "not significant"
        verdict = f"p = {_p(p['p'])}, Holm {_p(p['p_holm'])}: {sure} at {ALPHA:g}."
        if summary["type"] == "ab":
            lines.append(
                f"{p['a']} vs {p['b']}: {p['a']} preferred in {p['wins_a']} and {p['b']} in {p['wins_b']} "
                f"of {p['n']} answers with a preference ({p['no_preference']} without); {verdict}"
            )
        elif summary["type"] == "abx":
            lines.append(
                f"{p['a']}: X identified in {p['correct']} of {p['n']} trials (chance: half); {verdict}"
            )
        else:
            d, ci = p["hodges_lehmann"], p["hl_ci95"]
            size = "no difference" if not d else f"{p['a'] if d > 0 else p['b']} rated {abs(d):.3g} higher"
            if ci and d and d < 0:  # said of b: the interval of b - a
                ci = [-ci[1], -ci[0]]
            interval = f"95% CI {_fmt(ci[0])} to {_fmt(ci[1])}" if ci else "too few pairs for a 95% interval"
            lines.append(f"{p['a']} vs {p['b']}: {size} ({interval}), n = {p['n']} pairs; {verdict}")
    return lines


def write_report(summary: dict, plots: list[str], out: Path) -> None:
    sys_note, sys_head, sys_rows = system_table(summary)
    pair_note, pair_head, pair_rows = pair_table(summary)
    title = f"Listening test {summary['test_id']} ({summary['type'].upper()})"
    excluded, warned = summary["excluded_listeners"], summary["warnings"]
    none_pairs = "none (fewer than two comparable systems)"
    md = [
        f"# {title}",
        "",
        f"- answers: `{summary['source']}`",
        f"- listeners: {summary['listeners']}, kept after screening: {summary['listeners_kept']}",
        f"- screening: {summary['screening']}",
        "",
        "## Warnings",
        "",
        *([f"- {w}" for w in warned] or ["none"]),
        "",
        "## Systems",
        "",
        sys_note,
        "",
        *markdown_table(sys_head, sys_rows),
        "",
        "## Pairwise tests",
        "",
        *([f"- {line}" for line in in_words(summary)] + [""] if pair_rows else []),
        *([pair_note, "", *markdown_table(pair_head, pair_rows)] if pair_rows else [none_pairs]),
        "",
        "## Excluded listeners",
        "",
        *([f"- `{e['listener']}`: {e['reason']}" for e in excluded] or ["none"]),
        "",
        "## Plots",
        "",
        *[f"![{name}]({name})" for name in plots],
        "",
    ]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(md), encoding="utf-8")

    e = html.escape
    page = [
        "<ul>",
        f"<li>answers: <code>{e(summary['source'])}</code></li>",
        f"<li>listeners: {summary['listeners']}, kept after screening: {summary['listeners_kept']}</li>",
        f"<li>screening: {e(summary['screening'])}</li>",
        "</ul>",
        "<h2>Warnings</h2>",
        '<ul class="warnings">' + "".join(f"<li>{e(w)}</li>" for w in warned) + "</ul>"
        if warned
        else "<p>none</p>",
        "<h2>Systems</h2>",
        f"<p>{e(sys_note)}</p>",
        html_table(sys_head, sys_rows),
        "<h2>Pairwise tests</h2>",
        "<ul>" + "".join(f"<li>{e(line)}</li>" for line in in_words(summary)) + "</ul>"
        f"<p>{e(pair_note)}</p>" + html_table(pair_head, pair_rows)
        if pair_rows
        else f"<p>{none_pairs}</p>",
        "<h2>Excluded listeners</h2>",
        "<ul>"
        + "".join(f"<li><code>{e(x['listener'])}</code>: {e(x['reason'])}</li>" for x in excluded)
        + "</ul>"
        if excluded
        else "<p>none</p>",
        "<h2>Plots</h2>",
        *[f'<img src="{e(name)}" alt="{e(name)}">' for name in plots],
    ]
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(html_page(title, page), encoding="utf-8")
