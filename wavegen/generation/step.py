"""The state of an incremental WaveNet and its one-sample step, in plain torch.

:class:`StepState` holds static buffers only: per-layer ring buffers of past layer inputs, the
conditioning of the current chunk, random numbers, outputs, and the step counters as tensors.
``step()`` reads and writes nothing else and never synchronises with the host, so the CUDA path
captures exactly this function in a graph, the compiled CPU kernel reproduces it, and the CPU
tests check it against the full forward pass.

Ring buffers: layer l keeps its last (k − 1)·d_l + 1 inputs; the input at time t lives in row
``t mod size`` and tap j (oldest first) is row ``(t − (k − 1 − j)·d_l) mod size``. Rows not yet
written are zero, which is the causal zero padding of the convolution.

Batch rows never interact, so :meth:`StepState.keep_rows` can drop finished rows between any
two steps and the others step on as before (up to the last bits of BLAS rounding, which may
depend on the batch size).
"""

from __future__ import annotations

import math

import torch

from .weights import StepWeights


class StepState:
    """Static buffers for ``batch`` rows and up to ``chunk`` steps between host refills.

    Buffers (B = batch, n = chunk):
        rings (B, Σ sizes, R), prev (B,) int64 class of the previous sample,
        cond (B, n, L·G), uniform (n, B), forced (n, B) int64, limit (B,) int64,
        audio (B, n), logits (B, n, Q) if ``keep_logits``,
        t () absolute time, i () index into the chunk buffers.
    """

    # Every buffer with a batch dimension, and which dimension that is.
    _BATCH_DIMS = {
        "rings": 0,
        "prev": 0,
        "cond": 0,
        "uniform": 1,
        "forced": 1,
        "limit": 0,
        "audio": 0,
        "logits": 0,
        "_x": 0,
        "_h": 0,
        "_o": 0,
        "_skip": 0,
    }

    def __init__(
        self,
        weights: StepWeights,
        batch: int,
        chunk: int,
        temperature: float = 1.0,
        forced: bool = False,
        keep_logits: bool = False,
        start_class: int = 0,
    ):
        w = self.weights = weights
        dev, dt = w.embed.device, w.embed.dtype
        L, k, B = w.layers, w.kernel_size, batch
        self.batch, self.chunk = B, chunk
        self.temperature = float(temperature)
        self.mode = "forced" if forced else ("argmax" if temperature <= 0 else "sample")
        self.rings = torch.zeros(B, w.ring_total, w.residual, device=dev, dtype=dt)
        self.prev = torch.full((B,), start_class, dtype=torch.int64, device=dev)
        self.cond = torch.zeros(B, chunk, L * w.gate, device=dev, dtype=dt)
        self.uniform = torch.zeros(chunk, B, device=dev)
        self.forced = torch.zeros(chunk, B, dtype=torch.int64, device=dev) if forced else None
        self.limit = torch.zeros(B, dtype=torch.int64, device=dev)
        self.audio = torch.zeros(B, chunk, device=dev)
        self.logits = torch.zeros(B, chunk, w.classes, device=dev) if keep_logits else None
        self.t = torch.zeros((), dtype=torch.int64, device=dev)
        self.i = torch.zeros((), dtype=torch.int64, device=dev)
        # Index arithmetic precomputed once: how far back each tap reaches, per layer.
        d = torch.tensor(w.dilations, device=dev)[:, None]
        self._back = (k - 1 - torch.arange(k, device=dev))[None, :] * d  # (L, k)
        self._sizes = torch.tensor(w.ring_sizes, device=dev)[:, None]  # (L, 1)
        self._offsets = torch.tensor(w.ring_offsets, device=dev)[:, None]  # (L, 1)
        # Scratch for the layer loop.
        self._x = torch.zeros(B, w.residual, device=dev, dtype=dt)
        self._h = torch.zeros(B, w.gate, device=dev, dtype=dt)
        self._o = torch.zeros(B, w.residual + w.skip, device=dev, dtype=dt)
        self._skip = torch.zeros(B, w.skip, device=dev, dtype=dt)

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` ((B',) int64 indices of current rows) in every buffer.

        The buffers are replaced by smaller ones, so anything holding the old tensors (a
        captured CUDA graph) must be rebuilt.
        """
        for name, dim in self._BATCH_DIMS.items():
            buf = getattr(self, name)
            if buf is not None:
                setattr(self, name, buf.index_select(dim, rows))
        self.batch = len(rows)

    def step(self) -> None:
        """Advance every row by one sample (reads/writes only the state's buffers)."""
        w, B = self.weights, self.batch
        L, k, R, G = w.layers, w.kernel_size, w.residual, w.gate
        at = self.i.view(1)
        write = self._offsets + torch.remainder(self.t, self._sizes)  # (L, 1)
        taps = self._offsets + torch.remainder(self.t - self._back, self._sizes)  # (L, k)
        cond = self.cond.index_select(1, at).view(B, L, G)
        x, skip = self._x, self._skip
        torch.index_select(w.embed, 0, self.prev, out=x)
        skip.zero_()
        for layer in range(L):
            self.rings.index_copy_(1, write[layer], x[:, None, :])
            stacked = self.rings.index_select(1, taps[layer]).view(B, k * R)
            h = torch.addmm(cond[:, layer], stacked, w.conv_w[layer], out=self._h)
            z = torch.tanh(h[:, : G // 2]).mul_(torch.sigmoid(h[:, G // 2 :]))
            o = torch.addmm(w.os_b[layer], z, w.os_w[layer], out=self._o)
            x.add_(o[:, :R]).mul_(math.sqrt(0.5))
            skip.add_(o[:, R:])
        hidden = torch.relu(torch.addmm(w.post1_b, torch.relu(skip), w.post1_w))
        logits = torch.addmm(w.post2_b, hidden, w.post2_w).float()  # (B, Q)
        if self.logits is not None:
            self.logits.index_copy_(1, at, logits[:, None, :])
        if self.mode == "forced":
            q = self.forced.index_select(0, at)[0]
        elif self.mode == "argmax":
            q = logits.argmax(dim=-1)
        else:
            # Inverse-CDF sampling with one uniform per row: cheap, and the kernel does the same.
            cdf = torch.softmax(logits / self.temperature, dim=-1).cumsum(dim=-1)
            target = self.uniform.index_select(0, at)[0][:, None] * cdf[:, -1:]
            q = (cdf <= target).sum(dim=-1).clamp_max(w.classes - 1)
        value = w.decode.float()[q] * (self.t < self.limit)
        self.audio.index_copy_(1, at, value[:, None])
        self.prev.copy_(q)
        self.t.add_(1)
        self.i.add_(1)
