"""SIGINT and SIGTERM as an exception, so a stopped command cleans up and exits 128 + signal.

The ``wavegen`` command runs inside :func:`raising_on_signals`: either signal raises
:class:`Interrupted` in the main thread, so ``finally`` blocks and context managers run
(temporary files removed, locks released, worker pools shut down) and the process exits 130
(SIGINT) or 143 (SIGTERM), which is what a shell and ``set -e`` scripts expect of a command
stopped by a signal. Training replaces these handlers while its loop runs (finish the step,
write a checkpoint, then report the signal); worker processes ignore SIGINT so that a Ctrl-C
in a terminal, which reaches the whole process group, is handled by the main process alone.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A stop request by signal ``signum``.

    A BaseException, like KeyboardInterrupt: ``except Exception`` handlers (one bad file must
    not stop a corpus) must not swallow it.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f"stopped by {self.name}"


def _raise(signum, frame) -> None:
    raise Interrupted(signum)


@contextmanager
def raising_on_signals() -> Iterator[None]:
    """While active, SIGINT and SIGTERM raise :class:`Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def ignore_interrupts_in_worker() -> None:
    """For worker processes (a pool initializer): leave SIGINT to the main process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
