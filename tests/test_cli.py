"""The CLI layer: `wavegen mel`, one-line errors without tracebacks, --debug."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.helpers import make_feature_cache, write_recipe
from wavegen.core.features import mel_spectrogram


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "wavegen", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


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


@pytest.mark.slow  # CLI subprocesses
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


def test_audio_too_short_for_the_preset_names_the_file(tmp_path):
    sf.write(tmp_path / "blip.wav", np.full(300, 0.1, np.float32), 22050)
    line = one_line_error(run("mel", str(tmp_path / "blip.wav"), "-o", str(tmp_path / "o.npy")))
    assert f"{tmp_path / 'blip.wav'}: audio too short for the tacotron2 preset: 300 samples" in line
    assert not (tmp_path / "o.npy").exists()


def test_unknown_preset_one_line(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(4000, np.float32), 22050)
    line = one_line_error(run("mel", str(tmp_path / "a.wav"), "-o", str(tmp_path / "o.npy"), "--preset", "x"))
    assert "tacotron2" in line


def test_debug_shows_traceback(tmp_path):
    r = run("--debug", "mel", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o.npy"))
    assert r.returncode != 0 and "Traceback" in r.stderr


# ---- exit codes and one-line errors for every command (#10 items 3 and 6) ----------------------

ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow  # CLI subprocesses
@pytest.mark.parametrize(
    "args, message",
    [
        (["mel", "missing.wav", "-o", "o.npy"], "no such audio file"),
        (["preprocess", "missing.yaml"], "no such recipe file"),
        (["train", "missing.yaml"], "no such recipe file"),
        (["synthesize", "-c", "missing", "--mel", "m.npy", "-o", "out"], "no such"),
        (["export", "missing", "out"], "no such checkpoint"),
        (["bench", "--batch", "x"], "--batch"),
        (["demo", "--workdir", "d", "--set", "train.bogus=1"], "train.bogus"),
    ],
)
def test_every_command_fails_with_exit_1_and_one_line(tmp_path, args, message):
    line = one_line_error(run(*args, cwd=tmp_path))
    assert line.startswith("wavegen: error:") and message in line, line


def in_process(capsys, *args) -> tuple[int, str]:
    """(exit code, stderr) of wavegen.cli.run: the same mapping as the command, without the
    seconds a new interpreter takes to import torch."""
    from wavegen.cli import run as run_cli

    capsys.readouterr()
    code = run_cli(list(args))
    return code, capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    code, err = in_process(capsys, "mel", "--bogus")
    assert code == 2 and "No such option" in err and "Traceback" not in err
    assert in_process(capsys, "nosuch")[0] == 2
    assert in_process(capsys, "--help")[0] == 0


def test_main_always_exits_with_the_code(tmp_path, capsys):
    """In-process: main() ends in SystemExit with the code whatever happened (never returns)."""
    from wavegen.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["mel", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o.npy")])
    assert exit_info.value.code == 1 and "no such audio file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0


@pytest.mark.parametrize(
    "command, device",
    [
        ("train", "tpu"),
        ("train", "cuda:7"),
        ("synthesize", "garbage!"),
        ("synthesize", "mps"),
        ("bench", "tpu"),
        ("warmup", "tpu"),
        ("score", "tpu"),
    ],
)
def test_unavailable_device_is_one_line_naming_it(tmp_path, monkeypatch, capsys, command, device):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    monkeypatch.chdir(tmp_path)
    write_recipe(tmp_path / "tiny.yaml")
    make_feature_cache(tmp_path / "work", n_utts=2)
    args = {
        "train": ["train", "tiny.yaml", "--workdir", "work", "--run-dir", "run"],
        "synthesize": ["synthesize", "-c", "run", "--split", "test", "-o", "out"],
        "bench": ["bench", "--seconds", "0.01"],
        "warmup": ["warmup"],
        "score": ["score", "a.wav", "-c", "run"],
    }[command]
    code, err = in_process(capsys, *args, "--device", device)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"wavegen: error: --device {device}") or f"--device {device!r}" in err, err
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", ["bench", "warmup"])
def test_cuda_on_a_cpu_machine_is_one_line(tmp_path, capsys, command):
    """warmup once said "backend: cuda-graph, ready" (exit 0) on a machine without CUDA."""
    code, err = in_process(capsys, command, "--device", "cuda")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "--device cuda: CUDA is not available on this machine" in err, err


@pytest.mark.parametrize("value", ["bogus", "CPP2", "cpp,numba"])
def test_an_unknown_wavegen_kernel_is_refused_naming_the_allowed_values(monkeypatch, capsys, value):
    """WAVEGEN_KERNEL=bogus was silently ignored (auto chose as if it were unset)."""
    from wavegen.generation import backends

    monkeypatch.setenv("WAVEGEN_KERNEL", value)
    code, err = in_process(capsys, "warmup")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    allowed = ", ".join(backends.KERNEL_CHOICES)
    assert err.strip() == f"wavegen: error: WAVEGEN_KERNEL={value!r}: expected one of {allowed} (or unset)"


def test_os_errors_are_one_line_naming_the_path(tmp_path):
    """An OSError outside atomic_path (a mkdir under a file) is a user error, not a bug."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sf.write(corpus / "a.wav", np.zeros(22050, np.float32), 22050)
    (tmp_path / "r.yaml").write_text("data: {corpus: folder, corpus_path: corpus}\n")
    (tmp_path / "work").write_text("a file where the work dir should go\n")
    line = one_line_error(run("preprocess", "r.yaml", "--workdir", "work", cwd=tmp_path))
    assert line.startswith("wavegen: error:") and "work" in line and "internal" not in line, line


