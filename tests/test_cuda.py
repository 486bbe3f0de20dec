"""GPU checks: the CUDA-graph sampler against the forward pass, a bf16 CUDA training step, DDP
over nccl, and `wavegen bench --device cuda`. Marked `cuda` and skipped without a GPU; on a GPU
machine run them (and the GPU bench) with the README's one command:

    python -m pytest -m cuda && wavegen bench --device cuda --batch 1,8,32,256 --json
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import make_feature_cache, write_recipe
from tests.test_generate import reference_logits, small_model
from wavegen.bench import run_bench
from wavegen.generation import Sampler, cuda_graph, generate, teacher_forced_logits
from wavegen.training import optimization_step
from wavegen.training.precision import compute_dtype, resolve_precision

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run with -m cuda on one)"),
]
TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture(autouse=True)
def exact_float32():
    """No TF32 in the reference forward pass (cuDNN convs use it by default): compare fp32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _ragged_case(kernel_size=3, cin=8, speakers=3, seed=1):
    """A small model on the GPU and a ragged teacher-forcing batch (CPU tensors)."""
    model = small_model(kernel_size, cin, speakers).cuda()
    lengths = [9, 4, 7]  # frames of hop 8: 72, 32 and 56 samples
    torch.manual_seed(seed)
    audio = torch.randint(0, 64, (3, 9 * model.hop_length))
    mel = torch.randn(3, cin, 9) if cin else None
    speaker = torch.tensor([2, 0, 1]) if speakers else None
    return model, audio, mel, speaker, lengths


@pytest.mark.parametrize("kernel_size,cin,speakers", [(2, 8, 0), (3, 8, 3), (3, 0, 3)])
def test_cuda_graph_teacher_forcing_matches_forward(kernel_size, cin, speakers):
    model, audio, mel, speaker, lengths = _ragged_case(kernel_size, cin, speakers)
    ragged = torch.tensor(lengths) if cin else None
    got = teacher_forced_logits(model, audio, mel, speaker, ragged, backend="cuda-graph", chunk=40)
    cuda = lambda t: None if t is None else t.cuda()  # noqa: E731
    refs = reference_logits(
        model, audio.cuda(), cuda(mel), cuda(speaker), lengths if cin else [max(lengths)] * 3
    )
    for b, ref in enumerate(refs):
        delta = (got[b, :, : ref.shape[-1]] - ref).abs().max().item()
        assert delta <= 1e-4, (b, delta)


def test_cuda_graph_is_captured_again_when_rows_are_dropped(monkeypatch):
    """Compaction on the GPU: the graph replays static buffers, so each smaller batch is captured
    anew, and every row still equals the forward pass; without compaction one capture serves."""
    captures = []
    capture = cuda_graph.GraphRunner._capture

    def counting(self):
        captures.append(self.state.batch)
        capture(self)

    monkeypatch.setattr(cuda_graph.GraphRunner, "_capture", counting)
    model, audio, mel, speaker, lengths = _ragged_case()
    refs = reference_logits(model, audio.cuda(), mel.cuda(), speaker.cuda(), lengths)
    hop = model.hop_length
    for compact, batches in ((False, [3]), (True, [3, 2])):
        captures.clear()
        sampler = Sampler(
            model,
            mel,
            speaker,
            torch.tensor(lengths),
            forced=audio,
            keep_logits=True,
            backend="cuda-graph",
            chunk=40,
            compact=compact,
        )
        _, logits = sampler.run(audio.shape[1])
        assert captures == batches, (compact, captures)
        for b, ref in enumerate(refs):
            delta = (logits[b, : lengths[b] * hop].t() - ref).abs().max().item()
            assert delta <= 1e-4, (compact, b, delta)
            assert not logits[b, lengths[b] * hop :].any()


def test_cuda_graph_sampling_is_seeded_and_matches_the_eager_step():
    model, audio, mel, speaker, lengths = _ragged_case()
    ragged = torch.tensor(lengths)
    a = generate(model, mel, speaker, seed=5, lengths=ragged, backend="cuda-graph")
    b = generate(model, mel, speaker, seed=5, lengths=ragged, backend="cuda-graph")
    c = generate(model, mel, speaker, seed=6, lengths=ragged, backend="cuda-graph")
    assert a.is_cuda and torch.equal(a, b) and not torch.equal(a, c)
    assert not a[1, lengths[1] * model.hop_length :].any()
    graph = teacher_forced_logits(model, audio, mel, speaker, ragged, backend="cuda-graph", chunk=40)
    eager = teacher_forced_logits(model, audio, mel, speaker, ragged, backend="torch", chunk=40)
    assert (graph - eager).abs().max().item() <= 1e-5


def test_bf16_cuda_graph_is_close_to_fp32():
    model, audio, mel, speaker, _ = _ragged_case()
    ref = teacher_forced_logits(model, audio, mel, speaker, backend="cuda-graph", chunk=40)
    sampler = Sampler(
        model,
        mel,
        speaker,
        forced=audio,
        keep_logits=True,
        backend="cuda-graph",
        chunk=40,
        dtype=torch.bfloat16,
    )
    assert sampler.state.rings.dtype == torch.bfloat16
    _, logits = sampler.run(audio.shape[1])
    delta = (logits.transpose(1, 2) - ref).abs().max().item()
    assert delta < 0.02 * ref.abs().max().item(), delta
    audio_bf16 = generate(model, mel, speaker, seed=0, dtype=torch.bfloat16)
    assert audio_bf16.dtype == torch.float32 and torch.isfinite(audio_bf16).all()


