"""Generation throughput of a model on random conditioning: what :mod:`wavegen.bench.measure` and
:mod:`wavegen.bench.precision` both time (a module of its own so that neither imports the other)."""

from __future__ import annotations

import time

import torch

from ..core.config import ModelConfig
from ..generation import generate
from ..model import WaveNet


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_inputs(c: ModelConfig, batch: int, frames: int, device, gen: torch.Generator):
    """Log-mel-like conditioning (B, C, frames) and speaker ids (B,) or None."""
    mel = (
        (torch.randn(batch, c.cin_channels, frames, generator=gen) - 5.0).to(device)
        if c.cin_channels
        else None
    )
    speaker = torch.zeros(batch, dtype=torch.int64, device=device) if c.n_speakers else None
    return mel, speaker


def generate_throughput(
    model: WaveNet, batch: int, seconds: float, sample_rate: int, backend: str = "auto"
) -> float:
    """Aggregate samples/s of :func:`wavegen.generate` for ``seconds`` of audio per row."""
    device = model.embed.weight.device
    hop = model.hop_length
    frames = max(1, round(seconds * sample_rate / hop))
    gen = torch.Generator().manual_seed(batch)
    mel, speaker = random_inputs(model.config, batch, frames, device, gen)
    warm, _ = random_inputs(model.config, batch, 1, device, gen)
    generate(model, warm, speaker, seed=0, num_samples=hop, backend=backend)  # prepare, warm caches
    sync(device)
    start = time.perf_counter()
    audio = generate(model, mel, speaker, seed=0, num_samples=frames * hop, backend=backend)
    sync(device)
    return audio.numel() / (time.perf_counter() - start)