@pytest.mark.parametrize("command", ["train", "demo"])
def test_a_file_where_a_folder_goes_is_called_a_file(tmp_path, capsys, monkeypatch, command):
    """Found by the #18 hunt: `train --run-dir a.wav` and `demo --workdir a.wav` said only
    "a.wav: File exists"."""
    monkeypatch.chdir(tmp_path)
    write_recipe(tmp_path / "tiny.yaml")
    make_feature_cache(tmp_path / "work", n_utts=2)
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    args = {
        "train": ["train", "tiny.yaml", "--workdir", "work", "--run-dir", "a.wav", "--device", "cpu"],
        "demo": ["demo", "--workdir", "a.wav"],
    }[command]
    code, err = in_process(capsys, *args)
    assert code == 1 and err.strip() == "wavegen: error: a.wav: is a file, not a folder", err


@pytest.mark.slow  # CLI subprocesses
def test_mel_into_a_directory_leaves_no_temporary(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(4000, np.float32), 22050)
    (tmp_path / "out").mkdir()
    line = one_line_error(run("mel", "a.wav", "-o", "out", cwd=tmp_path))
    assert "out: is a directory" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "out"]


SLOW_PREPROCESS = """
import sys, time
import wavegen.data.preprocess as pp
real = pp.process_utterance
def slow(*args):  # a real utterance, then time for the signal to land mid-corpus
    result = real(*args)
    time.sleep(0.2)
    return result
pp.process_utterance = slow
from wavegen.cli import main
main(sys.argv[1:])
"""


@pytest.mark.slow  # CLI subprocesses
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_preprocess_stopped_by_a_signal_exits_128_plus_it(tmp_path, sig, code):
    """A real signal mid-corpus: exit 130/143, one line, no traceback, no temporary file, and a
    rerun finishes the cache."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        sf.write(corpus / f"u{i:02d}.wav", (0.3 * rng.standard_normal(11025)).astype(np.float32), 22050)
    (tmp_path / "r.yaml").write_text(
        "data: {corpus: folder, corpus_path: corpus, valid_per_speaker: 1, test_per_speaker: 1}\n"
        "audio: {min_seconds: 0.1}\n"
    )
    args = ["preprocess", "r.yaml", "--workdir", "work", "--workers", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_PREPROCESS, *args],
        cwd=tmp_path,
        env=ONE_THREAD,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cache = tmp_path / "work" / "cache"
    while proc.poll() is None and len(list(cache.glob("*.mel.npy")) if cache.is_dir() else []) < 2:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == f"wavegen: stopped by {sig.name}"
    assert not [p for p in (tmp_path / "work").rglob("*") if p.name.endswith(".tmp")]
    done = len(list(cache.glob("*.mel.npy")))
    assert 2 <= done < 12
    if sig == signal.SIGINT:
        return  # the rerun below is the same after either signal
    again = run(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{12 - done} processed, {done} already cached" in again.stdout


@pytest.mark.slow  # CLI subprocesses
def test_read_only_file_system_is_one_line_for_every_writing_command(tmp_path):
    """A real read-only tmpfs (mounted in a user namespace: works as root, where chmod does not
    stop writes): mel, preprocess, train and demo each exit 1 with one line naming the path."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare(1) on this machine")
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"cannot make a user namespace here: {probe.stderr.strip()}")
    sf.write(tmp_path / "a.wav", np.zeros(4000, np.float32), 22050)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sf.write(corpus / "u.wav", np.zeros(22050, np.float32), 22050)
    (tmp_path / "r.yaml").write_text(f"data: {{corpus: folder, corpus_path: {corpus}}}\n")
    write_recipe(tmp_path / "tiny.yaml")
    make_feature_cache(tmp_path / "work", n_utts=2)
    ro = tmp_path / "ro"
    ro.mkdir()
    wavegen = f"{sys.executable} -m wavegen"
    commands = {
        "mel": f"mel a.wav -o {ro}/x.npy",
        "preprocess": f"preprocess r.yaml --workdir {ro}/w",
        "train": f"train tiny.yaml --workdir work --run-dir {ro}/run --device cpu",
        "demo": f"demo --workdir {ro}/d",
    }
    script = f"mount -t tmpfs -o ro,size=1m tmpfs {ro} || exit 99\n" + "".join(
        f"echo '== {name}'; {wavegen} {args}; echo \"rc=$?\"\n" for name, args in commands.items()
    )
    r = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script], cwd=tmp_path, capture_output=True, text=True, env=ONE_THREAD
    )
    if r.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs in a user namespace: {r.stderr.strip()}")
    assert r.stdout.count("rc=1") == len(commands), (r.stdout, r.stderr)
    errors = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("[")]
    assert len(errors) == len(commands), r.stderr
    for line, name in zip(errors, commands):
        assert line.startswith(f"wavegen: error: {ro}/") and "Read-only file system" in line, (name, line)


