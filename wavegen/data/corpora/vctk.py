"""CSTR VCTK: 109/110 English speakers, about 400 sentences each.

Two published layouts, detected automatically (``path`` may be the corpus root or its parent)::

    0.92  VCTK-Corpus-0.92/wav48_silence_trimmed/p225/p225_001_mic1.flac (and _mic2.flac)
          VCTK-Corpus-0.92/txt/p225/p225_001.txt
    0.80  VCTK-Corpus/wav48/p225/p225_001.wav
          VCTK-Corpus/txt/p225/p225_001.txt

``speaker-info.txt`` (header ``ID  AGE  GENDER  ACCENTS  REGION COMMENTS``) lists ids with the
``p`` prefix in 0.92 and without it in 0.80. Speakers are the audio sub-folders; a speaker
without transcripts (p315) is still a speaker, since a vocoder needs audio only.
"""

from __future__ import annotations

import typing
from pathlib import Path

from ...core.config import Mic
from ...core.errors import WavegenError
from .utterance import Utterance

AUDIO_DIRS = {"0.92": "wav48_silence_trimmed", "0.80": "wav48"}
MICS = typing.get_args(Mic)


def find_vctk_root(path: Path) -> tuple[Path, str]:
    """(root, version) for ``path`` or its single VCTK-Corpus* child."""
    candidates = [path] + sorted(p for p in path.glob("VCTK-Corpus*") if p.is_dir())
    for root in candidates:
        for version, audio in AUDIO_DIRS.items():
            if (root / audio).is_dir():
                return root, version
    raise WavegenError(
        f"{path}: not a VCTK corpus (expected wav48_silence_trimmed/ for 0.92 or wav48/ for 0.80, "
        "in it or in a VCTK-Corpus* folder inside it)"
    )


def read_speaker_info(path: str | Path) -> dict[str, dict]:
    """speaker-info.txt as {speaker id with p prefix: {"age", "gender", "accent", "region"}}.

    Returns {} if the file is absent (the speaker list then comes from the audio folders).
    """
    root, _ = find_vctk_root(Path(path))
    info_file = root / "speaker-info.txt"
    if not info_file.is_file():
        return {}
    speakers = {}
    for line in info_file.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if not fields or fields[0].upper() == "ID":
            continue
        sid = fields[0] if not fields[0].isdigit() else f"p{fields[0]}"  # 0.80 drops the p
        speakers[sid] = {
            "age": fields[1] if len(fields) > 1 else "",
            "gender": fields[2] if len(fields) > 2 else "",
            "accent": fields[3] if len(fields) > 3 else "",
            "region": " ".join(fields[4:]),
        }
    return speakers


def read_vctk(path: str | Path, mic: str = "mic1") -> list[Utterance]:
    """Utterances sorted by id.

    Args:
        mic: 0.92 only: "mic1" (the default, as in most recipes), "mic2", or "both" (mic2
            utterances then get ids ending in ``_mic2``). 0.80 has a single microphone.
    """
    if mic not in MICS:
        raise WavegenError(f"data.mic must be one of {', '.join(MICS)}, got {mic!r}")
    root, version = find_vctk_root(Path(path))
    audio_dir = root / AUDIO_DIRS[version]
    utterances = []
    for speaker_dir in sorted(p for p in audio_dir.iterdir() if p.is_dir()):
        speaker = speaker_dir.name
        if version == "0.80":
            files = [(f, f.stem) for f in speaker_dir.glob("*.wav")]
        else:
            files = []
            for f in speaker_dir.glob("*.flac"):
                base, _, this_mic = f.stem.rpartition("_")
                if this_mic == "mic1" and mic in ("mic1", "both"):
                    files.append((f, base))
                elif this_mic == "mic2" and mic == "mic2":
                    files.append((f, base))
                elif this_mic == "mic2" and mic == "both":
                    files.append((f, f"{base}_mic2"))
        for audio, uid in files:
            if audio.name.startswith("."):
                continue
            text_file = root / "txt" / speaker / f"{uid.removesuffix('_mic2')}.txt"
            text = None
            if text_file.is_file():
                text = text_file.read_text(encoding="utf-8", errors="replace").strip()
            utterances.append(Utterance(uid, speaker, audio, text))
    if not utterances:
        raise WavegenError(f"{audio_dir}: no {mic} audio files found (VCTK {version} layout)")
    return sorted(utterances)
