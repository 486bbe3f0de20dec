"""One writer per folder: real processes, real locks, kill -9 never leaves a stale lock."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from wavegen.core.dirlock import LOCK_FILE, folder_lock
from wavegen.core.errors import WavegenError

HOLD = """
import multiprocessing as mp, sys, time
from wavegen.core.dirlock import folder_lock

def child():
    time.sleep(60)

with folder_lock(sys.argv[1], "run dir"):
    worker = mp.get_context("fork").Process(target=child)  # like a DataLoader worker
    worker.start()
    print(worker.pid, flush=True)
    time.sleep(60)
"""


def hold_in_another_process(folder):
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD), str(folder), "extra-arg"],
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(proc.stdout.readline())
    return proc, child


def test_a_held_folder_is_refused_naming_the_holder(tmp_path):
    proc, child = hold_in_another_process(tmp_path / "run")
    try:
        with pytest.raises(WavegenError) as err:
            with folder_lock(tmp_path / "run", "run dir"):
                pass
        message = str(err.value)
        assert message.startswith(f"{tmp_path / 'run'}: this run dir is in use by pid {proc.pid} (")
        assert "extra-arg" in message and f"started {time.strftime('%Y-%m-%d')}" in message
        assert "\n" not in message
    finally:
        proc.kill()
        proc.wait()
        os.kill(child, signal.SIGKILL)


def test_kill_9_releases_at_once_even_with_forked_children_alive(tmp_path):
    proc, child = hold_in_another_process(tmp_path / "run")
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        os.kill(child, 0)  # the forked child still runs (and has the descriptor's copy closed)
        with folder_lock(tmp_path / "run", "run dir"):
            assert (tmp_path / "run" / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} ")
        assert (tmp_path / "run" / LOCK_FILE).read_text() == ""  # free again
    finally:
        os.kill(child, signal.SIGKILL)


def lock_in_another_process(folder) -> subprocess.CompletedProcess:
    code = f"from wavegen.core.dirlock import folder_lock\nfolder_lock({str(folder)!r}).__enter__()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_the_same_process_may_take_its_lock_again(tmp_path):
    with folder_lock(tmp_path / "w", "work dir"):
        with folder_lock(tmp_path / "w", "work dir"):
            pass
        proc = lock_in_another_process(tmp_path / "w")
        assert proc.returncode != 0 and f"in use by pid {os.getpid()}" in proc.stderr  # still held
    proc = lock_in_another_process(tmp_path / "w")
    assert proc.returncode == 0, proc.stderr


def test_a_folder_made_for_a_failed_block_is_removed_when_nothing_else_is_in_it(tmp_path):
    """A command failing on its arguments left FOLDER/wavegen.lock (and an otherwise empty
    folder) behind; a folder that existed, or gained files, is kept."""
    with pytest.raises(ValueError), folder_lock(tmp_path / "new"):
        raise ValueError("bad argument")
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError), folder_lock(tmp_path / "worked"):
        (tmp_path / "worked" / "done.txt").write_text("work done")
        raise ValueError("later failure")
    assert sorted(p.name for p in (tmp_path / "worked").iterdir()) == ["done.txt", LOCK_FILE]
    (tmp_path / "old").mkdir()
    with pytest.raises(ValueError), folder_lock(tmp_path / "old"):
        raise ValueError("bad argument")
    assert (tmp_path / "old").is_dir()
    with folder_lock(tmp_path / "ok"):
        pass
    assert (tmp_path / "ok" / LOCK_FILE).is_file()  # success: the folder is the command's output
