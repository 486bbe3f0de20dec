"""``wavegen demo``: the whole pipeline on a synthetic corpus, no download."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app


@app.command()
def demo(
    workdir: Path = typer.Option(Path("wavegen_demo"), "--workdir", help="Where everything is written."),
    max_steps: int = typer.Option(None, "--max-steps", min=1, help="Training steps (default: the recipe's)."),
    set_: list[str] = typer.Option(None, "--set", help="Recipe override key=value (repeatable)."),
) -> None:
    """Generate a synthetic corpus, preprocess, train briefly, synthesize, and report."""
    from ..demo import run_demo

    overrides = list(set_ or [])
    if max_steps is not None:
        overrides.append(f"train.max_steps={max_steps}")
    report = run_demo(workdir, overrides, echo=typer.echo)
    tr = report["training"]
    typer.echo("")
    if "loss_first" in tr:
        typer.echo(
            f"training loss {tr['loss_first']:.3f} -> {tr['loss_last']:.3f} nats/sample "
            f"over {tr['steps']} steps"
        )
    typer.echo(f"synthesized WAVs: {workdir / 'synth'}")
    typer.echo(f"report: {workdir / 'report.md'}")
