"""``wavegen bench``: training and generation throughput, with a naive sampler measured alongside.

The baseline is the per-sample loop of r9y9/wavenet_vocoder's ``incremental_forward`` as that
code does it (re-implemented here, not copied): every layer keeps a buffer of its last
(k − 1)·d + 1 inputs that is shifted by one with a copy each sample, the dilated taps are sliced
out of it for a linear layer, and the conditioning projection runs per layer per sample. It runs
in the same process on the same model, so the speed-up is measured, not quoted.

Definitions: ``*_samples_per_s`` are aggregate over the batch (B × samples / wall second);
``realtime_factor`` is generated seconds of audio per wall-clock second (aggregate, at the
model's sample rate), so 1.0 is real time and higher is faster.
"""

from __future__ import annotations

import math
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import ModelConfig, load_recipe
from .errors import WavegenError
from .features import get_preset
from .generate import generate
from .generation import Sampler
from .model import WaveNet

# The reference model: 24 layers in 4 stacks (dilations 1 … 32), kernel 3, residual 64,
# gate 128, skip 64 channels, 256 μ-law classes, 80 mels upsampled ×256, no speakers.
BENCH_CONFIG = ModelConfig(
    quantize_channels=256, layers=24, stacks=4, kernel_size=3, residual_channels=64,
    gate_channels=128, skip_channels=64, cin_channels=80, cin_pad=2,
    upsample_scales=[4, 4, 4, 4], n_speakers=0, gin_channels=16,
)
BENCH_SAMPLE_RATE = 22050  # Hz, the tacotron2 preset (hop 256)
TRAIN_BATCH, TRAIN_WINDOW = 2, 8192  # Adam steps on 2 windows of 8192 samples


def resolve_config(name_or_recipe: str) -> tuple[str, ModelConfig, int]:
    """"bench" or a recipe YAML path -> (name, model config, sample rate in Hz)."""
    if name_or_recipe == "bench":
        return "bench", BENCH_CONFIG, BENCH_SAMPLE_RATE
    path = Path(name_or_recipe)
    if not path.is_file():
        raise WavegenError(
            f"--config {name_or_recipe!r}: expected 'bench' or the path of a recipe YAML"
        )
    recipe = load_recipe(path)
    model = recipe.model
    if model.n_speakers < 0:  # "auto" needs a feature cache; the speed is the same without
        model.n_speakers = 0
    return recipe.name, model, get_preset(recipe.audio.preset).sample_rate


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _random_inputs(model: WaveNet, batch: int, frames: int, device, gen: torch.Generator):
    """Log-mel-like conditioning (B, C, frames) and speaker ids (B,) or None."""
    c = model.config
    mel = (torch.randn(batch, c.cin_channels, frames, generator=gen) - 5.0).to(device) \
        if c.cin_channels else None
    speaker = torch.zeros(batch, dtype=torch.int64, device=device) if c.n_speakers else None
    return mel, speaker


