"""The training engine behind ``wavegen train``, as a set of named steps.

    trainer = Trainer(recipe, workdir, run_dir)   # checks recipe against the feature cache
    trainer.build()                               # model, EMA, optimiser, schedule, data
    trainer.resume(latest_checkpoint(run_dir))    # optional: exact continuation
    trainer.fit()                                 # step / validate / sample / checkpoint / log

:func:`train` does all of that. Each optimisation step draws a global batch of
``data.batch_size`` windows (split over DDP ranks), computes teacher-forced cross-entropy on the
μ-law targets (in ``train.precision``: see :mod:`wavegen.training.precision`), clips the gradient norm,
steps Adam(W) and the LambdaLR schedule, then updates the EMA weights. Validation and audio
samples use the EMA model.

The host waits for the device only at sync points: every ``train.log_interval`` steps, before
validation, audio samples and checkpoints, and at the end (:mod:`wavegen.training.meter`); the
loss and gradient norm stay on the device in between. A non-finite loss or gradient stops the run
with a :class:`~wavegen.core.errors.WavegenError` naming the step, and no checkpoint with non-finite
weights is ever written (none is skipped: see the meter's docstring).

SIGINT/SIGTERM finish the current step (under DDP: the steps up to the next log or checkpoint
step, where every rank agrees to stop at the same step), write a checkpoint and return normally
with ``TrainResult.signal`` set; ``wavegen train`` then exits 128 + signal. A second signal
stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from ..artifacts import checkpoint as ckpt_io
from ..artifacts.workdir import FEATURES, MANIFEST, STATS, read_feature_cache
from ..core import distributed
from ..core.audio import atomic_path, write_audio
from ..core.config import Recipe, from_dict, validate
from ..core.dirlock import folder_lock
from ..core.errors import WavegenError
from ..core.features import get_preset, mel_spectrogram
from ..core.interrupt import Interrupted
from ..generation.backends import backend_for
from ..model import WaveNet
from .dataset import (
    WindowDataset,
    WindowSampler,
    collate,
    load_split,
    validation_windows,
)
from .ema import EMA
from .init_from import InitSource, apply_init, check_fits, load_init_source, log_report, speaker_rows
from .meter import MeterReading, TrainMeter, weights_are_finite
from .optim import build_optimizer, build_scheduler
from .precision import compute_dtype, resolve_precision
from .runlog import NullLog, RunLog
from .step import optimization_step

log = logging.getLogger(__name__)
SAMPLE_UTTERANCES = 2  # valid utterances rendered as audio at each sample_interval


@dataclass
class TrainResult:
    step: int
    checkpoint: Path | None  # the last checkpoint written or resumed from
    stopped: bool  # True if a signal ended the run before max_steps
    valid_bits: float | None
    signal: int = 0  # the signal that stopped it (SIGINT 2, SIGTERM 15); 0 if none


class Trainer:
    def __init__(
        self,
        recipe: Recipe,
        workdir: str | Path,
        run_dir: str | Path,
        device: str | None = None,
        progress: bool = True,
        init_from: str | Path | None = None,
        speaker_map: dict[str, str] | None = None,
    ):
        """Check ``recipe`` against the feature cache in ``workdir`` (one-line errors), join the
        process group if launched by torchrun. Nothing is written yet.

        ``init_from``: a trained model (run dir, checkpoint or export) whose weights a fresh run
        starts from (:mod:`wavegen.training.init_from`); checked against the recipe here, used by
        :meth:`build` unless :meth:`resume` follows. ``speaker_map``: {new speaker: known one}.
        """
        self.workdir, self.run_dir, self.progress = Path(workdir), Path(run_dir), progress
        validate(recipe)  # a Recipe built in Python has not been through load_recipe
        self.manifest, self.features, self.stats = read_feature_cache(self.workdir)
        self.recipe = resolve_recipe(recipe, self.features, self.workdir)
        self.preset = get_preset(self.recipe.audio.preset)
        self.info, self.device = distributed.init(device)
        self.precision = resolve_precision(self.recipe.train.precision, self.device)
        self.dtype = compute_dtype(self.precision, self.device)
        self.step = 0
        self.valid_bits: float | None = None
        self.best_bits: float | None = None
        self.last_checkpoint: Path | None = None
        self.stop_signal = 0  # set by the first SIGINT/SIGTERM (stop_signals)
        self.meter = TrainMeter(self.device)
        self.init_source: InitSource | None = None
        self.init_report: dict | None = None  # what a fine-tune took from its source
        self.speaker_map = dict(speaker_map or {})
        if init_from is not None:
            self.init_source = load_init_source(init_from)
            check_fits(self.init_source, self.recipe)

    # ---- build ---------------------------------------------------------------------------
    def build(self) -> None:
        r = self.recipe
        torch.manual_seed(r.train.seed)  # identical initial weights on every rank
        model = WaveNet(r.model)
        if r.audio.mel_normalize and r.model.cin_channels:  # no mel, nothing to normalise
            copy_stats(model, self.stats, self.workdir)
        rows = self.init_weights(model) if self.init_source is not None else {}
        self.model = model.to(self.device)
        self.ddp_model = distributed.wrap(self.model, self.info, self.device)
        self.ema = EMA(self.model, r.train.ema_decay) if r.train.ema_decay > 0 else None
        if self.ema is not None and self.init_source is not None and self.init_source.ema is not None:
            apply_init(self.ema.model, self.init_source.ema, rows, self.init_source.path)
        self.optimizer = build_optimizer(self.model.parameters(), r.train)
        self.scheduler = build_scheduler(self.optimizer, r.train)

        speakers = self.features["speakers"]
        window_frames = r.data.window_samples // self.preset.hop_length
        train_utts, short = load_split(self.workdir, self.manifest, speakers, "train", window_frames)
        if not train_utts:
            raise WavegenError(
                f"{self.workdir / MANIFEST}: no train utterance holds a full window of "
                f"data.window_samples={r.data.window_samples} samples ({short} too short)"
            )
        valid_utts, valid_short = load_split(self.workdir, self.manifest, speakers, "valid", window_frames)
        self.skipped = {"train": short, "valid": valid_short}
        args = (r.data.window_samples, self.preset.hop_length, r.model.cin_pad, r.model.quantize_channels)
        self.train_set = WindowDataset(train_utts, *args)
        self.valid_set = WindowDataset(valid_utts, *args)
        self.sampler = WindowSampler(
            self.train_set, r.data.batch_size, r.train.seed, self.info.rank, self.info.world_size
        )
        self.valid_windows = validation_windows(self.valid_set, r.train.valid_batches * r.data.batch_size)
        self.sample_sources, _ = load_split(self.workdir, self.manifest, speakers, "valid", 1)

    def init_weights(self, model: WaveNet) -> dict[int, int]:
        """Load the --init-from source's weights (mel statistics included) into the freshly
        built ``model``; -> its speaker rows {new row: source row} (for the EMA copy)."""
        source = self.init_source
        rows, report = speaker_rows(source, self.features["speakers"], self.speaker_map)
        if model.speaker_embed is None:
            rows, report.speakers_taken, report.speakers_new = {}, [], []
        apply_init(model, source.weights, rows, source.path)
        self.init_report = report.to_dict()
        return rows

    # ---- resume --------------------------------------------------------------------------
    def resume(self, path: str | Path) -> None:
        """Restore everything a checkpoint holds, so the run continues exactly."""
        ck = ckpt_io.load_checkpoint(path)
        if ck["recipe"]["model"] != self.recipe.to_dict()["model"]:
            raise WavegenError(
                f"{path}: checkpoint model {ck['recipe']['model']} differs from the recipe's "
                f"{self.recipe.to_dict()['model']}"
            )
        self.model.load_state_dict(ck["model"])
        if self.ema is not None and ck.get("ema") is not None:
            self.ema.load(ck["ema"], ck.get("ema_updates", 0))
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.sampler.load_state_dict(ck["sampler"])
        self.step = int(ck["step"])
        self.valid_bits, self.best_bits = ck.get("valid_bits"), ck.get("best_valid_bits")
        self.init_report = ck.get("init_from")  # a fine-tune stays one: its checkpoint says from what
        set_rng_state(ck["rng"])
        self.last_checkpoint = Path(path)

    # ---- step ----------------------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict:
        """One optimisation step on this rank's share of a global batch.

        -> {"loss": () tensor, "grad_norm": () tensor, "lr": float}: the tensors stay on the
        device (reading them would make the host wait); the meter accounts them.
        """
        self.ddp_model.train()
        move = {"device": self.device, "non_blocking": True}  # from pinned memory on CUDA
        audio = batch["audio"].to(**move)  # (b, W) int64 μ-law classes
        mel = batch["mel"].to(**move)  # (b, n_mels, W/hop + 2·cin_pad)
        speaker = batch["speaker"].to(**move) if self.model.speaker_embed is not None else None
        lr = self.optimizer.param_groups[0]["lr"]
        loss, grad_norm = optimization_step(
            self.ddp_model,
            self.optimizer,
            audio,
            mel,
            speaker,
            self.dtype,
            self.recipe.train.grad_clip,
            self.ema,
        )
        self.scheduler.step()
        self.sampler.advance()
        self.step += 1
        self.meter.add(self.step, loss, grad_norm)
        return {"loss": loss.detach(), "grad_norm": grad_norm.detach(), "lr": lr}

    @property
    def eval_model(self) -> WaveNet:
        """The weights validation, samples and export use: the EMA copy when there is one."""
        return self.ema.model if self.ema is not None else self.model

    # ---- validate ------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> float | None:
        """Mean negative log-likelihood in bits per sample on the fixed valid windows (EMA)."""
        if not self.valid_windows:
            return None
        model = self.eval_model.eval()
        total, count, bs = 0.0, 0, self.recipe.data.batch_size
        for i in range(0, len(self.valid_windows), bs):
            batch = collate([self.valid_set[w] for w in self.valid_windows[i : i + bs]])
            audio, mel = batch["audio"].to(self.device), batch["mel"].to(self.device)
            speaker = batch["speaker"].to(self.device) if model.speaker_embed is not None else None
            logits = model(audio, mel, speaker)  # float32 whatever the training precision
            total += F.cross_entropy(logits.float(), audio, reduction="sum").item()
            count += audio.numel()
        return total / count / math.log(2)

    # ---- sample --------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, runlog) -> list[Path]:
        """Generate audio from the first valid mels with the EMA model; -> wav paths written."""
        model, sr, hop = self.eval_model.eval(), self.preset.sample_rate, self.preset.hop_length
        frames = max(1, math.ceil(self.recipe.train.sample_seconds * sr / hop))
        written = []
        for utt in pick_sample_sources(self.sample_sources, SAMPLE_UTTERANCES):
            mel = np.load(utt.mel)[:, :frames]
            speaker = (
                torch.tensor([utt.speaker], device=self.device) if model.speaker_embed is not None else None
            )
            wav = generate_audio(
                model,
                torch.from_numpy(mel)[None].to(self.device),
                speaker,
                seed=self.recipe.train.seed + self.step,
            )
            wav = wav[0].float().cpu().numpy()
            name = f"step_{self.step:08d}_{utt.id}.wav"
            path = write_audio(self.run_dir / "samples" / name, wav, sr)
            written.append(path)
            runlog.audio(self.step, f"sample/{utt.id}", wav, sr)
            runlog.image(self.step, f"mel_reference/{utt.id}", mel)
            if len(wav) > self.preset.n_fft // 2:
                generated = mel_spectrogram(wav, self.preset)
                runlog.image(self.step, f"mel_generated/{utt.id}", generated)
        return written

    # ---- checkpoint ----------------------------------------------------------------------
    def payload(self) -> dict:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict() if self.ema is not None else None,
            "ema_updates": self.ema.updates if self.ema is not None else 0,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": get_rng_state(cuda),
            "recipe": self.recipe.to_dict(),
            "speakers": list(self.features["speakers"]),
            "preset": self.preset.to_dict(),
            "valid_bits": self.valid_bits,
            "best_valid_bits": self.best_bits,
            "init_from": self.init_report,
        }

    def save_checkpoint(self) -> Path:
        """Write step_XXXXXXXX.pt (main rank only) and prune to the last keep_checkpoints.

        Raises WavegenError instead if a weight is not finite: a checkpoint is never NaN.
        """
        path = ckpt_io.step_path(self.run_dir, self.step)
        if self.info.is_main:
            self.check_weights()
            t0 = time.perf_counter()
            ckpt_io.save_checkpoint(path, self.payload())
            ckpt_io.prune_checkpoints(self.run_dir, self.recipe.train.keep_checkpoints)
            log.info(
                "checkpoint %s (%.1f MB, %.2f s)", path, path.stat().st_size / 1e6, time.perf_counter() - t0
            )
        self.last_checkpoint = path
        return path

    def save_best(self) -> None:
        if self.info.is_main:
            self.check_weights()
            best = ckpt_io.checkpoint_dir(self.run_dir) / "best.pt"
            ckpt_io.save_checkpoint(best, self.payload())

    # ---- health ----------------------------------------------------------------------------
    def check_health(self, reading: MeterReading) -> None:
        """Raise the divergence error if the meter saw a non-finite loss or gradient norm."""
        if reading.first_bad_step is None:
            return
        self.diverged(
            reading.first_bad_step,
            f"the loss is {reading.bad_loss:g} and the gradient norm {reading.bad_grad_norm:g}",
        )

    def check_weights(self) -> None:
        models = [self.model] + ([self.ema.model] if self.ema is not None else [])
        if not weights_are_finite(*models):
            self.diverged(self.step, "a weight is not finite")

    def diverged(self, step: int, what: str) -> None:
        t = self.recipe.train
        saved = (
            f"the last checkpoint, {self.last_checkpoint}, is from before it"
            if self.last_checkpoint
            else "no checkpoint has been written"
        )
        clip = " or set train.grad_clip (now 0 = off)" if t.grad_clip == 0 else ""
        message = (
            f"training diverged at step {step}: {what}; nothing from that step on was saved and "
            f"{saved}; lower train.lr (now {t.lr:g}){clip} and resume"
        )
        log.error("%s", message)
        raise WavegenError(message)

    # ---- the loop --------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        t = self.recipe.train
        runlog = (
            RunLog(self.run_dir, t.max_steps, self.step, self.progress) if self.info.is_main else NullLog()
        )
        try:
            if self.info.is_main:
                self.start_run()
            with stop_signals(self):
                stop = self.loop(runlog)
        finally:
            runlog.close()
        return TrainResult(self.step, self.last_checkpoint, bool(stop), self.valid_bits, stop)

    def start_run(self) -> None:
        with atomic_path(self.run_dir / "recipe.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))
        for stale in ckpt_io.remove_stale_temporaries(self.run_dir):
            log.warning("removed %s left by an interrupted checkpoint write", stale)
        m, d = self.recipe.model, self.recipe.data
        if self.step:
            log.info("resumed from %s (step %d)", self.last_checkpoint, self.step)
            newer = [p for s, p in ckpt_io.list_checkpoints(self.run_dir) if s > self.step]
            for path in newer:  # failed verification: set aside, so rotation cannot keep them
                path.rename(path.with_name(path.name + ".corrupt"))
                log.warning("%s does not verify; renamed to %s.corrupt", path, path.name)
            if self.init_source is not None:
                log.info("--init-from %s unused: the run goes on from its checkpoint", self.init_source.path)
        elif self.init_report is not None:
            log_report(self.init_report)
        log.info(
            "%s step %d/%d on %s x%d in %s | %d params, receptive field %d | %d train "
            "utterances (%d too short), %d valid windows, batch %d x %d samples | sampler %s",
            "resuming at" if self.step else "starting at",
            self.step,
            self.recipe.train.max_steps,
            self.device,
            self.info.world_size,
            self.precision,
            self.model.num_params(),
            self.model.receptive_field,
            len(self.train_set.utterances),
            self.skipped["train"],
            len(self.valid_windows),
            d.batch_size,
            d.window_samples,
            backend_for(self.device),  # which sampler renders the audio samples (prepares it)
        )
        if m.n_speakers:
            log.info("speakers: %d (%s)", m.n_speakers, ", ".join(self.features["speakers"]))

    def batches(self):
        """Iterator over this rank's batches from the sampler's current position."""
        loader = torch.utils.data.DataLoader(
            self.train_set,
            batch_sampler=self.sampler,
            num_workers=self.recipe.data.num_workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",  # so train_step's copies need not wait
            worker_init_fn=_quiet_worker,
        )
        return iter(loader)

    def loop(self, runlog) -> int:
        """Steps until max_steps or a stop signal; -> the signal that stopped it (0: none)."""
        t, d = self.recipe.train, self.recipe.data
        main, ddp = self.info.is_main, self.info.enabled
        batches = self.batches()
        tick, tick_step = time.perf_counter(), self.step
        saved_at = self.step if self.last_checkpoint is not None else -1
        stop = 0
        while self.step < t.max_steps:
            self.train_step(next(batches))
            step = self.step
            end = step == t.max_steps
            due_log = step % t.log_interval == 0 or end
            due_checkpoint = step % t.checkpoint_interval == 0 or end
            due_valid = (step % t.valid_interval == 0 or end) and main
            due_sample = step % t.sample_interval == 0 and main
            # Under DDP the ranks agree at log and checkpoint steps only (the same steps on every
            # rank); a single process sees its own signal at once, without a sync.
            collective = ddp and (due_log or due_checkpoint)
            local_stop = 0 if ddp else self.stop_signal
            if not (due_log or due_checkpoint or due_valid or due_sample or local_stop):
                continue  # no sync: the device runs ahead
            reading = self.meter.read(self.stop_signal, collective, self.info.world_size)
            self.check_health(reading)
            stop = reading.stop_signal if collective else local_stop
            if due_log or stop:
                elapsed = time.perf_counter() - tick
                speed = (step - tick_step) * d.batch_size * d.window_samples / max(elapsed, 1e-9)
                self.report(runlog, step, reading, speed)
                tick, tick_step = time.perf_counter(), step
            # Validate at the end as well, so every finished run reports its bits/sample.
            if due_valid:
                self.valid_bits = self.validate()
                if self.valid_bits is not None:
                    if not math.isfinite(self.valid_bits):
                        self.diverged(step, f"validation gives {self.valid_bits} bits/sample")
                    runlog.scalars(step, {"valid/bits_per_sample": self.valid_bits})
                    log.info("step %d valid %.4f bits/sample (EMA)", step, self.valid_bits)
                    if self.best_bits is None or self.valid_bits < self.best_bits:
                        self.best_bits = self.valid_bits
                        self.save_best()
            if due_sample:
                for path in self.sample(runlog):
                    log.info("sample %s", path)
            if due_checkpoint or stop:
                self.save_checkpoint()
                saved_at = step
            if stop:
                distributed.barrier(self.info)  # no rank exits (143) before the checkpoint is on disk
                log.warning("stopped by %s at step %d; checkpoint written", signal.Signals(stop).name, step)
                break
        if saved_at != self.step:  # resumed at or past max_steps with no checkpoint there yet
            self.save_checkpoint()
        return stop

    def report(self, runlog, step: int, reading: MeterReading, speed: float) -> None:
        """Log the means since the last report (TensorBoard, train.log, progress bar)."""
        lr = self.optimizer.param_groups[0]["lr"]
        if reading.count:
            runlog.scalars(
                step,
                {
                    "train/loss": reading.loss,
                    "train/lr": lr,
                    "train/grad_norm": reading.grad_norm,
                    "train/samples_per_s": speed,
                },
            )
            runlog.progress(step, reading.loss, speed)
            log.info(
                "step %d/%d loss %.4f lr %.3g grad_norm %.3f samples/s %.0f",
                step,
                self.recipe.train.max_steps,
                reading.loss,
                lr,
                reading.grad_norm,
                speed,
            )
        self.meter.reset()


# ---- helpers -------------------------------------------------------------------------------
def resolve_recipe(recipe: Recipe, features: dict, workdir: Path) -> Recipe:
    """Check the recipe against features.json; resolve model.n_speakers = -1."""
    where = workdir / FEATURES
    preset = get_preset(recipe.audio.preset)
    cached = features.get("preset")
    if cached != preset.name:
        raise WavegenError(
            f"{where}: feature cache was made with preset {cached!r}, the recipe's audio.preset "
            f"is {preset.name!r} (re-run `wavegen preprocess` or fix the recipe)"
        )
    params = features.get("preset_params")
    if params is not None and params != preset.to_dict():
        raise WavegenError(f"{where}: preset_params differ from the current {preset.name!r} preset")
    speakers = features.get("speakers")
    if not isinstance(speakers, list):
        raise WavegenError(f"{where}: expected a list of speakers")
    resolved = from_dict(Recipe, recipe.to_dict())  # deep copy through the schema
    auto = len(speakers) if len(speakers) > 1 else 0
    if resolved.model.n_speakers < 0:
        resolved.model.n_speakers = auto
    elif 0 < resolved.model.n_speakers < len(speakers):
        raise WavegenError(
            f"model.n_speakers is {resolved.model.n_speakers}, but the feature cache has "
            f"{len(speakers)} speakers (use -1 for one per speaker)"
        )
    return resolved


def copy_stats(model: WaveNet, stats: dict, workdir: Path) -> None:
    """stats.json mean/std -> the model's mel_mean/mel_std buffers (audio.mel_normalize)."""
    mean, std = (torch.tensor(stats.get(k, []), dtype=torch.float32) for k in ("mean", "std"))
    n = model.config.cin_channels
    if mean.shape != (n,) or std.shape != (n,):
        raise WavegenError(f"{workdir / STATS}: expected mean and std of {n} values each")
    model.mel_mean.copy_(mean)
    model.mel_std.copy_(std.clamp_min(1e-5))  # a constant mel bin must not divide by zero


