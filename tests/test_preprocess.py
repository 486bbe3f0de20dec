"""Preprocessing: the cache contract, bad data, resumability, the split, and the CLI's summary."""

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavegen.artifacts.workdir import load_features_info, load_manifest, load_stats
from wavegen.core.config import Recipe, from_dict
from wavegen.core.errors import WavegenError
from wavegen.core.features import get_preset, mel_spectrogram
from wavegen.data.corpora import Utterance
from wavegen.data.preprocess import assign_splits, held_out_counts, normalize, preprocess, trim_silence

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
REPO = Path(__file__).resolve().parents[1]
HOP = 256


def speechlike(sr: int, seconds: float, seed: int, silence: float = 0.0) -> np.ndarray:
    """Harmonics with vibrato plus noise, with ``silence`` seconds of zeros at both ends."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    phase = 2 * np.pi * np.cumsum(120 + 30 * seed + 15 * np.sin(2 * np.pi * 3 * t)) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 20)) + 0.05 * rng.standard_normal(len(t))
    x = 0.5 * x / np.abs(x).max()
    pad = np.zeros(int(sr * silence))
    return np.concatenate([pad, x, pad]).astype(np.float32)


def make_corpus(root: Path, speakers=("s1", "s2"), per_speaker=4) -> Path:
    for s, speaker in enumerate(speakers):
        for u in range(per_speaker):
            (root / speaker).mkdir(parents=True, exist_ok=True)
            sf.write(root / speaker / f"{u:02d}.wav", speechlike(22050, 0.7 + 0.1 * u, s * 10 + u), 22050)
    return root


def recipe(corpus_path: Path, **data) -> Recipe:
    return from_dict(
        Recipe,
        {
            "name": "t",
            "audio": {"preset": "tacotron2", "trim_top_db": 40.0, "min_seconds": 0.3},
            "data": {
                "corpus": "folder",
                "corpus_path": str(corpus_path),
                "valid_per_speaker": 1,
                "test_per_speaker": 1,
                **data,
            },
        },
    )


def cache_state(workdir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((workdir / "cache").iterdir())}


# ---- the contract ------------------------------------------------------------------------------


def test_end_to_end_cache_matches_contract(tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    # One file with silence to trim, one stereo 44.1 kHz 24-bit FLAC to convert.
    sf.write(corpus / "s1" / "padded.wav", speechlike(22050, 0.8, seed=7, silence=0.5), 22050)
    stereo = np.stack([speechlike(44100, 0.9, seed=8), speechlike(44100, 0.9, seed=8)], axis=1)
    sf.write(corpus / "s2" / "stereo.flac", stereo, 44100, subtype="PCM_24")
    workdir = tmp_path / "work"
    summary = preprocess(recipe(corpus), workdir, workers=1)
    assert summary.processed == 10 and summary.cached == 0 and summary.skipped == []
    assert summary.splits == {"train": 6, "valid": 2, "test": 2}
    assert summary.audio_seconds == pytest.approx(2 * (0.7 + 0.8 + 0.9 + 1.0) + 1.8 + 0.9, abs=0.01)

    entries = load_manifest(workdir)
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    preset = get_preset("tacotron2")
    for e in entries:
        audio = np.load(workdir / e["audio"])
        mel = np.load(workdir / e["mel"])
        assert audio.dtype == np.float32 and mel.dtype == np.float32
        assert audio.shape == (e["frames"] * HOP,) and mel.shape == (80, e["frames"])
        assert e["seconds"] == pytest.approx(e["frames"] * HOP / 22050, abs=1e-3)
        assert np.abs(audio).max() <= 1.0
        # The cached mel is the preset's mel of exactly the cached audio.
        np.testing.assert_allclose(mel, mel_spectrogram(audio, preset)[:, : e["frames"]], atol=1e-5)
        assert Path(e["source"]).is_file()
    by_id = {e["id"]: e for e in entries}
    assert by_id["s1_padded"]["seconds"] == pytest.approx(0.8, abs=0.05)  # 1 s of silence trimmed
    assert by_id["s2_stereo"]["seconds"] == pytest.approx(0.9, abs=0.03)  # resampled, not rejected

    info = load_features_info(workdir)
    assert info["speakers"] == ["s1", "s2"] and info["sample_rate"] == 22050
    assert info["hop_length"] == HOP and info["n_mels"] == 80 and info["preset"] == "tacotron2"
    assert info["preset_params"] == preset.to_dict() and info["recipe"]["data"]["corpus"] == "folder"
    stats = load_stats(workdir)
    train = np.concatenate([np.load(workdir / e["mel"]) for e in entries if e["split"] == "train"], 1)
    np.testing.assert_allclose(stats["mean"], train.mean(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats["std"], train.std(1), rtol=1e-4, atol=1e-5)
    assert "done: 10 processed" in (workdir / "preprocess.log").read_text()


def test_parallel_equals_serial_and_rerun_is_idempotent(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_speaker=3)
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    preprocess(recipe(corpus), serial, workers=1)
    preprocess(recipe(corpus), parallel, workers=2)
    assert cache_state(serial) == cache_state(parallel)
    assert (serial / "manifest.jsonl").read_bytes() == (parallel / "manifest.jsonl").read_bytes()

    before = cache_state(serial)
    mtimes = {p: p.stat().st_mtime_ns for p in (serial / "cache").iterdir()}
    again = preprocess(recipe(corpus), serial, workers=2)
    assert again.processed == 0 and again.cached == 6 and again.skipped == []
    assert cache_state(serial) == before
    assert {p: p.stat().st_mtime_ns for p in (serial / "cache").iterdir()} == mtimes
    assert (serial / "manifest.jsonl").read_bytes() == (parallel / "manifest.jsonl").read_bytes()


def test_workdir_of_another_preset_is_refused(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", speakers=("s1",), per_speaker=2)
    preprocess(recipe(corpus), tmp_path / "work", workers=1)
    other = recipe(corpus)
    other.audio.preset = "espnet"
    with pytest.raises(WavegenError, match=r"audio.preset='tacotron2'.*another --workdir"):
        preprocess(other, tmp_path / "work", workers=1)


# ---- bad data ----------------------------------------------------------------------------------


def write_bad_files(wavs: Path) -> dict[str, str]:
    """Bad files of every kind the issue lists, with the reason each must be reported for."""
    (wavs / "LJ900-0001.wav").write_bytes(b"")
    good = speechlike(22050, 1.0, seed=1)
    sf.write(wavs / "LJ900-0002.wav", good, 22050, subtype="PCM_16")
    data = (wavs / "LJ900-0002.wav").read_bytes()
    (wavs / "LJ900-0002.wav").write_bytes(data[: len(data) // 2])  # truncated: header says more
    sf.write(
        wavs / "LJ900-0003.wav",
        np.where(np.arange(22050) == 500, np.nan, good[:22050]),
        22050,
        subtype="FLOAT",
    )
    (wavs / "LJ900-0004.wav").write_text("this is not audio\n" * 50)
    sf.write(wavs / "LJ900-0005.wav", speechlike(22050, 0.1, seed=2), 22050)
    sf.write(wavs / "LJ900-0006.wav", np.zeros(22050, np.float32), 22050)
    # LJ900-0007 is listed in metadata.csv but has no file.
    return {
        "LJ900-0001": "empty",
        "LJ900-0002": "truncated",
        "LJ900-0003": "NaN or infinite",
        "LJ900-0004": "not readable as audio",
        "LJ900-0005": "too short",
        "LJ900-0006": "silent",
        "LJ900-0007": "no such audio file",
    }


def make_ljspeech(root: Path, good: int) -> Path:
    wavs = root / "LJSpeech-1.1" / "wavs"
    wavs.mkdir(parents=True)
    ids = [f"LJ001-{i:04d}" for i in range(1, good + 1)]
    for i, uid in enumerate(ids):
        sf.write(wavs / f"{uid}.wav", speechlike(22050, 0.6, seed=i), 22050)
    expected = write_bad_files(wavs)
    lines = [f'{uid}|Text "{uid}" here|Text "{uid}" here' for uid in ids + sorted(expected)]
    (wavs.parent / "metadata.csv").write_text("\n".join(lines) + "\n")
    return wavs.parent, expected


def test_bad_entries_are_reported_skipped_and_logged(tmp_path):
    corpus, expected = make_ljspeech(tmp_path, good=3)
    rec = recipe(corpus, corpus="ljspeech")
    summary = preprocess(rec, tmp_path / "work", workers=2)
    assert summary.processed == 3
    reasons = {s["id"]: s["reason"] for s in summary.skipped}
    assert set(reasons) == set(expected)
    for uid, words in expected.items():
        assert words in reasons[uid], (uid, reasons[uid])
    assert all(s["file"].endswith(f"{s['id']}.wav") for s in summary.skipped)
    log = (tmp_path / "work" / "preprocess.log").read_text()
    assert all(f"skipped {uid}" in log for uid in expected)
    assert [e["id"] for e in load_manifest(tmp_path / "work")] == ["LJ001-0001", "LJ001-0002", "LJ001-0003"]
    assert load_features_info(tmp_path / "work")["speakers"] == ["LJ"]


def test_nothing_usable_is_an_error(tmp_path):
    corpus, _ = make_ljspeech(tmp_path, good=0)
    with pytest.raises(WavegenError, match=r"no usable utterance.*7 skipped"):
        preprocess(recipe(corpus, corpus="ljspeech"), tmp_path / "work", workers=1)
    assert not (tmp_path / "work" / "manifest.jsonl").exists()


# ---- interruption ------------------------------------------------------------------------------


def test_killed_run_leaves_no_half_written_file_and_rerun_completes(tmp_path):
    """A run killed (os._exit) while writing the 4th cache file, half of it on disk, resumes."""
    corpus = make_corpus(tmp_path / "corpus", per_speaker=3)
    workdir = tmp_path / "work"
    script = textwrap.dedent(f"""
        import os, numpy as np, wavegen.data.preprocess as pp
        from tests.test_preprocess import recipe
        from pathlib import Path
        real_save, calls = np.save, [0]
        def dying_save(f, array):
            calls[0] += 1
            if calls[0] == 4:
                f.write(b"half a file"); f.flush()
                os._exit(9)  # like SIGKILL: no cleanup, no finally blocks
            real_save(f, array)
        np.save = dying_save
        pp.preprocess(recipe(Path({str(corpus)!r})), Path({str(workdir)!r}), workers=1)
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 9, r.stderr
    leftovers = [p.name for p in (workdir / "cache").iterdir()]
    assert len([n for n in leftovers if n.endswith(".tmp")]) == 1  # the half-written temp file
    assert sorted(n for n in leftovers if n.endswith(".npy")) == [
        "s1_00.audio.npy",
        "s1_00.mel.npy",
        "s1_01.audio.npy",
    ]  # complete files only

    summary = preprocess(recipe(corpus), workdir, workers=1)
    assert summary.cached == 1 and summary.processed == 5  # s1_01 had its audio but no mel yet
    assert not [p for p in workdir.rglob("*") if p.name.endswith(".tmp")]
    fresh = tmp_path / "fresh"
    preprocess(recipe(corpus), fresh, workers=1)
    assert cache_state(workdir) == cache_state(fresh)
    assert (workdir / "manifest.jsonl").read_bytes() == (fresh / "manifest.jsonl").read_bytes()


