"""The reduced-precision CPU kernel ``cpp-bf16``: its arithmetic against the fp32 forward pass and
a bf16-aware reference, its instruction-set paths and threading against each other (bit for bit),
and how precision "auto" picks it by CPU feature (a CPU without the instructions is simulated by
capping the level with $WAVEGEN_CPU_LEVEL)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wavegen.core.errors import WavegenError
from wavegen.generation import Sampler, backends, generate, teacher_forced_logits
from wavegen.generation.kernel_bf16 import LEVELS, Bf16Runner, bf16_round, pack_pairs

from .test_generate import small_model

needs_bf16 = pytest.mark.skipif(
    backends.get_kernel("cpp-bf16") is None, reason="no C++ compiler builds the cpp-bf16 kernel here"
)
pytestmark = needs_bf16

# bf16 keeps 8 significant bits: rounding to nearest moves a weight by at most u = 2^-8 of
# itself (half its spacing 2^-7).
U_BF16 = 2.0**-8


def _inputs(model, batch=2, frames=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    T = frames * model.hop_length
    audio = torch.randint(0, model.config.quantize_channels, (batch, T), generator=gen)
    mel = torch.randn(batch, model.config.cin_channels, frames, generator=gen)
    return audio, mel


def _levels_here() -> list[str]:
    """The instruction-set levels this CPU runs (the cap can only lower the detected one)."""
    lib = backends.get_kernel("cpp-bf16").handle
    return list(LEVELS[: int(lib.wg_lp_cpu_level()) + 1])


def test_pack_pairs_rounds_to_nearest_bf16_two_rows_per_word():
    w = torch.randn(6, 5)
    words = pack_pairs(w).to(torch.int64) & 0xFFFFFFFF  # (3, 5)
    lo = ((words & 0xFFFF) << 16).to(torch.int32).view(torch.float32)
    hi = (words & 0xFFFF0000).to(torch.int32).view(torch.float32)
    assert torch.equal(lo, bf16_round(w[0::2])) and torch.equal(hi, bf16_round(w[1::2]))
    assert (bf16_round(w) - w).abs().le(U_BF16 * w.abs()).all()


def test_kernel_equals_the_step_with_bf16_weights_to_fp32_rounding():
    """The kernel is the torch step with the four weight matrices rounded to bf16: what is left
    is fp32 rounding of the sums (fused or not, another order), ~K·2^-24 of a product's
    magnitude for K ≤ 48 terms here, through 6 layers: 1e-5 of the logits' range allows 40x that."""
    model = small_model()
    audio, mel = _inputs(model)
    ref = Sampler(
        model, mel, num_samples=audio.shape[1], temperature=0, forced=audio, keep_logits=True, backend="torch"
    )
    w = ref.weights
    for name in ("conv_w", "os_w", "post1_w", "post2_w"):
        setattr(w, name, bf16_round(getattr(w, name)))
    _, expected = ref.run(ref.remaining)
    got = teacher_forced_logits(model, audio, mel, precision="bf16", chunk=128).transpose(1, 2)
    delta = (got - expected).abs().max().item()
    assert delta < 1e-5 * expected.abs().max().item(), delta


def test_kernel_against_the_fp32_forward_pass_within_bf16_rounding():
    """Against the fp32 forward pass the difference is bf16's: with every weight within u = 2^-8
    of itself, each product moves by at most u of Σ|w·x|; the logits' error, measured relative
    to their range, stays within a small multiple of u (6 layers, residual sums scaled by √½):
    allowed 4u. The fp32 kernel on the same input is within 1e-5 (float rounding only), so the
    test tells the two kinds of error apart."""
    model = small_model()
    audio, mel = _inputs(model)
    forward = model(audio, model.pad_mel(mel))  # (B, Q, T)
    scale = forward.abs().max().item()
    fp32 = teacher_forced_logits(model, audio, mel, backend="cpp")
    bf16 = teacher_forced_logits(model, audio, mel, precision="bf16")
    assert (fp32 - forward).abs().max().item() < 1e-5 * scale
    delta = (bf16 - forward).abs().max().item()
    assert delta < 4 * U_BF16 * scale, (delta / scale, U_BF16)
    assert delta > 1e-5 * scale  # the weights really are bf16: it is not the fp32 kernel
    # Teacher-forced agreement where it scores: the per-sample NLL moves by far less than a bit.
    nll = [F.cross_entropy(x, audio, reduction="none") for x in (forward, bf16)]
    assert (nll[0] - nll[1]).abs().mean().item() < 4 * U_BF16 * scale


