"""The CLI layer: `wavegen mel`, one-line errors without tracebacks, --debug."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from wavegen.features import mel_spectrogram


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "wavegen", *args], capture_output=True, text=True, cwd=cwd)


def test_mel_writes_float32_npy(tmp_path):
    t = np.arange(24000) / 24000
    wav = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sf.write(tmp_path / "a.wav", wav, 24000, subtype="FLOAT")
    r = run("mel", str(tmp_path / "a.wav"), "-o", str(tmp_path / "a.npy"), "--preset", "espnet-24k")
    assert r.returncode == 0, r.stderr
    mel = np.load(tmp_path / "a.npy")
    assert mel.dtype == np.float32 and mel.shape == (80, 1 + 24000 // 300)
    np.testing.assert_allclose(mel, mel_spectrogram(wav, "espnet-24k"), atol=1e-5)


def one_line_error(r):
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_bad_audio_files_give_one_line(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all\n" * 10)
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2] * 1000, np.float32), 22050, subtype="FLOAT")
    sf.write(tmp_path / "cut.wav", np.zeros(22050, np.float32), 22050, subtype="PCM_16")
    data = (tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:20000])
    for name, reason in [
        ("empty", "empty file"),
        ("text", "not readable"),
        ("nan", "NaN"),
        ("cut", "truncated"),
        ("missing", "no such audio file"),
    ]:
        r = run("mel", str(tmp_path / f"{name}.wav"), "-o", str(tmp_path / "o.npy"))
        line = one_line_error(r)
        assert f"{name}.wav" in line and reason in line, line
    assert not (tmp_path / "o.npy").exists()


def test_unknown_preset_one_line(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(4000, np.float32), 22050)
    line = one_line_error(run("mel", str(tmp_path / "a.wav"), "-o", str(tmp_path / "o.npy"), "--preset", "x"))
    assert "tacotron2" in line


def test_debug_shows_traceback(tmp_path):
    r = run("--debug", "mel", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o.npy"))
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_warmup_prepares_the_kernel_and_says_which():
    from wavegen.generation import backends

    r = run("warmup", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["backend"] == backends.cpu_backend() and result["backend"] in ("cpp", "numba")
    assert result["seconds"] >= 0 and isinstance(result["from_cache"], bool)
    assert backends.get_kernel(result["backend"]).cache_dir == Path(result["cache_dir"])
    r = run("warmup")
    assert r.returncode == 0 and r.stdout.startswith(f"backend: {result['backend']}, ready in ")
