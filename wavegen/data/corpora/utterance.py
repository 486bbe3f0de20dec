"""The one record every corpus reader returns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Utterance:
    id: str  # unique within the corpus; used as the cache file name, so filename-safe
    speaker: str
    path: Path  # the audio file (may be missing: preprocessing reports it)
    text: str | None = None  # transcript if the corpus has one (a vocoder does not need it)


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(text: str) -> str:
    """``text`` with runs of characters outside [A-Za-z0-9._-] replaced by ``_``."""
    return _SAFE.sub("_", text).strip("._") or "_"


def is_safe_id(text: str) -> bool:
    return bool(text) and safe_id(text) == text
