"""``wavegen export``: checkpoint or run dir -> model.safetensors + config.json."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file or training run dir."),
    outdir: Path = typer.Argument(..., help="Folder to write model.safetensors and config.json to."),
) -> None:
    """Export the EMA weights and everything needed to use them (no pickle)."""
    from ..artifacts.export import export_model

    out = export_model(checkpoint, outdir)
    typer.echo(f"exported to {out} (model.safetensors, config.json)")
