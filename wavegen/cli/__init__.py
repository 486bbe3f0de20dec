"""The ``wavegen`` command: a thin typer layer over the library.

Each command lives in its own module below and registers itself on :data:`app`. :func:`run`
maps every outcome to an exit code, and :func:`main` always ends in ``sys.exit`` with it, so no
failure can exit 0:

- success 0; a usage error 2 (typer's message);
- :class:`~wavegen.core.errors.WavegenError`, and an ``OSError`` (permission denied, no space left,
  is a directory, ...): one line ``wavegen: error: ...`` naming the file, exit 1;
- SIGINT / SIGTERM: cleanup runs (see :mod:`wavegen.core.interrupt`), one line, exit 130 / 143;
- anything else is a bug: one line ``wavegen: internal error: ...``, exit 1.

``--debug`` prints the traceback as well, with the same exit code.
"""

from __future__ import annotations

import errno
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import typer

from ..core.errors import WavegenError
from ..core.interrupt import Interrupted, raising_on_signals
from ._app import app, state

# Importing the command modules registers their commands on ``app``.
from . import bench, compress, decompress, demo, evaluate, export, listen, mel, preprocess  # noqa: E402,F401  isort: skip
from . import recipes, score, synthesize, train, warmup  # noqa: E402,F401  isort: skip


def main(argv: list[str] | None = None) -> NoReturn:
    """The console script and ``python -m wavegen``: run the command, exit with its code."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run one ``wavegen`` command line; -> its exit code (never raises, except SystemExit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    state.debug = "--debug" in args
    try:
        with raising_on_signals():
            # Not standalone: typer returns (or raises) instead of calling sys.exit itself, so
            # every outcome passes through the mapping below.
            result = app(args=args, prog_name="wavegen", standalone_mode=False)
    except Interrupted as e:
        return _fail(e, f"wavegen: {e}", e.exit_code)
    except typer.Abort as e:  # end of input at a prompt
        return _fail(e, "wavegen: aborted", 1)
    except typer.TyperException as e:  # click's usage errors: typer formats them
        e.show()
        return getattr(e, "exit_code", 2)
    except WavegenError as e:
        return _fail(e, f"wavegen: error: {e}", 1)
    except OSError as e:
        return _fail(e, f"wavegen: error: {describe_os_error(e)}", 1)
    except Exception as e:  # a bug: one line unless --debug
        message = f"wavegen: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)"
        return _fail(e, message, 1)
    if isinstance(result, bool) or not isinstance(result, int):
        return 0  # a command that returned normally (None)
    return result  # typer.Exit(code) from a command, or 0 after --help


def _fail(err: BaseException, line: str, code: int) -> int:
    if state.debug:
        traceback.print_exception(err)
    print(line.splitlines()[0] if line.strip() else line, file=sys.stderr)
    return code


def describe_os_error(err: OSError) -> str:
    """'<path>: <reason>' for an OSError that escaped the library (mkdir, open, ...)."""
    if err.errno in (errno.EEXIST, errno.ENOTDIR) and err.filename is not None:
        # mkdir of a folder (a run dir, a work dir) where a file is: "File exists" says little
        for path in (Path(err.filename), *Path(err.filename).parents):
            if path.is_file():
                return f"{path}: is a file, not a folder"
    reason = err.strerror or str(err) or type(err).__name__
    names = [str(n) for n in (err.filename, err.filename2) if n is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason


__all__ = ["app", "main", "run", "typer"]
