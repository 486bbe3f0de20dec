"""μ-law companding and quantisation (ITU-T G.711 style, as in WaveNet).

With μ = channels − 1:
    F(x) = sign(x) · ln(1 + μ|x|) / ln(1 + μ)          on x clipped to [-1, 1]
    q    = floor((F(x) + 1) / 2 · μ + 0.5) ∈ {0 … μ}  (int64)
    y    = 2q/μ − 1,   x̂ = sign(y) · ((1 + μ)^|y| − 1) / μ

Both functions accept numpy arrays or torch tensors (any device) and return the same kind.

The encoder is exact: q is the formula evaluated in real arithmetic, for every float input. F is
increasing, so q(x) ≥ k exactly when x reaches the bin edge e_k = F⁻¹(2(k − ½)/μ − 1). The edges
are computed once with 50-digit decimal arithmetic and rounded up to the input's float type; the
formula in floating point lands within one class of the truth, and comparing x with the two edges
around that class settles it. numpy and torch, CPU and CUDA, float32 and float64 therefore agree
on every sample, bin edges included, which rounding F in float32 (or in float64, whose log1p
differs between libraries in the last bit) does not guarantee.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import torch

# (unsigned view, exponent bits, mantissa bits) of the float types the encoder works in.
_LAYOUT = {"float32": (np.uint32, 8, 23), "float64": (np.uint64, 11, 52)}


def _exact(order: int, dtype: str) -> Fraction:
    """The exact value of the float whose ordered index is ``order`` (0 is +0.0, ±1 the subnormals
    nearest zero, ...), decoded from its bits in integer arithmetic only."""
    _, exp_bits, man_bits = _LAYOUT[dtype]
    magnitude = abs(order)
    exponent, mantissa = magnitude >> man_bits, magnitude & ((1 << man_bits) - 1)
    bias = (1 << (exp_bits - 1)) - 1
    if exponent == 0:  # subnormal: no implicit bit
        value = Fraction(mantissa, 1 << (bias - 1 + man_bits))
    else:
        value = Fraction(mantissa | (1 << man_bits)) * Fraction(2) ** (exponent - bias - man_bits)
    return -value if order < 0 else value


def _order(value: float, dtype: str) -> int:
    """Ordered index of ``value`` rounded to ``dtype`` (see :func:`_exact`)."""
    utype, exp_bits, man_bits = _LAYOUT[dtype]
    bits = int(np.array([value], dtype=dtype).view(utype)[0])
    sign = 1 << (exp_bits + man_bits)
    return -(bits & (sign - 1)) if bits & sign else bits


@functools.lru_cache(maxsize=8)
def _edges(channels: int, dtype: str) -> np.ndarray:
    """(μ + 2,) -inf, e_1 < … < e_μ, +inf: each e_k the smallest ``dtype`` value ≥ the exact edge,
    so that class k holds exactly the x with edges[k] ≤ x < edges[k + 1].

    The search steps through the floats' bit patterns and compares their exact values as
    fractions, never in float arithmetic: under flush-to-zero / denormals-are-zero (which the
    trainer and the sampler threads turn on) float arithmetic reads subnormals as 0, and edges
    computed there once, then cached, misclassified every negative subnormal input.
    """
    mu = channels - 1
    orders = []
    with localcontext() as ctx:
        ctx.prec = 50
        log_base = Decimal(1 + mu).ln()
        for k in range(1, mu + 1):
            t = Decimal(2 * k - 1 - mu) / mu  # F(e_k), in (-1, 1)
            magnitude = ((abs(t) * log_base).exp() - 1) / mu
            edge = Fraction(magnitude if t >= 0 else -magnitude)
            order = _order(float(edge), dtype)  # within an ulp of the exact edge: step to the first ≥ it
            while _exact(order, dtype) < edge:
                order += 1
            while _exact(order - 1, dtype) >= edge:
                order -= 1
            orders.append(order)
    utype, exp_bits, man_bits = _LAYOUT[dtype]
    sign = 1 << (exp_bits + man_bits)
    bits = np.array([o if o >= 0 else sign | -o for o in orders], dtype=utype)
    out = np.full(mu + 2, np.inf, dtype=dtype)
    out[0] = -np.inf
    out[1:-1] = bits.view(dtype)  # same dtype: a copy of the bits, no conversion
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=16)
def _edges_on(channels: int, dtype: str, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(_edges(channels, dtype).copy()).to(device)


def mulaw_encode(x, channels: int = 256):
    """Waveform in [-1, 1] (any shape) -> int64 classes in {0 … channels-1}, same shape.

    Values outside [-1, 1] fall in the end classes (clipping); NaN has no defined class.
    """
    mu = channels - 1
    if isinstance(x, torch.Tensor):
        work = x if x.dtype == torch.float64 else x.float()  # float16/bfloat16 -> float32 exactly
        edges = _edges_on(channels, "float64" if work.dtype == torch.float64 else "float32", work.device)
        work = work.clamp(-1.0, 1.0)
        f = torch.sign(work) * torch.log1p(mu * work.abs()) / math.log1p(mu)
        q = torch.floor((f + 1) / 2 * mu + 0.5).long().clamp_(0, mu)  # exact or one off
        return q + (work >= edges[q + 1]).long() - (work < edges[q]).long()
    x = np.asarray(x)
    name = "float32" if x.dtype in (np.float16, np.float32) else "float64"
    edges = _edges(channels, name)
    work = np.clip(x.astype(name, copy=False), -1.0, 1.0)
    with np.errstate(invalid="ignore"):  # NaN: any class
        f = np.sign(work) * np.log1p(mu * np.abs(work)) / np.log1p(mu)
        q = np.clip(np.floor((f + 1) / 2 * mu + 0.5).astype(np.int64), 0, mu)  # exact or one off
    return q + (work >= edges[q + 1]) - (work < edges[q])


def mulaw_decode(q, channels: int = 256):
    """int classes (any shape) -> float32 waveform in [-1, 1], numpy or torch like the input."""
    mu = channels - 1
    if isinstance(q, torch.Tensor):
        y = 2 * q.float() / mu - 1
        return torch.sign(y) * (torch.pow(1.0 + mu, y.abs()) - 1) / mu
    y = 2 * np.asarray(q, dtype=np.float64) / mu - 1
    return (np.sign(y) * (np.power(1.0 + mu, np.abs(y)) - 1) / mu).astype(np.float32)