def _quiet_worker(worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the main process, which stops the run cleanly
    (a terminal's Ctrl-C reaches them too); a killed main process ends them through torch's
    watchdog."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def pick_sample_sources(utts: list, count: int) -> list:
    """Up to ``count`` utterances, different speakers first."""
    chosen, seen = [], set()
    for utt in utts:
        if utt.speaker not in seen:
            chosen.append(utt)
            seen.add(utt.speaker)
    chosen += [u for u in utts if u not in chosen]
    return chosen[:count]


def generate_audio(model: WaveNet, mel: torch.Tensor, speaker, seed: int) -> torch.Tensor:
    """(1, n_mels, F) raw mel -> (1, F·hop) waveform from the cached generator."""
    from ..generation import generate

    return generate(model, mel, speaker=speaker, temperature=1.0, seed=seed)


def get_rng_state(cuda_states: list) -> dict:
    """Python, numpy, torch (and CUDA) RNG states as tensors and plain lists (weights_only-safe)."""
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": list(words), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": list(cuda_states),
    }


def set_rng_state(state: dict) -> None:
    p, n = state["python"], state["numpy"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class stop_signals:
    """While active, SIGINT/SIGTERM set ``trainer.stop_signal`` instead of killing the run."""

    def __init__(self, trainer: Trainer):
        self.trainer, self.saved = trainer, {}

    def _handler(self, signum, frame) -> None:
        if self.trainer.stop_signal:  # a second signal: give up at once
            raise Interrupted(signum)
        self.trainer.stop_signal = signum
        until = "the next log or checkpoint step" if self.trainer.info.enabled else "this step"
        log.warning("%s received: finishing %s and writing a checkpoint", signal.Signals(signum).name, until)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)


def check_resumed_init(run_dir, init_from, report: dict | None, step: int) -> None:
    """A run dir with checkpoints continues its own run, whatever ``--init-from`` says: refuse one
    that was trained from scratch (the model asked for would silently not be used), and say so
    when the fine-tune it continues started from another model."""
    if report is None:
        raise WavegenError(
            f"{run_dir}: holds a run trained from scratch (step {step}), not a fine-tune: --init-from "
            f"{init_from} would be ignored; pick another --run-dir, or drop --init-from to continue it"
        )
    if Path(report["source"]).resolve() != Path(init_from).resolve():
        log.warning(
            "%s: continues its fine-tune from %s; --init-from %s is ignored (pick another --run-dir "
            "to start one from it)",
            run_dir,
            report["source"],
            init_from,
        )


def train(
    recipe: Recipe,
    workdir: str | Path,
    run_dir: str | Path,
    device: str | None = None,
    resume: bool | None = None,
    progress: bool = True,
    init_from: str | Path | None = None,
    speaker_map: dict[str, str] | None = None,
) -> TrainResult:
    """Train ``recipe`` on the feature cache in ``workdir``, writing into ``run_dir``.

    ``resume``: None continues from the newest valid checkpoint if there is one; True requires
    one; False requires that ``run_dir`` has none (never silently mix two runs).
    ``init_from``: fine-tune: a fresh run starts from this trained model's weights (a run dir, a
    checkpoint or an export; see :mod:`wavegen.training.init_from`); a run dir with checkpoints
    continues from them as any run does, so the same command resumes a fine-tune exactly.
    ``speaker_map``: {new speaker: speaker of the trained model} whose embedding it starts from.
    """
    trainer = Trainer(
        recipe,
        workdir,
        run_dir,
        device=device,
        progress=progress,
        init_from=init_from,
        speaker_map=speaker_map,
    )
    # One run per run dir: only the main rank writes, so only it holds the lock (wavegen.core.dirlock).
    lock = folder_lock(run_dir, "run dir") if trainer.info.is_main else contextlib.nullcontext()
    # Denormal floats appear in early gradients and make CPU steps several times slower.
    flush = torch.set_flush_denormal(True)
    try:
        with lock:
            existing = ckpt_io.list_checkpoints(run_dir)
            if resume is False and existing:
                raise WavegenError(
                    f"{run_dir}: already holds checkpoints; resume it, or pick another --run-dir"
                )
            latest = ckpt_io.latest_checkpoint(run_dir) if resume is not False else None
            if latest is None and (resume or existing):
                raise WavegenError(f"{run_dir}: no checkpoint there verifies; nothing to resume from")
            trainer.build()
            if latest is not None:
                trainer.resume(latest)
                if init_from is not None:
                    check_resumed_init(run_dir, init_from, trainer.init_report, trainer.step)
            return trainer.fit()
    finally:
        if flush:
            torch.set_flush_denormal(False)
        distributed.shutdown()
