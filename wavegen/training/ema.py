"""Exponential moving average of a model's weights: the copy used for validation and synthesis.

    ema ← d·ema + (1 − d)·θ,   d = min(decay, (1 + n) / (10 + n)) after the n-th update

The warm-up on d keeps the average from clinging to the random initial weights for the first
~1/(1 − decay) steps (10 000 at decay 0.9999), so early validation and samples mean something.
Buffers (the mel statistics) are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights (call after each optimiser step)."""
        d = self.current_decay()
        self.updates += 1
        for avg, live in zip(self.model.parameters(), model.parameters(), strict=True):
            avg.lerp_(live.detach(), 1.0 - d)
        for avg, live in zip(self.model.buffers(), model.buffers(), strict=True):
            avg.copy_(live)

    def load(self, weights: dict, updates: int) -> None:
        """Restore from a checkpoint's ``ema`` state_dict and ``ema_updates`` count."""
        self.model.load_state_dict(weights)
        self.updates = int(updates)
