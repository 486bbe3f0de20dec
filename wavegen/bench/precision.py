"""``wavegen bench``'s reduced-precision sections: the ``cpp-bf16`` kernel's threading at batch 1,
and what the LJSpeech recipe's big model costs on a CPU in fp32 and in bf16.

``bf16_threads``: ``cpp-bf16`` at batch 1 on one thread and on a team of two (each layer's
products split between the threads, one spinning barrier per layer and one per sample), with
the share of the team's time spent waiting at barriers and the cost of one barrier when the two
threads do nothing else; at batch 8, the team against the row split (threads own whole rows,
never synchronise), which is what ``auto`` uses at batch ≥ threads.

``big_model``: aggregate samples/s and real-time factor of the fp32 kernel and ``cpp-bf16`` on
the recipe's model (random weights: the speed does not depend on them) at batch 1 and 32.
"""

from __future__ import annotations

import time

import torch

from ..generation import Sampler, backends
from ..generation.kernel_bf16 import LEVELS, Bf16Runner
from ..model import WaveNet
from .throughput import generate_throughput

BARRIER_ROUNDS = 20000


def _random_mel(model: WaveNet, batch: int, frames: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(batch)
    return torch.randn(batch, model.config.cin_channels, frames, generator=gen) - 5.0


def _bf16_run(model: WaveNet, batch: int, seconds: float, sample_rate: int, threads: int, split: str):
    """(aggregate samples/s, (threads, 2) profile seconds) of ``cpp-bf16`` with ``split``."""
    frames = max(1, round(seconds * sample_rate / model.hop_length))
    sampler = Sampler(model, _random_mel(model, batch, frames), seed=0, backend="cpp-bf16", threads=threads)
    kernel = backends.get_kernel("cpp-bf16")
    sampler._runner = Bf16Runner(kernel.handle, sampler.weights, split=split, profile=True)
    warm = min(sampler.remaining, 256)
    sampler.run(warm)  # caches warm, not timed
    sampler._runner.profile_seconds = None
    start = time.perf_counter()
    sampler.run(sampler.remaining)
    elapsed = time.perf_counter() - start
    return batch * (sampler.total - warm) / elapsed, sampler._runner.profile_seconds


def bf16_threads(model: WaveNet, seconds: float, sample_rate: int, log) -> dict:
    """The team of two against one thread at batch 1, and against the row split at batch 8."""
    lib = backends.get_kernel("cpp-bf16").handle
    out: dict = {"barrier_us": round(lib.wg_lp_barrier_seconds(BARRIER_ROUNDS) * 1e6, 3)}
    log(f"cpp-bf16 threads: batch 1 on 1 thread and on a team of 2, {seconds} s")
    one, _ = _bf16_run(model, 1, seconds, sample_rate, 1, "rows")
    team, prof = _bf16_run(model, 1, seconds, sample_rate, 2, "team")
    busy = prof[:2, 0].sum().item()
    out["batch1_samples_per_s"] = {"1 thread": round(one, 1), "team of 2": round(team, 1)}
    out["batch1_team_speedup"] = round(team / one, 3)
    out["batch1_team_barrier_share"] = round(prof[:2, 1].sum().item() / max(busy, 1e-12), 3)
    out["barriers_per_sample"] = model.config.layers + 1
    log(f"cpp-bf16 threads: batch 8, row split and team of 2, {seconds} s per row")
    rows, _ = _bf16_run(model, 8, seconds, sample_rate, 2, "rows")
    team8, _ = _bf16_run(model, 8, seconds, sample_rate, 2, "team")
    out["batch8_samples_per_s"] = {"row split": round(rows, 1), "team of 2": round(team8, 1)}
    return out


def big_model(config, name: str, sample_rate: int, batches, seconds: float, log) -> dict:
    """fp32 kernel and ``cpp-bf16`` on ``config`` (random weights) at each batch size."""
    torch.manual_seed(0)
    model = WaveNet(config).eval()
    fp32 = backends.cpu_backend("fp32")
    measured = [fp32] + (["cpp-bf16"] if backends.get_kernel("cpp-bf16") else [])
    rates: dict[str, dict[str, float]] = {b: {} for b in measured}
    for batch in batches:
        for backend in measured:
            log(f"{name} model ({backend}): batch {batch}, {seconds} s per row")
            rates[backend][str(batch)] = round(
                generate_throughput(model, batch, seconds, sample_rate, backend), 1
            )
    return {
        "config": name,
        "params": model.num_params(),
        "layers": config.layers,
        "residual_channels": config.residual_channels,
        "gate_channels": config.gate_channels,
        "skip_channels": config.skip_channels,
        "sample_rate": sample_rate,
        "seconds_per_row": seconds,
        "samples_per_s_by_backend": rates,
        "realtime_factor_by_backend": {
            b: {k: round(v / sample_rate, 4) for k, v in r.items()} for b, r in rates.items()
        },
    }


def cpu_level_name() -> str | None:
    """The instruction set ``cpp-bf16`` runs with here ("avx512", "avx2", "scalar"), or None."""
    level = backends.bf16_level()
    return None if level is None else LEVELS[level]
