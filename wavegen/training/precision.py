"""What a training step computes in: ``train.precision`` -> a torch dtype for :meth:`WaveNet.forward`.

bf16 here is mixed precision: float32 master weights, optimiser state, residual and skip sums and
loss; bfloat16 products. It needs no loss scaling (bf16 has float32's exponent range).
"""

from __future__ import annotations

import torch

from ..core.config import PRECISIONS
from ..core.errors import WavegenError


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware (emulated bf16 is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(cpu, name, lambda: False)() for name in checks)
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """ "auto" | "bf16" | "fp32" -> "bf16" or "fp32" ("auto": bf16 where ``device`` has it natively)."""
    if precision not in PRECISIONS:
        raise WavegenError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def compute_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """ "auto" | "bf16" | "fp32" -> the ``dtype`` for :meth:`WaveNet.forward`.

    torch.bfloat16 for bf16, None (full precision, the weights' float32) for fp32.
    """
    return torch.bfloat16 if resolve_precision(precision, device) == "bf16" else None
