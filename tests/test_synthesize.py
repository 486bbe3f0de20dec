"""`wavegen synthesize` end to end on real corpora and the real recipes: a single-speaker LJSpeech
model (which lists the speaker 'LJ' but takes none), a speaker-conditioned VCTK model, and an
unconditional model (refused); then the output names (two inputs of one name are refused)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import wavegen
from wavegen.artifacts.checkpoint import save_checkpoint
from wavegen.artifacts.export import export_model
from wavegen.artifacts.workdir import load_manifest
from wavegen.core.config import Recipe, load_recipe
from wavegen.core.features import get_preset, mel_spectrogram
from wavegen.data.preprocess import preprocess
from wavegen.generation import backends
from wavegen.inference.synthesize import Item, synthesize
from wavegen.model import WaveNet
from wavegen.training import train

from .test_vocoder import make_run, speech

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "corpora"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"needs the shared corpora at {SHARED}")

# A tiny model and a few steps on top of the real recipe (everything else is the recipe's).
TINY = [
    "model.layers=4",
    "model.stacks=2",
    "model.residual_channels=8",
    "model.gate_channels=16",
    "model.skip_channels=8",
    "model.gin_channels=4",
    "data.batch_size=2",
    "data.num_workers=0",
    "train.max_steps=2",
    "train.warmup_steps=1",
    "train.log_interval=1",
    "train.valid_interval=2",
    "train.valid_batches=1",
    "train.checkpoint_interval=2",
    "train.precision=fp32",
]


def run_cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "wavegen", *args], capture_output=True, text=True, env=env)


def one_line_error(r) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def trained(tmp_path_factory, recipe_name: str, corpus: Path, window: int):
    """Preprocess ``corpus`` with recipes/<recipe_name>/config.yaml and train it a few steps."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp(recipe_name)
    recipe = load_recipe(
        REPO / "recipes" / recipe_name / "config.yaml", [*TINY, f"data.window_samples={window}"]
    )
    workdir, run_dir = root / "work", root / "run"
    preprocess(recipe, workdir, corpus_path=corpus, workers=2, progress=False)
    train(recipe, workdir, run_dir, device="cpu", progress=False)
    return root, workdir, run_dir


@pytest.fixture(scope="module")
def ljspeech(tmp_path_factory):
    if not SHARED.is_dir():
        pytest.skip(f"needs the shared corpora at {SHARED}")
    return trained(tmp_path_factory, "ljspeech", SHARED / "ljspeech-mini", 2048)


@pytest.fixture(scope="module")
def vctk(tmp_path_factory):
    if not SHARED.is_dir():
        pytest.skip(f"needs the shared corpora at {SHARED}")
    return trained(tmp_path_factory, "vctk", SHARED / "vctk-mini", 2400)


def synth(checkpoint: Path, out: Path, *args) -> dict:
    r = run_cli("synthesize", "--checkpoint", str(checkpoint), "-o", str(out), "--seed", "0", "--json", *args)
    assert r.returncode == 0, r.stderr
    assert f"wrote {len(list(out.glob('*.wav')))} WAVs to {out}" in r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def assert_exact_length(path: Path, frames: int, hop: int, sample_rate: int) -> None:
    info = sf.info(path)
    assert (info.frames, info.samplerate, info.subtype) == (frames * hop, sample_rate, "PCM_16"), path


# ---- a single-speaker model: LJSpeech -----------------------------------------------------------


@pytest.mark.slow
@needs_shared
def test_ljspeech_model_lists_its_speaker_but_takes_none(ljspeech):
    _, workdir, run_dir = ljspeech
    vocoder = wavegen.load_vocoder(run_dir)
    assert vocoder.speakers == ["LJ"] and vocoder.model.config.n_speakers == 0
    assert not vocoder.speaker_conditioned
    splits = [e["split"] for e in load_manifest(workdir)]
    assert (splits.count("train"), splits.count("valid"), splits.count("test")) == (16, 2, 2)  # capped


