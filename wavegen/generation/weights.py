"""A WaveNet's weights rearranged for one-sample steps: every product is ``(B, K) @ (K, N)``.

Built once per generation from the module's effective weights (``layer.conv.weight`` is already
the folded weight if a weight-norm parametrisation is used), so nothing is transposed or
concatenated inside the sampling loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.mulaw import mulaw_decode
from ..model import WaveNet


@dataclass
class StepWeights:
    layers: int
    kernel_size: int
    residual: int  # R
    gate: int  # G (two halves of G/2)
    skip: int  # S
    classes: int  # Q
    dilations: list[int]
    ring_sizes: list[int]  # (k − 1)·d + 1 past inputs kept per layer
    ring_offsets: list[int]  # first row of each layer in the shared ring tensor
    embed: torch.Tensor  # (Q, R)
    conv_w: torch.Tensor  # (L, k·R, G): taps stacked oldest first, matching the ring gather
    conv_b: torch.Tensor  # (L·G,)
    cond_w: torch.Tensor | None  # (C_in, L·G): every layer's V at once
    speaker_w: torch.Tensor | None  # (G_in, L·G)
    os_w: torch.Tensor  # (L, G/2, R + S): residual and skip 1×1 convs fused
    os_b: torch.Tensor  # (L, R + S)
    post1_w: torch.Tensor  # (S, S), with the √(1/L) skip scale folded in (ReLU commutes)
    post1_b: torch.Tensor  # (S,)
    post2_w: torch.Tensor  # (S, Q)
    post2_b: torch.Tensor  # (Q,)
    decode: torch.Tensor  # (Q,) μ-law class -> sample value

    @property
    def ring_total(self) -> int:
        return self.ring_offsets[-1] + self.ring_sizes[-1]

    @classmethod
    @torch.no_grad()
    def from_model(cls, model: WaveNet, dtype: torch.dtype = torch.float32) -> StepWeights:
        layers = list(model.layers)
        L, k = len(layers), model.config.kernel_size
        R, G = model.config.residual_channels, model.config.gate_channels
        S, Q = model.config.skip_channels, model.config.quantize_channels

        def prep(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(dtype).contiguous()

        # Conv1d weight (G, R, k): tap j multiplies x[t − (k − 1 − j)·d] -> rows j·R … j·R + R.
        conv_w = torch.stack([ly.conv.weight.permute(2, 1, 0).reshape(k * R, G) for ly in layers])
        conv_b = torch.cat([ly.conv.bias for ly in layers])
        cond_w = speaker_w = None
        if layers[0].cond is not None:
            cond_w = torch.cat([ly.cond.weight[:, :, 0].t() for ly in layers], dim=1)
        if layers[0].speaker is not None:
            speaker_w = torch.cat([ly.speaker.weight[:, :, 0].t() for ly in layers], dim=1)
        os_w = torch.stack(
            [torch.cat([ly.out.weight[:, :, 0], ly.skip.weight[:, :, 0]]).t() for ly in layers]
        )
        os_b = torch.stack([torch.cat([ly.out.bias, ly.skip.bias]) for ly in layers])
        post1, post2 = model.post_hidden, model.post_logits
        sizes = [ly.padding + 1 for ly in layers]
        offsets = [sum(sizes[:i]) for i in range(L)]
        device = conv_w.device
        return cls(
            layers=L,
            kernel_size=k,
            residual=R,
            gate=G,
            skip=S,
            classes=Q,
            dilations=[ly.dilation for ly in layers],
            ring_sizes=sizes,
            ring_offsets=offsets,
            embed=prep(model.embed.weight),
            conv_w=prep(conv_w),
            conv_b=prep(conv_b),
            cond_w=None if cond_w is None else prep(cond_w),
            speaker_w=None if speaker_w is None else prep(speaker_w),
            os_w=prep(os_w),
            os_b=prep(os_b),
            post1_w=prep(post1.weight[:, :, 0].t() * math.sqrt(1.0 / L)),
            post1_b=prep(post1.bias),
            post2_w=prep(post2.weight[:, :, 0].t()),
            post2_b=prep(post2.bias),
            decode=prep(mulaw_decode(torch.arange(Q, device=device), Q)),
        )
