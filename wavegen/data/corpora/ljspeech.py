"""LJSpeech 1.1 (Ito & Johnson 2017): 13,100 clips of one speaker at 22050 Hz.

Layout::

    LJSpeech-1.1/metadata.csv    id|transcription|normalized transcription   (no header)
    LJSpeech-1.1/wavs/<id>.wav

Quotes in the text are literal characters, not CSV quoting, so lines are split on ``|`` only.
"""

from __future__ import annotations

from pathlib import Path

from ...core.errors import WavegenError
from .utterance import Utterance, is_safe_id

SPEAKER = "LJ"


def find_ljspeech_root(path: Path) -> Path:
    """The folder holding metadata.csv: ``path`` itself or its ``LJSpeech-1.1`` child."""
    for root in (path, path / "LJSpeech-1.1"):
        if (root / "metadata.csv").is_file():
            return root
    raise WavegenError(f"{path}: not an LJSpeech corpus (expected metadata.csv and wavs/ in it)")


def read_ljspeech(path: str | Path) -> list[Utterance]:
    """Utterances listed in metadata.csv, sorted by id; text is the normalized transcription."""
    root = find_ljspeech_root(Path(path))
    meta = root / "metadata.csv"
    utterances = []
    seen: set[str] = set()
    for number, raw in enumerate(meta.read_bytes().splitlines(), 1):
        try:
            # utf-8-sig on the first line: a byte-order mark (some editors write one) is fine
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise WavegenError(
                f"{meta}:{number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column "
                f"{err.start + 1}); save metadata.csv as UTF-8"
            ) from None
        if not line.strip():
            continue
        fields = line.split("|")
        uid = fields[0].strip()
        if len(fields) < 2 or not uid:
            raise WavegenError(f"{meta}:{number}: expected 'id|text|normalized text', got {line[:60]!r}")
        if not is_safe_id(uid):
            raise WavegenError(f"{meta}:{number}: utterance id {uid!r} is not a plain file name")
        if uid in seen:
            raise WavegenError(f"{meta}:{number}: utterance id {uid!r} is listed twice")
        seen.add(uid)
        text = fields[2] if len(fields) > 2 and fields[2] else fields[1]
        utterances.append(Utterance(uid, SPEAKER, root / "wavs" / f"{uid}.wav", text))
    if not utterances:
        raise WavegenError(f"{meta}: lists no utterances")
    return sorted(utterances)
