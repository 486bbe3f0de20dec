"""The ``wavegen`` command: a thin typer layer over the library.

Each command lives in its own module below and registers itself on :data:`app`. ``main`` turns
:class:`~wavegen.errors.WavegenError` (and any other failure) into one line on stderr and a
non-zero exit; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys

import typer

from ..errors import WavegenError
from ._app import app, state

# Importing the command modules registers their commands on ``app``.
from . import bench, demo, evaluate, export, mel, preprocess, synthesize, train  # noqa: E402,F401  isort: skip


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    state.debug = "--debug" in args
    try:
        # standalone mode: typer itself reports usage errors (exit 2) and handles --help.
        app(args=args, prog_name="wavegen")
    except WavegenError as e:
        if state.debug:
            raise
        print(f"wavegen: error: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # a bug: one line unless --debug
        if state.debug:
            raise
        print(
            f"wavegen: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        sys.exit(1)


__all__ = ["app", "main", "typer"]