def train_throughput(model: WaveNet, steps: int = 3) -> float:
    """Samples/s of teacher-forced Adam steps on batch 2 × 8192 (one untimed warm-up step)."""
    device = model.embed.weight.device
    hop, pad = model.hop_length, model.config.cin_pad
    gen = torch.Generator().manual_seed(0)
    audio = torch.randint(0, model.config.quantize_channels, (TRAIN_BATCH, TRAIN_WINDOW),
                          generator=gen).to(device)
    mel, speaker = _random_inputs(model, TRAIN_BATCH, TRAIN_WINDOW // hop + 2 * pad, device, gen)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    elapsed = 0.0
    for i in range(steps + 1):
        _sync(device)
        start = time.perf_counter()
        loss = F.cross_entropy(model(audio, mel, speaker), audio)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        if i:
            elapsed += time.perf_counter() - start
    model.eval()
    return steps * TRAIN_BATCH * TRAIN_WINDOW / elapsed


@torch.no_grad()
def naive_generate(model: WaveNet, mel: torch.Tensor | None, num_samples: int,
                   speaker: torch.Tensor | None = None, seed: int = 0,
                   forced: torch.Tensor | None = None) -> torch.Tensor:
    """The baseline sampler (see the module docstring): (B, num_samples) μ-law classes.

    With ``forced`` (B, num_samples) classes it feeds those instead of sampling and returns the
    (B, Q, num_samples) logits, which lets the tests check that it is a faithful WaveNet.
    """
    B = mel.shape[0] if mel is not None else 1
    c = model.upsample(model.pad_mel(mel)) if mel is not None else None  # whole utterance
    g = model.speaker_vector(speaker)
    gen = torch.Generator(device=model.embed.weight.device).manual_seed(seed)
    R = model.config.residual_channels
    buffers = [torch.zeros(B, ly.padding + 1, R) for ly in model.layers]
    weights = [ly.conv.weight.permute(0, 2, 1).reshape(ly.conv.out_channels, -1)
               for ly in model.layers]  # (G, k·R) on taps ordered oldest first
    prev = torch.full((B,), model.start_class, dtype=torch.int64)
    out = torch.empty(B, num_samples, dtype=torch.int64)
    all_logits = []
    for t in range(num_samples):
        x = model.embed(prev)  # (B, R)
        skips = 0
        for ly, buf, w in zip(model.layers, buffers, weights):
            buf[:, :-1] = buf[:, 1:].clone()  # shift the whole buffer by one sample
            buf[:, -1] = x
            taps = buf[:, :: ly.dilation].reshape(B, -1)  # (B, k·R)
            h = F.linear(taps, w, ly.conv.bias)
            if c is not None and ly.cond is not None:
                h = h + F.linear(c[:, :, t], ly.cond.weight[:, :, 0])
            if g is not None and ly.speaker is not None:
                h = h + F.linear(g[:, :, 0], ly.speaker.weight[:, :, 0])
            a, b = h.chunk(2, dim=1)
            z = torch.tanh(a) * torch.sigmoid(b)
            s = F.linear(z, ly.skip.weight[:, :, 0], ly.skip.bias)
            x = (x + F.linear(z, ly.out.weight[:, :, 0], ly.out.bias)) * math.sqrt(0.5)
            skips = skips + s
        logits = model.post(skips[:, :, None] * math.sqrt(1.0 / len(model.layers)))[:, :, 0]
        if forced is not None:
            all_logits.append(logits)
            prev = forced[:, t]
        else:
            prev = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=gen)[:, 0]
        out[:, t] = prev
    return torch.stack(all_logits, dim=2) if forced is not None else out


def generate_throughput(model: WaveNet, batch: int, seconds: float, sample_rate: int) -> float:
    """Aggregate samples/s of :func:`wavegen.generate` for ``seconds`` of audio per row."""
    device = model.embed.weight.device
    hop = model.hop_length
    frames = max(1, round(seconds * sample_rate / hop))
    gen = torch.Generator().manual_seed(batch)
    mel, speaker = _random_inputs(model, batch, frames, device, gen)
    warm, _ = _random_inputs(model, batch, 1, device, gen)
    generate(model, warm, speaker, seed=0, num_samples=hop)  # build/load the kernel, warm caches
    _sync(device)
    start = time.perf_counter()
    audio = generate(model, mel, speaker, seed=0, num_samples=frames * hop)
    _sync(device)
    return audio.numel() / (time.perf_counter() - start)


