"""summary.json, report.md and report.html from the scored rows.

The table gives each metric's mean ± the half-width of its 95 % t-interval per system; the
report lists every file left out and why, every pair whose lengths differ by more than 5 %,
every file resampled, and the definition of each metric exactly as computed.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from ..core import report_page
from ..core.audio import atomic_path
from .metrics import DEFINITIONS, HIGHER_IS_BETTER, METRICS
from .runner import LENGTH_TOLERANCE
from .stats import summarize

RTF_DEFINITION = (
    "real-time factor of synthesis: wall seconds spent generating / seconds of audio generated, "
    "over the whole split (below 1 is faster than real time); the model's batched generation "
    "on its device, Griffin-Lim one utterance at a time per CPU process"
)


def length_mismatches(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        if (
            r["ref_seconds"] > 0
            and abs(r["seconds"] - r["ref_seconds"]) > LENGTH_TOLERANCE * r["ref_seconds"]
        ):
            out.append(
                {
                    "system": r["system"],
                    "utterance": r["utterance"],
                    "seconds": round(r["seconds"], 3),
                    "ref_seconds": round(r["ref_seconds"], 3),
                }
            )
    return out


def resampled(rows: list[dict], sample_rate: int) -> list[dict]:
    """{system, from_hz, files} for each system with files at another rate."""
    counts: dict[tuple[str, int], int] = {}
    for r in rows:
        if r["sample_rate"] != sample_rate:
            key = (r["system"], r["sample_rate"])
            counts[key] = counts.get(key, 0) + 1
    return [{"system": s, "from_hz": hz, "to_hz": sample_rate, "files": n} for (s, hz), n in counts.items()]


def build_summary(rows: list[dict], skipped: list[dict], context: dict, rtf: dict[str, dict]) -> dict:
    """The summary.json dict: {"systems": {NAME: {METRIC: {"mean", "std", "ci95", "n"}}},
    "skipped": [...], ...context}."""
    systems = summarize(rows, METRICS)
    order = list(context.get("systems", systems))
    systems = {name: systems[name] for name in order if name in systems}
    for name, r in rtf.items():
        if name in systems and r.get("rtf") is not None:
            systems[name]["rtf"] = {"mean": r["rtf"], "std": None, "ci95": None, "n": r["utterances"]}
    return {
        **context,
        "systems": systems,
        "skipped": skipped,
        "length_mismatches": length_mismatches(rows),
        "resampled": resampled(rows, context["sample_rate"]),
        "synthesis": rtf,
        "definitions": {**DEFINITIONS, "rtf": RTF_DEFINITION},
    }


def _cell(d: dict | None) -> str:
    if not d or d.get("mean") is None:
        return "–"
    mean, ci = d["mean"], d["ci95"]
    digits = 3 if abs(mean) < 10 else 2
    if ci is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(ci[1] - ci[0]) / 2:.{digits}f}"


def table_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the results table (metric, better, one column per system)."""
    systems = list(summary["systems"])
    metrics = [m for m in (*METRICS, "rtf") if any(m in summary["systems"][s] for s in systems)]
    header = ["metric", "better", *systems]
    rows = []
    for m in metrics:
        better = "higher" if m in HIGHER_IS_BETTER else "lower"
        rows.append([m, better, *[_cell(summary["systems"][s].get(m)) for s in systems]])
    return header, rows


def markdown_table(summary: dict) -> str:
    return "\n".join(report_page.markdown_table(*table_rows(summary)))


def html_table(summary: dict) -> str:
    return report_page.html_table(*table_rows(summary))


def _notes(summary: dict) -> list[tuple[str, list[str]]]:
    """(section title, lines) for the lists under the table."""
    sections = []
    skipped = summary["skipped"]
    sections.append(
        (
            f"Files left out ({len(skipped)})",
            [f"{s['system']} / {s['utterance']}: {s['reason']}" for s in skipped] or ["none"],
        )
    )
    mism = summary["length_mismatches"]
    sections.append(
        (
            f"Lengths differing from the reference by more than {LENGTH_TOLERANCE:.0%} ({len(mism)})",
            [f"{m['system']} / {m['utterance']}: {m['seconds']} s vs {m['ref_seconds']} s" for m in mism]
            or ["none (metrics compare the common length; DTW-based ones align the whole signals)"],
        )
    )
    res = summary["resampled"]
    sections.append(
        (
            "Resampled",
            [
                f"{r['system']}: {r['files']} files from {r['from_hz']} Hz to {r['to_hz']} Hz (soxr HQ)"
                for r in res
            ]
            or [f"none: every file was at {summary['sample_rate']} Hz"],
        )
    )
    return sections


def write_reports(out: Path, summary: dict, figures: list[Path]) -> None:
    """summary.json, report.md and report.html in ``out`` (pictures referenced relatively)."""
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    title = summary.get("title", "wavegen evaluation")
    intro = summary.get("description", [])
    rel = [f.relative_to(out).as_posix() for f in figures]
    md = [f"# {title}", "", *[f"- {line}" for line in intro], ""]
    md += [
        "## Results",
        "",
        "Mean ± half-width of the 95% t-interval over utterances.",
        "",
        markdown_table(summary),
        "",
    ]
    md += [f"![{Path(r).stem}]({r})" for r in rel] + [""]
    for heading, lines in _notes(summary):
        md += [f"## {heading}", "", *[f"- {line}" for line in lines], ""]
    md += ["## Metric definitions", "", *[f"- `{k}`: {v}" for k, v in summary["definitions"].items()], ""]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(md), encoding="utf-8")

    e = html.escape
    parts = [
        "<ul>" + "".join(f"<li>{e(line)}</li>" for line in intro) + "</ul>",
        "<h2>Results</h2><p>Mean ± half-width of the 95% t-interval over utterances.</p>",
        html_table(summary),
        *[f'<p><img src="{e(r)}" alt="{e(Path(r).stem)}"></p>' for r in rel],
    ]
    for heading, lines in _notes(summary):
        parts += [f"<h2>{e(heading)}</h2>", "<ul>" + "".join(f"<li>{e(x)}</li>" for x in lines) + "</ul>"]
    parts += [
        "<h2>Metric definitions</h2><dl>",
        *[f"<dt><code>{e(k)}</code></dt><dd>{e(v)}</dd>" for k, v in summary["definitions"].items()],
        "</dl>",
    ]
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(report_page.html_page(title, parts), encoding="utf-8")
