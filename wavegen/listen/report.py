"""Plots (matplotlib, Agg: no display needed) and the report of an analysis, in Markdown and HTML."""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from ..core.audio import atomic_path
from ..core.report_page import html_page, html_table, markdown_table
from .results import Results

SCALE = {
    "mushra": ("MUSHRA score", (0, 100)),
    "mos": ("MOS (1 Bad … 5 Excellent)", (1, 5)),
    "ab": ("preference score (1 preferred, 0.5 none, 0 not)", (0, 1)),
    "abx": ("proportion of X identified", (0, 1)),
}
BANDS = ((80, "Excellent"), (60, "Good"), (40, "Fair"), (20, "Poor"), (0, "Bad"))


def write_plots(results: Results, summary: dict, out: Path) -> list[str]:
    """boxplot.png (MUSHRA, MOS) and ci.png (means with 95 % intervals) -> their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label, limits = SCALE[summary["type"]]
    names = [n for n, s in summary["systems"].items() if s["n"]]
    written = []
    if not names:  # every listener excluded: nothing to plot
        return written
    excluded = {e["listener"] for e in summary["excluded_listeners"]}
    if summary["type"] in ("mushra", "mos"):
        by_system = defaultdict(list)
        for r in results.ratings:
            if r.listener not in excluded:
                by_system[r.system].append(r.score)
        fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 4.2))
        ax.boxplot([by_system[n] for n in names], showmeans=True, meanprops={"marker": "D", "markersize": 5})
        ax.set_xticks(range(1, len(names) + 1), names, rotation=20, ha="right")
        _finish(ax, label, limits, summary)
        written.append(_save(fig, out / "boxplot.png"))
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 4.2))
    for x, name in enumerate(names, 1):
        s = summary["systems"][name]
        if s["mean"] is None:
            continue
        ax.plot([x], [s["mean"]], "o", color="#24527a")
        if s["ci95"]:
            ax.errorbar(
                [x],
                [s["mean"]],
                yerr=[[s["mean"] - s["ci95"][0]], [s["ci95"][1] - s["mean"]]],
                capsize=6,
                color="#24527a",
            )
    if summary["type"] == "abx":
        ax.axhline(0.5, color="#999", linestyle=":", label="chance")
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20, ha="right")
    ax.set_xlim(0.5, len(names) + 0.5)
    _finish(ax, f"mean {label}, 95% CI", limits, summary)
    written.append(_save(fig, out / "ci.png"))
    plt.close("all")
    return written


def _finish(ax, label: str, limits, summary: dict) -> None:
    low, high = limits
    pad = 0.04 * (high - low)
    ax.set_ylim(low - pad, high + pad)
    ax.set_ylabel(label)
    if summary["type"] == "mushra":
        for edge, _ in BANDS[:-1]:
            ax.axhline(edge, color="#ddd", linewidth=0.8, zorder=0)
    kept, total = summary["listeners_kept"], summary["listeners"]
    ax.set_title(f"{summary['type'].upper()}: {kept} of {total} listeners", fontsize=10)
    ax.figure.tight_layout()


def _save(fig, path: Path) -> str:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
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


def tables(summary: dict) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """(system header, system rows, pairwise header, pairwise rows) as display strings."""
    sys_head = ["system", "mean", "std", "95% CI", "n"]
    sys_rows = [
        [
            name,
            _fmt(s["mean"]),
            _fmt(s["std"]),
            f"{_fmt(s['ci95'][0])} – {_fmt(s['ci95'][1])}" if s["ci95"] else "–",
            str(s["n"]),
        ]
        for name, s in summary["systems"].items()
    ]
    pair_head = ["a", "b", "test", "n", "statistic", "p", "p (Holm)"]
    pair_rows = [
        [p["a"], p["b"], p["test"], str(p["n"]), _fmt(p["statistic"]), _p(p["p"]), _p(p["p_holm"])]
        for p in summary["pairwise"]
    ]
    return sys_head, sys_rows, pair_head, pair_rows


def write_report(summary: dict, plots: list[str], out: Path) -> None:
    sys_head, sys_rows, pair_head, pair_rows = tables(summary)
    title = f"Listening test {summary['test_id']} ({summary['type'].upper()})"
    excluded = summary["excluded_listeners"]
    md = [
        f"# {title}",
        "",
        f"- answers: `{summary['source']}`",
        f"- listeners: {summary['listeners']}, kept after screening: {summary['listeners_kept']}",
        f"- screening: {summary['screening']}",
        "",
        "## Systems",
        "",
        *markdown_table(sys_head, sys_rows),
        "",
        "## Excluded listeners",
        "",
        *([f"- `{e['listener']}`: {e['reason']}" for e in excluded] or ["none"]),
        "",
        "## Pairwise tests (Holm–Bonferroni adjusted)",
        "",
        *(
            markdown_table(pair_head, pair_rows)
            if pair_rows
            else ["none (fewer than two comparable systems)"]
        ),
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
        "<h2>Systems</h2>",
        html_table(sys_head, sys_rows),
        "<h2>Excluded listeners</h2>",
        "<ul>"
        + "".join(f"<li><code>{e(x['listener'])}</code>: {e(x['reason'])}</li>" for x in excluded)
        + "</ul>"
        if excluded
        else "<p>none</p>",
        "<h2>Pairwise tests (Holm–Bonferroni adjusted)</h2>",
        html_table(pair_head, pair_rows) if pair_rows else "<p>none (fewer than two comparable systems)</p>",
        "<h2>Plots</h2>",
        *[f'<img src="{e(name)}" alt="{e(name)}">' for name in plots],
    ]
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(html_page(title, page), encoding="utf-8")