def test_bf16_cuda_training_step_is_finite_and_close_to_fp32():
    model = small_model(3, cin=8, speakers=3).cuda().train()
    torch.manual_seed(2)
    audio = (torch.arange(256, device="cuda") % 8 * 8).repeat(4, 1)  # a learnable sawtooth
    mel = torch.randn(4, 8, 256 // model.hop_length + 2 * model.config.cin_pad, device="cuda")
    speaker = torch.tensor([0, 1, 2, 0], device="cuda")
    bf16 = compute_dtype("bf16", torch.device("cuda"))
    assert bf16 == torch.bfloat16
    with torch.no_grad():
        loss32 = torch.nn.functional.cross_entropy(model(audio, mel, speaker), audio).item()
        loss16 = torch.nn.functional.cross_entropy(
            model(audio, mel, speaker, dtype=bf16).float(), audio
        ).item()
    assert abs(loss16 - loss32) < 0.02 * loss32, (loss16, loss32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, grad_norm = optimization_step(model, optimizer, audio, mel, speaker, bf16, 1.0)
        assert torch.isfinite(loss) and torch.isfinite(grad_norm)
        losses.append(loss.item())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert losses[-1] < losses[0] - 1.0, losses


_DDP_STEP = """
import torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tests.test_generate import small_model
from wavegen.training import optimization_step

torch.cuda.set_device(0)
dist.init_process_group("nccl")
assert dist.get_backend() == "nccl" and dist.get_world_size() == 1
ones = torch.ones(3, device="cuda")
dist.all_reduce(ones)
assert ones.tolist() == [1.0, 1.0, 1.0]
model = small_model(3, cin=8, speakers=3).cuda().train()
plain = small_model(3, cin=8, speakers=3).cuda().train()  # same seed: the same weights
ddp = DistributedDataParallel(model, device_ids=[0])
torch.manual_seed(3)
audio = torch.randint(0, 64, (2, 128), device="cuda")
mel = torch.randn(2, 8, 128 // 8 + 4, device="cuda")
speaker = torch.tensor([1, 2], device="cuda")
# SGD: parameters move by lr x gradient, so the comparison below is not blurred by Adam
# amplifying the last bits of nondeterministic CUDA reductions.
opts = [torch.optim.SGD(m.parameters(), lr=1e-2) for m in (ddp, plain)]
for _ in range(3):
    a, _ = optimization_step(ddp, opts[0], audio, mel, speaker, torch.bfloat16, 1.0)
    b, _ = optimization_step(plain, opts[1], audio, mel, speaker, torch.bfloat16, 1.0)
worst = max((p - q).abs().max().item() for p, q in zip(model.parameters(), plain.parameters()))
assert worst < 1e-5, worst
dist.destroy_process_group()
print("ok", a.item(), b.item())
"""


@pytest.mark.skipif(not (TORCHRUN.exists() or shutil.which("torchrun")), reason="no torchrun")
def test_ddp_over_nccl_on_one_gpu_equals_the_plain_step(tmp_path):
    torchrun = str(TORCHRUN) if TORCHRUN.exists() else "torchrun"
    script = tmp_path / "ddp_step.py"
    script.write_text(_DDP_STEP)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    r = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=1", str(script)],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ok" in r.stdout


@pytest.mark.skipif(not (TORCHRUN.exists() or shutil.which("torchrun")), reason="no torchrun")
def test_wavegen_train_on_cuda_under_torchrun(tmp_path):
    """The documented launch (torchrun ... -m wavegen train --device cuda), at world size 1."""
    cache = make_feature_cache(tmp_path / "cache", n_utts=4, speakers=("a", "b"))
    write_recipe(
        tmp_path / "tiny.yaml",
        data={"batch_size": 4},
        train={"max_steps": 4, "checkpoint_interval": 100, "valid_interval": 2, "precision": "auto"},
    )
    torchrun = str(TORCHRUN) if TORCHRUN.exists() else "torchrun"
    r = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=1", "-m", "wavegen", "train", "tiny.yaml"]
        + ["--workdir", str(cache), "--device", "cuda", "--no-progress", "--run-dir", "run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    precision = resolve_precision("auto", torch.device("cuda"))  # bf16 where the GPU has it
    assert f"on cuda x1 in {precision}" in log and "| sampler cuda-graph" in log
    assert (tmp_path / "run" / "checkpoints" / "step_00000004.pt").is_file()


def test_bench_on_cuda_reports_the_graph_backend(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "audio: {preset: tacotron2}\nmodel: {layers: 2, stacks: 1, residual_channels: 8, "
        "gate_channels: 8, skip_channels: 8, quantize_channels: 32}\n"
    )
    result = run_bench(str(recipe), "cuda", batches=[1, 4], seconds=0.05, baseline_samples=16, train_steps=1)
    json.dumps(result)  # serialisable as printed
    assert result["device"] == torch.cuda.get_device_name() and result["backend"] == "cuda-graph"
    assert set(result["generate_samples_per_s_by_backend"]) == {"cuda-graph"}
    assert all(v > 0 for v in result["generate_samples_per_s"].values())
    assert result["train_precision"] == resolve_precision("auto", torch.device("cuda"))
    assert result["peak_memory_mb"] > 0
    assert "torch_step_slowdown" not in result and "numba_vs_cpp" not in result
