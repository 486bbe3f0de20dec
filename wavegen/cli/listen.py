"""``wavegen listen prepare | serve | analyze``: listening tests (a thin layer over wavegen.listen)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..core.named_folders import parse_named_folders
from ._app import app

listen_app = typer.Typer(
    help="Listening tests: prepare stimuli, serve the test in a browser, analyse the answers.",
    no_args_is_help=True,
)
app.add_typer(listen_app, name="listen")


@listen_app.command()
def prepare(
    kind: str = typer.Option(..., "--type", help="mushra, mos, ab or abx."),
    output: Path = typer.Option(..., "-o", "--output", help="The test dir to create (new or empty)."),
    ref: Path = typer.Option(None, "--ref", help="Folder of reference recordings (MUSHRA and ABX need it)."),
    system_dirs: list[str] = typer.Option(
        None, "--sys", help="NAME=DIR of a system's output WAVs (repeatable)."
    ),
    items: int = typer.Option(None, "--items", min=1, help="Items per listener (a balanced subset)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the condition ids, item subsets and orders."),
    rate: int = typer.Option(
        None, "--rate", min=8000, help="Sample rate of the test (default: the reference's)."
    ),
    max_seconds: float = typer.Option(None, "--max-seconds", help="Cut every item to at most this long."),
    gold: bool = typer.Option(
        False, "--gold", help="MOS: the reference trials are gold items (expected >= 4)."
    ),
    loudness: float = typer.Option(-23.0, "--loudness", help="Target loudness in LUFS (ITU-R BS.1770)."),
    config: Path = typer.Option(
        None,
        "--config",
        help="Test file (YAML): consent, calibration, questionnaire, comments, wording, return URL.",
    ),
) -> None:
    """Match items by file name, resample, cut, loudness-match, write stimuli and test.json."""
    from ..listen import prepare_test
    from ..listen.experiment import load_experiment

    experiment = load_experiment(config) if config is not None else None
    test = prepare_test(
        kind,
        output,
        parse_named_folders(system_dirs),
        reference=ref,
        items_per_listener=items,
        seed=seed,
        sample_rate=rate,
        max_seconds=max_seconds,
        gold=gold,
        loudness_lufs=loudness,
        experiment=experiment,
        echo=typer.echo,
    )
    conditions = len(test.items[0].conditions)
    typer.echo(
        f"{output}: {kind} test {test.test_id}, {len(test.items)} items x {conditions} conditions at "
        f"{test.sample_rate} Hz, {test.loudness_lufs:g} LUFS"
    )
    typer.echo(f"serve it with: wavegen listen serve {output}")


@listen_app.command()
def serve(
    test_dir: Path = typer.Argument(..., help="A test dir made by `wavegen listen prepare`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    db: Path = typer.Option(None, "--db", help="Answers database (default: TEST_DIR/answers.sqlite)."),
    completion_code: str = typer.Option(
        None,
        "--completion-code",
        help="One code for every listener (crowd platforms); default: one per listener.",
    ),
) -> None:
    """Serve the test; open http://HOST:PORT/ (add ?listener=ID to name the listener)."""
    from ..listen.app import serve as run

    run(test_dir, host=host, port=port, db_path=db, completion_code=completion_code, echo=typer.echo)


@listen_app.command()
def analyze(
    test_dir: Path = typer.Argument(None, help="The served test dir (its answers.sqlite)."),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Folder for summary.json, answers.csv, plots, report."
    ),
    db: Path = typer.Option(None, "--db", help="Answers database (default: TEST_DIR/answers.sqlite)."),
    webmushra: Path = typer.Option(None, "--webmushra", help="Analyse a webMUSHRA mushra.csv instead."),
) -> None:
    """Screen listeners, compute intervals and pairwise tests, write the report."""
    from ..listen import analyze as run

    summary = run(output, test_dir=test_dir, db_path=db, webmushra=webmushra)
    for name, s in summary["systems"].items():
        ci = f"[{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]" if s["ci95"] else "[-]"
        mean = f"{s['mean']:.2f}" if s["mean"] is not None else "-"
        typer.echo(f"{name:>14}  mean {mean}  95% CI {ci}  n={s['n']}")
    for e in summary["excluded_listeners"]:
        typer.echo(f"excluded {e['listener']}: {e['reason']}")
    for warning in summary["warnings"]:
        typer.echo(f"warning: {warning}")
    typer.echo(f"report: {output / 'report.md'}")