@pytest.mark.slow
@needs_shared
def test_ljspeech_model_synthesizes_wavs_mels_and_the_test_split(ljspeech, tmp_path):
    root, workdir, run_dir = ljspeech
    clip = SHARED / "ljspeech-mini" / "wavs" / "LJ001-0008.wav"  # 1.8 s
    summary = synth(run_dir, tmp_path / "wav", "--wav", str(clip))
    assert summary["synthesized"] == 1
    assert_exact_length(tmp_path / "wav" / "LJ001-0008.wav", 1 + sf.info(clip).frames // 256, 256, 22050)
    assert summary["precision"] == backends.default_precision()  # the log and the summary say which
    exact = synth(run_dir, tmp_path / "fp32", "--wav", str(clip), "--precision", "fp32")
    assert (exact["precision"], exact["backend"]) == ("fp32", backends.cpu_backend("fp32"))

    # A TTS mel through the exported model; the speaker it was trained on is accepted (ignored).
    wav, _ = wavegen.read_audio(SHARED / "ljspeech-mini" / "wavs" / "LJ001-0002.wav", sample_rate=22050)
    mel = mel_spectrogram(wav, "tacotron2")
    np.save(tmp_path / "tts.npy", mel.T)  # [T, n_mels], as TTS models often write it
    export = export_model(run_dir, tmp_path / "export")
    assert (
        synth(export, tmp_path / "mel", "--mel", str(tmp_path / "tts.npy"), "--speaker", "LJ")["synthesized"]
        == 1
    )
    assert_exact_length(tmp_path / "mel" / "tts.wav", mel.shape[1], 256, 22050)
    r = run_cli(
        "synthesize", "-c", str(export), "--wav", str(clip), "-o", str(tmp_path / "x"), "--speaker", "p225"
    )
    line = one_line_error(r)
    assert "no speaker conditioning (it was trained on LJ)" in line and "'p225'" in line

    # Stage 3 of recipes/ljspeech/run.sh.
    test = [e for e in load_manifest(workdir) if e["split"] == "test"]
    summary = synth(run_dir, tmp_path / "test", "--split", "test", "--workdir", str(workdir), "--batch", "2")
    assert summary["synthesized"] == len(test) == 2
    for e in test:
        assert_exact_length(tmp_path / "test" / f"{e['id']}.wav", e["frames"], 256, 22050)


# ---- a speaker-conditioned model: VCTK ----------------------------------------------------------


@pytest.mark.slow
@needs_shared
def test_vctk_model_takes_a_speaker_for_wavs_and_mels(vctk, tmp_path):
    _, _, run_dir = vctk
    vocoder = wavegen.load_vocoder(run_dir)
    assert vocoder.speakers == ["p901", "p902", "p903", "p904"] and vocoder.model.config.n_speakers == 4
    clip = SHARED / "vctk-mini" / "VCTK-Corpus-0.92" / "wav48_silence_trimmed" / "p904" / "p904_010_mic1.flac"
    summary = synth(run_dir, tmp_path / "wav", "--wav", str(clip), "--speaker", "p902")
    assert summary["synthesized"] == 1
    samples_24k = len(wavegen.read_audio(clip, sample_rate=24000)[0])
    assert_exact_length(tmp_path / "wav" / "p904_010_mic1.wav", 1 + samples_24k // 300, 300, 24000)

    mel = mel_spectrogram(speech(0.5, sr=24000), "espnet-24k")
    np.save(tmp_path / "tts.npy", mel)
    assert (
        synth(run_dir, tmp_path / "mel", "--mel", str(tmp_path / "tts.npy"), "--speaker", "p903")[
            "synthesized"
        ]
        == 1
    )
    assert_exact_length(tmp_path / "mel" / "tts.wav", mel.shape[1], 300, 24000)

    line = one_line_error(
        run_cli("synthesize", "-c", str(run_dir), "--wav", str(clip), "-o", str(tmp_path / "x"))
    )
    assert "needs a speaker; valid speakers: p901, p902, p903, p904" in line
    line = one_line_error(
        run_cli(
            "synthesize",
            "-c",
            str(run_dir),
            "--mel",
            str(tmp_path / "tts.npy"),
            "-o",
            str(tmp_path / "x"),
            "--speaker",
            "LJ",
        )
    )
    assert "unknown speaker 'LJ'" in line
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@needs_shared
def test_vctk_split_uses_each_utterances_own_speaker(vctk, tmp_path):
    _, workdir, run_dir = vctk
    test = [e for e in load_manifest(workdir) if e["split"] == "test"]
    assert sorted(e["speaker"] for e in test) == ["p901", "p902", "p903", "p904"]  # 1 each (capped)
    summary = synth(run_dir, tmp_path / "cli", "--split", "test", "--workdir", str(workdir), "--batch", "1")
    assert summary["synthesized"] == 4
    for e in test:
        assert_exact_length(tmp_path / "cli" / f"{e['id']}.wav", e["frames"], 300, 24000)

    # The same items through the library, once with each utterance's own speaker and once with
    # the speakers rotated: the CLI's WAVs are the first, sample for sample, and not the second.
    torch.set_num_threads(1)
    vocoder = wavegen.load_vocoder(run_dir)
    mels = [torch.from_numpy(np.load(workdir / e["mel"])) for e in test]
    own = [Item(e["id"], m, e["speaker"]) for e, m in zip(test, mels)]
    rotated = [Item(e["id"], m, test[(i + 1) % 4]["speaker"]) for i, (e, m) in enumerate(zip(test, mels))]
    synthesize(vocoder, own, tmp_path / "own", batch_size=1, seed=0, progress=False)
    synthesize(vocoder, rotated, tmp_path / "rotated", batch_size=1, seed=0, progress=False)
    for e in test:
        cli = sf.read(tmp_path / "cli" / f"{e['id']}.wav", dtype="int16")[0]
        np.testing.assert_array_equal(cli, sf.read(tmp_path / "own" / f"{e['id']}.wav", dtype="int16")[0])
        assert not np.array_equal(cli, sf.read(tmp_path / "rotated" / f"{e['id']}.wav", dtype="int16")[0])


# ---- an unconditional model ---------------------------------------------------------------------


def unconditional_run(tmp_path) -> Path:
    """A run dir holding a checkpoint of a model with model.cin_channels 0 (no mel input)."""
    recipe = Recipe()
    m = recipe.model
    m.layers, m.stacks, m.residual_channels, m.gate_channels, m.skip_channels, m.cin_channels = (
        4,
        2,
        8,
        16,
        8,
        0,
    )
    model = WaveNet(m)
    save_checkpoint(
        tmp_path / "uncond" / "checkpoints" / "step_00000001.pt",
        {
            "step": 1,
            "model": model.state_dict(),
            "ema": None,
            "recipe": recipe.to_dict(),
            "speakers": ["LJ"],
            "preset": get_preset("tacotron2").to_dict(),
            "valid_bits": None,
        },
    )
    return tmp_path / "uncond"


@pytest.mark.slow  # CLI subprocesses
def test_unconditional_model_is_refused_with_one_line(tmp_path):
    run_dir = unconditional_run(tmp_path)
    wavegen.write_audio(tmp_path / "a.wav", speech(0.2), 22050)
    np.save(tmp_path / "a.npy", mel_spectrogram(speech(0.2), "tacotron2"))
    export = export_model(run_dir, tmp_path / "export")
    for model, source in (
        (run_dir, ["--wav", str(tmp_path / "a.wav")]),
        (export, ["--mel", str(tmp_path / "a.npy")]),
        (run_dir, ["--split", "test", "--workdir", str(tmp_path)]),
    ):
        line = one_line_error(run_cli("synthesize", "-c", str(model), *source, "-o", str(tmp_path / "o")))
        assert line.startswith(f"wavegen: error: {model}: this model is unconditional (model.cin_channels 0)")
        assert "cannot vocode" in line
    assert not (tmp_path / "o").exists()
    vocoder = wavegen.load_vocoder(run_dir)
    with pytest.raises(wavegen.WavegenError, match="unconditional"):
        vocoder(mel_spectrogram(speech(0.2), "tacotron2"))


# ---- output names and counts (issue 10, item 7) -------------------------------------------------


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return export_model(make_run(root), root / "export")


@pytest.mark.slow  # CLI subprocesses
def test_inputs_of_one_name_are_refused_naming_both(tiny_export, tmp_path):
    for folder in ("a", "b"):
        wavegen.write_audio(tmp_path / folder / "x.wav", speech(0.1), 22050)
    wavegen.write_audio(tmp_path / "b" / "x.flac", speech(0.1), 22050)
    out = tmp_path / "out"
    line = one_line_error(
        run_cli(
            "synthesize",
            "-c",
            str(tiny_export),
            "--wav",
            str(tmp_path / "a" / "x.wav"),
            "--wav",
            str(tmp_path / "b" / "x.wav"),
            "-o",
            str(out),
        )
    )
    assert (
        f"{tmp_path / 'a' / 'x.wav'} and {tmp_path / 'b' / 'x.wav'} would both be written to {out / 'x.wav'}"
        in line
    )
    line = one_line_error(
        run_cli("synthesize", "-c", str(tiny_export), "--wav", str(tmp_path / "b"), "-o", str(out))
    )
    assert "x.flac" in line and "x.wav" in line and "would both be written" in line
    np.save(tmp_path / "m.npy", mel_spectrogram(speech(0.1), "tacotron2"))
    torch.save(torch.from_numpy(mel_spectrogram(speech(0.1), "tacotron2")), tmp_path / "m.pt")
    line = one_line_error(
        run_cli(
            "synthesize",
            "-c",
            str(tiny_export),
            "--mel",
            str(tmp_path / "m.npy"),
            "--mel",
            str(tmp_path / "m.pt"),
            "-o",
            str(out),
        )
    )
    assert "m.npy and" in line and "m.pt would both be written" in line
    assert not out.exists()  # refused before any work


@pytest.mark.slow  # CLI subprocesses
def test_count_printed_is_count_written(tiny_export, tmp_path):
    wavegen.write_audio(tmp_path / "a" / "x.wav", speech(0.1), 22050)
    wavegen.write_audio(tmp_path / "a" / "y.wav", speech(0.12), 22050)
    out = tmp_path / "out"
    # The same file named twice (on its own and through its folder) is one input, one output.
    summary = synth(tiny_export, out, "--wav", str(tmp_path / "a" / "x.wav"), "--wav", str(tmp_path / "a"))
    assert (summary["synthesized"], summary["skipped_existing"]) == (2, 0)
    assert sorted(p.name for p in out.iterdir()) == ["x.wav", "y.wav"]
    r = run_cli("synthesize", "-c", str(tiny_export), "--wav", str(tmp_path / "a"), "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert (
        "wrote 0 WAVs" in r.stderr and "2 already there and kept (--overwrite regenerates them)" in r.stderr
    )
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert (summary["synthesized"], summary["skipped_existing"], summary["realtime_factor"]) == (0, 2, None)
    (out / "y.wav").unlink()
    r = run_cli("synthesize", "-c", str(tiny_export), "--wav", str(tmp_path / "a"), "-o", str(out))
    assert r.returncode == 0 and "wrote 1 WAVs" in r.stdout and "1 already there" in r.stdout, r.stderr
    assert synth(tiny_export, out, "--wav", str(tmp_path / "a"), "--overwrite")["synthesized"] == 2


@pytest.mark.slow  # CLI subprocesses
def test_bad_temperature_and_short_audio_are_one_line_errors_naming_the_file(tiny_export, tmp_path):
    wavegen.write_audio(tmp_path / "in" / "blip.wav", speech(0.01), 22050)  # 220 samples
    wavegen.write_audio(tmp_path / "ok.wav", speech(0.1), 22050)
    out = tmp_path / "o"
    line = one_line_error(
        run_cli("synthesize", "-c", str(tiny_export), "--wav", str(tmp_path / "in"), "-o", str(out))
    )
    assert f"{tmp_path / 'in' / 'blip.wav'}: audio too short for the tacotron2 preset" in line
    for value in ("nan", "inf", "-1"):
        args = ("synthesize", "-c", str(tiny_export), "--wav", str(tmp_path / "ok.wav"), "-o", str(out))
        line = one_line_error(run_cli(*args, "--temperature", value))
        assert "temperature must be a finite number ≥ 0 (0 = argmax)" in line
    for value in ("99999999999999999999", "-5"):  # the first was an internal error (#18 hunt)
        line = one_line_error(run_cli(*args, "--seed", value))
        assert f"seed: expected an integer from 0 to 2**63 - 1, got {value}" in line, line
    assert not out.exists()


def test_a_file_as_output_folder_and_a_wav_as_mel_are_one_plain_line(tiny_export, tmp_path, capsys):
    """Found by the #18 hunt: `-o a.wav` (an existing file) said "a.wav: File exists", and
    `--mel a.wav` named the file twice ("a.wav: a.wav: expected a .npy or .pt mel file")."""
    from wavegen.cli import run as run_cli_in_process

    wav = tmp_path / "a.wav"
    wavegen.write_audio(wav, speech(0.1), 22050)
    capsys.readouterr()
    assert run_cli_in_process(["synthesize", "-c", str(tiny_export), "--wav", str(wav), "-o", str(wav)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"wavegen: error: {wav}: is a file; -o expects the folder to write the WAVs into", err
    out = tmp_path / "o"
    assert run_cli_in_process(["synthesize", "-c", str(tiny_export), "--mel", str(wav), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"wavegen: error: {wav}: expected a .npy or .pt mel file", err
    assert not out.exists()
