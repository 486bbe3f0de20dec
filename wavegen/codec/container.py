"""The ``.wgc`` container: what a compressed file holds and how it is checked on reading.

Layout (integers little-endian):

    offset  size  field
    0       8     magic  b"\\x89WGC\\r\\n\\x1a\\n" (binary-safe, as PNG's: catches text-mode copies)
    8       2     format version (uint16), currently 1
    10      4     header length H (uint32)
    14      H     header: UTF-8 JSON (see below)
    14+H    32    sha256 of the header bytes
    46+H    P     payload: the range coder's uint32 words (P = header["payload_bytes"])

The header names the model (sha256 of its weights and config), the setup that computed the
probabilities (backend, kernel source, torch / constriction / numpy versions, the probability
table), the stream (sample rate, μ-law channels, sample count, segment layout, speaker) and two
digests: of the payload, and of the decoded μ-law codes, which the decoder checks at the end.
So a damaged or foreign file is an error naming what differs, never wrong audio.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import WavegenError

MAGIC = b"\x89WGC\r\n\x1a\n"
VERSION = 1
_FIXED = struct.Struct("<8sHI")  # magic, version, header length
_DIGEST = 32
MAX_HEADER = 1 << 20  # bytes; a longer declared header means a damaged or foreign file


@dataclass
class Container:
    header: dict
    payload: bytes

    def to_bytes(self) -> bytes:
        """The file's bytes; ``header`` gains payload_bytes and payload_sha256."""
        header = dict(self.header, payload_bytes=len(self.payload))
        header["payload_sha256"] = hashlib.sha256(self.payload).hexdigest()
        self.header = header
        text = json.dumps(header, sort_keys=True).encode()
        digest = hashlib.sha256(text).digest()
        return _FIXED.pack(MAGIC, VERSION, len(text)) + text + digest + self.payload


def parse(data: bytes, name: str | Path = "input") -> Container:
    """Check and split a container's bytes; every problem is one :class:`WavegenError` line."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise WavegenError(
            f"{name}: not a wavegen compressed file (wrong magic bytes); expected a .wgc file "
            "written by `wavegen compress`"
        )
    if len(data) < _FIXED.size:
        raise WavegenError(f"{name}: truncated file ({len(data)} bytes, shorter than the fixed header)")
    _, version, length = _FIXED.unpack_from(data)
    if version != VERSION:
        raise WavegenError(
            f"{name}: container format version {version}; this wavegen reads version {VERSION}"
        )
    if length > MAX_HEADER:
        raise WavegenError(f"{name}: damaged file (declares a {length}-byte header)")
    start = _FIXED.size
    end = start + length + _DIGEST
    if len(data) < end:
        raise WavegenError(f"{name}: truncated file ({len(data)} bytes, the header alone needs {end})")
    text, digest = data[start : start + length], data[start + length : end]
    if hashlib.sha256(text).digest() != digest:
        raise WavegenError(f"{name}: damaged header (its sha256 does not match)")
    try:
        header = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WavegenError(f"{name}: damaged header (not JSON: {err})") from None
    if not isinstance(header, dict):
        raise WavegenError(f"{name}: damaged header (not a JSON object)")
    expected = header.get("payload_bytes")
    payload = data[end:]
    if not isinstance(expected, int) or expected < 0 or expected % 4:
        raise WavegenError(f"{name}: damaged header (payload_bytes is {expected!r})")
    if len(payload) < expected:
        raise WavegenError(
            f"{name}: truncated file (the header declares {expected} payload bytes, "
            f"{len(payload)} are present)"
        )
    if len(payload) > expected:
        raise WavegenError(f"{name}: {len(payload) - expected} unexpected bytes after the payload")
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise WavegenError(f"{name}: damaged payload (its sha256 does not match the header's)")
    return Container(header, payload)
