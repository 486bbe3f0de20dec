"""A plain folder of audio files, searched recursively.

Files in a sub-folder belong to the speaker named after the first sub-folder under the root;
files directly in the root belong to a speaker named after the root folder (so a flat folder is
one speaker). The id is the file's path below the root without its suffix, ``/`` turned into
``_`` (other characters outside [A-Za-z0-9._-] as well), e.g. ``spk1/001.wav`` -> ``spk1_001``.
"""

from __future__ import annotations

from pathlib import Path

from ...core.audio import AUDIO_SUFFIXES
from ...core.errors import WavegenError
from .utterance import Utterance, safe_id


def read_folder(path: str | Path) -> list[Utterance]:
    """Every audio file under ``path`` (hidden files and folders skipped), sorted by id."""
    root = Path(path)
    if not root.is_dir():
        raise WavegenError(f"{root}: corpus folder does not exist")
    by_id: dict[str, Utterance] = {}
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or f.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        if not f.is_file():
            continue
        speaker = safe_id(rel.parts[0] if len(rel.parts) > 1 else root.resolve().name)
        uid = safe_id("_".join(rel.with_suffix("").parts))
        if uid in by_id:
            raise WavegenError(f"{f}: its id {uid!r} clashes with {by_id[uid].path}; rename one")
        by_id[uid] = Utterance(uid, speaker, f, None)
    if not by_id:
        raise WavegenError(f"{root}: no audio files found (looked for {', '.join(sorted(AUDIO_SUFFIXES))})")
    return sorted(by_id.values())
