"""One optimisation step: what ``wavegen train`` runs per batch and ``wavegen bench`` times."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .ema import EMA


def optimization_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    audio: torch.Tensor,
    mel: torch.Tensor | None,
    speaker: torch.Tensor | None,
    dtype: torch.dtype | None,
    grad_clip: float,
    ema: EMA | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced cross-entropy, backward, gradient-norm clip (0 = off), optimiser step, EMA.

    ``model`` is a WaveNet or its DDP wrapper (same parameters and buffers, in the same order);
    audio (b, W) int64 classes, mel (b, n_mels, W/hop + 2·cin_pad), speaker (b,) or None; the
    forward runs in ``dtype`` (see :meth:`WaveNet.forward`). -> (loss, gradient norm).
    """
    logits = model(audio, mel, speaker, dtype=dtype)  # (b, Q, W)
    # Mean over this rank's equal share; DDP averages gradients -> mean over the global batch.
    loss = F.cross_entropy(logits.float(), audio)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else math.inf)
    optimizer.step()
    if ema is not None:
        ema.update(model)
    return loss, grad_norm
