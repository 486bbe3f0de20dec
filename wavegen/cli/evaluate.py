"""``wavegen evaluate``: objective metrics with baselines, 95 % intervals, plots and a report."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..core.errors import WavegenError
from ..core.named_folders import parse_named_folders
from ._app import app
from .options import device_option, json_option


@app.command()
def evaluate(
    output: Path = typer.Option(..., "-o", "--output", help="Folder for metrics.csv, summary.json, report."),
    checkpoint: Path = typer.Option(
        None,
        "--checkpoint",
        "-c",
        help="Model to copy-synthesize with: export folder, run dir or checkpoint.",
    ),
    split: str = typer.Option("test", "--split", help="Corpus split of --workdir to copy-synthesize."),
    workdir: Path = typer.Option(None, "--workdir", help="Feature cache (default: the run dir's parent)."),
    ref: Path = typer.Option(None, "--ref", help="Folder of reference WAVs (second form)."),
    system_dirs: list[str] = typer.Option(None, "--sys", help="NAME=DIR of a system's WAVs (repeatable)."),
    preset: str = typer.Option(None, "--preset", help="Log-mel preset for --ref (default: by sample rate)."),
    name: str = typer.Option("wavegen", "--name", help="The model's name in the report."),
    device: str = device_option(help="cpu, cuda or cuda:N (synthesis)."),
    batch: int = typer.Option(8, "--batch", min=1, help="Utterances generated together."),
    temperature: float = typer.Option(
        1.0, "--temperature", min=0.0, help="Sampling temperature; 0 = argmax."
    ),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    gl_iterations: int = typer.Option(32, "--gl-iterations", min=1, help="Griffin-Lim iterations."),
    jobs: int = typer.Option(
        None, "--jobs", "-j", min=1, help="Processes for the metrics (default: all cores)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again instead of resuming OUTPUT."),
    as_json: bool = json_option("End with the summary as one JSON line."),
) -> None:
    """Score a model's copy-synthesis of a split (--checkpoint) against Griffin-Lim and the
    ground truth, or any systems' WAVs (--ref DIR --sys NAME=DIR ...)."""
    from ..evaluate import evaluate_folders, evaluate_model

    if (checkpoint is None) == (ref is None):
        raise WavegenError("give either --checkpoint (copy-synthesis of a split) or --ref with --sys")
    if ref is not None:
        if not system_dirs:
            raise WavegenError("--ref needs at least one --sys NAME=DIR")
        systems = list(parse_named_folders(system_dirs).items())
        summary = evaluate_folders(ref, systems, output, preset, jobs, overwrite)
    else:
        if system_dirs or preset:
            raise WavegenError("--sys and --preset go with --ref; a model brings its own preset")
        if workdir is None:
            from ..artifacts.workdir import workdir_of

            workdir = workdir_of(checkpoint)
        if workdir is None:
            raise WavegenError("--checkpoint needs --workdir (the preprocessed feature cache)")
        echo = (lambda *a: typer.echo(*a, err=True)) if as_json else typer.echo
        summary = evaluate_model(
            checkpoint,
            workdir,
            output,
            split=split,
            name=name,
            device=device,
            batch_size=batch,
            temperature=temperature,
            seed=seed,
            gl_iterations=gl_iterations,
            jobs=jobs,
            overwrite=overwrite,
            echo=echo,
        )
        if summary is None:  # a torchrun rank other than 0: it synthesized its share
            return
    from ..evaluate.report import markdown_table

    typer.echo(markdown_table(summary), err=as_json)
    skipped = len(summary["skipped"])
    typer.echo(
        f"report: {output / 'report.md'} ({summary['utterances']} utterances"
        + (f", {skipped} files left out" if skipped else "")
        + ")",
        err=as_json,
    )
    if as_json:
        typer.echo(json.dumps(summary))
