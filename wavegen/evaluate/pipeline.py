"""From a plan (references and systems' WAVs) to the finished report folder.

OUT/metrics.csv, summary.json, report.md, report.html, plots/*.png and run.json (what was
evaluated, so that a rerun into the same folder resumes only the same evaluation).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..core.audio import atomic_path, write_npy
from ..core.errors import WavegenError
from ..core.features import MelPreset, mel_spectrogram
from .metrics import METRICS, Features
from .pairing import REFERENCE, Plan
from .plots import bar_charts, colors, utterance_figure
from .report import build_summary, write_reports
from .runner import load, score_plan

PLOTTED_UTTERANCES = 3
RUN_VERSION = 1


def check_run(out: Path, identity: dict, overwrite: bool, restart_if_changed: bool = False) -> bool:
    """Refuse to mix two different evaluations in one folder; -> True when starting afresh.

    A folder holding another evaluation is an error, unless ``overwrite`` (always start again)
    or ``restart_if_changed`` (start again only then: the demo after retraining).
    """
    path = out / "run.json"
    identity = {"version": RUN_VERSION, **identity}
    fresh = overwrite
    if path.is_file() and not overwrite:
        try:
            earlier = json.loads(path.read_text())
        except ValueError:
            earlier = None
        if earlier != identity:
            if not restart_if_changed:
                raise WavegenError(
                    f"{out}: holds another evaluation (its run.json differs: "
                    f"{_difference(earlier, identity)}); evaluate into a new folder or pass --overwrite"
                )
            fresh = True
    if fresh:
        for name in ("metrics.csv", "summary.json", "report.md", "report.html", "run.json", "synthesis.json"):
            (out / name).unlink(missing_ok=True)
        for folder in ("plots", "wavs"):
            shutil.rmtree(out / folder, ignore_errors=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(identity, indent=2) + "\n")
    return fresh


def _difference(earlier, now: dict) -> str:
    if not isinstance(earlier, dict):
        return "unreadable"
    keys = sorted(k for k in set(earlier) | set(now) if earlier.get(k) != now.get(k))
    return ", ".join(f"{k}: {earlier.get(k)!r} -> {now.get(k)!r}" for k in keys[:3])


def complete_utterances(plan: Plan, rows: list[dict] | None = None) -> list[str]:
    """Utterances (by name) that every system has a file for, or a row in ``rows``."""
    if rows is None:
        return [u for u in plan.utterances if all(u in files for files in plan.systems.values())]
    scored: dict[str, set] = {}
    for r in rows:
        scored.setdefault(r["utterance"], set()).add(r["system"])
    return [u for u in plan.utterances if scored.get(u, set()) >= set(plan.systems)]


def run_plan(
    plan: Plan,
    preset: MelPreset,
    out: Path,
    context: dict,
    rtf: dict | None = None,
    jobs: int | None = None,
    progress: bool = True,
) -> dict:
    """Score, summarise, plot and report; -> the summary dict (also summary.json)."""
    plots = out / "plots"
    # F0 tracks are kept for a few more than are shown, in case a file turns out unreadable.
    candidates = tuple(complete_utterances(plan)[: 2 * PLOTTED_UTTERANCES])

    def keep_tracks(utterance: str, tracks: dict) -> None:
        for system, f0 in tracks.items():
            write_npy(plots / "f0" / system / f"{utterance}.npy", f0)

    rows, skipped = score_plan(
        plan, preset, out / "metrics.csv", jobs, candidates, on_tracks=keep_tracks, progress=progress
    )
    if not rows:
        raise WavegenError(
            f"nothing could be scored: {len(skipped)} pairs skipped"
            + (
                f" (first: {skipped[0]['system']} / {skipped[0]['utterance']}: {skipped[0]['reason']})"
                if skipped
                else ""
            )
        )
    context = {
        **context,
        "preset": preset.name,
        "sample_rate": preset.sample_rate,
        "utterances": len(plan.utterances),
        "systems": list(plan.systems),
    }
    summary = build_summary(rows, skipped, context, rtf or {})
    metrics = [m for m in (*METRICS, "rtf") if any(m in s for s in summary["systems"].values())]
    figures = [bar_charts(summary["systems"], metrics, plots / "metrics.png")]
    for u in complete_utterances(plan, rows)[:PLOTTED_UTTERANCES]:
        figures.append(spectrogram_figure(plan, u, preset, plots))
    write_reports(out, summary, figures)
    return summary


def spectrogram_figure(plan: Plan, utterance: str, preset: MelPreset, plots: Path) -> Path:
    """The reference first, then every other system; F0 tracks from scoring (or computed now,
    when scoring was done by an earlier run that was interrupted before keeping them)."""
    order = [REFERENCE] + [s for s in plan.systems if s != REFERENCE]
    mels, tracks = {}, {}
    for system in order:
        path = plan.references[utterance] if system == REFERENCE else plan.systems[system][utterance]
        wav, _ = load(path, preset)
        mels[system] = mel_spectrogram(wav.astype(np.float32), preset)
        kept = plots / "f0" / system / f"{utterance}.npy"
        tracks[system] = np.load(kept) if kept.is_file() else Features(wav, preset).f0
    palette = colors(list(plan.systems))
    return utterance_figure(utterance, mels, tracks, preset, plots / f"{utterance}.png", palette)