# ---- the split ---------------------------------------------------------------------------------


def utts(speaker: str, n: int) -> list[Utterance]:
    return [Utterance(f"{speaker}_{i:03d}", speaker, Path(f"{speaker}/{i}.wav")) for i in range(n)]


def test_split_is_deterministic_and_per_speaker():
    # 30 utterances each (20 before the 10% cap: 3 test of 20 is now capped to 2).
    corpus = utts("p1", 30) + utts("p2", 30) + utts("p3", 3)
    splits = assign_splits(corpus, 2, 3, seed=5)
    assert splits == assign_splits(list(reversed(corpus)), 2, 3, seed=5)  # order-independent
    assert splits != assign_splits(corpus, 2, 3, seed=6)
    for speaker in ("p1", "p2"):
        mine = [splits[u.id] for u in corpus if u.speaker == speaker]
        assert (mine.count("valid"), mine.count("test"), mine.count("train")) == (2, 3, 25)
    small = [splits[u.id] for u in corpus if u.speaker == "p3"]
    assert small.count("train") >= 1  # never an untrainable speaker
    # Another speaker's files do not move this speaker's split.
    assert {
        k: v for k, v in assign_splits(corpus + utts("p4", 9), 2, 3, seed=5).items() if not k.startswith("p4")
    } == splits


