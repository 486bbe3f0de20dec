"""The training engine: exact resume, signals, EMA use, logging, schedule, configuration errors."""

import math
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.helpers import write_recipe
from wavegen.artifacts import checkpoint as ck
from wavegen.core.config import TrainConfig, load_recipe
from wavegen.core.errors import WavegenError
from wavegen.generation.backends import backend_for
from wavegen.training import Trainer, train
from wavegen.training.optim import lr_factor

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


# Every test but the lr schedule trains a model; one_thread is in conftest.py.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def cache(two_speaker_cache):
    return two_speaker_cache


def recipe(tmp_path, overrides=(), **sections):
    return load_recipe(write_recipe(tmp_path / "tiny.yaml", **sections), list(overrides))


def run_cli(*args, cwd=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "wavegen", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=ONE_THREAD,
        **kwargs,
    )


def assert_states_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_is_bit_identical(cache, tmp_path, precision):
    """3 steps + stop + resume + 3 steps == 6 steps: weights, EMA and Adam moments, bit for bit."""
    r6 = recipe(tmp_path, train={"max_steps": 6, "checkpoint_interval": 100, "precision": precision})
    r3 = recipe(tmp_path, train={"max_steps": 3, "checkpoint_interval": 100, "precision": precision})
    full = train(r6, cache, tmp_path / "full", progress=False)
    first = train(r3, cache, tmp_path / "split", progress=False)
    assert first.step == 3 and first.checkpoint.name == "step_00000003.pt"
    second = train(r6, cache, tmp_path / "split", progress=False)  # resumes automatically
    assert second.step == 6
    a, b = ck.load_checkpoint(full.checkpoint), ck.load_checkpoint(second.checkpoint)
    assert_states_equal(a["model"], b["model"])
    assert_states_equal(a["ema"], b["ema"])
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert torch.equal(pa["exp_avg"], pb["exp_avg"]) and torch.equal(pa["exp_avg_sq"], pb["exp_avg_sq"])
    assert a["scheduler"] == b["scheduler"] and a["sampler"] == b["sampler"]
    assert a["valid_bits"] == b["valid_bits"]
    # The resolved recipe and cache facts travel with the checkpoint; n_speakers was -1.
    assert a["recipe"]["model"]["n_speakers"] == 2 and a["speakers"] == ["a", "b"]
    assert a["preset"]["name"] == "tacotron2"
    # ...and a stopped-at-3 run did not see the same weights as the 6-step one (a real check).
    early = ck.load_checkpoint(first.checkpoint)
    assert not torch.equal(early["model"]["embed.weight"], a["model"]["embed.weight"])


def test_corrupt_newest_checkpoint_falls_back_and_replays(cache, tmp_path, caplog):
    """Resume skips a corrupt step-4 file, restarts from step 2 and rebuilds step 4 exactly."""
    r = recipe(tmp_path, train={"max_steps": 4, "checkpoint_interval": 2})
    run = tmp_path / "run"
    original = train(r, cache, run, progress=False)
    weights = ck.load_checkpoint(original.checkpoint)["model"]
    data = bytearray(original.checkpoint.read_bytes())
    data[-100] ^= 0x01
    original.checkpoint.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        again = train(r, cache, run, progress=False)
    assert "step_00000004.pt" in caplog.text and "falling back" in caplog.text
    assert "resumed from" in (run / "train.log").read_text()
    assert (run / "checkpoints" / "step_00000004.pt.corrupt").exists()
    assert again.step == 4 and ck.latest_checkpoint(run) == again.checkpoint
    assert_states_equal(ck.load_checkpoint(again.checkpoint)["model"], weights)


def test_checkpoint_payload_loads_with_weights_only(cache, tmp_path):
    result = train(recipe(tmp_path, train={"max_steps": 2}), cache, tmp_path / "run", progress=False)
    raw = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert raw["step"] == 2 and isinstance(raw["rng"]["python"]["state"], list)
    assert isinstance(raw["rng"]["numpy"]["keys"], torch.Tensor)
    assert raw["sampler"] == {"epoch": 0, "index": 4, "seed": 7, "num_utts": 8, "batch_size": 2}


@pytest.mark.slow
def test_tiny_model_learns(cache, tmp_path):
    """60 steps on the tiny cache: the training loss and the EMA's valid bits both fall."""
    r = recipe(
        tmp_path, train={"max_steps": 60, "lr": 0.01, "warmup_steps": 5, "ema_decay": 0.8, "valid_batches": 4}
    )
    trainer = Trainer(r, cache, tmp_path / "run", progress=False)
    trainer.build()
    before = trainer.validate()
    batches = trainer.batches()
    losses = [trainer.train_step(next(batches))["loss"].item() for _ in range(60)]
    after = trainer.validate()
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.5, losses
    assert after < before - 0.5, (before, after)


