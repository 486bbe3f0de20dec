"""Per-layer conditioning V·c + U·g + conv bias for a span of time steps, chunk by chunk.

Only the mel frames covering the span (plus context) are upsampled, so memory is bounded by the
chunk size, not the utterance length. A batch of different lengths is conditioned exactly as if
each utterance were alone: each row is edge-padded at its own end, and after the input conv and
after every upsampling stage the positions past the row's end are zeroed, which is what the
stage convolutions' zero padding sees when the utterance is upsampled on its own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core.errors import WavegenError
from ..model import WaveNet
from ..model.upsample import stretch_stage
from .weights import StepWeights


class Conditioner:
    """Produces ``(B, n, L·G)`` conditioning for samples [t0, t1) on demand.

    Args:
        model: the WaveNet (its upsampler, mel statistics and speaker table are used).
        weights: the step weights (``cond_w``, ``speaker_w``, ``conv_b``).
        mel: (B, C_in, F) raw preset mel without context padding, or None (unconditioned).
        lengths: (B,) frames of each row (≤ F), or None for all F.
        speaker: (B,) speaker ids or None.
        batch: rows, needed when there is no mel.
    """

    def __init__(
        self,
        model: WaveNet,
        weights: StepWeights,
        mel: torch.Tensor | None,
        lengths: torch.Tensor | None,
        speaker: torch.Tensor | None,
        batch: int,
        span: int = 8192,
    ):
        self.model = model
        # The upsampled mel (C_in values per step, far fewer than L·G) is made ``span`` samples
        # at a time and sliced by the smaller conditioning chunks, so context frames are rare.
        self.span = span
        self._cache = None  # (start, (B, C_in, n) upsampled mel)
        self.weights = weights
        self.hop = model.hop_length
        g = model.speaker_vector(speaker)  # (B, G_in, 1) or None
        bias = weights.conv_b.expand(batch, -1)
        if g is not None:
            bias = bias + g[:, :, 0].to(weights.speaker_w.dtype) @ weights.speaker_w
        self.bias = bias.contiguous()  # (B, L·G)
        self.mel = None
        if model.upsampler is None:
            return
        if mel is None:
            raise WavegenError("this model needs a mel spectrogram (local conditioning)")
        B, C, frames = mel.shape
        self.frames = frames
        self.lengths = lengths
        self.ragged = lengths is not None and bool((lengths < frames).any())
        pad = model.config.cin_pad
        mel = (mel - model.mel_mean[:, None]) / model.mel_std[:, None]
        if self.ragged:
            # Edge-pad each row at its own end, as model.pad_mel would pad it alone.
            rows = [
                F.pad(mel[b : b + 1, :, : int(n)], (pad, pad + frames - int(n)), mode="replicate")
                for b, n in enumerate(lengths.tolist())
            ]
            self.mel = torch.cat(rows)
        else:
            self.mel = F.pad(mel, (pad, pad), mode="replicate") if pad else mel
        ups = model.upsampler
        # Frames each stage's smoothing conv reaches past a cut, summed over the stages.
        reach, rate = 0.0, 1
        for s in ups.scales:
            rate *= s
            reach += s / rate
        self.context = max(ups.stage_context_frames, math.ceil(reach))
        self.phases = [taps.detach() for taps in ups.phase_taps()]

    def keep_rows(self, rows: torch.Tensor) -> None:
        """From now on condition only ``rows`` ((B',) int64 indices of current rows).

        Rows are conditioned independently, so the rows kept get the same values as before, bit
        for bit on the CPU (the tests check it), and the rows dropped cost nothing. But torch
        convolves and multiplies a batch of one by other algorithms, which round differently,
        so a row left alone is kept twice and computed as one of a pair, as in its batch.
        """
        if len(rows) == 1:
            rows = rows.repeat(2)
        self.bias = self.bias.index_select(0, rows)
        if self.mel is not None:
            self.mel = self.mel.index_select(0, rows)
            if self.lengths is not None:
                self.lengths = self.lengths.index_select(0, rows)
        if self._cache is not None:
            start, up = self._cache
            self._cache = (start, up.index_select(0, rows))

    def _masked(self, c: torch.Tensor, first: int, rate: int) -> torch.Tensor:
        """Zero positions ≥ each row's end; c: (B, C, n) starting at absolute position first."""
        if not self.ragged:
            return c
        pos = torch.arange(first, first + c.shape[-1], device=c.device)
        keep = pos[None, :] < (self.lengths.to(c.device) * rate)[:, None]
        return c * keep[:, None, :].to(c.dtype)

    def upsampled(self, t0: int, t1: int) -> torch.Tensor:
        """(B, C_in, t1 − t0) normalised, upsampled mel for samples [t0, t1)."""
        ups, hop = self.model.upsampler, self.hop
        f_lo, f_hi = t0 // hop, -(-t1 // hop)
        a, b = max(0, f_lo - self.context), min(self.frames, f_hi + self.context)
        pad = self.model.config.cin_pad
        x = self.mel[:, :, a : b + 2 * pad]
        c = ups.conv_in(x) if ups.conv_in is not None else x  # (B, C, b − a) frames [a, b)
        c = self._masked(c, a, 1)
        rate = 1
        for s, phase in zip(ups.scales, self.phases):
            rate *= s
            c = self._masked(stretch_stage(c, phase), a * rate, rate)
        return c[:, :, t0 - a * hop : t1 - a * hop]

    def _cached(self, t0: int, t1: int) -> torch.Tensor:
        start, up = self._cache or (0, None)
        if up is None or t0 < start or t1 > start + up.shape[-1]:
            end = min(self.frames * self.hop, t0 + max(self.span, t1 - t0))
            start, up = t0, self.upsampled(t0, end)
            self._cache = (start, up)
        return up[:, :, t0 - start : t1 - start]

    @torch.no_grad()
    def chunk(self, t0: int, t1: int, out: torch.Tensor) -> None:
        """Write the (B, t1 − t0, L·G) conditioning, bias and speaker term included, to out."""
        B = self.bias.shape[0]  # 2 when out has one row left by keep_rows
        if self.mel is None:
            out.copy_(self.bias[: len(out), None, :].expand(len(out), t1 - t0, -1))
            return
        c = self._cached(t0, t1).transpose(1, 2).to(self.weights.cond_w.dtype)  # (B, n, C)
        w = self.weights.cond_w.expand(B, -1, -1)
        if len(out) == B:
            torch.baddbmm(self.bias[:, None, :], c, w, out=out)
        else:
            out.copy_(torch.baddbmm(self.bias[:, None, :], c, w)[: len(out)])
