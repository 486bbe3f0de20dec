"""The embedded demo: synthetic corpus -> preprocess -> short training -> export -> synthesis.

Runs on a fresh machine with no download in a few minutes on 2 CPU cores. Everything lands in
the work dir; the report (``report.md`` and ``report.json``) shows the training loss falling,
validation bits per sample against a memoryless μ-law baseline, and where the WAVs are. Running
it again resumes: finished stages are skipped, an interrupted training continues.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from . import bundled
from .audio import atomic_path
from .config import Recipe
from .dirlock import folder_lock
from .mulaw import mulaw_encode
from .workdir import load_manifest

DEMO_RECIPE = "demo"  # the bundled recipes/demo/config.yaml (see wavegen.bundled)


def demo_recipe(overrides: list[str] | None = None) -> Recipe:
    return bundled.load(DEMO_RECIPE, overrides)


def run_demo(
    workdir: str | Path = "wavegen_demo",
    overrides: list[str] | None = None,
    progress: bool = True,
    echo=print,
) -> dict:
    """Run the whole demo in ``workdir``; -> the report dict (also written as report.json)."""
    recipe = demo_recipe(overrides)
    with folder_lock(workdir, "work dir"):  # one demo (or preprocess) per work dir
        return _run_demo(Path(workdir), recipe, progress, echo)


def _run_demo(workdir: Path, recipe: Recipe, progress: bool, echo) -> dict:
    from .export import export_model
    from .preprocess import preprocess
    from .synthesize import items_from_split, synthesize
    from .training import train
    from .vocoder import load_vocoder

    times: dict[str, float] = {}

    echo(f"[1/4] preprocess: synthetic corpus -> {workdir}")
    start = time.perf_counter()
    prep = preprocess(recipe, workdir, progress=progress)
    times["preprocess"] = time.perf_counter() - start

    run_dir = workdir / "run"
    echo(f"[2/4] train: {recipe.train.max_steps} steps on the CPU -> {run_dir}")
    start = time.perf_counter()
    result = train(recipe, workdir, run_dir, device="cpu", progress=progress)
    times["train"] = time.perf_counter() - start

    echo(f"[3/4] export -> {workdir / 'export'}")
    export_dir = export_model(run_dir, workdir / "export")

    out = workdir / "synth"
    echo(f"[4/4] synthesize the test split -> {out}")
    vocoder = load_vocoder(export_dir)
    items = items_from_split(vocoder, workdir, "test", None)
    start = time.perf_counter()
    synth = synthesize(vocoder, items, out, batch_size=len(items), seed=0, overwrite=True, progress=progress)
    times["synthesize"] = time.perf_counter() - start

    report = {
        "workdir": str(workdir),
        "corpus": {
            "utterances": sum(prep.splits.values()),
            "splits": prep.splits,
            "skipped": len(prep.skipped),
        },
        "model": {
            "parameters": vocoder.model.num_params(),
            "receptive_field": vocoder.model.receptive_field,
            "speakers": vocoder.speakers,
        },
        "training": {"steps": result.step, **loss_curve(run_dir)},
        "validation_bits_per_sample": result.valid_bits,
        "memoryless_baseline_bits_per_sample": mulaw_entropy_bits(workdir, "valid"),
        "synthesis": synth,
        "wavs": sorted(str(p) for p in out.glob("*.wav")),
        "stage_seconds": {k: round(v, 2) for k, v in times.items()},
        "export": str(export_dir),
    }
    write_report(workdir, report)
    return report


def loss_curve(run_dir: Path) -> dict:
    """First and last logged training losses (nats/sample) from the run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    if "train/loss" not in events.Tags().get("scalars", []):
        return {"loss_points": []}
    points = [(e.step, round(e.value, 4)) for e in events.Scalars("train/loss")]
    k = max(1, len(points) // 10)
    return {
        "loss_first": float(np.mean([v for _, v in points[:k]])),
        "loss_last": float(np.mean([v for _, v in points[-k:]])),
        "loss_points": points,
    }


def mulaw_entropy_bits(workdir: Path, split: str) -> float:
    """Entropy of the μ-law class histogram of a split: the bits/sample of a model without memory."""
    counts = np.zeros(256)
    for row in load_manifest(workdir):
        if row["split"] == split:
            counts += np.bincount(mulaw_encode(np.load(workdir / row["audio"])), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def write_report(workdir: Path, report: dict) -> None:
    tr = report["training"]
    lines = [
        "# wavegen demo report",
        "",
        f"- corpus: {report['corpus']['utterances']} synthetic utterances, "
        f"splits {report['corpus']['splits']}",
        f"- model: {report['model']['parameters']:,} parameters, receptive field "
        f"{report['model']['receptive_field']} samples, speakers {', '.join(report['model']['speakers'])}",
    ]
    if "loss_first" in tr:
        lines.append(
            f"- training loss (nats/sample): {tr['loss_first']:.3f} at the start -> "
            f"{tr['loss_last']:.3f} after {tr['steps']} steps (ln 256 = {math.log(256):.3f} "
            "is a uniform guess)"
        )
    vb = report["validation_bits_per_sample"]
    lines.append(
        f"- validation: {vb:.3f} bits/sample (EMA weights) vs "
        f"{report['memoryless_baseline_bits_per_sample']:.3f} for a memoryless μ-law model"
        if vb is not None
        else "- validation: not run"
    )
    s = report["synthesis"]
    lines += [
        f"- synthesis: {s['synthesized']} test utterances, {s['audio_seconds']} s of audio, "
        f"realtime factor {s['realtime_factor']} (audio seconds per wall second)",
        f"- stage times (s): {report['stage_seconds']}",
        "",
        "## Synthesized WAVs",
        "",
        *[f"- {w}" for w in report["wavs"]],
        "",
        f"Exported model: {report['export']} (load it with `wavegen.load_vocoder`).",
        "",
    ]
    with atomic_path(workdir / "report.md") as tmp:
        tmp.write_text("\n".join(lines))
    with atomic_path(workdir / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
