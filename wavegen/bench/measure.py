"""``wavegen bench``: training and generation throughput, with the peer measured alongside.

The peer is r9y9/wavenet_vocoder, re-implemented in :mod:`wavegen.bench.peer`: its per-sample
``incremental_forward`` loop on the same model's weights, and its training step on its own
model of the same configuration. Both run in the same process on the same machine, so the
speed-ups are measured, not quoted.

Definitions: ``*_samples_per_s`` are aggregate over the batch (B × samples / wall second);
training rates are the median of the timed steps; ``realtime_factor`` is generated seconds of
audio per wall-clock second (aggregate, at the model's sample rate), so 1.0 is real time and
higher is faster. ``train_samples_per_s`` is at the precision ``train.precision: auto`` picks on
this device (``train_precision``); ``train_samples_per_s_by_precision`` has both.

Generation is measured with every step backend that runs here, side by side in the same
process: on the CPU the C++ and the numba kernel (``generate_samples_per_s_by_backend``, their
ratio ``numba_vs_cpp``, and what preparing each took in ``kernels``), and the pure-torch step
at batch 1 for ``baseline_samples`` samples (``torch_step_slowdown``: how much slower the
fallback is); on a GPU the CUDA graph. ``generate_samples_per_s`` is the backend ``auto`` picks
at ``precision`` (``backend``, ``precision``). The reduced-precision kernel ``cpp-bf16`` is
measured beside the fp32 ones (``bf16_vs_fp32``: its speed over the fp32 headline kernel's,
``bf16_cpu_level``: the instruction set it ran with), with its threading at batch 1
(``bf16_threads``) and the LJSpeech recipe's model at batch 1 and 32 (``big_model``), see
:mod:`wavegen.bench.precision`.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..artifacts import bundled
from ..core.config import ModelConfig
from ..core.device import resolve_device
from ..core.errors import WavegenError
from ..core.features import get_preset
from ..generation import Sampler, backends
from ..model import WaveNet
from ..training import optimization_step
from ..training.ema import EMA
from ..training.precision import compute_dtype, resolve_precision
from .peer import PeerEMA, PeerWaveNet, naive_generate, peer_train_step
from .precision import bf16_threads, big_model, cpu_level_name
from .throughput import generate_throughput, random_inputs, sync

# The reference model: the recipe defaults (wavegen.core.config) at a CPU-friendly size: 24 layers in
# 4 stacks (dilations 1 … 32), residual 64, gate 128, skip 64 channels; kernel 3, 256 μ-law
# classes, 80 mels upsampled ×256, no speakers, as every recipe has.
BENCH_CONFIG = dataclasses.replace(
    ModelConfig(), layers=24, stacks=4, residual_channels=64, gate_channels=128, skip_channels=64
)
BENCH_SAMPLE_RATE = 22050  # Hz, the tacotron2 preset (hop 256)
TRAIN_BATCH, TRAIN_WINDOW = 2, 8192  # Adam steps on 2 windows of 8192 samples
# Argument bounds, so a typo is a one-line error instead of a failed allocation minutes in: a
# sampler allocates every row's state up front, and a batch's output is (B, T) int64.
MAX_BATCH = 4096  # rows; far past any serving batch
MAX_GENERATED = 2**27  # samples in one batch (1 GiB of int64 codes; 1.7 h at 22050 Hz)


def resolve_config(name_or_recipe: str) -> tuple[str, ModelConfig, int]:
    """ "bench", a recipe YAML path or a bundled recipe's name -> (name, model config, sample rate)."""
    if name_or_recipe == "bench":
        return "bench", BENCH_CONFIG, BENCH_SAMPLE_RATE
    if not Path(name_or_recipe).is_file() and name_or_recipe not in bundled.names():
        raise WavegenError(
            f"--config {name_or_recipe!r}: expected 'bench' or the path of a recipe YAML or a bundled "
            f"recipe's name ({', '.join(bundled.names())})"
        )
    recipe = bundled.load(name_or_recipe)
    model = recipe.model
    if model.n_speakers < 0:  # "auto" needs a feature cache; the speed is the same without
        model.n_speakers = 0
    return recipe.name, model, get_preset(recipe.audio.preset).sample_rate


def _step_rate(step, steps: int, samples: int, device: torch.device) -> float:
    """samples / the median wall time of ``steps`` calls of ``step`` (after one warm-up call)."""
    step()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return samples / statistics.median(times)


