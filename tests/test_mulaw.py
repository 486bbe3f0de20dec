"""μ-law companding against the formula in the issue, on numpy and torch inputs."""

import math

import numpy as np
import pytest
import torch

from wavegen import mulaw_decode, mulaw_encode


def formula_encode(x: float, channels: int) -> int:
    mu = channels - 1
    x = min(max(x, -1.0), 1.0)
    f = math.copysign(math.log(1 + mu * abs(x)) / math.log(1 + mu), x) if x else 0.0
    return math.floor((f + 1) / 2 * mu + 0.5)


def formula_decode(q: int, channels: int) -> float:
    mu = channels - 1
    y = 2 * q / mu - 1
    return math.copysign(((1 + mu) ** abs(y) - 1) / mu, y) if y else 0.0


EDGES = [-1.0, -0.999, -0.5, -1e-6, 0.0, 1e-6, 0.5, 0.999, 1.0, -3.0, 3.0]


@pytest.mark.parametrize("channels", [256, 65])
def test_encode_matches_formula(channels):
    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.uniform(-1.2, 1.2, 2000), EDGES])
    expected = np.array([formula_encode(float(x), channels) for x in xs])
    got_np = mulaw_encode(xs, channels)
    got_torch = mulaw_encode(torch.from_numpy(xs), channels)
    assert got_np.dtype == np.int64 and got_torch.dtype == torch.int64
    np.testing.assert_array_equal(got_np, expected)
    np.testing.assert_array_equal(got_torch.numpy(), expected)
    assert got_np.min() >= 0 and got_np.max() <= channels - 1


def test_float32_torch_agrees_with_float64_except_at_rounding_ties():
    x = torch.rand(100_000) * 2 - 1
    a = mulaw_encode(x)
    b = mulaw_encode(x.double())
    assert (a != b).sum() <= 5 and (a - b).abs().max() <= 1


@pytest.mark.parametrize("channels", [256, 65])
def test_decode_matches_formula(channels):
    q = np.arange(channels)
    expected = np.array([formula_decode(int(v), channels) for v in q])
    np.testing.assert_allclose(mulaw_decode(q, channels), expected, atol=1e-6)
    np.testing.assert_allclose(mulaw_decode(torch.from_numpy(q), channels).numpy(), expected, atol=1e-6)


def test_edges_and_silence():
    assert mulaw_encode(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
    assert mulaw_decode(np.array([0, 255])).tolist() == [-1.0, 1.0]
    assert abs(float(mulaw_decode(np.array(128)))) < 0.001  # 128 is the class nearest silence


def test_round_trip_error_bound():
    """Quantisation error is at most half a step of the companded scale, mapped back."""
    mu = 255
    x = np.linspace(-1, 1, 200_001)
    err = np.abs(mulaw_decode(mulaw_encode(x)) - x)
    # Half a step in the companded domain is 1/mu; dF^-1/dy = ln(1+mu)(1+mu)^|y|/mu ≤ ln(256)·256/255.
    bound = (1 / mu) * math.log(1 + mu) * (1 + mu) / mu
    assert err.max() <= bound + 1e-6, err.max()
    # Pointwise: half a step (1/mu in y) times the slope of the decoder where x lies, so the
    # error near silence is far smaller than near full scale.
    y = np.log1p(mu * np.abs(x)) / np.log1p(mu) + 1 / mu
    local = (1 / mu) * math.log(1 + mu) * (1 + mu) ** y / mu
    assert (err <= local + 1e-7).all()
    assert err[np.abs(x) < 0.01].max() < 4e-4 < 4e-3 < err[np.abs(x) > 0.9].max()
    torch_err = (mulaw_decode(mulaw_encode(torch.from_numpy(x).float())) - torch.from_numpy(x).float()).abs()
    assert torch_err.max().item() <= bound + 1e-5
