"""preprocess --mels: a TTS model's mels matched by utterance id, in every declared or diagnosed
convention converted to the recipe's preset, frame counts aligned and counted, and refusals."""

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from wavegen.core.audio import read_audio
from wavegen.core.config import load_recipe
from wavegen.core.errors import WavegenError
from wavegen.core.features import mel_spectrogram
from wavegen.data.preprocess import preprocess
from wavegen.data.tts_mels import (
    coqui_db_to_natural_log,
    coqui_settings,
    natural_log_to_coqui_db,
    read_statistics,
)

REPO = Path(__file__).resolve().parents[1]
LJ = REPO.parent / "shared" / "corpora" / "ljspeech-mini"
IDS = ["LJ001-0002", "LJ001-0005", "LJ001-0007", "LJ001-0008"]  # short clips


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four real LJSpeech clips in LJSpeech's layout (links, not copies), and their real mels
    from the untrimmed audio: what a TTS model run teacher-forced would be aligned to."""
    root = tmp_path_factory.mktemp("lj")
    (root / "wavs").mkdir()
    lines = [line for line in (LJ / "metadata.csv").read_text().splitlines() if line.split("|")[0] in IDS]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    mels = {}
    for uid in IDS:
        (root / "wavs" / f"{uid}.wav").symlink_to(LJ / "wavs" / f"{uid}.wav")
        wav, _ = read_audio(LJ / "wavs" / f"{uid}.wav", sample_rate=22050)
        mels[uid] = mel_spectrogram(wav, "tacotron2")  # (80, 1 + N // 256), ln
    return root, mels


def recipe(tmp_path, corpus_root, **data):
    text = {
        "audio": {"preset": "tacotron2", "trim_top_db": 60.0},
        "data": {"corpus": "ljspeech", "corpus_path": str(corpus_root), "valid_per_speaker": 1, **data},
    }
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(text))
    return load_recipe(path)


def reference_cache(tmp_path, corpus_root):
    """The cache made from the audio (its mels are what converted TTS mels must equal)."""
    work = tmp_path / "real"
    preprocess(recipe(tmp_path, corpus_root), work, workers=1, progress=False)
    return work


def cached_mels(work):
    return {uid: np.load(work / "cache" / f"{uid}.mel.npy") for uid in IDS}


# Coqui TTS's AudioProcessor, written out from its documented code (TTS/utils/audio/numpy_transforms.py:
# amp_to_db = gain * log10(max(1e-5, x)), normalize): independent of wavegen.data.tts_mels's inverse.
def coqui_normalised_db(ln_mel, ref_level_db=20.0, min_level_db=-100.0, max_norm=4.0):
    db = 20 * np.log10(np.maximum(1e-5, np.exp(ln_mel))) - ref_level_db
    return np.clip((2 * max_norm) * ((db - min_level_db) / -min_level_db) - max_norm, -max_norm, max_norm)


CONVENTIONS = {
    # name: (recipe keys, file writer from the ln mel)
    "natural-log (auto)": ({}, lambda m: m),
    "log10 (T, n_mels) (auto)": ({}, lambda m: (m / math.log(10)).T),
    "log10 declared": ({"tts_mels_convention": "log10"}, lambda m: m / math.log(10)),
    "coqui-db": ({"tts_mels_convention": "coqui-db"}, coqui_normalised_db),
}


@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_each_convention_becomes_the_presets_mel_of_the_same_audio(corpus, tmp_path, name):
    root, mels = corpus
    keys, write = CONVENTIONS[name]
    folder = tmp_path / "tts"
    folder.mkdir()
    for uid, mel in mels.items():
        np.save(folder / f"{uid}.npy", write(mel).astype(np.float32))
    reference = cached_mels(reference_cache(tmp_path, root))
    summary = preprocess(recipe(tmp_path, root, tts_mels=str(folder), **keys), tmp_path / "w", workers=1)
    assert summary.mels["exact"] + summary.mels["trimmed"] + summary.mels["padded"] == len(IDS)
    assert not summary.skipped
    for uid, got in cached_mels(tmp_path / "w").items():
        want = reference[uid]
        assert got.shape == want.shape, uid
        if name == "coqui-db":  # its floor is -80 dB (min_level_db + ref_level_db), not -100
            want = np.maximum(want, math.log(1e-4))
        # The edge frames differ: the TTS mel's windows see the audio beyond the trimmed ends, the
        # reference's see its reflection (n_fft 1024 = 4 hops: 2 frames each side).
        delta = np.abs(got[:, 2:-2] - want[:, 2:-2]).max()
        assert delta < 1e-4, (uid, delta)
    info = json.loads((tmp_path / "w" / "features.json").read_text())
    assert info["mels"]["kind"] == "tts" and info["mels"]["folder"] == str(folder)
    assert info["mels"]["convention"] == keys.get(
        "tts_mels_convention", "log10" if "log10" in name else "natural-log"
    )


def test_coqui_inverse_undoes_coqui_forward_with_other_settings():
    rng = np.random.default_rng(0)
    ln = rng.uniform(math.log(1e-3), math.log(10), (80, 50))
    settings = {"ref_level_db": 25.0, "min_level_db": -90.0, "max_norm": 1.0, "symmetric_norm": False}
    back = coqui_db_to_natural_log(natural_log_to_coqui_db(ln, settings), settings)
    assert np.abs(back - ln).max() < 1e-9
    symmetric = coqui_normalised_db(ln, 25.0, -90.0, 2.0)
    got = coqui_db_to_natural_log(symmetric, {"ref_level_db": 25.0, "min_level_db": -90.0, "max_norm": 2.0})
    assert np.abs(got - ln).max() < 1e-9


def test_standardised_with_espnet_feats_stats_and_frame_differences(corpus, tmp_path):
    """ESPnet's GlobalMVN file; mels 2 frames long or short are trimmed/padded and counted, one 9
    frames long and a missing one are skipped with the reason."""
    root, mels = corpus
    folder = tmp_path / "tts"
    folder.mkdir()
    log10 = {uid: m / math.log(10) for uid, m in mels.items()}
    stacked = np.concatenate(list(log10.values()), axis=1)
    np.savez(
        tmp_path / "feats_stats.npz",
        count=np.array(stacked.shape[1]),
        sum=stacked.sum(axis=1),
        sum_square=np.square(stacked).sum(axis=1),
    )
    mean, std = stacked.mean(axis=1, keepdims=True), stacked.std(axis=1, keepdims=True)
    a, b, c, d = IDS
    edits = {a: lambda m: np.pad(m, ((0, 0), (0, 2)), mode="edge"), b: lambda m: m[:, :-2]}
    edits[c] = lambda m: np.pad(m, ((0, 0), (0, 9)), mode="edge")
    for uid in (a, b, c):
        np.save(folder / f"{uid}.npy", edits[uid]((log10[uid] - mean) / std).T.astype(np.float32))
    data = {
        "tts_mels": str(folder),
        "tts_mels_convention": "standardised",
        "tts_mels_params": str(tmp_path / "feats_stats.npz"),
    }
    reference = cached_mels(reference_cache(tmp_path, root))
    summary = preprocess(recipe(tmp_path, root, **data), tmp_path / "w", workers=1)
    reasons = {s["id"]: s["reason"] for s in summary.skipped}
    assert reasons[d] == f"no TTS mel {folder / (d + '.npy')}"
    assert "more than data.tts_mels_max_frame_diff=3 apart" in reasons[c]
    assert (summary.mels["trimmed"], summary.mels["padded"]) == (1, 1)  # a trimmed, b padded
    got = np.load(tmp_path / "w" / "cache" / f"{a}.mel.npy")
    assert np.abs(got[:, 2:-2] - reference[a][:, 2:-2]).max() < 1e-3
    log = (tmp_path / "w" / "preprocess.log").read_text()
    assert f"TTS mel of {b} padded by" in log and "1 trimmed, 1 padded" in log
    assert json.loads((tmp_path / "w" / "features.json").read_text())["mels"]["standardised_log_base"] == "10"


def test_undiagnosable_mels_and_a_cache_of_other_mels_are_refused(corpus, tmp_path):
    root, mels = corpus
    folder = tmp_path / "tts"
    folder.mkdir()
    for uid, mel in mels.items():
        np.save(folder / f"{uid}.npy", (20 * mel / math.log(10)).astype(np.float32))  # plain dB
    with pytest.raises(WavegenError, match="look dB .*declare data.tts_mels_convention coqui-db"):
        preprocess(recipe(tmp_path, root, tts_mels=str(folder)), tmp_path / "w", workers=1)
    work = reference_cache(tmp_path, root)
    for uid, mel in mels.items():
        np.save(folder / f"{uid}.npy", mel)
    with pytest.raises(WavegenError, match="was preprocessed with data.tts_mels=''"):
        preprocess(recipe(tmp_path, root, tts_mels=str(folder)), work, workers=1)


@pytest.mark.slow  # CLI subprocesses
def test_cli_mels_option_and_a_one_line_error(corpus, tmp_path):
    root, mels = corpus
    folder = tmp_path / "tts"
    folder.mkdir()
    for uid, mel in mels.items():
        np.save(folder / f"{uid}.npy", mel)
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps({"data": {"corpus": "ljspeech", "valid_per_speaker": 1}}))

    def cli(*args):
        command = [
            sys.executable,
            "-m",
            "wavegen",
            "preprocess",
            str(path),
            "--corpus",
            str(root),
            "--workers",
            "1",
        ]
        return subprocess.run([*command, *args], capture_output=True, text=True, cwd=tmp_path)

    ok = cli("--workdir", "w", "--mels", str(folder), "--json")
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout.strip().splitlines()[-1])
    assert summary["mels"]["convention"] == "natural-log" and summary["mels"]["kind"] == "tts"
    assert "mels from" in ok.stdout
    bad = cli("--workdir", "w2", "--mels", str(tmp_path / "none"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"wavegen: error: data.tts_mels: {tmp_path / 'none'} is not a folder of <utterance id>.npy mels"
    ]
    wrong = cli("--workdir", "w3", "--mels", str(folder), "--mels-convention", "ln")
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
    assert "data.tts_mels_convention must be one of" in wrong.stderr


@pytest.mark.parametrize("key", ["max_norm", "ref_level_db", "min_level_db", "spec_gain"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_coqui_setting_that_is_not_finite_is_refused(key, value):
    """JSON's NaN (Python's json reads it) as max_norm passed every check and cached all-NaN mels."""
    with pytest.raises(WavegenError, match=f"audio.{key} must be a finite number"):
        coqui_settings({key: value})


@pytest.mark.parametrize(
    "stats",
    [
        {"mean": [0.0] * 80, "std": [1.0] * 79 + [float("inf")]},
        {"mean": [float("nan")] * 80, "std": [1.0] * 80},
    ],
)
def test_statistics_that_are_not_finite_are_refused(tmp_path, stats):
    """An infinite std or a NaN mean was diagnosed as 'mels that look dB (min -inf ... std nan)'."""
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(stats))
    with pytest.raises(WavegenError) as err:
        read_statistics(path, 80)
    assert str(err.value) == f"data.tts_mels_params: {path}: expected 80 finite means and 80 finite stds > 0"


def test_feats_stats_with_a_count_of_0_is_one_line_without_a_numpy_warning(tmp_path):
    path = tmp_path / "feats_stats.npz"
    np.savez(path, count=0, sum=np.zeros(80), sum_square=np.zeros(80))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's divide warning reached the terminal
        with pytest.raises(WavegenError, match="count is 0"):
            read_statistics(path, 80)


def test_a_mel_convention_without_the_mels_folder_is_refused(corpus, tmp_path):
    """`preprocess --mels-convention log10` without --mels made a cache from the audio's mels."""
    with pytest.raises(WavegenError) as err:
        recipe(tmp_path, corpus[0], tts_mels_convention="log10")
    assert (
        str(err.value)
        == "data.tts_mels_convention is set (log10), but data.tts_mels (the mels' folder) is not"
    )


def test_a_mel_whose_header_claims_more_data_than_the_file_holds_is_refused_unread(tmp_path):
    """A .npy header saying (80, 10**12) float32 was "internal error: MemoryError: Unable to
    allocate 291. TiB": the header is checked against the file's size before anything is read."""
    from numpy.lib import format as npy_format

    from wavegen.data.tts_mels import read_mel

    path = tmp_path / "LJ001-0002.npy"
    with open(path, "wb") as f:
        npy_format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (80, 10**12)})
        f.write(bytes(64))
    with pytest.raises(WavegenError) as err:
        read_mel(path)
    assert str(err.value) == (
        f"{path}: not a readable .npy array (its header says shape (80, 1000000000000) of float32, "
        "320000000000000 bytes; the file holds 64)"
    )
    np.save(path, np.zeros((80, 7), dtype=np.float32))
    assert read_mel(path).shape == (80, 7)