def test_held_out_speakers_are_all_test():
    corpus = utts("p1", 10) + utts("p2", 10)
    splits = assign_splits(corpus, 1, 1, held_out_speakers=["p2"], seed=1)
    assert all(splits[u.id] == "test" for u in corpus if u.speaker == "p2")
    assert [splits[u.id] for u in corpus if u.speaker == "p1"].count("train") == 8
    with pytest.raises(WavegenError, match="held_out_speakers names p9"):
        assign_splits(corpus, 1, 1, held_out_speakers=["p9"])
    with pytest.raises(WavegenError, match="every speaker"):
        assign_splits(corpus, 1, 1, held_out_speakers=["p1", "p2"])


@pytest.mark.parametrize(
    "utterances,asked,expected",
    [
        (1, (1, 1), (0, 0)),  # one utterance: it trains
        (2, (1, 1), (1, 0)),  # valid is served first, one stays in train
        (3, (1, 1), (1, 1)),
        (8, (1, 1), (1, 1)),  # the demo's speakers
        (10, (5, 5), (1, 1)),  # vctk-mini under the VCTK recipe
        (14, (5, 5), (1, 1)),
        (15, (5, 5), (2, 2)),  # 10% of 15 = 1.5, rounded to 2
        (19, (100, 100), (2, 2)),  # the LJSpeech recipe on a 19-clip folder: 15 left to train
        (20, (0, 3), (0, 2)),
        (400, (5, 5), (5, 5)),  # a VCTK 0.92 speaker: as asked
        (13_100, (100, 100), (100, 100)),  # LJSpeech 1.1: as asked
    ],
)
def test_held_out_counts_cap_each_split_at_a_tenth(utterances, asked, expected):
    assert held_out_counts(utterances, *asked) == expected


