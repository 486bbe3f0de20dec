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

    def forward_time_major(
        self, x: torch.Tensor, c: torch.Tensor | None, g: torch.Tensor | None, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same layer on time-major activations, every product one matmul in ``dtype``.

        x: (B, T, R) residual stream in the weights' dtype; c: (B, T, C_in) in ``dtype`` or None;
        g: (B, 1, G_in) or None -> ((B, T, R) in the weights' dtype, (B, T, S) in ``dtype``).

        The k dilated taps and the upsampled mel are stacked side by side, so the gate input is one
        (B·T, k·R + C_in) @ (k·R + C_in, G) product, and the residual and skip convs are another.
        In bf16 this runs at several times the CPU's fp32 rate, where bf16 convolutions (above all
        their backward pass) do not; the residual stream keeps full precision.
        """
        B, T, _ = x.shape
        d = self.dilation
        padded = F.pad(x.to(dtype), (0, 0, self.padding, 0))
        parts = [padded[:, j * d : j * d + T] for j in range(self.kernel_size)]  # oldest tap first
        weight = self.conv.weight.permute(0, 2, 1).reshape(self.conv.out_channels, -1)  # (G, k·R)
        if c is not None and self.cond is not None:
            parts.append(c)
            weight = torch.cat([weight, self.cond.weight[:, :, 0]], dim=1)
        h = F.linear(torch.cat(parts, dim=-1), weight.to(dtype), self.conv.bias.to(dtype))
        if g is not None and self.speaker is not None:
            h = h + F.linear(g.to(dtype), self.speaker.weight[:, :, 0].to(dtype))
        a, b = h.chunk(2, dim=-1)
        z = torch.tanh(a) * torch.sigmoid(b)
        out_skip = F.linear(
            z,
            torch.cat([self.out.weight[:, :, 0], self.skip.weight[:, :, 0]]).to(dtype),
            torch.cat([self.out.bias, self.skip.bias]).to(dtype),
        )
        R = x.shape[-1]
        return (x + out_skip[..., :R]) * math.sqrt(0.5), out_skip[..., R:]
