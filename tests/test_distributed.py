"""DDP: 2 CPU processes on gloo under torchrun train the same weights as 1 process."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import make_feature_cache, write_recipe
from wavegen.artifacts import checkpoint as ck
from wavegen.core.config import model_config_from_dict
from wavegen.core.distributed import env_info
from wavegen.core.errors import WavegenError
from wavegen.model import WaveNet

TORCHRUN = Path(sys.executable).with_name("torchrun")


def test_env_info(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    info = env_info()
    assert (info.rank, info.world_size, info.is_main, info.enabled) == (0, 1, True, False)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    info = env_info()
    assert (info.rank, info.world_size, info.local_rank, info.is_main) == (3, 4, 1, False)
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(WavegenError, match="RANK"):
        env_info()


@pytest.mark.slow  # trains under torchrun
@pytest.mark.skipif(not (TORCHRUN.exists() or shutil.which("torchrun")), reason="no torchrun")
def test_two_gloo_processes_match_one(tmp_path):
    cache = make_feature_cache(tmp_path / "cache", n_utts=4, speakers=("a", "b"))
    write_recipe(
        tmp_path / "tiny.yaml",
        data={"batch_size": 4},
        train={"max_steps": 4, "checkpoint_interval": 100, "valid_interval": 2},
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["train", "tiny.yaml", "--workdir", str(cache), "--device", "cpu", "--no-progress"]
    torchrun = str(TORCHRUN) if TORCHRUN.exists() else "torchrun"
    ddp = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "wavegen", *common, "--run-dir", "ddp"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run(
        [sys.executable, "-m", "wavegen", *common, "--run-dir", "single"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert single.returncode == 0, single.stderr[-3000:]

    a = ck.load_checkpoint(tmp_path / "single" / "checkpoints" / "step_00000004.pt")
    b = ck.load_checkpoint(tmp_path / "ddp" / "checkpoints" / "step_00000004.pt")
    worst = max((a["model"][k] - b["model"][k]).abs().max().item() for k in a["model"])
    assert worst < 1e-5, worst
    torch.manual_seed(7)  # the recipe's seed: the weights both runs started from
    init = WaveNet(model_config_from_dict(a["recipe"]["model"])).state_dict()
    assert max((a["model"][k] - init[k]).abs().max().item() for k in init) > 1e-3
    assert a["sampler"] == b["sampler"]
    # Only rank 0 wrote: one event file, each log line once.
    assert len(list((tmp_path / "ddp" / "tb").iterdir())) == 1
    log = (tmp_path / "ddp" / "train.log").read_text()
    assert log.count("step 4/4 loss") == 1 and "on cpu x2" in log


def worker_pids(launcher_pid: int) -> dict[int, int]:
    """{RANK: pid} of the processes torchrun started (read from /proc)."""
    ranks = {}
    for task in Path(f"/proc/{launcher_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            env = dict(kv.decode().split("=", 1) for kv in environ if b"=" in kv)
            if "RANK" in env:
                ranks[int(env["RANK"])] = int(child)
    return ranks


@pytest.mark.slow  # trains under torchrun
@pytest.mark.skipif(not (TORCHRUN.exists() or shutil.which("torchrun")), reason="no torchrun")
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to find the ranks")
def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """SIGTERM to rank 1 only: the ranks agree at the next log step (every 3 steps, the stop flag
    rides on the log all-reduce), rank 0 writes that step's checkpoint, and the ranks exit 143."""
    cache = make_feature_cache(tmp_path / "cache", n_utts=4, speakers=("a", "b"))
    write_recipe(
        tmp_path / "tiny.yaml",
        data={"batch_size": 4},
        train={
            "max_steps": 1000000,
            "log_interval": 3,
            "checkpoint_interval": 100000,
            "valid_interval": 100000,
        },
    )
    torchrun = str(TORCHRUN) if TORCHRUN.exists() else "torchrun"
    common = ["train", "tiny.yaml", "--workdir", str(cache), "--device", "cpu", "--no-progress"]
    proc = subprocess.Popen(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "wavegen", *common, "--run-dir", "ddp"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "ddp" / "train.log"
    try:
        while proc.poll() is None and not (log.is_file() and "step 3/" in log.read_text()):
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        os.kill(worker_pids(proc.pid)[1], signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0  # torchrun reports the ranks' 143
    assert "exitcode  : 143" in err, err[-3000:]
    stops = re.findall(r"stopped by SIGTERM at step (\d+); checkpoint written", err)
    assert len(stops) == 2 and stops[0] == stops[1], err[-3000:]  # rank 1's warning and rank 0's
    step = int(stops[0])
    assert step % 3 == 0 and f"stopped by SIGTERM at step {step}" in log.read_text()
    assert ck.latest_checkpoint(tmp_path / "ddp") == ck.step_path(tmp_path / "ddp", step)
    assert ck.load_checkpoint(ck.step_path(tmp_path / "ddp", step))["step"] == step
