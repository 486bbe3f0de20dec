"""Corpus readers on the real shared excerpts and on small generated layouts, and the demo corpus."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavegen.core.errors import WavegenError
from wavegen.data.corpora import (
    Utterance,
    make_demo_corpus,
    read_corpus,
    read_folder,
    read_ljspeech,
    read_speaker_info,
    read_vctk,
)
from wavegen.data.corpora.demo import SAMPLE_RATE, SPEAKERS, UTTERANCES_PER_SPEAKER

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared corpora not found at {SHARED}")


def tone(path: Path, seconds: float = 0.3, sr: int = 16000, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), sr, format=fmt)
    return path


# ---- LJSpeech ----------------------------------------------------------------------------------


@needs_shared
def test_ljspeech_shared_excerpt():
    utts = read_ljspeech(SHARED / "ljspeech-mini")
    assert len(utts) == 20
    assert [u.id for u in utts] == sorted(u.id for u in utts)
    assert {u.speaker for u in utts} == {"LJ"}
    assert all(u.path.is_file() and u.path.name == f"{u.id}.wav" for u in utts)
    assert utts[1].text == "in being comparatively modern."


def test_ljspeech_literal_quotes_missing_file_and_parent_folder(tmp_path):
    root = tmp_path / "LJSpeech-1.1"
    tone(root / "wavs" / "LJ001-0001.wav")
    (root / "metadata.csv").write_text(
        'LJ001-0001|He said "yes|no" once|He said "yes\n'  # extra | inside quotes: not CSV quoting
        "\n"
        'LJ001-0002|"Quoted" text, unbalanced "|"Quoted" text, unbalanced "\n'
        "LJ001-0003|only two fields\n",
        encoding="utf-8",
    )
    utts = read_ljspeech(tmp_path)  # the parent of LJSpeech-1.1/ is accepted too
    assert [u.id for u in utts] == ["LJ001-0001", "LJ001-0002", "LJ001-0003"]
    assert utts[1].text == '"Quoted" text, unbalanced "'
    assert utts[2].text == "only two fields"
    assert not utts[1].path.exists()  # listed; preprocessing reports it as missing


def test_ljspeech_bad_metadata_is_one_line_error(tmp_path):
    (tmp_path / "metadata.csv").write_text("LJ001-0001|a|a\nLJ001-0001|b|b\n")
    with pytest.raises(WavegenError, match=r"metadata.csv:2: .*listed twice"):
        read_ljspeech(tmp_path)
    (tmp_path / "metadata.csv").write_text("../evil|a|a\n")
    with pytest.raises(WavegenError, match="not a plain file name"):
        read_ljspeech(tmp_path)
    with pytest.raises(WavegenError, match="not an LJSpeech corpus"):
        read_ljspeech(tmp_path / "wavs")


# ---- VCTK --------------------------------------------------------------------------------------


@needs_shared
def test_vctk_shared_excerpt_092():
    utts = read_vctk(SHARED / "vctk-mini")  # parent of VCTK-Corpus-0.92/
    assert len(utts) == 40 and {u.speaker for u in utts} == {"p901", "p902", "p903", "p904"}
    assert all(u.path.name.endswith("_mic1.flac") and u.text for u in utts)
    both = read_vctk(SHARED / "vctk-mini" / "VCTK-Corpus-0.92", mic="both")
    assert len(both) == 40 + 8 and "p901_001_mic2" in {u.id for u in both}
    info = read_speaker_info(SHARED / "vctk-mini")
    assert info["p902"]["gender"] == "M" and info["p901"]["accent"] == "American"


def make_vctk_092(root: Path) -> Path:
    corpus = root / "VCTK-Corpus-0.92"
    audio = corpus / "wav48_silence_trimmed"
    for spk in ("p225", "p315"):
        for n in (1, 2):
            for mic in ("mic1", "mic2"):
                tone(audio / spk / f"{spk}_{n:03d}_{mic}.flac", sr=48000)
    (corpus / "txt" / "p225").mkdir(parents=True)
    for n in (1, 2):
        (corpus / "txt" / "p225" / f"p225_{n:03d}.txt").write_text(f"Sentence {n}.\n")
    (corpus / "speaker-info.txt").write_text(
        "ID  AGE  GENDER  ACCENTS  REGION COMMENTS \np225  23  F    English    Southern  England\n"
        "p315  28  M    American    Connecticut\n"
    )
    return corpus


def test_vctk_092_mics_and_speaker_without_text(tmp_path):
    corpus = make_vctk_092(tmp_path)
    mic1 = read_vctk(tmp_path)
    assert [u.id for u in mic1] == ["p225_001", "p225_002", "p315_001", "p315_002"]
    assert all(u.path.stem.endswith("_mic1") for u in mic1)
    assert mic1[0].text == "Sentence 1." and mic1[2].text is None  # p315 has audio, no text
    mic2 = read_vctk(corpus, mic="mic2")
    assert [u.id for u in mic2] == [u.id for u in mic1]
    assert all(u.path.stem.endswith("_mic2") for u in mic2)
    both = read_vctk(corpus, mic="both")
    assert len(both) == 8 and {u.id for u in both} >= {"p225_001", "p225_001_mic2"}
    assert next(u for u in both if u.id == "p225_001_mic2").text == "Sentence 1."
    with pytest.raises(WavegenError, match="data.mic"):
        read_vctk(corpus, mic="mic3")


def test_vctk_080_layout_and_unprefixed_speaker_info(tmp_path):
    corpus = tmp_path / "VCTK-Corpus"
    tone(corpus / "wav48" / "p225" / "p225_001.wav", sr=48000)
    tone(corpus / "wav48" / "p226" / "p226_001.wav", sr=48000)
    (corpus / "txt" / "p225").mkdir(parents=True)
    (corpus / "txt" / "p225" / "p225_001.txt").write_text("Please call Stella.")
    (corpus / "speaker-info.txt").write_text(
        "ID  AGE  GENDER  ACCENTS  REGION\n225  23  F    English    Southern  England\n"
        "226  22  M    English    Surrey\n"
    )
    utts = read_vctk(corpus)
    assert [(u.id, u.speaker, u.text) for u in utts] == [
        ("p225_001", "p225", "Please call Stella."),
        ("p226_001", "p226", None),
    ]
    assert read_speaker_info(tmp_path)["p226"]["region"] == "Surrey"


def test_vctk_wrong_folder(tmp_path):
    with pytest.raises(WavegenError, match="not a VCTK corpus"):
        read_vctk(tmp_path)


# ---- folder and read_corpus --------------------------------------------------------------------


def test_folder_with_speaker_subfolders(tmp_path):
    root = tmp_path / "mine"
    tone(root / "alice" / "a 1.wav")
    tone(root / "alice" / "session2" / "x.flac", fmt="FLAC")
    tone(root / "bob" / "b1.ogg", fmt="OGG")
    tone(root / ".hidden" / "h.wav")
    (root / "bob" / "notes.txt").write_text("not audio")
    tone(root / "bob" / ".b1.wav.x1.tmp", fmt="WAV")  # an atomic writer's temp file
    utts = read_folder(root)
    assert [(u.id, u.speaker) for u in utts] == [
        ("alice_a_1", "alice"),
        ("alice_session2_x", "alice"),
        ("bob_b1", "bob"),
    ]


def test_flat_folder_is_one_speaker_and_clashing_ids(tmp_path):
    tone(tmp_path / "flat" / "one.wav")
    tone(tmp_path / "flat" / "two.wav")
    assert {u.speaker for u in read_folder(tmp_path / "flat")} == {"flat"}
    tone(tmp_path / "flat" / "one.flac", fmt="FLAC")
    with pytest.raises(WavegenError, match="clashes"):
        read_folder(tmp_path / "flat")


def test_read_corpus_missing_folder_is_one_line(tmp_path):
    for kind in ("ljspeech", "vctk", "folder"):
        with pytest.raises(WavegenError, match="corpus folder does not exist") as err:
            read_corpus(kind, tmp_path / "nope")
        assert "\n" not in str(err.value)
    with pytest.raises(WavegenError, match="data.corpus"):
        read_corpus("timit", tmp_path)


# ---- demo corpus -------------------------------------------------------------------------------


@pytest.mark.slow  # generates the demo corpus twice
def test_demo_corpus_is_deterministic_and_speechlike(tmp_path):
    a = make_demo_corpus(tmp_path / "a", seed=3)
    b = make_demo_corpus(tmp_path / "b", seed=3)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*.wav"))
    assert len(files_a) == len(SPEAKERS) * UTTERANCES_PER_SPEAKER
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*.wav"))
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    other = make_demo_corpus(tmp_path / "c", seed=4)
    assert (other / files_a[0]).read_bytes() != (a / files_a[0]).read_bytes()

    utts = read_corpus("demo", a, seed=3)
    assert {u.speaker for u in utts} == {s[0] for s in SPEAKERS}
    for utt in utts[::UTTERANCES_PER_SPEAKER]:
        info = sf.info(utt.path)
        assert info.samplerate == SAMPLE_RATE and info.subtype == "PCM_16" and info.channels == 1
        assert 1.5 <= info.duration <= 3.0
        wav, _ = sf.read(utt.path)
        assert np.abs(wav[:100]).max() < 0.01  # leading silence for the trimmer
        assert 0.3 < np.abs(wav).max() <= 0.7


def test_demo_speakers_differ_in_pitch(tmp_path):
    """Each demo speaker's median F0 (cepstral peak over loud frames) is near its target."""
    root = make_demo_corpus(tmp_path / "demo")
    for name, f0_mean, *_ in SPEAKERS:
        wav, sr = sf.read(root / name / "001.wav")
        estimates = []
        for start in range(0, len(wav) - 2048, 1024):
            frame = wav[start : start + 2048]
            if np.sqrt(np.mean(frame**2)) < 0.05:
                continue
            spectrum = np.abs(np.fft.rfft(frame * np.hanning(len(frame)))) + 1e-9
            cepstrum = np.fft.irfft(np.log(spectrum))  # formants low, pitch at lag sr / F0
            lo, hi = sr // 400, sr // 70
            estimates.append(sr / (lo + np.argmax(cepstrum[lo:hi])))
        assert abs(np.median(estimates) / f0_mean - 1) < 0.1, (name, np.median(estimates))