def test_ema_is_what_validation_and_samples_use(cache, tmp_path, monkeypatch):
    r = recipe(tmp_path, train={"max_steps": 4, "ema_decay": 0.9, "lr": 0.01})
    trainer = Trainer(r, cache, tmp_path / "run", progress=False)
    trainer.build()
    batches = trainer.batches()
    for _ in range(4):
        trainer.train_step(next(batches))
    raw, avg = trainer.model.state_dict(), trainer.ema.model.state_dict()
    assert not torch.equal(raw["layers.0.conv.weight"], avg["layers.0.conv.weight"])
    assert trainer.eval_model is trainer.ema.model
    bits_ema = trainer.validate()
    trainer.ema = None  # validation of the raw weights, for comparison
    bits_raw = trainer.validate()
    assert bits_ema != bits_raw
    seen = []

    def fake_generate(model, mel, speaker, seed):
        seen.append(model)
        return torch.zeros(1, mel.shape[-1] * 256)

    monkeypatch.setattr("wavegen.training.trainer.generate_audio", fake_generate)
    trainer2 = Trainer(r, cache, tmp_path / "run2", progress=False)
    trainer2.build()

    class Log:
        def audio(self, *a): ...
        def image(self, *a): ...

    trainer2.sample(Log())
    assert seen and all(m is trainer2.ema.model for m in seen)
    # The checkpoint's EMA weights are what model_from_checkpoint (export/synthesis) loads.
    payload = trainer2.payload()
    model = ck.model_from_checkpoint(payload)
    assert torch.equal(model.state_dict()["post_logits.weight"], payload["ema"]["post_logits.weight"])


def test_run_dir_has_log_tensorboard_samples_and_best(cache, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = recipe(
        tmp_path, train={"max_steps": 4, "valid_interval": 2, "sample_interval": 4, "sample_seconds": 0.03}
    )
    run = tmp_path / "run"
    result = train(r, cache, run, progress=False)
    assert load_recipe(run / "recipe.yaml").model.n_speakers == 2
    log = (run / "train.log").read_text()
    assert "step 4/4 loss" in log and "valid" in log and "bits/sample" in log
    assert f"| sampler {backend_for('cpu')}" in log  # which backend renders the samples
    best = ck.load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["valid_bits"] == min(best["valid_bits"], result.valid_bits)
    wavs = sorted((run / "samples").glob("step_00000004_*.wav"))
    assert len(wavs) == 2  # one per speaker
    info = sf.info(str(wavs[0]))
    assert info.samplerate == 22050 and info.frames == math.ceil(0.03 * 22050 / 256) * 256
    events = EventAccumulator(str(run / "tb"), size_guidance={"audio": 0, "images": 0}).Reload()
    tags = events.Tags()
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/samples_per_s", "valid/bits_per_sample"):
        assert tag in tags["scalars"], tag
    assert len(events.Scalars("train/loss")) == 4
    audio_tag = tags["audio"][0]
    assert events.Audio(audio_tag)[0].sample_rate == 22050
    assert any(t.startswith("mel_reference/") for t in tags["images"])
    assert any(t.startswith("mel_generated/") for t in tags["images"])


def test_lr_warmup_and_decay():
    cfg = TrainConfig(
        lr=1e-3, warmup_steps=10, decay="exponential", decay_rate=0.5, decay_steps=100, min_lr=1e-4
    )
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(110, cfg) == pytest.approx(0.5)
    assert lr_factor(10_000, cfg) == pytest.approx(0.1)  # floor at min_lr / lr
    cos = TrainConfig(lr=1e-3, warmup_steps=0, decay="cosine", decay_steps=100, min_lr=0.0)
    assert lr_factor(50, cos) == pytest.approx(0.5) and lr_factor(500, cos) == pytest.approx(0.0)


def test_resume_flags(cache, tmp_path):
    r = recipe(tmp_path, train={"max_steps": 2})
    with pytest.raises(WavegenError, match="no checkpoint"):
        train(r, cache, tmp_path / "run", resume=True, progress=False)
    train(r, cache, tmp_path / "run", progress=False)
    with pytest.raises(WavegenError, match="already holds checkpoints"):
        train(r, cache, tmp_path / "run", resume=False, progress=False)
    other = recipe(tmp_path, model={"residual_channels": 16})
    with pytest.raises(WavegenError, match="differs from the recipe"):
        train(other, cache, tmp_path / "run", progress=False)


def start_training(tmp_path, cache, run, *extra):
    """`wavegen train` in its own process, returned once step 1 is logged."""
    args = ["tiny.yaml", "--workdir", str(cache), "--run-dir", str(run), "--no-progress", *extra]
    proc = subprocess.Popen(
        [sys.executable, "-m", "wavegen", "train", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ONE_THREAD,
    )
    log = run / "train.log"
    while proc.poll() is None and not (log.is_file() and "step 1/" in log.read_text()):
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    return proc, args


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_writes_a_checkpoint_exits_128_plus_it_and_resume_continues(cache, tmp_path, sig, code):
    write_recipe(tmp_path / "tiny.yaml", train={"checkpoint_interval": 100000, "valid_interval": 100000})
    run = tmp_path / "run"
    proc, args = start_training(tmp_path, cache, run, "--max-steps", "1000000")
    log = run / "train.log"
    proc.send_signal(sig)
    _, err = proc.communicate()
    assert proc.returncode == code, err  # 128 + signal: a `set -e` script stops here
    assert "stopped by signal" in err and "Traceback" not in err
    assert f"stopped by {sig.name} at step" in log.read_text()
    step = ck.load_checkpoint(ck.latest_checkpoint(run))["step"]
    assert step >= 1
    if sig == signal.SIGINT:
        return  # the resume below is the same after either signal
    r = run_cli("train", *args, "--max-steps", str(step + 2), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"resumed from {ck.step_path(run, step)} (step {step})" in (run / "train.log").read_text()
    assert ck.load_checkpoint(ck.latest_checkpoint(run))["step"] == step + 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "train.bogus=1"], "unknown config key 'train.bogus'"),
        (["--set", "train.lr=fast"], "train.lr"),
        (["--set", "model.layers=2.5"], "model.layers"),
        (["--set", "train.optimizer=sgd"], "train.optimizer"),
        (["--workdir", "missing"], "missing"),
        (["--set", "audio.preset=espnet"], "preset 'tacotron2'"),
    ],
)
def test_configuration_errors_are_one_line(cache, tmp_path, extra, message):
    write_recipe(tmp_path / "tiny.yaml")
    args = ["train", "tiny.yaml", "--workdir", str(cache), "--run-dir", "run", *extra]
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("wavegen: error:") and message in lines[0], lines[0]
    assert not (tmp_path / "run").exists()  # nothing started