def test_every_speaker_keeps_training_data_and_valid_test_stay_within_the_cap():
    rng = np.random.default_rng(0)
    sizes = {f"s{i}": int(n) for i, n in enumerate(rng.integers(1, 60, 40))}
    corpus = [u for speaker, n in sizes.items() for u in utts(speaker, n)]
    splits = assign_splits(corpus, 4, 3, seed=2)
    for speaker, n in sizes.items():
        mine = [splits[u.id] for u in corpus if u.speaker == speaker]
        cap = max(1, round(n / 10 + 1e-9))
        assert mine.count("train") >= 1
        assert mine.count("valid") == min(4, cap, n - 1)
        assert mine.count("test") == min(3, cap, n - 1 - mine.count("valid"))


def test_files_that_fail_to_load_take_no_valid_or_test_slot(tmp_path):
    """The split of the usable files is the split they get without the broken ones around."""
    corpus, expected = make_ljspeech(tmp_path / "with_bad", good=12)
    clean = tmp_path / "clean" / "LJSpeech-1.1"
    (clean / "wavs").mkdir(parents=True)
    lines = [line for line in (corpus / "metadata.csv").read_text().splitlines() if line[:10] not in expected]
    (clean / "metadata.csv").write_text("\n".join(lines) + "\n")
    for line in lines:
        name = line.split("|")[0] + ".wav"
        os.symlink(corpus / "wavs" / name, clean / "wavs" / name)
    with_bad = preprocess(recipe(corpus, corpus="ljspeech"), tmp_path / "w1", workers=2)
    without = preprocess(recipe(clean, corpus="ljspeech"), tmp_path / "w2", workers=2)
    assert len(with_bad.skipped) == 7 and without.skipped == []
    assert with_bad.splits == without.splits == {"train": 10, "valid": 1, "test": 1}
    split_of = lambda w: {e["id"]: e["split"] for e in load_manifest(w)}  # noqa: E731
    assert split_of(tmp_path / "w1") == split_of(tmp_path / "w2")


