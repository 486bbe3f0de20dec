"""``wavegen preprocess``: corpus -> feature cache + manifest (see wavegen.data.preprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..artifacts import bundled
from ..artifacts.workdir import default_workdir
from ..data.preprocess import describe_mels, describe_split_caps
from ..data.preprocess import preprocess as run_preprocess
from ._app import app


@app.command()
def preprocess(
    recipe: str = typer.Argument(..., help="A bundled recipe's name (e.g. ljspeech) or a recipe YAML."),
    corpus: Path = typer.Option(None, "--corpus", help="Corpus folder (overrides data.corpus_path)."),
    workdir: Path = typer.Option(None, "--workdir", help="Feature cache [default: exp/<recipe name>]."),
    workers: int = typer.Option(0, "--workers", min=0, help="Processes; 0 = one per CPU core."),
    overrides: list[str] = typer.Option([], "--set", help="Recipe override key=value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="End the output with one JSON summary line."),
    mels: Path = typer.Option(
        None,
        "--mels",
        help="Train on a TTS model's teacher-forced mels: a folder of <utterance id>.npy "
        "(sets data.tts_mels).",
    ),
    mels_convention: str = typer.Option(
        None,
        "--mels-convention",
        help="auto, natural-log, log10, coqui-db or standardised (sets data.tts_mels_convention).",
    ),
    mels_params: Path = typer.Option(
        None,
        "--mels-params",
        help="coqui-db: the Coqui config.json; standardised: feats_stats.npz or JSON mean/std.",
    ),
) -> None:
    """Resample, trim, normalise and compute mels for a corpus; resumable and idempotent."""
    overrides = list(overrides)
    for key, value in (
        ("tts_mels", mels),
        ("tts_mels_convention", mels_convention),
        ("tts_mels_params", mels_params),
    ):
        if value is not None:  # paths absolute: the recipe's folder is not where the user is
            overrides.append(f"data.{key}={value.resolve() if isinstance(value, Path) else value}")
    rec = bundled.load(recipe, overrides)
    workdir = workdir if workdir is not None else default_workdir(rec.name)
    summary = run_preprocess(
        rec, workdir, corpus_path=corpus.resolve() if corpus else None, workers=workers or None
    )
    for item in summary.skipped:
        typer.echo(f"skipped {item['id']} ({item['file']}): {item['reason']}", err=True)
    if summary.split_caps:
        typer.echo(describe_split_caps(summary.split_caps))
    if summary.mels["kind"] == "tts":
        typer.echo(describe_mels(summary.mels))
    splits = ", ".join(f"{n} {name}" for name, n in summary.splits.items())
    typer.echo(
        f"{workdir}: {summary.processed} processed, {summary.cached} already cached, "
        f"{len(summary.skipped)} skipped ({splits}); {summary.audio_seconds:.1f} s of audio in "
        f"{summary.seconds:.1f} s = {summary.realtime_factor:.0f}x real time"
    )
    if as_json:
        keys = ("processed", "cached", "skipped", "seconds", "audio_seconds", "realtime_factor", "splits")
        keys += ("split_caps", "mels")
        data = summary.to_dict()
        typer.echo(json.dumps({k: data[k] for k in keys}, ensure_ascii=False))
