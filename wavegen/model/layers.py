"""One WaveNet residual layer: dilated causal conv, gated tanh·σ, residual and skip 1×1 convs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ResidualLayer(nn.Module):
    """z = tanh(W_f∗x + V_f·c + U_f·g) ⊙ σ(W_g∗x + V_g·c + U_g·g);  x' = (x + R·z)·√½,  s = S·z.

    ``W∗x`` is a causal convolution of ``kernel_size`` taps spaced ``dilation`` apart: the output
    at t sees x[t], x[t − d], …, x[t − (k − 1)d] only.
    """

    def __init__(
        self,
        residual_channels: int,
        gate_channels: int,
        skip_channels: int,
        kernel_size: int,
        dilation: int,
        cin_channels: int = 0,
        gin_channels: int = 0,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.conv = nn.Conv1d(residual_channels, gate_channels, kernel_size, dilation=dilation)
        self.cond = nn.Conv1d(cin_channels, gate_channels, 1, bias=False) if cin_channels else None
        self.speaker = nn.Conv1d(gin_channels, gate_channels, 1, bias=False) if gin_channels else None
        half = gate_channels // 2
        self.out = nn.Conv1d(half, residual_channels, 1)
        self.skip = nn.Conv1d(half, skip_channels, 1)

    @property
    def padding(self) -> int:
        """Samples of past this layer reaches back: (k − 1)·d."""
        return (self.kernel_size - 1) * self.dilation

    def forward(
        self, x: torch.Tensor, c: torch.Tensor | None = None, g: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, R, T); c: (B, C_in, T) or None; g: (B, G, 1) or None -> ((B, R, T), (B, S, T))."""
        h = self.conv(F.pad(x, (self.padding, 0)))
        if c is not None and self.cond is not None:
            h = h + self.cond(c)
        if g is not None and self.speaker is not None:
            h = h + self.speaker(g)
        a, b = h.chunk(2, dim=1)
        z = torch.tanh(a) * torch.sigmoid(b)
        return (x + self.out(z)) * math.sqrt(0.5), self.skip(z)
