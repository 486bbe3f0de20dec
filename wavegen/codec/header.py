"""The one check of a ``.wgc`` header that every reader runs before decoding or allocating.

:func:`container.parse` proves the bytes are intact (magic, digests); this proves the header's
values make sense for *this* model and for each other: a header can be forged with its sha256
recomputed, and a value the decoder trusts (the classes, the rate, the sample count, the layout,
the speaker) would otherwise decode to other audio, allocate terabytes or fail in numpy. Every
problem is one :class:`WavegenError` line, "damaged header (...)" for a value no encoder writes.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..core.errors import WavegenError
from ..generation import BACKENDS
from ..generation.backends import REDUCED_KERNELS
from ..model import WaveNet
from ..model.identity import model_sha256
from . import coder, identity
from .container import Container

FORMAT = "wavegen-codec"
# Shortest segment: each restarts from the model's start state, so tiny ones code badly and slowly.
MIN_SEGMENT_SAMPLES = 64
MAX_CHUNK = 4096  # the sampler's largest conditioning chunk (what coder.default_layout records)
MAX_SAMPLE_RATE = 768_000  # Hz; the highest rate audio files are made at
# constriction's Categorical(perfect=False) gives every class at least 2^-24, so no symbol codes
# in fewer than −log2(1 − (Q − 1)·2^-24) bits; its range coder's state adds at most 64 bits.
_FLOOR = 2.0**-24
_CODER_STATE_BITS = 64


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def max_samples(payload_bytes: int, classes: int) -> int:
    """The most samples ``payload_bytes`` of range-coded words can hold for a ``classes`` model."""
    min_bits = -math.log2(1.0 - (classes - 1) * _FLOOR)
    return int((8 * payload_bytes + _CODER_STATE_BITS) / min_bits)


def validate(
    container: Container, model: WaveNet, name: str | Path, sample_rate: int | None = None
) -> tuple[coder.Layout, dict]:
    """Check a parsed container's header against ``model`` and itself -> (layout, this setup).

    ``sample_rate``: the model's rate (Hz), when known. ``this setup`` is :func:`identity.setup`
    for the backend family the file was coded with (what decoding must run).
    """
    header = container.header

    def damaged(field: str, expected: str):
        return WavegenError(f"{name}: damaged header ({field} {header.get(field)!r}: expected {expected})")

    if header.get("format") != FORMAT:
        raise WavegenError(f"{name}: header format {header.get('format')!r}, expected {FORMAT!r}")
    if not isinstance(header.get("setup"), dict):
        raise damaged("setup", "an object naming the encoder's setup")
    backend = header["setup"].get("backend")
    if backend in REDUCED_KERNELS:
        raise WavegenError(
            f"{name}: claims the sampler backend {backend!r}; the codec runs on the fp32 kernels only"
        )
    if backend not in BACKENDS or backend == "auto":
        raise WavegenError(
            f"{name}: compressed with the sampler backend {backend!r}, which this wavegen lacks"
        )
    setup = identity.setup(backend)
    identity.check(header, model_sha256(model), setup, name)  # another model: say that

    # The same model from here on: what it fixes must be what the header says.
    classes = model.config.quantize_channels
    if header.get("quantize_channels") != classes or not _integer(header.get("quantize_channels")):
        raise WavegenError(
            f"{name}: damaged header (quantize_channels {header.get('quantize_channels')!r}; "
            f"the model has {classes} classes)"
        )
    rate = header.get("sample_rate")
    if not _integer(rate) or not 1 <= rate <= MAX_SAMPLE_RATE:
        raise damaged("sample_rate", f"an integer number of Hz, 1 … {MAX_SAMPLE_RATE}")
    if sample_rate is not None and rate != sample_rate:
        raise WavegenError(f"{name}: a {rate} Hz stream, the model runs at {sample_rate} Hz")
    speakers = model.config.n_speakers
    speaker_id = header.get("speaker_id")
    if speakers == 0 and speaker_id is not None:
        raise damaged("speaker_id", "none: the model has no speakers")
    if speakers and not (_integer(speaker_id) and 0 <= speaker_id < speakers):
        raise damaged("speaker_id", f"a speaker index 0 … {speakers - 1}")

    # The layout: sizes the decoder allocates and loops over, against each other and the payload.
    for field in ("samples", "segment_samples", "rows", "chunk"):
        if not _integer(header.get(field)) or header[field] < 1:
            raise damaged(field, "a positive integer")
    most = max_samples(len(container.payload), classes)
    if header["samples"] > most:
        raise damaged("samples", f"at most {most}, what {len(container.payload)} payload bytes can hold")
    if header["segment_samples"] < MIN_SEGMENT_SAMPLES:
        raise damaged("segment_samples", f"at least {MIN_SEGMENT_SAMPLES}")
    segments = -(-header["samples"] // header["segment_samples"])
    if header["rows"] > min(coder.MAX_ROWS, segments):
        raise damaged("rows", f"1 … {min(coder.MAX_ROWS, segments)} ({segments} segments)")
    if header["chunk"] > MAX_CHUNK:
        raise damaged("chunk", f"1 … {MAX_CHUNK}")
    layout = coder.Layout(header["samples"], header["segment_samples"], header["rows"], header["chunk"])
    return layout, setup
