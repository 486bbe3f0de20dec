"""``wavegen score``: how likely audio files are under a model, in bits per sample."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..core.device import resolve_device
from ..core.errors import WavegenError
from ._app import app
from .options import device_option, json_option, speaker_option, speaker_value


@app.command()
def score(
    files: list[Path] = typer.Argument(..., help="Audio files (any rate or channel count soundfile reads)."),
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", "-c", help="Exported model folder, run dir or checkpoint file."
    ),
    speaker: str = speaker_option(),
    trace: Path = typer.Option(
        None, "--trace", help="Write the per-sample bits of all files, concatenated, as float32 .npy."
    ),
    batch: int = typer.Option(4, "--batch", min=1, help="Windows per forward pass."),
    chunk: int = typer.Option(16384, "--chunk", min=1, help="Samples scored per window."),
    device: str = device_option(),
    as_json: bool = json_option(),
    precision: str = typer.Option(
        "forward",
        "--precision",
        help="forward (the fp32 forward pass), or the teacher-forced logits of a CPU sampler kernel: "
        "fp32 or bf16 (what the reduced-precision kernel costs in bits).",
    ),
) -> None:
    """Teacher-forced −log2 P of each file's μ-law stream, in bits per sample."""
    import numpy as np

    from ..core.audio import read_audio, refuse_overwriting, write_npy
    from ..inference.score import score as run
    from ..inference.vocoder import load_vocoder

    if trace is not None:
        refuse_overwriting(trace, [("the model", checkpoint), *(("an input", f) for f in files)])
    vocoder = load_vocoder(checkpoint, device=resolve_device(device))
    waves = [read_audio(f, vocoder.sample_rate)[0] for f in files]
    mels = None
    if vocoder.n_mels:  # computed here, so an error (audio too short) names its file
        mels = []
        for f, wav in zip(files, waves):
            try:
                mels.append(vocoder.mel(wav))
            except WavegenError as err:
                raise WavegenError(f"{f}: {err}") from None
    speaker_id = speaker_value(vocoder.speakers, speaker)
    results = run(
        vocoder, waves, mel=mels, speaker=speaker_id, chunk_samples=chunk, batch=batch, precision=precision
    )
    conditional = results[0].conditional
    entries, offset = [], 0
    for f, r in zip(files, results):
        entries.append(
            {
                "file": str(f),
                "samples": r.samples,
                "bits_per_sample": round(r.bits_per_sample, 5),
                "trace_offset": offset,
            }
        )
        offset += r.samples
    total_bits = sum(r.bits for r in results)
    summary = {
        "files": entries,
        "samples": offset,
        "bits_per_sample": round(total_bits / max(offset, 1), 5),
        "conditional": conditional,
        "likelihood": (
            "conditional: -log2 P(x | mel(x)) per sample, the mel computed from the same audio"
            if conditional
            else "-log2 P(x) per sample of the mu-law stream"
        ),
        "sample_rate": vocoder.sample_rate,
        "precision": precision,
    }
    if trace is not None:
        write_npy(trace, np.concatenate([r.trace for r in results]).astype(np.float32))
        summary["trace"] = str(trace)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    width = max(len(str(f)) for f in files)
    for e in entries:
        bits = e["bits_per_sample"]
        typer.echo(f"{e['file']:<{width}}  {e['samples']:>10} samples  {bits:.4f} bits/sample")
    typer.echo(f"{'total':<{width}}  {offset:>10} samples  {summary['bits_per_sample']:.4f} bits/sample")
    typer.echo(f"({summary['likelihood']})")
    if trace is not None:
        typer.echo(f"per-sample bits written to {trace}")