def _train_batch(config: ModelConfig, device: torch.device):
    """(B, W) random classes, (B, C, W/hop + 2·cin_pad) mel, speakers: the bench's training batch."""
    gen = torch.Generator().manual_seed(0)
    audio = torch.randint(0, config.quantize_channels, (TRAIN_BATCH, TRAIN_WINDOW), generator=gen)
    frames = TRAIN_WINDOW // math.prod(config.upsample_scales) + 2 * config.cin_pad
    return (audio.to(device), *random_inputs(config, TRAIN_BATCH, frames, device, gen))


def train_throughput(model: WaveNet, precision: str, steps: int = 3) -> float:
    """Samples/s of ``wavegen train``'s step (:func:`wavegen.training.optimization_step`, clip 1
    and EMA) on batch 2 × 8192 in ``precision`` (median of ``steps``)."""
    device = model.embed.weight.device
    dtype = compute_dtype(precision, device)
    audio, mel, speaker = _train_batch(model.config, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    ema = EMA(model, 0.9999)
    model.train()
    rate = _step_rate(
        lambda: optimization_step(model, optimizer, audio, mel, speaker, dtype, 1.0, ema),
        steps,
        TRAIN_BATCH * TRAIN_WINDOW,
        device,
    )
    model.eval()
    return rate


def peer_train_throughput(config: ModelConfig, device: torch.device, steps: int = 3) -> float:
    """Samples/s of the peer's training step (:func:`wavegen.bench.peer.peer_train_step`), fp32."""
    torch.manual_seed(0)
    model = PeerWaveNet(config).to(device).train()
    audio, mel, _ = _train_batch(config, device)
    onehot = F.one_hot(audio, config.quantize_channels).transpose(1, 2).float()  # the data loader's
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ema = PeerEMA(model)
    return _step_rate(
        lambda: peer_train_step(model, optimizer, ema, onehot, audio, mel),
        steps,
        TRAIN_BATCH * TRAIN_WINDOW,
        device,
    )


def generation_backends(device: torch.device) -> list[str]:
    """The backends worth measuring here: every CPU kernel that runs (else the torch step), or
    the CUDA graph."""
    if device.type == "cuda":
        return ["cuda-graph"]
    return [name for name in backends.KERNEL_NAMES if backends.get_kernel(name) is not None] or ["torch"]


def stream_first_chunk_ms(model: WaveNet, device, chunk_samples: int = 4096) -> float:
    """Milliseconds from calling ``stream`` on a 5 s mel (batch 1) to its first audio chunk."""
    from ..generation import stream

    hop = model.hop_length
    mel, speaker = random_inputs(model.config, 1, max(1, 5 * 22050 // hop), device, torch.Generator())
    sync(device)
    start = time.perf_counter()
    chunks = stream(model, mel, speaker, seed=0, chunk_samples=chunk_samples)
    next(chunks)
    sync(device)
    elapsed = time.perf_counter() - start
    chunks.close()
    return elapsed * 1000


def torch_step_throughput(model: WaveNet, num_samples: int) -> float:
    """Samples/s of the pure-torch step (the fallback without a compiled kernel) at batch 1."""
    gen = torch.Generator().manual_seed(1)
    mel, speaker = random_inputs(model.config, 1, max(1, -(-num_samples // model.hop_length)), "cpu", gen)
    sampler = Sampler(model, mel, speaker, seed=0, num_samples=num_samples, backend="torch")
    start = time.perf_counter()
    sampler.run(num_samples)
    return num_samples / (time.perf_counter() - start)


def baseline_throughput(model: WaveNet, batch: int, num_samples: int) -> float:
    """Aggregate samples/s of :func:`naive_generate` (CPU) over ``num_samples`` per row."""
    hop = model.hop_length
    gen = torch.Generator().manual_seed(batch)
    mel, speaker = random_inputs(model.config, batch, max(1, -(-num_samples // hop)), "cpu", gen)
    start = time.perf_counter()
    naive_generate(model, mel, num_samples, speaker)
    return batch * num_samples / (time.perf_counter() - start)


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA allocation on a GPU; the process's peak resident set size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_bench(
    config: str = "bench",
    device: str = "cpu",
    batches: list[int] | None = None,
    seconds: float = 0.5,
    baseline_samples: int = 1024,
    train_steps: int = 3,
    log=None,
    codec: str | None = None,
    codec_audio: list[str] | None = None,
    precision: str = "auto",
    big_config: str | None = "ljspeech",
    big_batches: list[int] | None = None,
    big_seconds: float = 0.05,
) -> dict:
    """Run the benchmark and return its result (see the module docstring for definitions).

    Args:
        config: "bench" or a recipe YAML path (its model section; n_speakers −1 -> 0).
        device: "cpu" or "cuda" (or "cuda:N").
        batches: batch sizes to generate with (default 1, 8, 32).
        seconds: audio generated per row for each batch size.
        baseline_samples: samples per row for the peer's sampler at batch 1 and 8 (those in
            ``batches``); 0 skips the peer, its training step included.
        train_steps: timed training steps (after one warm-up step), per precision and the peer.
        log: optional callable taking a progress line.
        codec: a codec model (checkpoint, run dir or export; cin_channels 0): adds a "codec"
            section measured on ``codec_audio`` (see :mod:`wavegen.bench.codec`).
        precision: which kernel is the headline (``backend``): "auto", "fp32" or "bf16"; every
            kernel that runs here is measured whatever it is.
        big_config: the big model measured at ``big_batches`` (default 1 and 32) for
            ``big_seconds`` per row, fp32 and bf16 (a recipe as for ``config``; None skips it).
    """
    # Every argument is checked (and the codec model and audio loaded) before any measuring.
    batches = batches or [1, 8, 32]
    if any(b < 1 for b in batches):
        raise WavegenError(f"--batch: sizes must be at least 1, got {batches}")
    for b in batches:
        if b > MAX_BATCH:
            raise WavegenError(f"--batch {b}: expected at most {MAX_BATCH} rows")
    if not 0 < seconds < math.inf:
        raise WavegenError(f"--seconds {seconds:g}: expected a positive number of seconds")
    if train_steps < 1:
        raise WavegenError(f"--train-steps must be at least 1, got {train_steps}")
    backends.check_precision(precision)
    if big_seconds <= 0:
        raise WavegenError(f"--big-seconds must be positive, got {big_seconds}")
    if baseline_samples < 0:
        raise WavegenError(f"--baseline-samples {baseline_samples}: expected 0 (skip the peer) or more")
    if codec is not None and not codec_audio:
        raise WavegenError("--codec needs audio files to measure on (--codec-audio FILE, repeatable)")
    dev = resolve_device(device)
    log = log or (lambda line: None)
    name, model_config, sample_rate = resolve_config(config)
    samples = max(batches) * round(seconds * sample_rate)
    if samples > MAX_GENERATED:
        raise WavegenError(
            f"--seconds {seconds:g} at batch {max(batches)}: {samples} samples in one batch, expected "
            f"at most {MAX_GENERATED} ({MAX_GENERATED // sample_rate} s of audio at {sample_rate} Hz)"
        )
    codec_run = None
    if codec is not None:
        from .codec import CodecRun

        codec_run = CodecRun.load(codec, codec_audio or [])
    # Denormal floats (early in training, in decaying activations) are ~100x slower on x86;
    # flushing them is what any CPU training or inference setup should do.
    torch.set_flush_denormal(True)
    try:
        result = _run(
            name,
            model_config,
            sample_rate,
            dev,
            batches,
            seconds,
            baseline_samples,
            train_steps,
            log,
            precision,
        )
        if dev.type == "cpu" and big_config is not None and backends.get_kernel("cpp-bf16"):
            big_name, big, big_rate = resolve_config(big_config)
            result["big_model"] = big_model(big, big_name, big_rate, big_batches or [1, 32], big_seconds, log)
        if codec_run is not None:
            result["codec"] = codec_run.measure(log=log)
        return result
    finally:
        torch.set_flush_denormal(False)  # torch's default


def _run(
    name, model_config, sample_rate, dev, batches, seconds, baseline_samples, train_steps, log, precision
) -> dict:
    torch.manual_seed(0)
    model = WaveNet(model_config).to(dev).eval()
    probe = Sampler(
        model,
        *random_inputs(model.config, 1, 1, dev, torch.Generator()),
        num_samples=model.hop_length,
        precision=precision,
    )
    result: dict = {
        "config": name,
        "params": model.num_params(),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "backend": probe.backend,
        "precision": probe.precision,
        "sample_rate": sample_rate,
        "seconds_per_row": seconds,
    }
    measured = generation_backends(dev)
    by_backend: dict[str, dict[str, float]] = {backend: {} for backend in measured}
    for b in batches:
        for backend in measured:  # interleaved, so a busy spell on the machine hits both alike
            log(f"generating ({backend}): batch {b}, {seconds} s per row")
            rate = generate_throughput(model, b, seconds, sample_rate, backend)
            by_backend[backend][str(b)] = round(rate, 1)
    speeds = by_backend[probe.backend] if probe.backend in by_backend else by_backend[measured[0]]
    result["generate_samples_per_s"] = speeds
    result["generate_samples_per_s_by_backend"] = by_backend
    if {"cpp", "numba"} <= set(by_backend):
        cpp, numba = by_backend["cpp"], by_backend["numba"]
        result["numba_vs_cpp"] = {b: round(numba[b] / cpp[b], 3) for b in cpp}
    result["realtime_factor_by_backend"] = {
        backend: {b: round(v / sample_rate, 3) for b, v in rates.items()}
        for backend, rates in by_backend.items()
    }
    fp32 = next((k for k in backends.CPU_KERNELS if k in by_backend), None)
    if "cpp-bf16" in by_backend and fp32 is not None:
        bf16 = by_backend["cpp-bf16"]
        result["bf16_vs_fp32"] = {b: round(bf16[b] / by_backend[fp32][b], 3) for b in bf16}
        result["bf16_cpu_level"] = cpu_level_name()
        result["bf16_threads"] = bf16_threads(model, seconds, sample_rate, log)
    kernels = {name: backends.get_kernel(name) for name in backends.KERNEL_NAMES} if dev.type == "cpu" else {}
    result["kernels"] = {
        name: {"prepare_s": round(k.seconds, 3), "from_cache": k.cached}
        if k
        else {"error": backends.kernel_error(name)}
        for name, k in kernels.items()
    }
    if dev.type == "cpu" and baseline_samples > 0 and "torch" not in by_backend:
        log(f"torch step (the fallback): batch 1, {baseline_samples} samples")
        torch_rate = torch_step_throughput(model, baseline_samples)
        result["torch_step_samples_per_s"] = round(torch_rate, 1)
        if "1" in speeds:
            result["torch_step_slowdown"] = round(speeds["1"] / torch_rate, 1)
    result["realtime_factor"] = {b: round(v / sample_rate, 3) for b, v in speeds.items()}
    result["realtime_factor_definition"] = (
        "generated seconds of audio per wall-clock second, aggregate over the batch"
    )
    result["stream_first_chunk_ms"] = round(stream_first_chunk_ms(model, dev), 1)
    result["stream_chunk_samples"] = 4096
    result["generate_peak_memory_mb"] = round(peak_memory_mb(dev), 1)  # before training
    train = {}
    for precision in ("fp32", "bf16"):
        log(f"training ({precision}): {train_steps} steps on {TRAIN_BATCH} x {TRAIN_WINDOW} samples")
        train[precision] = round(train_throughput(model, precision, train_steps), 1)
    auto = resolve_precision("auto", dev)
    result["train_precision"] = auto
    result["train_samples_per_s"] = train[auto]
    result["train_samples_per_s_by_precision"] = train
    if baseline_samples > 0:
        log(f"baseline (r9y9 training step, fp32): {train_steps} steps")
        peer = round(peer_train_throughput(model_config, dev, train_steps), 1)
        result["baseline_train_samples_per_s"] = peer
        result["train_speedup_vs_baseline"] = {p: round(v / peer, 2) for p, v in train.items()}
        base: dict[str, float] = {}
        cpu_model = model.to("cpu")
        for b in [b for b in (1, 8) if b in batches]:
            log(f"baseline (r9y9 incremental_forward): batch {b}, {baseline_samples} samples")
            base[str(b)] = round(baseline_throughput(cpu_model, b, baseline_samples), 1)
        model.to(dev)
        result["baseline_device"] = "cpu"
        result["baseline_generate_samples_per_s"] = base
        if dev.type == "cpu":
            result["speedup_vs_baseline"] = {b: round(speeds[b] / v, 1) for b, v in base.items()}
    result["peak_memory_mb"] = round(peak_memory_mb(dev), 1)  # the whole run, training included
    return result
