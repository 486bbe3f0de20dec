"""DDP: 2 CPU processes on gloo under torchrun train the same weights as 1 process."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import make_feature_cache, write_recipe
from wavegen.config import model_config_from_dict
from wavegen.errors import WavegenError
from wavegen.model import WaveNet
from wavegen.training import checkpoint as ck
from wavegen.training.distributed import env_info

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
