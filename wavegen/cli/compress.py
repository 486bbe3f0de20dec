"""``wavegen compress``: the lossless μ-law codec (see wavegen.codec)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ._app import app
from .options import json_option, speaker_option, speaker_value


@app.command()
def compress(
    source: Path = typer.Argument(..., help="Audio file (resampled to the model's rate, mixed to mono)."),
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", "-c", help="Codec model: exported folder, run dir or checkpoint (no mel)."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="The .wgc file to write."),
    speaker: str = speaker_option(),
    verify: bool = typer.Option(False, "--verify", help="Decode before writing and compare."),
    segment: float = typer.Option(
        1.0,
        "--segment-seconds",
        help="Seconds per independently coded segment.",  # = SEGMENT_SECONDS
    ),
    backend: str = typer.Option(
        "auto", "--backend", help="Sampler backend: auto, kernel (cpp, else numba), cpp, numba or torch."
    ),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads [default: torch's]."),
    as_json: bool = json_option(),
) -> None:
    """Losslessly compress the μ-law stream of an audio file (not its 16-bit samples)."""
    from ..codec import compress_file
    from ..core.audio import refuse_overwriting
    from ..inference.vocoder import load_vocoder

    refuse_overwriting(output, [("the model", checkpoint)])
    vocoder = load_vocoder(checkpoint)
    summary = compress_file(
        vocoder,
        source,
        output,
        speaker_value(vocoder.speakers, speaker),
        verify,
        segment,
        backend,
        threads,
        progress=not as_json and sys.stderr.isatty(),
    )
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(
        f"{output}: {summary['bytes']} bytes, {summary['bits_per_sample']:.4f} bits/sample for "
        f"{summary['samples']} samples at {summary['sample_rate']} Hz (the model's ideal: "
        f"{summary['ideal_bits_per_sample']:.4f}); {summary['encode_samples_per_s']:.0f} samples/s"
        + (", verified" if summary["verified"] else "")
    )
