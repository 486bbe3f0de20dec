"""``wavegen decompress``: restore the μ-law stream of a ``wavegen compress`` file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ._app import app
from .options import json_option


@app.command()
def decompress(
    source: Path = typer.Argument(..., help="A .wgc file written by wavegen compress."),
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", "-c", help="The model it was compressed with (checked by sha256)."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="The 16-bit WAV to write."),
    codes: Path = typer.Option(None, "--codes", help="Also write the μ-law classes (int64 .npy)."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads (more pay off for big models)."),
    as_json: bool = json_option(),
) -> None:
    """Restore the exact μ-law stream of a compressed file, as a WAV (and --codes)."""
    from ..codec import decompress_file
    from ..core.audio import refuse_overwriting
    from ..inference.vocoder import load_vocoder

    for path in (output, codes):
        if path is not None:
            refuse_overwriting(path, [("the model", checkpoint)])
    vocoder = load_vocoder(checkpoint)
    summary = decompress_file(
        vocoder, source, output, codes, threads, progress=not as_json and sys.stderr.isatty()
    )
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(
        f"{output}: {summary['samples']} samples at {summary['sample_rate']} Hz "
        f"({summary['decode_samples_per_s']:.0f} samples/s)" + (f"; codes in {codes}" if codes else "")
    )
