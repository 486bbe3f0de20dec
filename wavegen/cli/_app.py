"""The typer application object and global options shared by the command modules."""

from __future__ import annotations

import typer


class _State:
    debug: bool = False


state = _State()

app = typer.Typer(
    name="wavegen",
    help="WaveNet neural vocoder toolkit: preprocess, train, synthesize, benchmark.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    state.debug = debug
