"""End to end on the CPU: the demo recipe preprocessed, trained a few steps (loss falling),
exported, loaded with load_vocoder, and used to vocode a tacotron2 mel; the demo resumes."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch

import wavegen
from wavegen.artifacts.workdir import load_manifest
from wavegen.core.features import mel_spectrogram
from wavegen.demo import run_demo

pytestmark = pytest.mark.slow  # runs the demo (trains, synthesizes, evaluates)
STEPS = [
    "train.max_steps=80",
    "train.valid_interval=40",
    "train.checkpoint_interval=40",
    "train.log_interval=10",
    "train.warmup_steps=10",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    torch.set_num_threads(1)
    workdir = tmp_path_factory.mktemp("demo")
    report = run_demo(workdir, STEPS, progress=False, echo=lambda *a: None)
    return workdir, report


def test_demo_trains_with_the_loss_falling(demo):
    workdir, report = demo
    tr = report["training"]
    assert tr["steps"] == 80 and len(tr["loss_points"]) >= 8
    assert tr["loss_last"] < tr["loss_first"] - 0.3, tr
    assert report["validation_bits_per_sample"] is not None
    written = json.loads((workdir / "report.json").read_text())
    assert written["training"]["loss_last"] == tr["loss_last"]
    assert "training loss" in (workdir / "report.md").read_text()


def test_demo_synthesizes_the_test_split_at_exact_lengths(demo):
    workdir, report = demo
    test = [r for r in load_manifest(workdir) if r["split"] == "test"]
    assert len(report["wavs"]) == len(test) == 4
    for row in test:
        info = sf.info(workdir / "synth" / f"{row['id']}.wav")
        assert info.samplerate == 22050 and info.frames == row["frames"] * 256


def test_demo_report_embeds_the_evaluation_and_its_picture(demo):
    from matplotlib.image import imread

    workdir, report = demo
    digest = report["evaluation"]
    assert set(digest["means"]) == {"wavegen", "griffin_lim", "ground_truth"}
    assert digest["means"]["ground_truth"]["pesq_wb"] == pytest.approx(4.644, abs=0.01)
    assert digest["means"]["griffin_lim"]["log_mel_l1"] < digest["means"]["wavegen"]["log_mel_l1"]
    md, html = (workdir / "report.md").read_text(), (workdir / "report.html").read_text()
    assert "## Evaluation" in md and "| metric | better | wavegen | griffin_lim | ground_truth |" in md
    assert f"]({digest['picture']})" in md and f'<img src="{digest["picture"]}"' in html
    assert "<table>" in html
    picture = imread(workdir / digest["picture"])  # the reference / wavegen / Griffin-Lim PNG
    assert picture.shape[1] > 3 * picture.shape[0] / 2
    summary = json.loads((workdir / "eval" / "summary.json").read_text())
    assert summary["systems"]["wavegen"]["f0_rmse_cents"]["n"] >= 0 and summary["skipped"] == []


def test_exported_demo_model_vocodes_a_tacotron2_mel(demo):
    workdir, _ = demo
    vocoder = wavegen.load_vocoder(workdir / "export")
    assert (vocoder.sample_rate, vocoder.hop_length, vocoder.mel_preset) == (22050, 256, "tacotron2")
    assert len(vocoder.speakers) == 4
    row = next(r for r in load_manifest(workdir) if r["split"] == "test")
    mel = mel_spectrogram(np.load(workdir / row["audio"])[: 40 * 256], "tacotron2")  # 41 frames
    wav = vocoder(mel, speaker=row["speaker"], seed=0)
    assert wav.shape == (mel.shape[1] * 256,) and torch.isfinite(wav).all()
    wav_t = vocoder(mel.T, speaker=row["speaker"], seed=0)  # [T, n_mels]
    torch.testing.assert_close(wav_t, wav)
    chunks = list(vocoder.stream(mel, speaker=row["speaker"], seed=0))
    torch.testing.assert_close(torch.cat(chunks), wav)


def test_synthesize_cli_on_the_run_dir_split(demo, tmp_path):
    workdir, _ = demo
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "wavegen",
            "synthesize",
            "--checkpoint",
            str(workdir / "run"),
            "--split",
            "valid",
            "-o",
            str(tmp_path / "valid"),
            "--batch",
            "2",
            "--seed",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["synthesized"] == 4 and summary["realtime_factor"] > 0
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "wavegen",
            "synthesize",
            "--checkpoint",
            str(workdir / "run"),
            "--split",
            "valid",
            "-o",
            str(tmp_path / "valid"),
            "--speaker",
            "nobody",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "valid speakers: demo_f1" in r.stderr and "Traceback" not in r.stderr


def test_demo_rerun_resumes_instead_of_redoing(demo):
    workdir, report = demo

    def mtimes(folder, pattern):
        return {p: p.stat().st_mtime_ns for p in (workdir / folder).glob(pattern)}

    checkpoints, cached = mtimes("run/checkpoints", "step_*.pt"), mtimes("cache", "*.npy")
    again = run_demo(workdir, STEPS, progress=False, echo=lambda *a: None)
    assert again["training"]["steps"] == 80
    assert again["corpus"] == report["corpus"]
    # Nothing was recomputed: the cache and the checkpoints are the files of the first run.
    assert mtimes("run/checkpoints", "step_*.pt") == checkpoints
    assert mtimes("cache", "*.npy") == cached
    assert again["validation_bits_per_sample"] == pytest.approx(report["validation_bits_per_sample"])


def test_a_folder_of_other_files_is_not_taken_as_a_work_dir(tmp_path):
    """`wavegen demo --workdir <a folder of the user's>` once replaced its report.md and mixed
    the demo's export/ and synth/ into it."""
    folder = tmp_path / "mine"
    (folder / "synth").mkdir(parents=True)
    (folder / "report.md").write_text("my report\n")
    r = subprocess.run(
        [sys.executable, "-m", "wavegen", "demo", "--workdir", str(folder)], capture_output=True, text=True
    )
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a demo work dir" in lines[0], r.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["report.md", "synth"]
    assert (folder / "report.md").read_text() == "my report\n"


def test_a_signal_during_training_stops_the_demo(tmp_path):
    """SIGTERM while the demo trained used to end training and then export, synthesize and
    evaluate the half-trained model, exiting 0; it stops with 143 after the checkpoint."""
    workdir = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wavegen", "demo", "--workdir", str(workdir)]
        + ["--max-steps", "100000", "--set", "train.log_interval=1", "--set", "model.layers=2"]
        + ["--set", "model.stacks=1", "--set", "model.residual_channels=4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = workdir / "run" / "train.log"
    while not (log.is_file() and "step 3/" in log.read_text()):  # no deadline: a speed is no test
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate()
    assert proc.returncode == 143, (out, err)
    assert "[3/4]" not in out and not (workdir / "export").exists()
    assert err.strip().splitlines()[-1] == "wavegen: stopped by SIGTERM", err
    assert list((workdir / "run" / "checkpoints").glob("step_*.pt"))  # the work is kept
