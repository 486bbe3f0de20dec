"""Learned upsampling of mel frames to the audio rate.

An input convolution over 2·cin_pad + 1 frames (no padding, so it consumes cin_pad frames of
context on each side), then for each scale s: nearest-neighbour stretch ×s along time followed by
a (1 × 2s+1) smoothing convolution over time (initialised to a box filter). The scales multiply
to the hop length, so F frames (plus context) become exactly F·hop samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Upsampler(nn.Module):
    def __init__(self, cin_channels: int, scales: list[int], cin_pad: int = 2):
        super().__init__()
        self.scales = list(scales)
        self.cin_pad = cin_pad
        self.conv_in = (
            nn.Conv1d(cin_channels, cin_channels, 2 * cin_pad + 1, bias=False) if cin_pad else None
        )
        self.stages = nn.ModuleList()
        for s in self.scales:
            conv = nn.Conv2d(1, 1, (1, 2 * s + 1), padding=(0, s), bias=False)
            nn.init.constant_(conv.weight, 1.0 / (2 * s + 1))
            self.stages.append(conv)

    @property
    def hop_length(self) -> int:
        hop = 1
        for s in self.scales:
            hop *= s
        return hop

    # Frames of context, beyond cin_pad, that the stretch convolutions reach on each side: each
    # stage looks ±s samples at a rate of hop/(s_1…s_i) frames per sample, less than one frame.
    stage_context_frames = 2

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, C, F + 2·cin_pad) -> (B, C, F·hop)."""
        c = self.conv_in(mel) if self.conv_in is not None else mel
        return self.stretch(c)

    def stretch(self, c: torch.Tensor) -> torch.Tensor:
        """(B, C, F) frames after the input conv -> (B, C, F·hop) samples."""
        B, C, _ = c.shape
        c = c.reshape(B * C, 1, 1, -1)
        for s, conv in zip(self.scales, self.stages):
            c = F.interpolate(c, scale_factor=(1, s), mode="nearest")
            c = conv(c)
        return c.reshape(B, C, -1)
