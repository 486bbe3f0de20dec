"""``wavegen bench`` at toy size: the JSON it prints, its errors, and an honest baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.helpers import save_model_run
from wavegen.bench import BENCH_CONFIG, resolve_config
from wavegen.bench.peer import PeerEMA, PeerWaveNet, naive_generate, peer_train_step
from wavegen.cli import main
from wavegen.core.config import ModelConfig
from wavegen.model import WaveNet

TINY_RECIPE = """\
audio: {preset: tacotron2}
model: {layers: 2, stacks: 1, residual_channels: 8, gate_channels: 8, skip_channels: 8,
        quantize_channels: 32, n_speakers: -1}
"""


def test_bench_config_is_the_issues_model():
    name, config, rate = resolve_config("bench")
    assert (name, rate) == ("bench", 22050)
    assert config is BENCH_CONFIG
    model = WaveNet(config)
    assert [ly.dilation for ly in model.layers] == [2**i for i in range(6)] * 4
    assert (config.kernel_size, config.residual_channels, config.gate_channels) == (3, 64, 128)
    assert (config.skip_channels, config.quantize_channels, config.n_speakers) == (64, 256, 0)
    assert model.hop_length == 256 and config.cin_channels == 80
    assert 1.0e6 < model.num_params() < 1.2e6  # "about 1.1 M parameters"


def test_bench_prints_one_json_object(tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    with pytest.raises(SystemExit) as exit_info:  # typer's standalone mode exits with 0
        main(
            [
                "bench",
                "--json",
                "--config",
                str(recipe),
                "--seconds",
                "0.05",
                "--batch",
                "1,2",
                "--baseline-samples",
                "16",
                "--train-steps",
                "1",
                "--big-config",
                str(recipe),
                "--big-seconds",
                "0.02",
            ]
        )
    assert not exit_info.value.code
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    result = json.loads(out)
    _, config, rate = resolve_config(str(recipe))
    assert config.n_speakers == 0  # -1 (auto) resolved for the benchmark
    assert result["params"] == WaveNet(config).num_params()
    assert result["device"] == "cpu" and result["torch"] == torch.__version__
    assert isinstance(result["threads"], int) and result["threads"] >= 1
    assert result["train_precision"] in ("fp32", "bf16")
    by_precision = result["train_samples_per_s_by_precision"]
    assert set(by_precision) == {"fp32", "bf16"} and all(v > 0 for v in by_precision.values())
    assert result["train_samples_per_s"] == by_precision[result["train_precision"]]
    peer = result["baseline_train_samples_per_s"]
    assert peer > 0
    assert result["train_speedup_vs_baseline"]["fp32"] == pytest.approx(by_precision["fp32"] / peer, abs=0.01)
    speeds = result["generate_samples_per_s"]
    assert set(speeds) == {"1", "2"} and all(v > 0 for v in speeds.values())
    for b, v in speeds.items():
        assert result["realtime_factor"][b] == pytest.approx(v / rate, rel=1e-2, abs=1e-3)
    assert set(result["baseline_generate_samples_per_s"]) == {"1"}
    # Every CPU kernel that runs here is measured in the same run; auto's pick is the headline.
    by_backend = result["generate_samples_per_s_by_backend"]
    assert result["backend"] in ("cpp", "numba", "cpp-bf16") and by_backend[result["backend"]] == speeds
    assert result["precision"] == ("bf16" if result["backend"] == "cpp-bf16" else "fp32")
    assert "numba" in by_backend and set(by_backend["numba"]) == {"1", "2"}
    assert result["kernels"]["numba"]["prepare_s"] >= 0
    if "cpp" in by_backend:
        ratio = result["numba_vs_cpp"]["2"]
        assert ratio == pytest.approx(by_backend["numba"]["2"] / by_backend["cpp"]["2"], abs=1e-3)
    else:
        assert "error" in result["kernels"]["cpp"]
    # The reduced-precision kernel in the same run, its threading at batch 1, and the big model.
    if "cpp-bf16" in by_backend:
        fp32 = "cpp" if "cpp" in by_backend else "numba"
        assert result["bf16_vs_fp32"]["1"] == pytest.approx(
            by_backend["cpp-bf16"]["1"] / by_backend[fp32]["1"], abs=1e-3
        )
        assert result["bf16_cpu_level"] in ("scalar", "avx2", "avx512")
        threads = result["bf16_threads"]
        assert threads["barrier_us"] > 0 and 0 <= threads["batch1_team_barrier_share"] < 1
        assert set(threads["batch1_samples_per_s"]) == {"1 thread", "team of 2"}
        assert set(threads["batch8_samples_per_s"]) == {"row split", "team of 2"}
        big = result["big_model"]
        assert set(big["samples_per_s_by_backend"]) == {fp32, "cpp-bf16"}
        for backend, rates in big["samples_per_s_by_backend"].items():
            assert set(rates) == {"1", "32"} and all(v > 0 for v in rates.values())
            assert big["realtime_factor_by_backend"][backend]["32"] == pytest.approx(
                rates["32"] / rate, rel=1e-2
            )
    for backend, rates in by_backend.items():
        assert result["realtime_factor_by_backend"][backend]["1"] == pytest.approx(
            rates["1"] / rate, rel=1e-2, abs=1e-3
        )
    assert result["torch_step_samples_per_s"] > 0
    assert result["torch_step_slowdown"] == pytest.approx(
        speeds["1"] / result["torch_step_samples_per_s"], rel=0.01
    )
    assert result["peak_memory_mb"] > 0
    assert result["stream_first_chunk_ms"] > 0 and result["stream_chunk_samples"] == 4096


@pytest.mark.parametrize(
    "args,message",
    [
        (["--config", "no-such-recipe.yaml"], "expected 'bench' or the path of a recipe"),
        (["--batch", "1,x"], "--batch"),
        (["--seconds", "0"], "--seconds"),
        (["--seconds", "nan"], "--seconds nan: expected"),
        (["--batch", ",,"], "--batch: expected comma-separated integers"),
        (["--batch", "99999999999"], "--batch 99999999999: expected"),
        (["--seconds", "100000"], "--seconds 100000 at batch 32:"),
        (["--baseline-samples", "-1"], "--baseline-samples -1: expected"),
        (["--codec", "/nonexistent", "--codec-audio", "AUDIO"], "/nonexistent: no such checkpoint"),
        (["--codec", "RUN", "--codec-audio", "/nonexistent.wav"], "/nonexistent.wav: no such audio file"),
    ],
)
def test_bench_bad_options_are_one_line_errors_before_any_work(args, message, capsys, monkeypatch, tmp_path):
    """Every argument is checked before the benchmark starts: `--batch 99999999999` was an
    internal error, and a bad --codec came after a minute of generation and training."""
    from tests.test_codec import codec_model
    from wavegen.bench import measure

    def no_work(*args, **kwargs):
        raise AssertionError("the benchmark ran before its arguments were checked")

    monkeypatch.setattr(measure, "_run", no_work)
    if "RUN" in args:
        save_model_run(tmp_path / "run", codec_model())
    sf.write(tmp_path / "a.wav", np.zeros(2205, np.float32), 22050)
    args = [
        str(tmp_path / "run") if a == "RUN" else str(tmp_path / "a.wav") if a == "AUDIO" else a for a in args
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--json", *args])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err


def test_naive_baseline_is_a_faithful_wavenet():
    """The baseline does the real work: fed the true samples it gives the forward's logits."""
    torch.manual_seed(0)
    config = ModelConfig(
        quantize_channels=32,
        layers=4,
        stacks=2,
        residual_channels=8,
        gate_channels=8,
        skip_channels=8,
        cin_channels=8,
        upsample_scales=[2, 2],
        n_speakers=2,
        gin_channels=3,
    )
    model = WaveNet(config).eval()
    audio, mel, speaker = torch.randint(0, 32, (2, 24)), torch.randn(2, 8, 6), torch.tensor([1, 0])
    logits = naive_generate(model, mel, 24, speaker, forced=audio)
    with torch.no_grad():
        ref = model(audio, model.pad_mel(mel), speaker)
    assert (logits - ref).abs().max().item() < 1e-4
    sampled = naive_generate(model, mel, 24, speaker, seed=1)
    assert sampled.shape == (2, 24) and int(sampled.min()) >= 0 and int(sampled.max()) < 32