@pytest.mark.parametrize("n_speakers", [0, -1])
def test_models_without_mel_train_export_and_generate(cache, tmp_path, n_speakers):
    """cin_channels 0 (unconditional, or speaker-only) with the default mel_normalize: true."""
    from wavegen.artifacts.export import export_model, load_exported
    from wavegen.generation import generate

    r = recipe(tmp_path, ["model.cin_channels=0", f"model.n_speakers={n_speakers}", "train.max_steps=3"])
    assert r.audio.mel_normalize
    result = train(r, cache, tmp_path / "run", device="cpu", progress=False)
    assert result.step == 3 and math.isfinite(result.valid_bits)
    old_umask = os.umask(0o002)
    try:
        exported = export_model(tmp_path / "run", tmp_path / "export")
    finally:
        os.umask(old_umask)
    for name in ("model.safetensors", "config.json"):  # the umask's modes, not mkstemp's 0600
        assert stat.S_IMODE((exported / name).stat().st_mode) == 0o664, name
    model, config = load_exported(exported)
    assert model.upsampler is None and config["model"]["cin_channels"] == 0
    speaker = torch.tensor([1]) if n_speakers else None
    audio = generate(model, None, speaker, seed=0, num_samples=300)
    assert audio.shape == (1, 300) and bool(torch.isfinite(audio).all())


def test_one_training_per_run_dir_and_kill_9_leaves_no_stale_lock(cache, tmp_path):
    """#10 item 4: a second train on a run dir in use is refused naming the holder; after the
    holder is killed with SIGKILL a third one runs."""
    write_recipe(tmp_path / "tiny.yaml", train={"checkpoint_interval": 100000, "valid_interval": 100000})
    run = tmp_path / "run"
    first, args = start_training(tmp_path, cache, run, "--max-steps", "1000000")
    try:
        second = run_cli("train", *args, "--max-steps", "2", cwd=tmp_path)
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert lines[0].startswith(f"wavegen: error: {run}: this run dir is in use by pid {first.pid} (")
        assert "wavegen train tiny.yaml" in lines[0] and "started " in lines[0]
    finally:
        first.kill()
        first.communicate()
    third = train(recipe(tmp_path, train={"max_steps": 2}), cache, run, progress=False)  # no stale lock
    assert third.step == 2 and ck.load_checkpoint(ck.latest_checkpoint(run))["step"] == 2


# ---- divergence (#10 item 5) -------------------------------------------------------------------