def test_demo_regenerates_an_incomplete_copy(tmp_path):
    root = make_demo_corpus(tmp_path / "demo")
    first = (root / "demo_f1" / "001.wav").read_bytes()
    (root / "demo_f1" / "001.wav").write_bytes(b"")
    make_demo_corpus(root)  # complete marker: left alone, even though a file was damaged
    assert (root / "demo_f1" / "001.wav").read_bytes() == b""
    (root / "demo_corpus.json").unlink()
    make_demo_corpus(root)
    assert (root / "demo_f1" / "001.wav").read_bytes() == first


def test_utterance_sorts_by_id():
    a, b = Utterance("b", "s", Path("b.wav")), Utterance("a", "s", Path("a.wav"))
    assert sorted([a, b])[0].id == "a"


def test_ljspeech_metadata_encoding(tmp_path):
    """A byte-order mark is accepted; text that is not UTF-8 is one line naming file and line."""
    meta = tmp_path / "metadata.csv"
    meta.write_bytes("\ufeffLJ001-0001|Café|Café\r\nLJ001-0002|b|b\r\n".encode())
    utts = read_ljspeech(tmp_path)
    assert [u.id for u in utts] == ["LJ001-0001", "LJ001-0002"] and utts[0].text == "Café"
    meta.write_bytes("LJ001-0001|a|a\nLJ001-0002|Caf\xe9|Caf\xe9\n".encode("latin-1"))
    with pytest.raises(WavegenError) as err:
        read_ljspeech(tmp_path)
    assert str(err.value) == (
        f"{meta}:2: not UTF-8 text (byte 0xe9 at column 15); save metadata.csv as UTF-8"
    )
