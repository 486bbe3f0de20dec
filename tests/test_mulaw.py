"""μ-law companding against the formula in the issue, on numpy and torch inputs."""

import math
from decimal import ROUND_FLOOR, Decimal, localcontext

import numpy as np
import pytest
import torch

from wavegen import mulaw_decode, mulaw_encode
from wavegen.core import mulaw as mulaw_module


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


def exact_encode(x: float, channels: int) -> int:
    """The encoder's formula, floor(F(x)·μ/2 + (μ + 1)/2), in decimal arithmetic precise enough
    for every float, subnormals included: the true class of the float x."""
    mu = channels - 1
    with localcontext() as ctx:
        ctx.prec = 50
        d = max(min(Decimal(x), Decimal(1)), Decimal(-1))
        u = mu * abs(d)
        log1p = u - u * u / 2 + u**3 / 3 if u < Decimal("1e-20") else (1 + u).ln()  # ln(1 + u)
        f = log1p / Decimal(1 + mu).ln()
        g = (f if d >= 0 else -f) * mu / 2
        ctx.prec = 1000  # the sum is exact: no rounding up to the next class
        return int((g + Decimal(mu + 1) / 2).to_integral_value(rounding=ROUND_FLOOR))


def near_bin_edges(channels: int, dtype) -> np.ndarray:
    """The ``dtype`` values around every bin edge F⁻¹(2(k − ½)/μ − 1): the nearest and 3 each side."""
    mu = channels - 1
    out = []
    with localcontext() as ctx:
        ctx.prec = 50
        for k in range(1, mu + 1):
            y = Decimal(2 * k - 1 - mu) / mu
            edge = ((abs(y) * Decimal(1 + mu).ln()).exp() - 1) / mu
            below = above = dtype(float(edge if y >= 0 else -edge))
            out.append(below)
            for _ in range(3):
                below, above = np.nextafter(below, dtype(-2)), np.nextafter(above, dtype(2))
                out += [below, above]
    return np.array(out, dtype=dtype)


@pytest.mark.parametrize("channels", [256, 65])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_encode_is_exact_at_the_bin_edges_on_numpy_and_torch(channels, dtype):
    """At the edges rounding F in float32 (the old torch path) picked the wrong class."""
    xs = near_bin_edges(channels, dtype)
    expected = np.array([exact_encode(float(x), channels) for x in xs])
    assert len(np.unique(expected)) == channels  # the probes straddle every edge
    np.testing.assert_array_equal(mulaw_encode(xs, channels), expected)
    np.testing.assert_array_equal(mulaw_encode(torch.from_numpy(xs), channels).numpy(), expected)


def test_edges_first_computed_under_flush_to_zero_are_still_exact():
    """The trainer turns on flush-to-zero / denormals-are-zero and encodes its data there; the
    edges it caches must not read subnormals as 0 (they once misclassified every negative
    subnormal input as class 128 for the rest of the process)."""
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    assert tiny > 0.0
    mulaw_module._edges.cache_clear()
    mulaw_module._edges_on.cache_clear()
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        assert np.float32(tiny) * np.float32(1.0) == 0.0  # the mode is really on
        mulaw_encode(np.zeros(1, np.float32))
        mulaw_encode(np.zeros(1, np.float64))
    finally:
        torch.set_flush_denormal(False)
    xs = np.array([-tiny, -1e-40, 0.0, tiny, 1e-40], np.float32)
    np.testing.assert_array_equal(mulaw_encode(xs), [127, 127, 128, 128, 128])
    np.testing.assert_array_equal(mulaw_encode(xs.astype(np.float64)), [127, 127, 128, 128, 128])
    np.testing.assert_array_equal(mulaw_encode(torch.from_numpy(xs)).numpy(), [127, 127, 128, 128, 128])
    for channels in (256, 65):
        probes = near_bin_edges(channels, np.float32)
        expected = [exact_encode(float(x), channels) for x in probes]
        np.testing.assert_array_equal(mulaw_encode(probes, channels), expected)


def test_numpy_and_torch_agree_on_a_million_random_samples():
    rng = np.random.default_rng(1)
    x32 = np.concatenate([rng.uniform(-1, 1, 1_000_000), rng.uniform(-0.01, 0.01, 200_000)])
    x32 = x32.astype(np.float32)
    got_np = mulaw_encode(x32)
    np.testing.assert_array_equal(mulaw_encode(torch.from_numpy(x32)).numpy(), got_np)
    np.testing.assert_array_equal(mulaw_encode(torch.from_numpy(x32).double()).numpy(), got_np)
    np.testing.assert_array_equal(mulaw_encode(x32.astype(np.float64)), got_np)
    half = torch.from_numpy(x32[:10_000]).to(torch.bfloat16)
    np.testing.assert_array_equal(mulaw_encode(half).numpy(), mulaw_encode(half.float().numpy()))
    sample = rng.choice(len(x32), 2000, replace=False)
    assert [exact_encode(float(v), 256) for v in x32[sample]] == got_np[sample].tolist()


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
