"""train.precision: what it resolves to, and that a bf16 step is a real (and different) step."""

import pytest
import torch

from tests.helpers import make_feature_cache, write_recipe
from wavegen.core.config import load_recipe
from wavegen.core.errors import WavegenError
from wavegen.training import Trainer
from wavegen.training.precision import compute_dtype, native_bf16

CPU = torch.device("cpu")


def test_explicit_precisions():
    assert compute_dtype("fp32", CPU) is None  # full precision: the conv path
    assert compute_dtype("bf16", CPU) is torch.bfloat16
    with pytest.raises(WavegenError, match="precision must be one of auto, bf16, fp32"):
        compute_dtype("fp16", CPU)


@pytest.mark.parametrize(
    "avx512_bf16,amx,expected",
    [
        (False, False, None),
        (True, False, torch.bfloat16),
        (False, True, torch.bfloat16),
    ],
)
def test_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert native_bf16(CPU) == (expected is not None)
    assert compute_dtype("auto", CPU) is expected


def test_trainer_steps_in_the_recipe_precision(tmp_path):
    cache = make_feature_cache(tmp_path / "cache", n_utts=4, speakers=("a",))
    losses = {}
    for precision in ("fp32", "bf16"):
        recipe = load_recipe(write_recipe(tmp_path / f"{precision}.yaml", train={"precision": precision}))
        trainer = Trainer(recipe, cache, tmp_path / precision, device="cpu", progress=False)
        trainer.build()
        assert trainer.dtype is (torch.bfloat16 if precision == "bf16" else None)
        batch = next(trainer.batches())
        losses[precision] = [trainer.train_step(batch)["loss"] for _ in range(3)]
    assert losses["bf16"] != losses["fp32"]  # the setting takes effect...
    for a, b in zip(losses["bf16"], losses["fp32"]):
        assert abs(a - b) < 0.02 * b  # ...and computes the same step, rounded
