"""The peer that ``wavegen bench`` measures wavegen against: r9y9/wavenet_vocoder, re-implemented.

Re-implemented from the published design (not copied), doing the work that code does so that
the speed-up is measured side by side in one process, not quoted:

- :func:`naive_generate` is its ``incremental_forward``: every layer keeps a buffer of its last
  (k − 1)·d + 1 inputs that is shifted by one with a copy each sample, the dilated taps are
  sliced out of it for a linear layer, and the conditioning projection runs per layer per
  sample. It runs on a wavegen model's weights.
- :class:`PeerWaveNet` and :func:`peer_train_step` are its mulaw-256 training step: one-hot input
  through a 1×1 conv, weight-normalised convolutions everywhere, dropout 0.05 on each layer's
  input, causal convs padded on both sides and cropped, the conditioning projected per layer at
  the sample rate after a stretch-and-Conv2d upsampler over the context-padded mel (the context
  cropped afterwards), cross-entropy on the shifted targets, Adam and a per-parameter EMA.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..core.config import ModelConfig
from ..model import WaveNet


@torch.no_grad()
def naive_generate(
    model: WaveNet,
    mel: torch.Tensor | None,
    num_samples: int,
    speaker: torch.Tensor | None = None,
    seed: int = 0,
    forced: torch.Tensor | None = None,
) -> torch.Tensor:
    """The peer's sampler on ``model``'s weights: (B, num_samples) μ-law classes.

    With ``forced`` (B, num_samples) classes it feeds those instead of sampling and returns the
    (B, Q, num_samples) logits, which lets the tests check that it is a faithful WaveNet.
    """
    B = mel.shape[0] if mel is not None else 1
    c = model.upsample(model.pad_mel(mel)) if mel is not None else None  # whole utterance
    g = model.speaker_vector(speaker)
    gen = torch.Generator(device=model.embed.weight.device).manual_seed(seed)
    R = model.config.residual_channels
    buffers = [torch.zeros(B, ly.padding + 1, R) for ly in model.layers]
    weights = [
        ly.conv.weight.permute(0, 2, 1).reshape(ly.conv.out_channels, -1) for ly in model.layers
    ]  # (G, k·R) on taps ordered oldest first
    prev = torch.full((B,), model.start_class, dtype=torch.int64)
    out = torch.empty(B, num_samples, dtype=torch.int64)
    all_logits = []
    for t in range(num_samples):
        x = model.embed(prev)  # (B, R)
        skips = 0
        for ly, buf, w in zip(model.layers, buffers, weights):
            buf[:, :-1] = buf[:, 1:].clone()  # shift the whole buffer by one sample
            buf[:, -1] = x
            taps = buf[:, :: ly.dilation].reshape(B, -1)  # (B, k·R)
            h = F.linear(taps, w, ly.conv.bias)
            if c is not None and ly.cond is not None:
                h = h + F.linear(c[:, :, t], ly.cond.weight[:, :, 0])
            if g is not None and ly.speaker is not None:
                h = h + F.linear(g[:, :, 0], ly.speaker.weight[:, :, 0])
            a, b = h.chunk(2, dim=1)
            z = torch.tanh(a) * torch.sigmoid(b)
            s = F.linear(z, ly.skip.weight[:, :, 0], ly.skip.bias)
            x = (x + F.linear(z, ly.out.weight[:, :, 0], ly.out.bias)) * math.sqrt(0.5)
            skips = skips + s
        logits = model.head(skips[:, :, None] * math.sqrt(1.0 / len(model.layers)))[:, :, 0]
        if forced is not None:
            all_logits.append(logits)
            prev = forced[:, t]
        else:
            prev = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=gen)[:, 0]
        out[:, t] = prev
    return torch.stack(all_logits, dim=2) if forced is not None else out


def _conv1d(cin: int, cout: int, kernel: int = 1, **kw) -> nn.Module:
    return weight_norm(nn.Conv1d(cin, cout, kernel, **kw))


class PeerLayer(nn.Module):
    def __init__(self, c: ModelConfig, dilation: int, dropout: float):
        super().__init__()
        self.dropout = dropout
        self.padding = (c.kernel_size - 1) * dilation
        self.conv = _conv1d(
            c.residual_channels, c.gate_channels, c.kernel_size, padding=self.padding, dilation=dilation
        )
        self.cond = _conv1d(c.cin_channels, c.gate_channels, bias=False) if c.cin_channels else None
        self.out = _conv1d(c.gate_channels // 2, c.residual_channels)
        self.skip = _conv1d(c.gate_channels // 2, c.skip_channels)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, R, T); c: (B, C_in, T) or None -> ((B, R, T), (B, S, T))."""
        residual = x
        x = F.dropout(x, p=self.dropout, training=self.training)
        x = self.conv(x)[:, :, : residual.shape[-1]]  # padded both sides, cropped to causal
        a, b = x.split(x.shape[1] // 2, dim=1)
        if c is not None and self.cond is not None:
            ca, cb = self.cond(c).split(x.shape[1] // 2, dim=1)
            a, b = a + ca, b + cb
        x = torch.tanh(a) * torch.sigmoid(b)
        return (self.out(x) + residual) * math.sqrt(0.5), self.skip(x)


class PeerUpsampler(nn.Module):
    """conv_in over the padded mel, then per scale a nearest stretch and a weight-normed Conv2d."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.cin_pad = c.cin_pad
        self.hop = math.prod(c.upsample_scales)
        self.conv_in = nn.Conv1d(
            c.cin_channels, c.cin_channels, 2 * c.cin_pad + 1, padding=c.cin_pad, bias=False
        )
        self.scales = list(c.upsample_scales)
        self.convs = nn.ModuleList()
        for s in self.scales:
            conv = nn.Conv2d(1, 1, (1, 2 * s + 1), padding=(0, s), bias=False)
            nn.init.constant_(conv.weight, 1.0 / (2 * s + 1))
            self.convs.append(weight_norm(conv))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, C, F + 2·cin_pad) -> (B, C, F·hop)."""
        c = self.conv_in(mel).unsqueeze(1)
        for s, conv in zip(self.scales, self.convs):
            c = conv(F.interpolate(c, scale_factor=(1, s), mode="nearest"))
        indent = self.cin_pad * self.hop
        c = c.squeeze(1)
        return c[:, :, indent:-indent] if indent else c


class PeerWaveNet(nn.Module):
    """The peer's model on ``config`` (mel conditioning only, which is what the bench uses)."""

    def __init__(self, config: ModelConfig, dropout: float = 0.05):
        super().__init__()
        c = config
        per_stack = c.layers // c.stacks
        self.first_conv = _conv1d(c.quantize_channels, c.residual_channels)
        self.layers = nn.ModuleList(PeerLayer(c, 2 ** (i % per_stack), dropout) for i in range(c.layers))
        self.post = nn.Sequential(
            nn.ReLU(),
            _conv1d(c.skip_channels, c.skip_channels),
            nn.ReLU(),
            _conv1d(c.skip_channels, c.quantize_channels),
        )
        self.upsampler = PeerUpsampler(c) if c.cin_channels else None

    def forward(self, onehot: torch.Tensor, mel: torch.Tensor | None) -> torch.Tensor:
        """onehot: (B, Q, T) float input; mel: (B, C_in, T/hop + 2·cin_pad) -> (B, Q, T) logits."""
        c = self.upsampler(mel) if self.upsampler is not None and mel is not None else None
        x = self.first_conv(onehot)
        skips = 0
        for layer in self.layers:
            x, s = layer(x, c)
            skips = skips + s
        return self.post(skips * math.sqrt(1.0 / len(self.layers)))


class PeerEMA:
    """The peer's EMA: a shadow copy per parameter, updated in a Python loop, cloned each time."""

    def __init__(self, model: nn.Module, decay: float = 0.9999):
        self.decay = decay
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            self.shadow[name] = ((1 - self.decay) * p + self.decay * self.shadow[name]).clone()


def peer_train_step(
    model: PeerWaveNet,
    optimizer: torch.optim.Optimizer,
    ema: PeerEMA,
    onehot: torch.Tensor,
    audio: torch.Tensor,
    mel: torch.Tensor | None,
) -> float:
    """One training step as the peer takes it; onehot (B, Q, T) of audio (B, T) -> the loss.

    The output at t predicts sample t + 1, so the last output and the first target are unused.
    """
    logits = model(onehot, mel)
    losses = F.cross_entropy(logits[:, :, :-1], audio[:, 1:], reduction="none")
    mask = torch.ones_like(losses)  # the peer masks padding; windows here have none
    loss = (losses * mask).sum() / mask.sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    ema.update(model)
    return loss.item()
