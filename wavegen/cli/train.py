"""``wavegen train``: train a recipe on a feature cache (also under ``torchrun`` for DDP)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..artifacts import bundled
from ..artifacts.workdir import default_workdir
from ..core.errors import WavegenError
from ._app import app
from .options import device_option


@app.command()
def train(
    recipe: str = typer.Argument(
        ..., help="A bundled recipe's name (see `wavegen recipes`) or a recipe YAML."
    ),
    workdir: Path = typer.Option(None, "--workdir", help="Feature cache [default: exp/<recipe name>]."),
    run_dir: Path = typer.Option(
        None, "--run-dir", help="Where checkpoints and logs go [default: <workdir>/run]."
    ),
    max_steps: int = typer.Option(None, "--max-steps", help="Override train.max_steps."),
    device: str = device_option(None, "cpu, cuda or cuda:N [default: cuda if available]."),
    overrides: list[str] = typer.Option(
        None, "--set", help="Override a recipe value, e.g. --set train.lr=0.0005 (repeatable)."
    ),
    resume: bool = typer.Option(
        None,
        "--resume/--no-resume",
        help="Require a checkpoint to "
        "continue from / require a fresh run dir [default: continue if "
        "the run dir has checkpoints].",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    init_from: Path = typer.Option(
        None,
        "--init-from",
        help="Fine-tune: start from this trained model (run dir, checkpoint or export folder); a "
        "fresh optimiser, schedule and step. A run dir with checkpoints continues its own fine-tune "
        "(one trained from scratch is refused).",
    ),
    map_speakers: list[str] = typer.Option(
        None,
        "--map-speaker",
        help="NEW=KNOWN: start the new speaker NEW from the trained model's speaker KNOWN "
        "(repeatable; other new speakers get fresh rows).",
    ),
) -> None:
    """Train RECIPE; a run dir with checkpoints continues where it stopped."""
    from ..core.distributed import env_info
    from ..training import train as run_training  # torch-heavy: import only when training

    items = list(overrides or [])
    if max_steps is not None:
        items.append(f"train.max_steps={max_steps}")
    r = bundled.load(recipe, items)
    workdir = workdir or default_workdir(r.name)
    speaker_map = {}
    for item in map_speakers or []:
        new, sep, known = item.partition("=")
        if not (sep and new.strip() and known.strip()):
            raise WavegenError(f"--map-speaker {item!r}: expected NEW=KNOWN, e.g. p999=p225")
        new, known = new.strip(), known.strip()
        if speaker_map.get(new, known) != known:  # the last one would silently win
            raise WavegenError(
                f"--map-speaker: speaker {new!r} is mapped twice ({new}={speaker_map[new]}, {new}={known}); "
                "give one known speaker for it"
            )
        speaker_map[new] = known
    if speaker_map and init_from is None:
        raise WavegenError("--map-speaker needs --init-from (it maps speakers onto a trained model's)")
    result = run_training(
        r,
        workdir,
        run_dir or workdir / "run",
        device=device,
        resume=resume,
        progress=progress,
        init_from=init_from,
        speaker_map=speaker_map,
    )
    if env_info().is_main:
        how = "stopped by signal" if result.stopped else "finished"
        bits = "" if result.valid_bits is None else f", valid {result.valid_bits:.3f} bits/sample"
        typer.echo(f"{how} at step {result.step}{bits}; checkpoint {result.checkpoint}", err=True)
    if result.stopped:  # checkpoint written, but a `set -e` script must not go on as if finished
        raise typer.Exit(128 + result.signal)
