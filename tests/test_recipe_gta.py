"""recipes/ljspeech-gta end to end on real LJSpeech clips with a small model: base model, stand-in
TTS mels, preprocess --mels, fine-tune --init-from, evaluation of both on the TTS mels."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from wavegen.artifacts.checkpoint import latest_checkpoint, load_checkpoint
from wavegen.artifacts.workdir import load_features_info, load_manifest

REPO = Path(__file__).resolve().parents[1]
LJ = REPO.parent / "shared" / "corpora" / "ljspeech-mini"
IDS = ["LJ001-0002", "LJ001-0005", "LJ001-0007", "LJ001-0008", "LJ001-0011", "LJ001-0013"]  # short


@pytest.mark.slow
@pytest.mark.skipif(not LJ.is_dir(), reason=f"shared corpora not found at {LJ}")
def test_gta_recipe_runs_every_stage(tmp_path):
    corpus = tmp_path / "lj"
    (corpus / "wavs").mkdir(parents=True)
    lines = [line for line in (LJ / "metadata.csv").read_text().splitlines() if line.split("|")[0] in IDS]
    (corpus / "metadata.csv").write_text("\n".join(lines) + "\n")
    for uid in IDS:
        (corpus / "wavs" / f"{uid}.wav").symlink_to(LJ / "wavs" / f"{uid}.wav")
    small = ["model.layers=2", "model.stacks=1", "model.residual_channels=8", "model.gate_channels=8"]
    small += ["model.skip_channels=8", "data.valid_per_speaker=1", "data.test_per_speaker=1"]
    small += ["data.batch_size=2", "data.num_workers=0", "train.valid_interval=2", "train.warmup_steps=1"]
    work, runs = tmp_path / "w", tmp_path / "r"
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    args = ["--corpus", str(corpus), "--max-steps", "2", "--workdir", str(work), "--run-dir", str(runs)]
    args += [a for item in small for a in ("--set", item)]
    command = ["bash", str(REPO / "recipes" / "ljspeech-gta" / "run.sh"), *args]
    r = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    for n in range(5):
        assert f"stage {n}:" in r.stdout
    mels = load_features_info(work)["mels"]  # stage 1's stand-in, diagnosed natural log
    assert mels["kind"] == "tts" and mels["convention"] == "natural-log"
    assert mels["folder"] == str(Path(f"{work}-tts-mels"))
    tuned = load_checkpoint(latest_checkpoint(runs))
    assert tuned["step"] == 2 and tuned["init_from"]["source"] == f"{runs}-base"
    assert tuned["init_from"]["step"] == 2
    test = [e["id"] for e in load_manifest(work) if e["split"] == "test"]
    for folder in ("eval-base", "eval"):
        summary = json.loads((runs / folder / "summary.json").read_text())
        assert summary, folder
        assert sorted(
            p.stem for p in (runs / folder / "wavs").rglob("*.wav") if p.parent.name != "griffin_lim"
        )
    assert len(test) == 1
