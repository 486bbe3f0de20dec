"""EMA of weights: the update rule, its warm-up, buffers copied, the average lags the live model."""

import pytest
import torch
from torch import nn

from wavegen.training.ema import EMA


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("stat", torch.zeros(2))


def test_update_rule_with_warmup():
    torch.manual_seed(0)
    model = Tiny()
    ema = EMA(model, decay=0.99)
    start = ema.model.lin.weight.clone()
    with torch.no_grad():
        model.lin.weight.add_(1.0)
        model.stat.fill_(5.0)
    ema.update(model)
    d = 1 / 10  # min(0.99, (1 + 0) / (10 + 0))
    torch.testing.assert_close(
        ema.model.lin.weight, d * start + (1 - d) * model.lin.weight, rtol=0, atol=1e-6
    )
    assert torch.equal(ema.model.stat, model.stat)  # buffers are copied, not averaged
    assert ema.current_decay() == pytest.approx(2 / 11)
    ema.updates = 10_000
    assert ema.current_decay() == 0.99


def test_average_differs_from_live_weights_and_converges():
    torch.manual_seed(0)
    model = Tiny()
    ema = EMA(model, decay=0.9)
    for _ in range(5):
        with torch.no_grad():
            model.lin.weight.add_(torch.randn_like(model.lin.weight))
        ema.update(model)
    assert not torch.allclose(ema.model.lin.weight, model.lin.weight)
    for _ in range(300):  # constant live weights: the average converges to them
        ema.update(model)
    torch.testing.assert_close(ema.model.lin.weight, model.lin.weight, rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_load_restores_weights_and_count():
    model = Tiny()
    ema = EMA(model, 0.999)
    ema.update(model)
    other = EMA(Tiny(), 0.999)
    other.load(ema.model.state_dict(), ema.updates)
    assert other.updates == 1
    assert torch.equal(other.model.lin.weight, ema.model.lin.weight)


def test_rejects_bad_decay():
    with pytest.raises(ValueError, match="ema_decay"):
        EMA(Tiny(), 1.0)