SLOW_SYNTHESIS = """
import sys, time
import wavegen.inference.vocoder as v
real = v.Vocoder.batch
def slow(self, *args, **kwargs):  # real audio, then time for the signal to land mid-list
    wavs = real(self, *args, **kwargs)
    time.sleep(0.3)
    return wavs
v.Vocoder.batch = slow
from wavegen.cli import main
main(sys.argv[1:])
"""


@pytest.mark.slow  # CLI subprocesses
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143)])
def test_synthesize_stopped_by_a_signal_exits_128_plus_it(tmp_path, sig, code):
    """Only whole WAVs are left, the command exits 143 with one line, a rerun does the rest."""
    from wavegen.core.config import load_recipe
    from wavegen.training import train

    # Two speakers: a single-speaker model cannot synthesize before #10 item 1 (harden-b) lands.
    cache = make_feature_cache(tmp_path / "work", n_utts=2, speakers=("a", "b"))
    train(load_recipe(write_recipe(tmp_path / "tiny.yaml", train={"max_steps": 1})), cache, tmp_path / "run")
    mels = sorted((cache / "cache").glob("*.mel.npy"))
    args = ["synthesize", "-c", "run", "--batch", "1", "-o", "out", "--speaker", "a"]
    args += [a for m in mels for a in ("--mel", str(m))]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SYNTHESIS, *args],
        cwd=tmp_path,
        env=ONE_THREAD,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = tmp_path / "out"
    while proc.poll() is None and not (out.is_dir() and list(out.glob("*.wav"))):
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    # One line of our own (after the progress bar's last redraw) and no traceback.
    assert "Traceback" not in err and err.count("wavegen:") == 1, err
    assert f"wavegen: stopped by {sig.name}\n" in err, err
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    done = sorted(out.glob("*.wav"))
    assert 1 <= len(done) < len(mels)
    for wav in done:
        assert sf.info(wav).frames > 0
    again = run(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(list(out.glob("*.wav"))) == len(mels)


@pytest.mark.slow  # CLI subprocesses
def test_warmup_prepares_the_kernel_and_says_which():
    from wavegen.generation import backends

    r = run("warmup", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["backend"] == backends.cpu_backend("auto") and result["backend"] in backends.KERNEL_NAMES
    assert result["precision"] == backends.default_precision()
    assert result["seconds"] >= 0 and isinstance(result["from_cache"], bool)
    assert backends.get_kernel(result["backend"]).cache_dir == Path(result["cache_dir"])
    r = run("warmup")
    said = f"backend: {result['backend']} (precision {result['precision']}), ready in "
    assert r.returncode == 0 and r.stdout.startswith(said)


def test_readme_shows_a_repeatable_option_repeated():
    """`--wav F...` suggested several files after one flag; typer options take one value each,
    so every synopsis that repeats an option's value shows the option again:
    `--sys NAME=DIR [--sys NAME=DIR ...]`."""
    import re

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    synopses = re.findall(r"`(wavegen [^`]*)`", text)
    assert len(synopses) > 10
    for code in synopses:
        for m in re.finditer(r"(--[\w-]+) ([^\s\[\]|()]+) ?\.\.\.", code):
            repeated = code[: m.start()].endswith("[") and f"{m.group(1)} {m.group(2)} [" in code
            assert repeated, f"{code!r}: {m.group(0)!r} reads as several values after one {m.group(1)}"


def test_a_speaker_mapped_twice_is_refused_before_any_work(tmp_path, capsys):
    """--map-speaker c=a --map-speaker c=b once fine-tuned c from b, silently dropping c=a."""
    recipe = write_recipe(tmp_path / "tiny.yaml")
    args = ["train", str(recipe), "--workdir", str(tmp_path / "missing"), "--init-from", str(tmp_path)]
    code, err = in_process(capsys, *args, "--map-speaker", "c=a", "--map-speaker", " c=b")
    assert code == 1 and err.strip().splitlines() == [
        "wavegen: error: --map-speaker: speaker 'c' is mapped twice (c=a, c=b); give one known speaker for it"
    ]