@pytest.mark.skipif(not (SHARED / "ljspeech-mini").is_dir(), reason=f"shared corpora not at {SHARED}")
def test_ljspeech_recipe_on_19_clips_is_capped_and_says_so(tmp_path):
    """The recipe's 100 valid + 100 test on a 19-clip folder: 2 + 2, 15 train, reported."""
    corpus = tmp_path / "LJSpeech-1.1"
    (corpus / "wavs").mkdir(parents=True)
    lines = (SHARED / "ljspeech-mini" / "metadata.csv").read_text(encoding="utf-8").splitlines()[:19]
    (corpus / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for line in lines:
        uid = line.split("|")[0]
        os.symlink(SHARED / "ljspeech-mini" / "wavs" / f"{uid}.wav", corpus / "wavs" / f"{uid}.wav")
    recipe_path = str(REPO / "recipes" / "ljspeech" / "config.yaml")
    r = run_cli("preprocess", recipe_path, "--corpus", str(corpus), "--workdir", "w", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["splits"] == {"train": 15, "valid": 2, "test": 2}
    assert summary["split_caps"] == [
        {"speaker": "LJ", "utterances": 19, "valid": 2, "test": 2, "asked_valid": 100, "asked_test": 100}
    ]
    note = "split capped for 1 speaker (data.valid_per_speaker=100, data.test_per_speaker=100;"
    assert note in r.stdout and "LJ 2 valid + 2 test of 19" in r.stdout
    assert note in (tmp_path / "w" / "preprocess.log").read_text()


@pytest.mark.parametrize("top_db", [20.0, 40.0, 60.0])
def test_trim_silence_equals_librosa(top_db):
    import librosa

    rng = np.random.default_rng(int(top_db))
    for seed, silence in ((0, 0.0), (1, 0.3), (2, 0.77)):
        wav = speechlike(22050, 0.8, seed, silence) + 1e-4 * rng.standard_normal(1).astype(np.float32)
        wav[: int(0.1 * 22050)] *= np.linspace(0, 1, int(0.1 * 22050), dtype=np.float32)  # fade in
        expected, _ = librosa.effects.trim(wav, top_db=top_db, frame_length=1024, hop_length=256)
        np.testing.assert_array_equal(trim_silence(wav, top_db, 1024, 256), expected)
    zeros = np.zeros(5000, np.float32)  # all frames equally (not) loud: both keep everything
    assert trim_silence(zeros, top_db, 1024, 256).size == librosa.effects.trim(zeros, top_db=top_db)[0].size


def test_normalize_peak_and_loudness():
    wav = 0.1 * speechlike(22050, 0.5, seed=3)
    audio = from_dict(Recipe, {"audio": {"normalize": "peak", "peak_level": 0.8}}).audio
    assert np.abs(normalize(wav, audio)).max() == pytest.approx(0.8, rel=1e-5)
    audio.normalize, audio.loudness_db = "loudness", -30.0
    out = normalize(wav, audio)
    assert 20 * np.log10(np.sqrt(np.mean(out.astype(np.float64) ** 2))) == pytest.approx(-30.0, abs=0.01)
    audio.loudness_db = 0.0  # would clip: the gain is limited instead
    assert np.abs(normalize(wav, audio)).max() == pytest.approx(0.999, rel=1e-5)


# ---- real data and the CLI ---------------------------------------------------------------------


@pytest.mark.skipif(not (SHARED / "ljspeech-mini").is_dir(), reason=f"shared corpora not at {SHARED}")
def test_shared_ljspeech_clips(tmp_path):
    """Four real LJSpeech clips through the LJSpeech recipe's audio settings."""
    corpus = tmp_path / "LJSpeech-1.1"
    (corpus / "wavs").mkdir(parents=True)
    lines = (SHARED / "ljspeech-mini" / "metadata.csv").read_text(encoding="utf-8").splitlines()[:4]
    (corpus / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for line in lines:
        uid = line.split("|")[0]
        os.symlink(SHARED / "ljspeech-mini" / "wavs" / f"{uid}.wav", corpus / "wavs" / f"{uid}.wav")
    from wavegen.core.config import load_recipe

    rec = load_recipe(
        REPO / "recipes" / "ljspeech" / "config.yaml", ["data.valid_per_speaker=1", "data.test_per_speaker=1"]
    )
    summary = preprocess(rec, tmp_path / "work", corpus_path=corpus, workers=2)
    assert summary.processed == 4 and summary.skipped == []
    for e in load_manifest(tmp_path / "work"):
        source_seconds = sf.info(e["source"]).duration
        assert source_seconds - 1.0 < e["seconds"] <= source_seconds + HOP / 22050  # trimmed a little


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "wavegen", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.slow  # CLI subprocesses
def test_cli_json_summary_and_default_workdir(tmp_path):
    corpus, expected = make_ljspeech(tmp_path, good=3)
    (tmp_path / "lj.yaml").write_text(
        f"extends: {REPO / 'recipes' / 'ljspeech' / 'config.yaml'}\n"
        "data: {valid_per_speaker: 1, test_per_speaker: 1, corpus_path: LJSpeech-1.1}\n"
    )
    r = run_cli("preprocess", "lj.yaml", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["processed"] == 3 and summary["cached"] == 0
    assert {s["id"] for s in summary["skipped"]} == set(expected)
    assert set(summary["skipped"][0]) == {"id", "file", "reason"}
    assert summary["audio_seconds"] == pytest.approx(1.8, abs=0.01) and summary["seconds"] > 0
    assert summary["realtime_factor"] == pytest.approx(summary["audio_seconds"] / summary["seconds"])
    assert (tmp_path / "exp" / "lj" / "manifest.jsonl").is_file()  # default --workdir exp/<name>
    assert "skipped LJ900-0001" in r.stderr


def test_cli_missing_corpus_is_one_line_exit_1(tmp_path):
    (tmp_path / "r.yaml").write_text("data: {corpus: vctk, corpus_path: nowhere}\n")
    r = run_cli("preprocess", "r.yaml", "--workdir", "w", cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "nowhere" in lines[0] and "corpus folder does not exist" in lines[0]
    # The work dir it would have made is not left behind, lock file and all.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]


def test_cli_a_file_as_corpus_and_negative_workers_are_refused(tmp_path):
    """Found by the #18 hunt: a file given as --corpus "does not exist"; --workers -1 ran."""
    (tmp_path / "r.yaml").write_text("data: {corpus: ljspeech}\n")
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    r = run_cli("preprocess", "r.yaml", "--corpus", "a.wav", "--workdir", "w", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"wavegen: error: {tmp_path / 'a.wav'}: a file, not a corpus folder (data.corpus_path or --corpus)"
    ], r.stderr
    r = run_cli("preprocess", "r.yaml", "--corpus", ".", "--workdir", "w", "--workers", "-1", cwd=tmp_path)
    assert r.returncode == 2 and "--workers" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "r.yaml"]


# ---- write errors are errors, not skipped utterances (#10 item 6) ------------------------------


def test_disk_full_stops_with_one_error_and_keeps_the_work_done(tmp_path, monkeypatch):
    """A simulated ENOSPC on the 5th cache file: an error naming it, no 'skipped' utterance, the
    two finished utterances kept, no temporary file; a rerun continues from them."""
    corpus = make_corpus(tmp_path / "corpus", per_speaker=3)
    workdir = tmp_path / "work"
    real_save, calls = np.save, [0]

    def filling_save(f, array):
        calls[0] += 1
        if calls[0] >= 5:
            f.write(b"part of a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(f, array)

    monkeypatch.setattr(np, "save", filling_save)
    with pytest.raises(WavegenError) as err:
        preprocess(recipe(corpus), workdir, workers=1)
    message = str(err.value)
    assert "\n" not in message and str(workdir / "cache") in message, message
    assert "cannot write: No space left on device" in message and "2 utterances" in message
    assert "skipped" not in (workdir / "preprocess.log").read_text()
    assert not [p for p in workdir.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.undo()
    summary = preprocess(recipe(corpus), workdir, workers=1)
    assert summary.cached == 2 and summary.processed == 4 and summary.skipped == []


DISK_FULL_AFTER_3 = """
import errno, sys
import numpy as np
real_save, calls = np.save, [0]
def filling_save(f, array):  # every process (the pool forks) fills up after 3 files
    calls[0] += 1
    if calls[0] > 3:
        raise OSError(errno.ENOSPC, "No space left on device")
    real_save(f, array)
np.save = filling_save
from wavegen.cli import main
main(sys.argv[1:])
"""


def test_disk_full_in_the_process_pool_is_exit_1_one_line(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_speaker=4)
    (tmp_path / "r.yaml").write_text(
        f"data: {{corpus: folder, corpus_path: {corpus}, valid_per_speaker: 1, test_per_speaker: 1}}\n"
        "audio: {min_seconds: 0.3, trim_top_db: 40.0}\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", DISK_FULL_AFTER_3, "preprocess", "r.yaml", "--workdir", "w", "--workers", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("wavegen: error:") and "No space left on device" in lines[0]
    assert "skipped" not in r.stderr + r.stdout and not (tmp_path / "w" / "manifest.jsonl").exists()
    assert not [p for p in (tmp_path / "w").rglob("*") if p.name.endswith(".tmp")]


def can_mount_tmpfs() -> str | None:
    """None if `unshare -Urm` can mount a tmpfs here, else why not."""
    if not shutil.which("unshare"):
        return "no unshare(1) on this machine"
    r = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d"],
        capture_output=True,
        text=True,
    )
    return None if r.returncode == 0 else f"cannot mount a tmpfs in a user namespace: {r.stderr.strip()}"


@pytest.mark.slow  # CLI subprocesses
@pytest.mark.skipif(not (SHARED / "ljspeech-mini").is_dir(), reason=f"shared corpora not at {SHARED}")
def test_real_full_tmpfs_is_an_error_and_a_rerun_with_space_resumes(tmp_path):
    """ljspeech-mini into a real 3 MB tmpfs (in a user namespace): exit 1 naming the file,
    nothing skipped; the same tmpfs grown to 64 MB: the rerun keeps what was done."""
    why = can_mount_tmpfs()
    if why:
        pytest.skip(why)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    wavegen = f"{sys.executable} -m wavegen preprocess {REPO / 'recipes' / 'ljspeech' / 'config.yaml'}"
    args = f"--corpus {SHARED / 'ljspeech-mini'} --workdir {mnt}/w --workers 2 --set data.valid_per_speaker=1"
    script = f"""
        mount -t tmpfs -o size=3m tmpfs {mnt} || exit 99
        {wavegen} {args} --set data.test_per_speaker=1; echo "first=$?"
        echo "done_first=$(ls {mnt}/w/cache | grep -c mel.npy)"
        echo "tmp_first=$(ls -a {mnt}/w/cache | grep -c tmp)"
        mount -o remount,size=64m {mnt}
        {wavegen} {args} --set data.test_per_speaker=1; echo "second=$?"
    """
    r = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    out = dict(
        line.split("=", 1)
        for line in r.stdout.splitlines()
        if line.split("=")[0] in {"first", "done_first", "tmp_first", "second"}
    )
    assert out.get("first") == "1", (r.stdout, r.stderr)
    first_error = [line for line in r.stderr.splitlines() if line.startswith("wavegen: error:")]
    assert len(first_error) == 1, r.stderr
    assert f"{mnt}/w/" in first_error[0] and "cannot write" in first_error[0], first_error
    assert "No space left on device [ENOSPC]" in first_error[0], first_error
    assert "skipped" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert out["tmp_first"] == "0" and int(out["done_first"]) >= 1
    assert out["second"] == "0", r.stderr
    assert f"{out['done_first']} already cached" in r.stdout, (r.stdout, r.stderr)


# ---- one writer per work dir, and a work dir is one cache (#10 item 4) -------------------------


@pytest.mark.slow  # runs the demo command
def test_a_work_dir_in_use_is_refused_by_preprocess_and_demo(tmp_path):
    """The work dir's OS lock held (here by this test process): a second `wavegen preprocess`
    and a `wavegen demo` on it stop at once with one line naming the holder."""
    from wavegen.core.dirlock import folder_lock

    corpus = make_corpus(tmp_path / "corpus", speakers=("s1",), per_speaker=3)
    (tmp_path / "r.yaml").write_text(f"data: {{corpus: folder, corpus_path: {corpus}}}\n")
    with folder_lock(tmp_path / "work", "work dir"):
        for args in (["preprocess", "r.yaml", "--workdir", "work"], ["demo", "--workdir", "work"]):
            r = run_cli(*args, cwd=tmp_path)
            assert r.returncode == 1, r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and f"this work dir is in use by pid {os.getpid()} (" in lines[0], r.stderr
        assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["wavegen.lock"]


def test_a_work_dir_of_another_corpus_is_refused_and_kept(tmp_path):
    """`wavegen demo --workdir <an LJSpeech work dir>` used to replace its manifest, features
    and stats; now it stops, saying which corpus the work dir holds."""
    corpus, _ = make_ljspeech(tmp_path, good=3)
    workdir = tmp_path / "work"
    preprocess(recipe(corpus, corpus="ljspeech"), workdir, workers=1)
    before = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file() and p.suffix != ".log"}
    r = run_cli("demo", "--workdir", str(workdir), cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"{workdir} holds the cache of the ljspeech corpus at {corpus.resolve()}" in lines[0]
    assert "the demo corpus" in lines[0] and "use another --workdir" in lines[0]
    after = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file() and p.suffix != ".log"}
    assert after == before and not (workdir / "demo_corpus").exists()


def test_a_work_dir_made_from_another_folder_or_split_is_refused(tmp_path):
    first = make_corpus(tmp_path / "a", speakers=("s1",), per_speaker=3)
    second = make_corpus(tmp_path / "b", speakers=("s1",), per_speaker=3)
    workdir = tmp_path / "work"
    preprocess(recipe(first), workdir, workers=1)
    assert load_features_info(workdir)["corpus_path"] == str(first.resolve())
    with pytest.raises(WavegenError, match=rf"folder corpus at {second.resolve()}: use another --workdir"):
        preprocess(recipe(second), workdir, workers=1)
    with pytest.raises(WavegenError, match=r"data.valid_per_speaker=1, the recipe has 0"):
        preprocess(recipe(first, valid_per_speaker=0), workdir, workers=1)
    with pytest.raises(WavegenError, match=r"audio.min_seconds=0.3, the recipe has 0.1"):
        rec = recipe(first)
        rec.audio.min_seconds = 0.1
        preprocess(rec, workdir, workers=1)
    again = preprocess(recipe(first), workdir, workers=1)  # the same settings: resumes
    assert again.cached == 3 and again.processed == 0
