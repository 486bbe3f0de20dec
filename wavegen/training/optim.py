"""Optimiser and learning-rate schedule of a recipe's ``train`` section.

lr(step) = lr · min(1, (step + 1) / warmup_steps)                   while step < warmup_steps
         = max(min_lr, lr · decay(step − warmup_steps))             afterwards
decay(n) = decay_rate ^ (n / decay_steps)                           exponential
         = ½ (1 + cos(π · min(1, n / decay_steps)))                 cosine (reaches min_lr)
         = 1                                                        none
"""

from __future__ import annotations

import functools
import math

import torch

from ..core.config import TrainConfig


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return kind(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr`` at optimiser step ``step`` (0-based)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    n = step - cfg.warmup_steps
    if cfg.decay == "exponential":
        factor = cfg.decay_rate ** (n / cfg.decay_steps)
    elif cfg.decay == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * min(1.0, n / cfg.decay_steps)))
    else:
        return 1.0
    return max(cfg.min_lr / cfg.lr, factor)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    # functools.partial (not a lambda) so that LambdaLR's state_dict stays plain data.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, cfg=cfg))
