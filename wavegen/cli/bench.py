"""``wavegen bench``: training and generation throughput as one JSON object."""

from __future__ import annotations

import json

import typer

from ..core.errors import WavegenError
from ._app import app
from .options import device_option


def _parse_batches(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes:  # ",," once fell back to the default sizes
        raise WavegenError(f"--batch: expected comma-separated integers like 1,8,32, got {text!r}")
    return sizes


@app.command()
def bench(
    config: str = typer.Option(
        "bench",
        "--config",
        help="bench (built in), a bundled recipe's name or a recipe YAML whose model is benchmarked.",
    ),
    device: str = device_option(),
    batch: str = typer.Option("1,8,32", "--batch", help="Batch sizes to generate with."),
    seconds: float = typer.Option(0.5, "--seconds", help="Seconds of audio generated per row."),
    baseline_samples: int = typer.Option(
        1024,
        "--baseline-samples",
        help="Samples per row for the peer's incremental_forward (0 = skip the peer).",
    ),
    train_steps: int = typer.Option(
        3,
        "--train-steps",
        help="Timed training steps per precision and for the peer (after one warm-up step).",
    ),
    codec: str = typer.Option(None, "--codec", help="Also measure this codec model (run dir or export)."),
    codec_audio: list[str] = typer.Option([], "--codec-audio", help="Audio file for --codec (repeatable)."),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="Headline CPU kernel: auto, fp32 or bf16 (every kernel that runs here is measured).",
    ),
    big_config: str = typer.Option(
        "ljspeech",
        "--big-config",
        help="Big model measured at batch 1 and 32 in fp32 and bf16 (a recipe; 'none' skips it).",
    ),
    big_seconds: float = typer.Option(
        0.05, "--big-seconds", help="Seconds of audio per row for --big-config."
    ),
    compact: bool = typer.Option(
        False, "--json", help="Print the JSON on one line and no progress messages."
    ),
) -> None:
    """Measure training and generation speed; print one JSON object."""
    from ..bench import run_bench  # torch-heavy: import only when benchmarking

    log = None if compact else (lambda line: typer.echo(f"wavegen bench: {line}", err=True))
    result = run_bench(
        config,
        device,
        _parse_batches(batch),
        seconds,
        baseline_samples,
        train_steps,
        log,
        codec,
        codec_audio,
        precision=precision,
        big_config=None if big_config.lower() == "none" else big_config,
        big_seconds=big_seconds,
    )
    typer.echo(json.dumps(result) if compact else json.dumps(result, indent=2))