def test_a_huge_lr_stops_with_the_step_and_writes_no_nan_checkpoint(cache, tmp_path):
    """lr 1e30: the weights explode after step 1 and step 2's loss is not finite. The run stops
    with one line naming step 2 at the next sync (step 3, a checkpoint step), writing nothing."""
    write_recipe(
        tmp_path / "tiny.yaml",
        train={
            "lr": 1e30,
            "max_steps": 6,
            "log_interval": 5,
            "checkpoint_interval": 3,
            "valid_interval": 3,
            "grad_clip": 0.0,
        },
    )
    run = tmp_path / "run"
    r = run_cli("train", "tiny.yaml", "--workdir", str(cache), "--run-dir", str(run), cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("wavegen: error: training diverged at step 2: the loss is ")
    assert "Traceback" not in r.stderr and "lower train.lr (now 1e+30)" in lines[-1]
    assert ck.list_checkpoints(run) == [] and not (run / "checkpoints" / "best.pt").exists()
    assert "training diverged at step 2" in (run / "train.log").read_text()


def test_a_poisoned_batch_names_its_step_and_best_stays_finite(cache, tmp_path):
    """A NaN mel in the 5th batch: the error names step 5 at the next sync (step 8); the step-4
    checkpoint and best.pt stay the newest, finite, and step 8 is never written."""
    r = recipe(
        tmp_path,
        train={"max_steps": 8, "log_interval": 8, "checkpoint_interval": 4, "valid_interval": 4},
    )
    run = tmp_path / "run"
    trainer = Trainer(r, cache, run, progress=False)
    trainer.build()
    clean = trainer.batches

    def poisoned():
        for i, batch in enumerate(clean()):
            if i == 4:
                batch["mel"][:] = float("nan")
            yield batch

    trainer.batches = poisoned
    with pytest.raises(WavegenError, match=r"training diverged at step 5: the loss is nan"):
        trainer.fit()
    assert [p.name for _, p in ck.list_checkpoints(run)] == ["step_00000004.pt"]
    best = ck.load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["step"] == 4 and all(torch.isfinite(v).all() for v in best["model"].values())
    assert ck.latest_checkpoint(run) == ck.step_path(run, 4)


def test_non_finite_weights_are_never_saved(cache, tmp_path):
    r = recipe(tmp_path, train={"max_steps": 2})
    trainer = Trainer(r, cache, tmp_path / "run", progress=False)
    trainer.build()
    with torch.no_grad():
        trainer.ema.model.post_logits.weight[0, 0] = float("inf")
    for save in (trainer.save_checkpoint, trainer.save_best):
        with pytest.raises(WavegenError, match="training diverged at step 0: a weight is not finite"):
            save()
    assert not (tmp_path / "run" / "checkpoints").exists()


# ---- host-device syncs (#14 item 4) ------------------------------------------------------------

SYNCS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__array__", "__format__")


def test_the_loop_syncs_only_at_log_checkpoint_and_validation_steps(cache, tmp_path, monkeypatch):
    """Every call by wavegen code that makes the host wait for a tensor's value (item, float,
    bool, tolist, cpu, ...) is recorded with the step: all happen at the sync points (log every 4,
    checkpoint every 6, validation at the end), none inside a training step."""
    r = recipe(
        tmp_path,
        data={"num_workers": 0},  # the loader in this process: its code is watched as well
        train={"max_steps": 12, "log_interval": 4, "checkpoint_interval": 6, "valid_interval": 12},
    )
    trainer = Trainer(r, cache, tmp_path / "run", progress=False)
    trainer.build()
    package = str(Path(__file__).resolve().parents[1] / "wavegen")
    calls = []

    def watch(name):
        real = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            caller = sys._getframe(1)
            if caller.f_code.co_filename.startswith(package):
                stack, frame = [], caller
                while frame is not None:
                    stack.append(frame.f_code.co_name)
                    frame = frame.f_back
                calls.append((trainer.step, name, caller.f_code.co_name, stack))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)

    for name in SYNCS:
        watch(name)
    trainer.fit()
    monkeypatch.undo()
    assert trainer.step == 12
    in_steps = [c[:3] for c in calls if {"train_step", "optimization_step", "add"} & set(c[3])]
    assert not in_steps, in_steps
    assert {c[0] for c in calls} <= {4, 6, 8, 12}, sorted({c[:3] for c in calls})
    assert {4, 8} <= {c[0] for c in calls if c[1] == "tolist"}  # the meter is read when logging


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the sync check is CUDA's)")
def test_cuda_steps_between_sync_points_never_wait(cache, tmp_path):
    """On a GPU, torch's sync debug mode makes any host-device sync inside a step an error."""
    r = recipe(tmp_path, data={"num_workers": 0}, train={"max_steps": 3, "log_interval": 3})
    trainer = Trainer(r, cache, tmp_path / "run", device="cuda", progress=False)
    trainer.build()
    batches = trainer.batches()
    trainer.train_step(next(batches))  # the first step allocates and may sync
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer.train_step(next(batches))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer.meter.read().count == 2