def _copy_into_peer(model: WaveNet, peer: PeerWaveNet) -> None:
    """Give the peer ``model``'s weights (weight norm takes them through its right inverse)."""
    with torch.no_grad():
        peer.first_conv.weight = model.embed.weight.t()[:, :, None]
        peer.first_conv.bias.zero_()
        for ly, pl in zip(model.layers, peer.layers, strict=True):
            pl.conv.weight, pl.conv.bias.data = ly.conv.weight.clone(), ly.conv.bias.clone()
            for name in ("out", "skip"):
                mine, theirs = getattr(ly, name), getattr(pl, name)
                theirs.weight, theirs.bias.data = mine.weight.clone(), mine.bias.clone()
        for mine, theirs in ((model.post_hidden, peer.post[1]), (model.post_logits, peer.post[3])):
            theirs.weight, theirs.bias.data = mine.weight.clone(), mine.bias.clone()


def test_peer_training_model_is_a_faithful_wavenet():
    """The peer's training step does the real work: with the same weights (and dropout off) its
    outputs are wavegen's logits one step earlier, and its step lowers the loss."""
    torch.manual_seed(0)
    config = ModelConfig(
        quantize_channels=32,
        layers=4,
        stacks=2,
        residual_channels=8,
        gate_channels=8,
        skip_channels=8,
        cin_channels=0,
        n_speakers=0,
    )
    model, peer = WaveNet(config).eval(), PeerWaveNet(config).eval()
    _copy_into_peer(model, peer)
    audio = torch.randint(0, 32, (2, 40))
    onehot = torch.nn.functional.one_hot(audio, 32).transpose(1, 2).float()
    with torch.no_grad():
        ours, theirs = model(audio), peer(onehot, None)
    rf = model.receptive_field  # before that, wavegen sees its start class and the peer zeros
    torch.testing.assert_close(theirs[:, :, rf:-1], ours[:, :, rf + 1 :], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(theirs[:, :, rf:-1], ours[:, :, rf:-1])  # the alignment matters

    mel_config = ModelConfig(
        quantize_channels=32,
        layers=4,
        stacks=2,
        residual_channels=8,
        gate_channels=8,
        skip_channels=8,
        cin_channels=8,
        cin_pad=2,
        upsample_scales=[2, 2],
        n_speakers=0,
    )
    peer = PeerWaveNet(mel_config).train()
    audio = (torch.arange(64) % 8 * 4).repeat(2, 1)  # a learnable sawtooth
    mel = torch.randn(2, 8, 16 + 4)
    onehot = torch.nn.functional.one_hot(audio, 32).transpose(1, 2).float()
    assert peer.upsampler(mel).shape == (2, 8, 64)
    optimizer, ema = torch.optim.Adam(peer.parameters(), lr=3e-3), PeerEMA(peer)
    losses = [peer_train_step(peer, optimizer, ema, onehot, audio, mel) for _ in range(30)]
    assert losses[-1] < losses[0] - 0.5, losses
    assert not torch.equal(ema.shadow["first_conv.bias"], peer.first_conv.bias)