def stream_first_chunk_ms(model: WaveNet, device, chunk_samples: int = 4096) -> float:
    """Milliseconds from calling ``stream`` on a 5 s mel (batch 1) to its first audio chunk."""
    from .generate import stream

    hop = model.hop_length
    mel, speaker = _random_inputs(model, 1, max(1, 5 * 22050 // hop), device, torch.Generator())
    _sync(device)
    start = time.perf_counter()
    chunks = stream(model, mel, speaker, seed=0, chunk_samples=chunk_samples)
    next(chunks)
    _sync(device)
    elapsed = time.perf_counter() - start
    chunks.close()
    return elapsed * 1000


def baseline_throughput(model: WaveNet, batch: int, num_samples: int) -> float:
    """Aggregate samples/s of :func:`naive_generate` (CPU) over ``num_samples`` per row."""
    hop = model.hop_length
    gen = torch.Generator().manual_seed(batch)
    mel, speaker = _random_inputs(model, batch, max(1, -(-num_samples // hop)), "cpu", gen)
    start = time.perf_counter()
    naive_generate(model, mel, num_samples, speaker)
    return batch * num_samples / (time.perf_counter() - start)


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA allocation on a GPU; the process's peak resident set size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_bench(config: str = "bench", device: str = "cpu", batches: list[int] | None = None,
              seconds: float = 0.5, baseline_samples: int = 1024, train_steps: int = 3,
              log=None) -> dict:
    """Run the benchmark and return its result (see the module docstring for definitions).

    Args:
        config: "bench" or a recipe YAML path (its model section; n_speakers −1 -> 0).
        device: "cpu" or "cuda" (or "cuda:N").
        batches: batch sizes to generate with (default 1, 8, 32).
        seconds: audio generated per row for each batch size.
        baseline_samples: samples per row for the naive baseline at batch 1 and 8 (those in
            ``batches``); 0 skips it.
        train_steps: timed Adam steps (after one warm-up step).
        log: optional callable taking a progress line.
    """
    batches = batches or [1, 8, 32]
    if any(b < 1 for b in batches):
        raise WavegenError(f"--batch: sizes must be at least 1, got {batches}")
    if seconds <= 0:
        raise WavegenError(f"--seconds must be positive, got {seconds}")
    if train_steps < 1:
        raise WavegenError(f"--train-steps must be at least 1, got {train_steps}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise WavegenError("--device cuda: no CUDA device is available")
    if dev.type not in ("cpu", "cuda"):
        raise WavegenError(f"--device must be cpu or cuda, got {device!r}")
    log = log or (lambda line: None)
    name, model_config, sample_rate = resolve_config(config)
    # Denormal floats (early in training, in decaying activations) are ~100x slower on x86;
    # flushing them is what any CPU training or inference setup should do.
    torch.set_flush_denormal(True)
    try:
        return _run(name, model_config, sample_rate, dev, batches, seconds, baseline_samples,
                    train_steps, log)
    finally:
        torch.set_flush_denormal(False)  # torch's default


def _run(name, model_config, sample_rate, dev, batches, seconds, baseline_samples,
         train_steps, log) -> dict:
    torch.manual_seed(0)
    model = WaveNet(model_config).to(dev).eval()
    probe = Sampler(model, *_random_inputs(model, 1, 1, dev, torch.Generator()),
                    num_samples=model.hop_length)
    result: dict = {
        "config": name,
        "params": model.num_params(),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "backend": probe.backend,
        "sample_rate": sample_rate,
        "seconds_per_row": seconds,
    }
    speeds: dict[str, float] = {}
    for b in batches:
        log(f"generating: batch {b}, {seconds} s per row")
        speeds[str(b)] = round(generate_throughput(model, b, seconds, sample_rate), 1)
    result["generate_samples_per_s"] = speeds
    result["realtime_factor"] = {b: round(v / sample_rate, 3) for b, v in speeds.items()}
    result["realtime_factor_definition"] = (
        "generated seconds of audio per wall-clock second, aggregate over the batch"
    )
    result["stream_first_chunk_ms"] = round(stream_first_chunk_ms(model, dev), 1)
    result["stream_chunk_samples"] = 4096
    result["generate_peak_memory_mb"] = round(peak_memory_mb(dev), 1)  # before training
    log(f"training: {train_steps} Adam steps on {TRAIN_BATCH} x {TRAIN_WINDOW} samples")
    result["train_samples_per_s"] = round(train_throughput(model, train_steps), 1)
    if baseline_samples > 0:
        base: dict[str, float] = {}
        cpu_model = model.to("cpu")
        for b in [b for b in (1, 8) if b in batches]:
            log(f"baseline (naive incremental_forward): batch {b}, {baseline_samples} samples")
            base[str(b)] = round(baseline_throughput(cpu_model, b, baseline_samples), 1)
        model.to(dev)
        result["baseline_device"] = "cpu"
        result["baseline_generate_samples_per_s"] = base
        if dev.type == "cpu":
            result["speedup_vs_baseline"] = {b: round(speeds[b] / v, 1) for b, v in base.items()}
    result["peak_memory_mb"] = round(peak_memory_mb(dev), 1)  # the whole run, training included
    return result