def test_instruction_sets_threads_and_splits_compute_the_same_bits(monkeypatch):
    """AVX-512, AVX2+FMA and the scalar std::fma path, one thread, a team of two on one row and
    threads splitting rows: the same logits and the same sampled audio, bit for bit (generate's
    auto split at batch 1 probes a team and one thread, cutting the call: 600 steps)."""
    model = small_model()
    audio, mel = _inputs(model, batch=1, frames=75)
    kernel = backends.get_kernel("cpp-bf16")
    results = []
    for level in _levels_here():
        monkeypatch.setenv("WAVEGEN_CPU_LEVEL", level)
        for threads, split in ((1, "rows"), (2, "team"), (2, "rows")):
            s = Sampler(model, mel, num_samples=audio.shape[1], temperature=0, forced=audio, keep_logits=True,
                        backend="cpp-bf16", threads=threads, chunk=512)  # fmt: skip
            s._runner = Bf16Runner(kernel.handle, s.weights, split=split)
            assert s._runner.level == LEVELS.index(level)
            _, logits = s.run(s.remaining)
            wav = generate(model, mel, seed=3, precision="bf16", threads=threads)
            results.append((level, threads, split, logits, wav))
    for level, threads, split, logits, wav in results[1:]:
        assert torch.equal(logits, results[0][3]), (level, threads, split)
        assert torch.equal(wav, results[0][4]), (level, threads, split)


def test_a_row_is_the_same_alone_or_in_a_ragged_batch():
    """Rows never interact (row blocks of 4, 2 or 1 round alike), so compaction stays exact
    (argmax: no random numbers, so a row alone makes the same choices)."""
    model = small_model()
    _, mel = _inputs(model, batch=5, frames=9, seed=4)
    lengths = torch.tensor([9, 3, 7, 9, 5])
    wav = generate(model, mel, temperature=0, lengths=lengths, precision="bf16", threads=2)
    for b in (1, 4):
        n = int(lengths[b])
        one = generate(model, mel[b : b + 1, :, :n], temperature=0, precision="bf16", threads=1)
        assert torch.equal(one[0], wav[b, : n * model.hop_length])


def test_auto_precision_follows_the_cpu_features(monkeypatch):
    """auto is bf16 where cpp-bf16 has a vector path (AVX2+FMA or AVX-512), fp32 on a CPU
    without them (simulated: level capped to scalar) or when $WAVEGEN_KERNEL names an fp32 kernel."""
    model = small_model()
    _, mel = _inputs(model, batch=1)
    monkeypatch.delenv("WAVEGEN_KERNEL", raising=False)
    for level in _levels_here():
        monkeypatch.setenv("WAVEGEN_CPU_LEVEL", level)
        want = "fp32" if level == "scalar" else "bf16"
        assert backends.default_precision() == want
        s = Sampler(model, mel, precision="auto")
        assert (s.precision, s.backend) == (
            want,
            "cpp-bf16" if want == "bf16" else backends.cpu_backend("fp32"),
        )
        # Asked for explicitly, bf16 runs on any CPU: the scalar path is its exact emulation.
        assert Sampler(model, mel, precision="bf16").backend == "cpp-bf16"
    monkeypatch.delenv("WAVEGEN_CPU_LEVEL")
    monkeypatch.setenv("WAVEGEN_KERNEL", "cpp")
    assert backends.default_precision() == "fp32"
    assert Sampler(model, mel, precision="auto").backend == "cpp"
    monkeypatch.setenv("WAVEGEN_KERNEL", "cpp-bf16")
    assert Sampler(model, mel, precision="auto").backend == "cpp-bf16"


def test_precision_errors_are_one_line(monkeypatch):
    model = small_model()
    _, mel = _inputs(model, batch=1)
    with pytest.raises(WavegenError, match="precision must be one of auto, fp32, bf16"):
        Sampler(model, mel, precision="int4")
    with pytest.raises(WavegenError, match="precision bf16 runs on the CPU kernel cpp-bf16"):
        Sampler(model, mel, precision="bf16", backend="numba")
    monkeypatch.setenv("WAVEGEN_CPU_LEVEL", "avx1024")
    with pytest.raises(WavegenError, match=r"\$WAVEGEN_CPU_LEVEL: expected one of scalar, avx2, avx512"):
        Sampler(model, mel, precision="bf16").run(8)
