"""``wavegen evaluate`` end to end: a tiny model trained on the demo corpus, copy-synthesis of
its test split with Griffin-Lim and ground truth beside it, the report files, resuming, and the
second form on folders with missing, unreadable, resampled and shortened files."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavegen.artifacts.workdir import load_manifest
from wavegen.core.config import load_recipe
from wavegen.data.preprocess import preprocess
from wavegen.training import train

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # trains a model; every test runs the CLI in subprocesses
TINY = [
    "model.layers=4",
    "model.residual_channels=8",
    "model.gate_channels=16",
    "model.skip_channels=8",
    "model.gin_channels=4",
    "train.max_steps=6",
    "train.valid_interval=6",
    "train.checkpoint_interval=6",
    "train.log_interval=3",
    "train.warmup_steps=2",
    "train.precision=fp32",
]
SYSTEMS = ("wavegen", "griffin_lim", "ground_truth")


def wavegen_cli(*args):
    return subprocess.run([sys.executable, "-m", "wavegen", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """(workdir, out, first CLI result) after one copy-synthesis evaluation of the test split."""
    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("eval")
    recipe = load_recipe(REPO / "recipes" / "demo" / "config.yaml", TINY)
    preprocess(recipe, work, workers=2, progress=False)
    train(recipe, work, work / "run", device="cpu", progress=False)
    out = work / "eval"
    r = wavegen_cli(
        "evaluate", "--checkpoint", work / "run", "--split", "test", "-o", out, "--jobs", "2", "--json"
    )
    assert r.returncode == 0, r.stderr
    return work, out, r


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_copy_synthesis_writes_every_system_and_report(evaluated):
    work, out, r = evaluated
    test = [row for row in load_manifest(work) if row["split"] == "test"]
    for system in SYSTEMS:
        wavs = sorted((out / "wavs" / system).glob("*.wav"))
        assert [w.stem for w in wavs] == sorted(row["id"] for row in test)
        for row in test:
            assert sf.info(out / "wavs" / system / f"{row['id']}.wav").frames == row["frames"] * 256
    rows = read_csv(out / "metrics.csv")
    assert len(rows) == len(test) * 3 and {r["system"] for r in rows} == set(SYSTEMS)
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary == json.loads((out / "summary.json").read_text())
    assert list(summary["systems"]) == list(SYSTEMS) and summary["skipped"] == []
    gt, gl, model = (summary["systems"][s] for s in ("ground_truth", "griffin_lim", "wavegen"))
    assert gt["mcd_db"]["mean"] == 0 and gt["log_mel_l1"]["mean"] == 0
    assert gt["pesq_wb"]["mean"] == pytest.approx(4.644, abs=0.01) and gt["stoi"]["mean"] == pytest.approx(1)
    for stats in (gl["pesq_wb"], model["mcd_db"], model["dnsmos_ovrl"]):
        assert set(stats) == {"mean", "std", "ci95", "n"} and stats["n"] == len(test)
        lo, hi = stats["ci95"]
        assert lo < stats["mean"] < hi
    assert gl["pesq_wb"]["mean"] < gt["pesq_wb"]["mean"] and gl["mcd_db"]["mean"] > 0
    assert model["rtf"]["mean"] > 0 and gl["rtf"]["mean"] > 0
    md = (out / "report.md").read_text()
    assert "| metric | better | wavegen | griffin_lim | ground_truth |" in md
    assert "`f0_rmse_cents`:" in md and "`rtf`:" in md
    html = (out / "report.html").read_text()
    assert "<table>" in html and html.count('<img src="plots/') == 4


def test_report_pictures_are_real_images(evaluated):
    from matplotlib.image import imread

    _, out, _ = evaluated
    md = (out / "report.md").read_text()
    pictures = sorted((out / "plots").glob("*.png"))
    assert len(pictures) == 4  # the bar charts and three utterances
    for png in pictures:
        assert f"(plots/{png.name})" in md
        image = imread(png)  # decodes the PNG
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400, image.shape
        assert image[..., :3].std() > 0.05  # not a blank canvas


def test_rerun_resumes_from_metrics_csv(evaluated):
    work, out, _ = evaluated
    rows = read_csv(out / "metrics.csv")
    kept, dropped = rows[:-2], rows[-2:]
    with open(out / "metrics.csv", "w", newline="") as f:  # as if interrupted before the last two
        writer = csv.DictWriter(f, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
    wav_times = {p: p.stat().st_mtime_ns for p in (out / "wavs").rglob("*.wav")}
    r = wavegen_cli("evaluate", "--checkpoint", work / "run", "--split", "test", "-o", out, "--jobs", "1")
    assert r.returncode == 0, r.stderr
    again = read_csv(out / "metrics.csv")
    assert again[: len(kept)] == kept  # untouched rows are the first run's, not recomputed
    redone = {(row["system"], row["utterance"]): row for row in again[len(kept) :]}
    for row in dropped:
        again_row = redone[(row["system"], row["utterance"])]
        assert float(again_row["mcd_db"]) == pytest.approx(float(row["mcd_db"]), rel=1e-5)
    assert {p: p.stat().st_mtime_ns for p in (out / "wavs").rglob("*.wav")} == wav_times

    r = wavegen_cli("evaluate", "--checkpoint", work / "run", "-o", out, "--temperature", "0.5")
    assert r.returncode == 1 and "holds another evaluation" in r.stderr and "Traceback" not in r.stderr


def test_folders_form_lists_missing_unreadable_resampled_and_short_files(evaluated, tmp_path):
    import soxr

    _, out, _ = evaluated
    ref = out / "wavs" / "ground_truth"
    utts = sorted(p.stem for p in ref.glob("*.wav"))
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for u in utts[:2]:
        shutil.copy(out / "wavs" / "wavegen" / f"{u}.wav", a / f"{u}.wav")
    (a / f"{utts[2]}.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot audio")  # unreadable; utts[3] missing
    shutil.copy(ref / f"{utts[0]}.wav", a / "stray.wav")  # no reference of that name
    for i, u in enumerate(utts):
        wav, sr = sf.read(out / "wavs" / "griffin_lim" / f"{u}.wav")
        wav = soxr.resample(wav, sr, 16000)
        if i == 0:
            wav = wav[: int(0.9 * len(wav))]
        sf.write(b / f"{u}.flac", wav, 16000)
    report = tmp_path / "report"
    r = wavegen_cli("evaluate", "--ref", ref, "--sys", f"a={a}", "--sys", f"b={b}", "-o", report, "-j", "2")
    assert r.returncode == 0, r.stderr
    summary = json.loads((report / "summary.json").read_text())
    assert list(summary["systems"]) == ["a", "b", "ground_truth"]
    assert summary["systems"]["a"]["pesq_wb"]["n"] == 2 and summary["systems"]["b"]["pesq_wb"]["n"] == 4
    reasons = {(s["system"], s["utterance"]): s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {("a", utts[2]), ("a", utts[3]), ("a", "stray")}
    assert "not readable as audio" in reasons[("a", utts[2])] and "missing" in reasons[("a", utts[3])]
    assert [(m["system"], m["utterance"]) for m in summary["length_mismatches"]] == [("b", utts[0])]
    assert summary["resampled"] == [{"system": "b", "from_hz": 16000, "to_hz": 22050, "files": 4}]
    md = (report / "report.md").read_text()
    assert "Files left out (3)" in md and f"b / {utts[0]}:" in md and "from 16000 Hz to 22050 Hz" in md
    rows = read_csv(report / "metrics.csv")
    assert len(rows) == 2 + 4 + 4
    short = next(r for r in rows if (r["system"], r["utterance"]) == ("b", utts[0]))
    assert float(short["seconds"]) == pytest.approx(0.9 * float(short["ref_seconds"]), rel=0.01)
    assert np.isfinite(float(short["mcd_db"]))


TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.skipif(not TORCHRUN.exists(), reason="no torchrun beside this Python")
def test_under_torchrun_each_rank_synthesizes_its_share(evaluated, tmp_path):
    work, first, _ = evaluated
    out = tmp_path / "ddp"
    r = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "wavegen", "evaluate", "--checkpoint",
         str(work / "run"), "--split", "test", "-o", str(out), "--jobs", "1"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("report:") == 1  # rank 0 alone scores and reports
    summary = json.loads((out / "summary.json").read_text())
    n = len(list((first / "wavs" / "ground_truth").glob("*.wav")))
    synthesis = summary["synthesis"]
    assert synthesis["wavegen"]["utterances"] == synthesis["griffin_lim"]["utterances"] == n
    assert len(read_csv(out / "metrics.csv")) == 3 * n
    assert len(list((out / "wavs" / "wavegen").glob("*.wav"))) == n
    for system in ("griffin_lim", "ground_truth"):  # deterministic: the same WAVs as one process
        for wav in (first / "wavs" / system).glob("*.wav"):
            np.testing.assert_array_equal(sf.read(out / "wavs" / system / wav.name)[0], sf.read(wav)[0])


def test_cli_refuses_bad_arguments_in_one_line(tmp_path):
    r = wavegen_cli("evaluate", "-o", tmp_path / "x")
    assert r.returncode == 1 and "give either --checkpoint" in r.stderr and "Traceback" not in r.stderr
    r = wavegen_cli("evaluate", "--ref", tmp_path, "--sys", "nodir", "-o", tmp_path / "x")
    assert r.returncode == 1 and "expected NAME=DIR" in r.stderr
    r = wavegen_cli("evaluate", "--ref", tmp_path / "none", "--sys", f"a={tmp_path}", "-o", tmp_path / "x")
    assert r.returncode == 1 and "no such folder" in r.stderr and "Traceback" not in r.stderr
    # A system folder matching no reference is a wrong path, not a few missing files: it once
    # gave exit 0 and a report without that system.
    (tmp_path / "ref").mkdir()
    (tmp_path / "empty").mkdir()
    sf.write(tmp_path / "ref" / "u1.wav", np.zeros(8000, np.float32), 16000)
    r = wavegen_cli(
        "evaluate", "--ref", tmp_path / "ref", "--sys", f"a={tmp_path / 'empty'}", "-o", tmp_path / "x"
    )
    assert r.returncode == 1 and "none of its 0 audio files is named like a reference" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
