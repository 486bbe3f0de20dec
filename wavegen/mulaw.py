"""μ-law companding and quantisation (ITU-T G.711 style, as in WaveNet).

With μ = channels − 1:
    F(x) = sign(x) · ln(1 + μ|x|) / ln(1 + μ)          on x clipped to [-1, 1]
    q    = floor((F(x) + 1) / 2 · μ + 0.5) ∈ {0 … μ}  (int64)
    y    = 2q/μ − 1,   x̂ = sign(y) · ((1 + μ)^|y| − 1) / μ

Both functions accept numpy arrays or torch tensors (any device) and return the same kind.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def mulaw_encode(x, channels: int = 256):
    """Waveform in [-1, 1] (any shape) -> int64 classes in {0 … channels-1}, same shape."""
    mu = channels - 1
    if isinstance(x, torch.Tensor):
        x = x.clamp(-1.0, 1.0)
        work = x.double() if x.dtype == torch.float64 else x.float()
        f = torch.sign(work) * torch.log1p(mu * work.abs()) / math.log1p(mu)
        return torch.floor((f + 1) / 2 * mu + 0.5).long()
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    f = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.floor((f + 1) / 2 * mu + 0.5).astype(np.int64)


def mulaw_decode(q, channels: int = 256):
    """int classes (any shape) -> float waveform in [-1, 1] (float32; float64 for float64 numpy)."""
    mu = channels - 1
    if isinstance(q, torch.Tensor):
        y = 2 * q.float() / mu - 1
        return torch.sign(y) * (torch.pow(1.0 + mu, y.abs()) - 1) / mu
    y = 2 * np.asarray(q, dtype=np.float64) / mu - 1
    return (np.sign(y) * (np.power(1.0 + mu, np.abs(y)) - 1) / mu).astype(np.float32)
