"""Corpus readers: each turns a corpus on disk into a sorted list of :class:`Utterance`.

    ljspeech  LJSpeech 1.1: metadata.csv + wavs/<id>.wav, one speaker "LJ"
    vctk      VCTK 0.92 (wav48_silence_trimmed/*.flac) or 0.80 (wav48/*.wav), auto-detected
    folder    any folder of audio files; one sub-folder per speaker if there are sub-folders
    demo      the synthetic corpus :func:`~wavegen.data.corpora.demo.make_demo_corpus` generates,
              read as a folder corpus (generated first if it is not there yet)

Readers only list files; they do not open audio, so a listed file may still turn out to be
missing or broken. Preprocessing reports such files and skips them.
"""

from __future__ import annotations

from pathlib import Path

from ...core.config import CORPORA
from ...core.errors import WavegenError
from .demo import make_demo_corpus
from .folder import read_folder
from .ljspeech import read_ljspeech
from .utterance import Utterance
from .vctk import read_speaker_info, read_vctk


def read_corpus(kind: str, path: str | Path, mic: str = "mic1", seed: int = 0) -> list[Utterance]:
    """List the utterances of a corpus of the given kind (see the module docstring).

    ``mic`` applies to VCTK 0.92 only; ``seed`` to the demo corpus only.
    """
    path = Path(path)
    if kind == "demo":
        make_demo_corpus(path, seed=seed)  # no-op when a complete copy is already there
        return read_folder(path)
    if kind not in CORPORA:
        raise WavegenError(f"data.corpus must be one of {', '.join(CORPORA)}, got {kind!r}")
    if not str(path) or str(path) == ".":
        raise WavegenError(f"no corpus path given for the {kind} corpus (data.corpus_path or --corpus)")
    if path.is_file():
        raise WavegenError(f"{path}: a file, not a corpus folder (data.corpus_path or --corpus)")
    if not path.is_dir():
        raise WavegenError(f"{path}: corpus folder does not exist (data.corpus_path or --corpus)")
    if kind == "ljspeech":
        return read_ljspeech(path)
    if kind == "vctk":
        return read_vctk(path, mic=mic)
    return read_folder(path)


__all__ = [
    "CORPORA",
    "Utterance",
    "make_demo_corpus",
    "read_corpus",
    "read_folder",
    "read_ljspeech",
    "read_speaker_info",
    "read_vctk",
]
