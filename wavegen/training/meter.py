"""The training loop's metrics and health, kept on the device and read only at sync points.

Every step adds its loss and gradient norm to sums on the device and, if either is not finite,
records that step as the first bad one (also on the device): no step waits for the device.
The loop reads the meter (:meth:`TrainMeter.read`, one transfer) at ``train.log_interval`` and
before every validation, audio sample and checkpoint, like nanoGPT reads ``loss.item()`` only
when it logs. Under DDP the read at log and checkpoint steps is collective: the sums are added
over the ranks, and the first bad step and the stop signal are agreed by every rank in the same
all-reduce, so all ranks stop at the same step. Before a validation or an audio sample, which
only the main rank runs, its read is local: if it finds a bad step the main rank stops with the
error and torchrun ends the other ranks.

Divergence is not skipped: a non-finite loss or gradient stops the run at the next read with an
error naming the step. With float32 sums and no fp16 loss scaling (bf16 has float32's range), a
non-finite value is not a transient overflow to step over but broken weights or data; skipping
would hide it while the step's update (already applied when it is read) spreads NaN into the
weights. What is on disk stays good: no checkpoint is written after a bad step (the read before
each checkpoint sees it, and :func:`weights_are_finite` checks the weights as well).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

NO_BAD_STEP = 2**62  # "none" as an int64 that a MIN reduction over ranks leaves alone


@dataclass
class MeterReading:
    count: int  # steps added since the last reset
    loss: float  # mean loss over those steps (and over the ranks, if collective)
    grad_norm: float  # mean gradient norm over those steps
    first_bad_step: int | None  # the first step with a non-finite loss or gradient norm, if any
    bad_loss: float  # this rank's loss and gradient norm at that step (if this rank saw it)
    bad_grad_norm: float
    stop_signal: int  # the stop signal agreed over the ranks (0: none)


class TrainMeter:
    def __init__(self, device: torch.device):
        self.device = device
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss, gradient norm
        self.count = 0
        self.first_bad = torch.full((), NO_BAD_STEP, dtype=torch.int64, device=device)
        self.bad_values = torch.zeros(2, dtype=torch.float64, device=device)

    def add(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Account step ``step``'s () loss and () gradient norm, without a host-device sync."""
        values = torch.stack([loss.detach().double(), grad_norm.detach().double()])
        first = ~torch.isfinite(values).all() & (self.first_bad == NO_BAD_STEP)
        self.first_bad = torch.where(first, step, self.first_bad)
        self.bad_values = torch.where(first, values, self.bad_values)
        self.sums += values
        self.count += 1

    def reset(self) -> None:
        """Start a new averaging interval (after logging); the first bad step is kept."""
        self.sums.zero_()
        self.count = 0

    def read(self, stop_signal: int = 0, collective: bool = False, world_size: int = 1) -> MeterReading:
        """The meter's values on the host: the one host-device sync of the loop.

        ``collective``: every rank calls this at the same step; the sums are added over the
        ranks, the first bad step is the earliest of any rank, and the stop signal is the
        largest any rank received.
        """
        sums = self.sums.clone()
        flags = torch.stack([self.first_bad, torch.tensor(-stop_signal, device=self.device)])
        if collective and world_size > 1:
            dist.all_reduce(sums)
            dist.all_reduce(flags, op=dist.ReduceOp.MIN)  # min first bad step, max signal
        count = self.count * (world_size if collective else 1)
        values = torch.cat([sums, flags.double(), self.bad_values]).tolist()
        loss_sum, grad_sum, first_bad, neg_signal, bad_loss, bad_grad = values
        first_bad = int(first_bad)
        return MeterReading(
            count=self.count,
            loss=loss_sum / max(count, 1),
            grad_norm=grad_sum / max(count, 1),
            first_bad_step=None if first_bad >= NO_BAD_STEP else first_bad,
            bad_loss=bad_loss,
            bad_grad_norm=bad_grad,
            stop_signal=int(-neg_signal),
        )


@torch.no_grad()
def weights_are_finite(*models: torch.nn.Module) -> bool:
    """Whether every floating-point parameter and buffer of ``models`` is finite (one sync)."""
    checks = [
        torch.isfinite(t).all()
        for m in models
        for t in [*m.parameters(), *m.buffers()]
        if t.is_floating_point()
    ]
    return bool(torch.stack(checks).all()) if checks else True
