"""Learned upsampling of mel frames to the audio rate.

An input convolution over 2·cin_pad + 1 frames (no padding, so it consumes cin_pad frames of
context on each side), then for each scale s: nearest-neighbour stretch ×s along time followed by
a (1 × 2s+1) smoothing convolution over time (initialised to a box filter), zero-padded at the
ends. The scales multiply to the hop length, so F frames (plus context) become exactly F·hop
samples.

A stretch stage is computed in its polyphase form: output p = f·s + r only ever sees input frames
f − 1, f and f + 1, so each of the s phases is a 3-tap filter at the input rate. That is one small
matmul instead of a stretch and a single-channel convolution (which is very slow on the CPU, above
all its backward pass). Training and the generator both use :func:`stretch_stage`.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


class Upsampler(nn.Module):
    def __init__(self, cin_channels: int, scales: list[int], cin_pad: int = 2):
        super().__init__()
        self.scales = list(scales)
        self.cin_pad = cin_pad
        self.conv_in = nn.Conv1d(cin_channels, cin_channels, 2 * cin_pad + 1, bias=False) if cin_pad else None
        # (1, 1, 1, 2s+1) smoothing taps per stage, kept as Conv2d weights (the checkpoint format).
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

    def phase_taps(self) -> list[torch.Tensor]:
        """Each stage's smoothing taps in polyphase form: a (3, s) tensor per stage."""
        return [polyphase_taps(conv.weight.reshape(-1), s) for s, conv in zip(self.scales, self.stages)]

    def stretch(self, c: torch.Tensor) -> torch.Tensor:
        """(B, C, F) frames after the input conv -> (B, C, F·hop) samples."""
        for taps in self.phase_taps():
            c = stretch_stage(c, taps)
        return c


@functools.cache
def _phase_matrix(s: int) -> torch.Tensor:
    """(2s + 1, 3·s) 0/1 map from a stage's taps to its polyphase taps (see polyphase_taps).

    Cached, so it is built as a normal tensor even when first asked for under inference_mode
    (an inference tensor could never take part in a later training step's backward pass).
    """
    with torch.inference_mode(False):
        return _build_phase_matrix(s)


def _build_phase_matrix(s: int) -> torch.Tensor:
    m = torch.zeros(2 * s + 1, 3, s)
    for r in range(s):
        for j in range(2 * s + 1):
            m[j, (r + j - s) // s + 1, r] += 1
    return m.reshape(2 * s + 1, 3 * s)


def polyphase_taps(weight: torch.Tensor, s: int) -> torch.Tensor:
    """(2s + 1,) smoothing taps after a nearest ×s stretch -> (3, s) taps on the unstretched input.

    Stretched output p = f·s + r sums w[j]·x[⌊(p + j − s)/s⌋] over j = 0 … 2s, and that index is
    always f − 1, f or f + 1. Differentiable in ``weight``.
    """
    return (weight.reshape(1, -1) @ _phase_matrix(s).to(weight)).reshape(3, s)


def stretch_stage(c: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """(B, C, n) -> (B, C, n·s): nearest ×s then the (1, 2s+1) conv, zero-padded at both ends."""
    B, C, n = c.shape
    padded = F.pad(c, (1, 1))
    shifted = torch.stack([padded[..., :-2], padded[..., 1:-1], padded[..., 2:]], dim=-1)
    return (shifted @ taps).reshape(B, C, n * taps.shape[1])  # (B, C, n, s) -> (B, C, n·s)
