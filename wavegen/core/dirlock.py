"""One writer per folder: an OS lock on ``FOLDER/wavegen.lock`` that no death can leave stale.

    with folder_lock(run_dir, "run dir"):   # WavegenError naming the holder if it is taken
        ...

``fcntl.flock`` on a lock file inside the folder: the kernel drops the lock when the last
descriptor of its open file closes, which every exit, crash and ``kill -9`` does, so a lock is
never stale and there is nothing to clean up (the file itself stays; it is not the lock). Its
text (pid, command line, start time) only serves the message of the process that is refused.

Forked children (DataLoader and preprocessing workers) inherit the descriptor and would keep a
killed parent's lock until they notice and exit; :func:`os.register_at_fork` closes it in every
child at once. Within one process a lock is re-entrant: the demo holds its work dir while its
preprocessing step takes the same lock again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import WavegenError

LOCK_FILE = "wavegen.lock"
log = logging.getLogger(__name__)

_held: dict[Path, list[int]] = {}  # resolved folder -> [descriptor, depth]
_guard = threading.Lock()


def _forget_in_child() -> None:
    global _guard
    _guard = threading.Lock()  # another thread may have held it at the fork
    for fd, _ in _held.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "folder") -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if missing) for the duration of the block.

    If the block fails and the folder was made for it and holds nothing but the lock file (a
    command that stopped on its arguments), both are removed: a failed command leaves no trace.

    Raises:
        WavegenError: another process holds it; the message names the folder, ``what`` it is
            (e.g. "run dir") and the holder: pid, command and start time.
    """
    folder = Path(folder)
    made = not folder.exists()
    key = acquire(folder, what)
    try:
        yield folder
    except BaseException:
        if made and _held.get(key, [None, 0])[1] == 1:  # the outermost holder in this process
            _remove_if_only_the_lock(folder)
        raise
    finally:
        release(key)


def _remove_if_only_the_lock(folder: Path) -> None:
    """Remove ``folder``'s lock file and the folder itself if nothing else is in it (while the
    lock is still held, so no other process can be in the middle of using it)."""
    try:
        if [p.name for p in folder.iterdir()] != [LOCK_FILE]:
            return
        (folder / LOCK_FILE).unlink()
        folder.rmdir()
    except OSError:  # gone already, or a file appeared meanwhile: keep what is there
        pass


def acquire(folder: Path, what: str = "folder") -> Path:
    """Take the lock of ``folder`` (see :func:`folder_lock`); -> the key for :func:`release`."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    with _guard:
        if key in _held:
            _held[key][1] += 1
            return key
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise WavegenError(
                f"{folder}: this {what} is in use by {holder}; wait for it to finish or stop it "
                f"(or use another {what})"
            ) from None
        except OSError as err:  # a file system without locks (some network or FUSE mounts)
            log.warning("cannot lock %s (%s): two writers would not be stopped", folder, err.strerror)
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, _describe_self().encode("utf-8", "replace"), 0)
        _held[key] = [fd, 1]
        return key


def release(key: Path) -> None:
    with _guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[key]
        fd = entry[0]
    try:
        os.ftruncate(fd, 0)  # the next holder writes its own; an empty file means "free"
    except OSError:
        pass
    os.close(fd)  # closing the last descriptor releases the flock


def _describe_self() -> str:
    argv = list(sys.argv) or ["python"]
    prog = Path(argv[0]).name
    if prog in ("__main__.py", "-m") or prog.startswith("wavegen"):
        prog = "wavegen"
    command = " ".join(shlex.quote(a) for a in [prog, *argv[1:]])
    if len(command) > 200:
        command = command[:197] + "..."
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"pid {os.getpid()} ({command}, started {started})"


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "another process (it has not written its details yet)"
