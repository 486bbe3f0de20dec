"""The μ-law codec: bit-exact round trips (real speech, edge cases, speakers), the decoder's
one-step-at-a-time arithmetic against the encoder's many-steps calls, the probability table,
and damaged or foreign files as one-line errors that leave no output.

The coded size against the model's −log2 P and the comparison with FLAC need a trained model:
see test_codec_trained.py.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.helpers import save_model_run
from wavegen.cli import main
from wavegen.codec import compress, decompress
from wavegen.codec.container import Container, parse
from wavegen.codec.probability import TABLE, probabilities
from wavegen.core.audio import read_audio
from wavegen.core.config import ModelConfig
from wavegen.core.errors import WavegenError
from wavegen.core.mulaw import mulaw_decode, mulaw_encode
from wavegen.generation import Sampler, backends
from wavegen.model import WaveNet

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
LJ_WAV = SHARED / "ljspeech-mini" / "wavs" / "LJ001-0008.wav"  # 1.78 s
needs_lj = pytest.mark.skipif(not LJ_WAV.is_file(), reason=f"shared corpora not found at {SHARED}")
SR = 22050
BACKENDS = ["torch", "cpp", "numba"]


def _backend_or_skip(backend: str) -> None:
    if backend in backends.CPU_KERNELS and backends.get_kernel(backend) is None:
        pytest.skip(f"the {backend} kernel cannot run here: {backends.kernel_error(backend)}")


def codec_model(speakers: int = 0, seed: int = 0) -> WaveNet:
    """A tiny unconditional (or speaker-only) model with sharp, far-from-uniform outputs."""
    torch.manual_seed(seed)
    config = ModelConfig(
        quantize_channels=256,
        layers=6,
        stacks=2,
        residual_channels=16,
        gate_channels=32,
        skip_channels=16,
        cin_channels=0,
        n_speakers=speakers,
        gin_channels=4,
    )
    model = WaveNet(config).eval()
    # Sharpen the logits so many classes fall under the probability table's floor: symbols the
    # model finds (nearly) impossible must still code.
    model.post_logits.weight.data.mul_(12.0)
    return model


@pytest.fixture(scope="module")
def model():
    return codec_model()


def round_trip(model, codes, segment_samples, backend="auto", speaker_id=None):
    """Encode with 2 threads, decode with 1 (the kernel computes a row alike either way)."""
    data, header = compress(
        model,
        codes,
        SR,
        speaker_id=speaker_id,
        segment_seconds=segment_samples / SR,
        backend=backend,
        threads=2,
    )
    decoded, header2 = decompress(model, data, SR, threads=1)
    assert header2 == header
    np.testing.assert_array_equal(decoded, codes)
    assert decoded.dtype == np.int64
    return data, header


@needs_lj
@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip_real_speech(model, backend):
    """LJSpeech, bit for bit, the last segment shorter: the whole 1.78 s clip in 0.5 s segments
    with the compiled kernel, its first 0.6 s in 0.1 s segments with the (slower) torch step."""
    _backend_or_skip(backend)
    wav, sr = read_audio(LJ_WAV, SR)
    kernel = backend in backends.CPU_KERNELS
    segment = SR // 2 if kernel else SR // 10
    codes = mulaw_encode(wav if kernel else wav[: SR * 3 // 5])
    data, header = round_trip(model, codes, segment, backend)
    assert header["setup"]["backend"] == ("kernel" if kernel else backend)
    assert header["samples"] == len(codes) and header["segment_samples"] == segment
    assert header["rows"] == -(-len(codes) // segment) > 1


@pytest.mark.parametrize("encoder, decoder", [("cpp", "numba"), ("numba", "cpp")])
def test_either_kernel_decodes_what_the_other_coded(model, encoder, decoder):
    """The C++ and numba kernels compute the same bits, so a stream is portable between a
    machine with a compiler and one without."""
    _backend_or_skip("cpp")
    _backend_or_skip("numba")
    rng = np.random.default_rng(3)
    codes = mulaw_encode(np.cumsum(rng.standard_normal(SR // 2)).astype(np.float32) / 200)
    data, header = compress(model, codes, SR, segment_seconds=0.1, backend=encoder, threads=2)
    assert header["setup"]["backend"] == "kernel" and header["setup"]["kernel"] == encoder
    decoded, _ = decompress(model, data, SR, threads=1, kernel=decoder)
    np.testing.assert_array_equal(decoded, codes)


def _square(n: int, period: int = 100) -> np.ndarray:
    return mulaw_encode(np.where((np.arange(n) // (period // 2)) % 2 == 1, 1.0, -1.0))


EDGE_CASES = {
    "one sample": (np.array([200]), 1000),
    "silence": (np.full(3000, 128), 1000),
    "full-scale square wave": (_square(4000), 1000),
    "not a multiple of the segment": (np.random.default_rng(0).integers(0, 256, 2507), 1000),
    "more segments than one batch holds": (np.random.default_rng(1).integers(90, 170, 7003), 100),
}


@pytest.mark.parametrize("case", EDGE_CASES)
def test_round_trip_edge_cases(model, case):
    codes, segment = EDGE_CASES[case]
    data, header = round_trip(model, codes, segment)
    if case == "full-scale square wave":
        assert set(np.unique(codes)) == {0, 255}
    if case == "more segments than one batch holds":
        assert header["rows"] < -(-len(codes) // segment)  # several batches, one range coder


def test_round_trip_speaker_model():
    model = codec_model(speakers=3)
    codes = np.random.default_rng(2).integers(100, 160, 3001)
    data, header = round_trip(model, codes, 1000, speaker_id=2)
    assert header["speaker_id"] == 2
    other, _ = compress(model, codes, SR, speaker_id=1, segment_seconds=1000 / SR)
    assert other != data  # the speaker changes the distributions, so the bits
    with pytest.raises(WavegenError, match="3 speakers: give a speaker"):
        compress(model, codes, SR)


def test_compress_refuses_mel_models_and_bad_codes(model):
    mel_model = WaveNet(
        ModelConfig(layers=2, stacks=1, residual_channels=4, gate_channels=4, skip_channels=4)
    )
    with pytest.raises(WavegenError, match="without mel conditioning"):
        compress(mel_model, np.zeros(10, np.int64), SR)
    with pytest.raises(WavegenError, match="classes in 0 … 255"):
        compress(model, np.array([3, 256]), SR)
    with pytest.raises(WavegenError, match="non-empty 1-D integer"):
        compress(model, np.zeros(0, np.int64), SR)


# ---- the decoder's arithmetic is the encoder's ----------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("speakers", [0, 3])
def test_one_step_at_a_time_equals_many_steps_per_call(backend, speakers):
    """The decoder's step_logits + feed gives bit-identical logits to the encoder's run(n) with
    the classes forced: across conditioning chunks (16 steps), ragged rows and row dropping."""
    _backend_or_skip(backend)
    model = codec_model(speakers)
    lengths = torch.tensor([50, 37, 50, 12])
    codes = torch.randint(0, 256, (4, 50), generator=torch.Generator().manual_seed(3))
    speaker = torch.tensor([0, 1, 2, 1]) if speakers else None

    def sampler(forced):
        return Sampler(
            model, None, speaker, lengths, 50, 0.0, forced=forced, keep_logits=True, backend=backend, chunk=16
        )

    encoder = sampler(codes)
    expected = torch.cat([encoder.run(n)[1] for n in (20, 30)], dim=1)  # (B, 50, Q)
    decoder = sampler(torch.full_like(codes, model.start_class))
    got = []
    for t in range(50):
        got.append(decoder.step_logits())
        decoder.feed(codes[:, t])
    got = torch.stack(got, dim=1)
    assert torch.equal(got, expected)
    ended = torch.arange(50)[None, :] >= lengths[:, None]
    assert bool((got[ended] == 0).all()) and bool((got[~ended] != 0).any())


def test_feeding_other_classes_changes_the_next_step(model):
    """feed() really is what the next step reads (a no-op feed would pass the test above)."""
    s = Sampler(
        model, None, None, None, 3, 0.0, forced=torch.zeros(1, 3, dtype=torch.int64), keep_logits=True
    )
    s.step_logits()
    s.feed(torch.tensor([200]))
    a = s.step_logits()
    t = Sampler(
        model, None, None, None, 3, 0.0, forced=torch.zeros(1, 3, dtype=torch.int64), keep_logits=True
    )
    t.step_logits()
    t.feed(torch.tensor([10]))
    assert not torch.equal(a, t.step_logits())


def test_probability_table():
    """Exact and monotone; equal logits give equal bits; far-below classes get the floor (0)."""
    assert TABLE.dtype == np.float32 and TABLE[0] == 1.0 and TABLE[-1] == 0.0
    assert bool((np.diff(TABLE[:-1]) < 0).all())
    np.testing.assert_allclose(TABLE[:-1], np.exp(-np.arange(len(TABLE) - 1) / 64), rtol=1e-6)
    logits = np.random.default_rng(0).normal(0, 10, (5, 256)).astype(np.float32)
    p = probabilities(logits)
    assert p.dtype == np.float32 and p.flags.c_contiguous and p.shape == (5, 256)
    assert np.array_equal(p, probabilities(logits + np.float32(0.0)))
    assert (p.max(axis=1) == 1.0).all() and (p == 0).any()


# ---- files and the command line -----------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory, model):
    """A run dir with the model, another model's run dir, a WAV and its .wgc (via the CLI)."""
    root = tmp_path_factory.mktemp("codec")
    run = save_model_run(root / "run", model)
    other = save_model_run(root / "other", codec_model(seed=1))
    rng = np.random.default_rng(4)
    wav = np.cumsum(rng.normal(0, 0.02, int(0.3 * 16000))).astype(np.float32)
    wav = 0.5 * wav / np.abs(wav).max()
    sf.write(root / "in.wav", wav, 16000, subtype="PCM_16")  # another rate: resampled to 22050
    r = subprocess.run(
        [sys.executable, "-m", "wavegen", "compress", str(root / "in.wav"), "-c", str(run)]
        + ["-o", str(root / "in.wgc"), "--verify", "--segment-seconds", "0.1", "--json"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    return root, run, other, summary


def test_cli_compress_verify_then_decompress_codes(files):
    root, run, _, summary = files
    assert summary["verified"] and summary["samples"] == round(0.3 * SR) and summary["segments"] == 3
    assert summary["bytes"] == (root / "in.wgc").stat().st_size
    with pytest.raises(SystemExit) as exit_info:  # typer's standalone mode exits, 0 on success
        main(
            ["decompress", str(root / "in.wgc"), "-c", str(run), "-o", str(root / "out.wav")]
            + ["--codes", str(root / "out.npy")]
        )
    assert exit_info.value.code == 0
    codes = np.load(root / "out.npy")
    # What is lossless: the μ-law stream of the input, resampled to the model's rate.
    expected = mulaw_encode(read_audio(root / "in.wav", SR)[0])
    assert codes.dtype == np.int64 and np.array_equal(codes, expected)
    out, sr = sf.read(root / "out.wav", dtype="float32")
    assert sr == SR and np.abs(out - mulaw_decode(codes)).max() <= 1 / 32768 + 1e-7
    header = parse((root / "in.wgc").read_bytes()).header
    assert header["codes_sha256"] == hashlib.sha256(expected.astype("<i8").tobytes()).hexdigest()
    for key in ("model_sha256", "setup", "sample_rate", "quantize_channels", "samples", "segment_samples"):
        assert key in header


def test_the_codec_stays_on_the_fp32_kernels(model):
    """Generation prefers the bf16 kernel where the CPU has it; the codec does not: "auto" codes
    with an exact fp32 kernel (recorded as "kernel") and round-trips bit for bit, cpp-bf16 is
    refused when compressing, and a file that claims it when decompressing."""
    _backend_or_skip("cpp")
    codes = mulaw_encode(np.sin(np.arange(2000) * 0.05).astype(np.float32) * 0.5)
    data, header = round_trip(model, codes, 700)
    assert header["setup"]["backend"] == "kernel" and header["setup"]["kernel"] in backends.CPU_KERNELS
    with pytest.raises(WavegenError, match="the codec runs on the fp32 kernels"):
        compress(model, codes, SR, backend="cpp-bf16")
    with pytest.raises(WavegenError, match="claims the sampler backend 'cpp-bf16'"):
        decompress(model, _forge(data, setup={"backend": "cpp-bf16"}), SR)


def _forge(data: bytes, **changes) -> bytes:
    """The same file with header fields changed (and its header digest recomputed)."""
    c = parse(data)
    setup = changes.pop("setup", {})
    setup = dict(c.header["setup"], **setup) if isinstance(setup, dict) else setup
    return Container(dict(c.header, setup=setup, **changes), c.payload).to_bytes()


def _damage(root: Path, case: str) -> Path:
    data = (root / "in.wgc").read_bytes()
    path = root / f"{case.replace(' ', '_')}.wgc"
    if case == "flipped payload byte":
        data = data[:-7] + bytes([data[-7] ^ 0x10]) + data[-6:]
    elif case == "flipped header byte":
        data = data[:40] + bytes([data[40] ^ 0x01]) + data[41:]
    elif case == "truncated":
        data = data[: len(data) - 9]
    elif case == "wrong magic":
        data = b"\x89WGX" + data[4:]
    elif case == "a WAV":
        data = (root / "in.wav").read_bytes()
    elif case == "empty":
        data = b""
    elif case == "another constriction":
        data = _forge(data, setup={"constriction": "0.0.1"})
    elif case == "another kernel":
        data = _forge(data, setup={"kernel_source": "0123456789abcdef"})
    elif case == "an unknown backend":
        data = _forge(data, setup={"backend": "abacus"})
    elif case == "a newer container":
        data = data[:8] + (2).to_bytes(2, "little") + data[10:]
    elif case in FORGED:
        data = _forge(data, **FORGED[case])
    path.write_bytes(data)
    return path


# Forged headers (their sha256 recomputed, so only the header's own checks can catch them). A
# quantize_channels of 255 once decoded with exit 0 to audio up to 46,497 steps off the original;
# 10**12 samples asked numpy for 7.28 TiB; a float rate or a boolean count was a TypeError.
FORGED = {
    "forged 255 classes": {"quantize_channels": 255},
    "forged 65536 classes": {"quantize_channels": 65536},
    "forged 10**12 samples": {"samples": 10**12},
    "forged boolean samples": {"samples": True},
    "forged float rate": {"sample_rate": 22050.0},
    "forged zero rate": {"sample_rate": 0},
    "forged rows past the segments": {"rows": 4},
    "forged huge chunk": {"chunk": 10**9},
    "forged tiny segments": {"segment_samples": 1, "rows": 3},
    "forged speaker for a speakerless model": {"speaker_id": 0},
    "forged setup list": {"setup": None},
}

BAD_FILES = {
    "flipped payload byte": "damaged payload",
    "flipped header byte": "damaged header",
    "truncated": "truncated file",
    "wrong magic": "not a wavegen compressed file",
    "a WAV": "not a wavegen compressed file",
    "empty": "not a wavegen compressed file",
    "another constriction": "compressed with constriction '0.0.1'",
    "another kernel": "compressed with kernel_source",
    "an unknown backend": "sampler backend 'abacus', which this wavegen lacks",
    "a newer container": "container format version 2",
    "forged 255 classes": "damaged header (quantize_channels 255; the model has 256 classes)",
    "forged 65536 classes": "damaged header (quantize_channels 65536; the model has 256 classes)",
    "forged 10**12 samples": "damaged header (samples 1000000000000:",
    "forged boolean samples": "damaged header (samples True:",
    "forged float rate": "damaged header (sample_rate 22050.0:",
    "forged zero rate": "damaged header (sample_rate 0:",
    "forged rows past the segments": "damaged header (rows 4:",
    "forged huge chunk": "damaged header (chunk 1000000000:",
    "forged tiny segments": "damaged header (segment_samples 1:",
    "forged speaker for a speakerless model": "damaged header (speaker_id 0:",
    "forged setup list": "damaged header (setup None:",
}


def _cli_error(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code not in (0, None)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wavegen: error: ") and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_are_one_line_errors_and_leave_nothing(files, capsys, case):
    root, run, _, _ = files
    path = _damage(root, case)
    out = root / f"{path.stem}.wav"
    line = _cli_error(
        capsys, "decompress", str(path), "-c", str(run), "-o", str(out), "--codes", str(out) + ".npy"
    )
    assert BAD_FILES[case] in line and path.name in line, line
    assert not out.exists() and not Path(str(out) + ".npy").exists()
    assert not list(root.glob(".*.tmp"))


def test_decompress_writes_both_outputs_or_neither(files, capsys):
    """A --codes write that fails (here: its folder is a file) once left the WAV behind."""
    root, run, _, _ = files
    out = root / "both.wav"
    codes = root / "in.wav" / "codes.npy"
    args = ["decompress", str(root / "in.wgc"), "-c", str(run), "-o", str(out), "--codes", str(codes)]
    line = _cli_error(capsys, *args)
    assert f"{codes}: cannot write: {root / 'in.wav'} is a file, not a folder" in line, line
    assert not out.exists() and not list(root.glob(".*.tmp"))


def test_a_file_made_by_another_model_is_refused(files, capsys):
    root, _, other, _ = files
    line = _cli_error(capsys, "decompress", str(root / "in.wgc"), "-c", str(other), "-o", str(root / "x.wav"))
    assert "made with another model" in line and not (root / "x.wav").exists()


def test_compress_bad_input_leaves_nothing(files, capsys):
    root, run, _, _ = files
    line = _cli_error(capsys, "compress", str(root / "in.wgc"), "-c", str(run), "-o", str(root / "y.wgc"))
    assert "not readable as audio" in line and not (root / "y.wgc").exists()
    line = _cli_error(capsys, "compress", str(root / "in.wav"), "-c", str(run), "-o", str(root / "in.wav"))
    assert "overwrite the input" in line


def test_outputs_never_overwrite_an_input_the_model_or_each_other(files, capsys):
    """`-o`/`--codes` naming the source, the WAV output or the model once replaced them silently."""
    root, run, _, _ = files
    wgc, ckpt = root / "in.wgc", next((run / "checkpoints").glob("*.pt"))
    kept = {p: p.read_bytes() for p in (wgc, ckpt)}
    out = root / "o.wav"
    cases = [
        (["decompress", str(wgc), "-c", str(run), "-o", str(out), "--codes", str(wgc)], "the input"),
        (["decompress", str(wgc), "-c", str(run), "-o", str(out), "--codes", str(out)], "the WAV output"),
        (["decompress", str(wgc), "-c", str(run), "-o", str(ckpt)], "the model"),
        (["compress", str(root / "in.wav"), "-c", str(ckpt), "-o", str(ckpt)], "the model"),
        (["compress", str(root / "in.wav"), "-c", str(run), "-o", str(ckpt)], "the model"),
    ]
    for args, what in cases:
        line = _cli_error(capsys, *args)
        assert f"would overwrite {what}" in line, line
    assert {p: p.read_bytes() for p in kept} == kept
    assert not out.exists()


@pytest.mark.parametrize("seconds", [1e20, 1e308])
def test_a_segment_longer_than_the_stream_is_the_whole_stream(model, seconds):
    """Found by the #18 hunt: --segment-seconds 1e20 / 1e308 were internal errors (overflow)."""
    codes = _square(300)
    data, header = compress(model, codes, SR, segment_seconds=seconds)
    assert header["segment_samples"] == 300 and header["rows"] == 1
    np.testing.assert_array_equal(decompress(model, data, SR)[0], codes)


@pytest.mark.parametrize("seconds", ["nan", "inf", "-1", "0.00001"])
def test_segment_seconds_must_be_a_sane_length(files, capsys, seconds):
    root, run, _, _ = files
    line = _cli_error(
        capsys, "compress", str(root / "in.wav"), "-c", str(run), "-o", str(root / "s.wgc"),
        "--segment-seconds", seconds,
    )  # fmt: skip
    assert "--segment-seconds: expected a finite number of at least" in line, line
    assert not (root / "s.wgc").exists()
