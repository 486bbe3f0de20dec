"""WaveNet: causality, receptive field, conditioning, upsampling, and that it can learn."""

import math

import pytest
import torch
import torch.nn.functional as F

from wavegen import ModelConfig, WaveNet
from wavegen.bench import BENCH_CONFIG
from wavegen.core.errors import WavegenError
from wavegen.model import Upsampler


def tiny(kernel_size=3, cin=8, speakers=0, **kw) -> WaveNet:
    cfg = ModelConfig(
        layers=6,
        stacks=2,
        kernel_size=kernel_size,
        residual_channels=8,
        gate_channels=16,
        skip_channels=8,
        cin_channels=cin,
        cin_pad=2,
        upsample_scales=[2, 4],
        n_speakers=speakers,
        gin_channels=4,
        quantize_channels=kw.pop("quantize_channels", 256),
        **kw,
    )
    torch.manual_seed(0)
    return WaveNet(cfg).double()


def inputs(model: WaveNet, batch=2, frames=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    T = frames * model.hop_length if model.config.cin_channels else 96
    audio = torch.randint(0, model.config.quantize_channels, (batch, T), generator=g)
    cin = model.config.cin_channels
    mel = torch.randn(batch, cin, frames + 2 * model.config.cin_pad, generator=g).double() if cin else None
    spk = torch.arange(batch) % model.config.n_speakers if model.config.n_speakers else None
    return audio, mel, spk


def _forward_onehot(model, onehot, mel, spk):
    """Forward with a differentiable one-hot input (same shift as WaveNet.forward)."""
    B = onehot.shape[0]
    start = F.one_hot(torch.full((B, 1), model.start_class), model.config.quantize_channels).double()
    x = (torch.cat([start, onehot[:, :-1]], 1) @ model.embed.weight).transpose(1, 2)
    c = model.upsample(mel) if mel is not None else None
    g = model.speaker_vector(spk)
    skips = 0
    for layer in model.layers:
        x, s = layer(x, c, g)
        skips = skips + s
    return model.head(skips * math.sqrt(1.0 / len(model.layers)))


def dependence(model, audio, mel, spk, t):
    onehot = F.one_hot(audio, model.config.quantize_channels).double().requires_grad_(True)
    out = _forward_onehot(model, onehot, mel, spk)
    out[:, :, t].sum().backward()
    return onehot.grad.abs().sum(-1)  # (B, T)


def test_onehot_forward_is_the_model_forward():
    model = tiny(speakers=3)
    audio, mel, spk = inputs(model)
    onehot = F.one_hot(audio, 256).double()
    torch.testing.assert_close(_forward_onehot(model, onehot, mel, spk), model(audio, mel, spk))


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("cin,speakers", [(0, 0), (8, 0), (8, 3)])
def test_causal_by_gradient(kernel_size, cin, speakers):
    model = tiny(kernel_size, cin, speakers)
    audio, mel, spk = inputs(model)
    T = audio.shape[1]
    for t in [0, 1, 17, T // 2, T - 1]:
        grad = dependence(model, audio, mel, spk, t)
        assert grad[:, t:].abs().max() == 0, f"output {t} depends on inputs at >= t"
        if t > 0:
            assert grad[:, t - 1].min() > 0, "output must depend on the previous sample"


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_causal_by_perturbation(kernel_size):
    model = tiny(kernel_size, cin=8, speakers=2)
    audio, mel, spk = inputs(model)
    base = model(audio, mel, spk)
    t = 40
    changed = audio.clone()
    changed[:, t:] = torch.randint(0, 256, changed[:, t:].shape)
    out = model(changed, mel, spk)
    assert torch.equal(out[:, :, : t + 1], base[:, :, : t + 1])  # t itself only sees < t
    assert not torch.allclose(out[:, :, t + 1 :], base[:, :, t + 1 :])


@pytest.mark.parametrize("kernel_size,layers,stacks", [(2, 6, 2), (3, 6, 2), (3, 8, 1), (2, 5, 5)])
def test_receptive_field_reported_equals_measured(kernel_size, layers, stacks):
    cfg = ModelConfig(
        layers=layers,
        stacks=stacks,
        kernel_size=kernel_size,
        residual_channels=4,
        gate_channels=8,
        skip_channels=4,
        cin_channels=0,
    )
    torch.manual_seed(0)
    model = WaveNet(cfg).double()
    T = model.receptive_field + 40
    audio = torch.randint(0, 256, (1, T))
    t = T - 1
    grad = dependence(model, audio, None, None, t)[0]
    seen = torch.nonzero(grad).flatten()
    measured = t - seen.min().item()  # number of past samples t depends on
    assert seen.max().item() == t - 1
    assert measured == model.receptive_field
    per_stack = layers // stacks
    assert model.receptive_field == 1 + (kernel_size - 1) * stacks * (2**per_stack - 1)


def test_bench_sized_model_receptive_field_and_params():
    model = WaveNet(BENCH_CONFIG)
    assert model.receptive_field == 1 + 2 * 4 * 63
    assert 1.0e6 < model.num_params() < 1.2e6


def test_local_conditioning_changes_output():
    model = tiny(cin=8)
    audio, mel, _ = inputs(model)
    a = model(audio, mel)
    b = model(audio, mel + 0.5)
    assert (a - b).abs().max() > 1e-3


def test_global_conditioning_changes_output():
    model = tiny(cin=8, speakers=3)
    audio, mel, _ = inputs(model)
    a = model(audio, mel, torch.tensor([0, 0]))
    b = model(audio, mel, torch.tensor([1, 2]))
    assert (a - b).abs().max() > 1e-3
    with pytest.raises(WavegenError, match="speaker"):
        model(audio, mel, None)


@pytest.mark.parametrize("scales,pad", [([4, 4, 4, 4], 2), ([3, 4, 5, 5], 2), ([2, 4], 0)])
@pytest.mark.parametrize("frames", [1, 7, 33])
def test_upsampler_yields_exactly_frames_times_hop(scales, pad, frames):
    up = Upsampler(5, scales, pad)
    out = up(torch.randn(2, 5, frames + 2 * pad))
    assert out.shape == (2, 5, frames * math.prod(scales))


def test_upsampled_conditioning_is_local():
    """Changing frame f only changes samples near f·hop (the upsampler's context is bounded)."""
    torch.manual_seed(0)
    up = Upsampler(3, [4, 4], cin_pad=2).double()
    mel = torch.randn(1, 3, 40 + 4).double()
    base = up(mel)
    changed = mel.clone()
    changed[..., 20 + 2] += 1.0  # frame 20 of the utterance
    diff = (up(changed) - base).abs().sum(1)[0]
    touched = torch.nonzero(diff > 0).flatten()
    hop, reach = 16, (2 + Upsampler.stage_context_frames) * 16
    assert touched.min() >= 20 * hop - reach and touched.max() < 21 * hop + reach


def test_mel_length_mismatch_is_a_clear_error():
    model = tiny(cin=8)
    audio, mel, _ = inputs(model)
    with pytest.raises(WavegenError, match="frames"):
        model(audio, mel[..., :-1])


def test_mel_stats_buffers_normalise_and_are_saved():
    model = tiny(cin=8)
    audio, mel, _ = inputs(model)
    before = model(audio, mel)
    model.mel_mean.fill_(1.0)
    model.mel_std.fill_(2.0)
    torch.testing.assert_close(model(audio, mel * 2 + 1), before)
    assert {"mel_mean", "mel_std"} <= set(model.state_dict())


@pytest.mark.slow  # trains
def test_tiny_model_learns_a_periodic_signal():
    """A short periodic μ-law signal is learnt to a low loss within a few hundred steps."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        layers=6,
        stacks=1,
        kernel_size=2,
        residual_channels=16,
        gate_channels=32,
        skip_channels=32,
        cin_channels=0,
    )
    model = WaveNet(cfg)
    period = 25
    t = torch.arange(1024)
    wave = 0.6 * torch.sin(2 * math.pi * t / period) + 0.2 * torch.sin(6 * math.pi * t / period)
    from wavegen import mulaw_encode

    target = mulaw_encode(wave)[None]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        loss = F.cross_entropy(model(target), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 5.0  # ≈ ln 256 at the start
    final = sum(losses[-10:]) / 10
    assert final < 0.3, final


def reference_stretch(up: Upsampler, c: torch.Tensor) -> torch.Tensor:
    """The upsampler's definition: nearest ×s, then a zero-padded (1, 2s+1) conv, per stage."""
    B, C, _ = c.shape
    c = c.reshape(B * C, 1, 1, -1)
    for s, conv in zip(up.scales, up.stages):
        c = F.conv2d(F.interpolate(c, scale_factor=(1, s), mode="nearest"), conv.weight, padding=(0, s))
    return c.reshape(B, C, -1)


@pytest.mark.parametrize("scales", [[4, 4, 4, 4], [3, 4, 5, 5], [2]])
def test_polyphase_stretch_equals_stretch_then_conv_with_gradients(scales):
    torch.manual_seed(0)
    up = Upsampler(3, scales, cin_pad=0).double()
    for conv in up.stages:  # not a box filter, so every tap matters
        conv.weight.data.uniform_(-1, 1)
    c = torch.randn(2, 3, 7, dtype=torch.double, requires_grad=True)
    fast, ref = up.stretch(c), reference_stretch(up, c)
    torch.testing.assert_close(fast, ref)
    g = torch.randn_like(ref)
    grads_fast = torch.autograd.grad(fast, [c, *up.parameters()], g)
    grads_ref = torch.autograd.grad(reference_stretch(up, c), [c, *up.parameters()], g)
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b)


def test_upsampler_trains_after_inference_mode_use():
    """The cached polyphase map must not become an inference tensor (it is built lazily)."""
    from wavegen.model import upsample

    upsample._phase_matrix.cache_clear()
    up = Upsampler(3, [3, 2], cin_pad=1)
    with torch.inference_mode():
        up(torch.randn(1, 3, 6))
    up(torch.randn(1, 3, 6)).sum().backward()
    assert up.stages[0].weight.grad is not None


# ---- the time-major matmul path (mixed-precision training) ---------------------------------
@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("cin,speakers", [(0, 0), (8, 0), (8, 3)])
def test_time_major_path_is_the_conv_path_with_gradients(kernel_size, cin, speakers):
    model = tiny(kernel_size, cin=cin, speakers=speakers)
    audio, mel, spk = inputs(model)
    target = torch.randn(2, 256, audio.shape[1], dtype=torch.float64)
    results = []
    for dtype in (None, torch.float64):  # convolutions, then time-major matmuls, both in float64
        model.zero_grad()
        logits = model(audio, mel, spk, dtype=dtype)
        (logits * target).sum().backward()
        # (The last layer's residual output is unused: no gradient, or a zero one when fused.)
        grads = {
            n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in model.named_parameters()
        }
        results.append((logits, grads))
    (conv, conv_grads), (tm, tm_grads) = results
    assert tm.shape == conv.shape
    torch.testing.assert_close(tm, conv, rtol=0, atol=1e-12)
    for name, grad in conv_grads.items():
        torch.testing.assert_close(tm_grads[name], grad, rtol=1e-9, atol=1e-12, msg=name)


def test_bf16_path_is_close_to_fp32_and_causal():
    model = tiny(speakers=3).float()
    audio, mel, spk = inputs(model, frames=16)
    mel = mel.float()
    full = model(audio, mel, spk)
    half = model(audio, mel, spk, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    err = (half.float() - full).abs().max() / full.abs().max()
    assert err < 0.03, err  # bf16 keeps 8 bits of mantissa: about 0.4% per rounding
    t = audio.shape[1] // 2
    changed = audio.clone()
    changed[:, t:] = (changed[:, t:] + 77) % 256
    after = model(changed, mel, spk, dtype=torch.bfloat16)
    assert torch.equal(after[..., : t + 1], half[..., : t + 1])  # logits at ≤ t see samples < t
    assert not torch.equal(after[..., t + 1], half[..., t + 1])
