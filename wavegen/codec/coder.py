"""Range coding of a μ-law stream with a WaveNet's incremental sampler as the entropy model.

The stream is cut into segments of ``segment_samples`` (the last one shorter); each restarts
from the model's start state, and up to ``rows`` of them run together as the rows of one
:class:`~wavegen.generation.Sampler` batch, so coding runs at the batched sampler's speed.
Symbols go into ONE range coder interleaved time-major: step t of batch g codes sample t of
every segment of g that is still running, in row order; so each decoder step decodes a batch's
symbols with one constriction call.

Determinism: the encoder computes every distribution exactly as the decoder does: the same
incremental step and backend, float32, the same batch layout, conditioning chunk and row
compaction schedule (all functions of the header). The decoder cannot know a sample before its
step's logits exist, so it runs the sampler one step at a time with placeholder classes forced
and then :meth:`Sampler.feed`s the decoded classes; the encoder runs many steps per call with the
true classes forced. A step's arithmetic does not depend on how many steps a call runs (the
tests check it bit for bit), and both sides turn logits into probabilities with the same exact
function (:mod:`wavegen.codec.probability`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ..generation import Sampler
from ..model import WaveNet
from .probability import information_bits, probabilities

# Logits kept per encoder call: steps × rows × classes floats (16 MiB).
ENCODE_FLOATS = 1 << 22
# Per-row state of the sampler (ring buffers) summed over the rows of a batch stays under this.
ROWS_BUDGET_BYTES = 256 * 2**20
MAX_ROWS = 64


@dataclass(frozen=True)
class Layout:
    """How ``samples`` are cut into segments and batches (recorded in the header)."""

    samples: int
    segment_samples: int
    rows: int  # segments per sampler batch
    chunk: int  # sampler steps per conditioning chunk (sets the row compaction schedule)

    def batches(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first sample, (B,) segment lengths) of each batch, in coding order."""
        segments = -(-self.samples // self.segment_samples)
        for first_segment in range(0, segments, self.rows):
            start = first_segment * self.segment_samples
            count = min(self.rows, segments - first_segment)
            starts = start + self.segment_samples * np.arange(count)
            yield start, np.minimum(starts + self.segment_samples, self.samples) - starts

    def to_dict(self) -> dict:
        return {
            "samples": self.samples,
            "segment_samples": self.segment_samples,
            "rows": self.rows,
            "chunk": self.chunk,
        }


def default_layout(model: WaveNet, samples: int, segment_samples: int) -> Layout:
    """Segments of ``segment_samples``; as many rows per batch as :data:`ROWS_BUDGET_BYTES` allows."""
    c = model.config
    ring_rows = sum(layer.padding + 1 for layer in model.layers)
    row_bytes = 4 * ring_rows * c.residual_channels
    rows = int(max(1, min(MAX_ROWS, ROWS_BUDGET_BYTES // row_bytes)))
    segments = -(-samples // segment_samples)
    return Layout(samples, segment_samples, min(rows, segments), 4096)


def _precision_switches() -> list[tuple[object, str, object]]:
    """(object, attribute, IEEE value) of every float32-precision switch this torch has."""
    b = torch.backends
    if hasattr(b, "fp32_precision"):  # torch ≥ 2.9: one API ("ieee" | "tf32" | "bf16")
        owners = [b, b.cuda.matmul, b.cudnn, b.mkldnn, getattr(b.mkldnn, "matmul", None)]
        return [(o, "fp32_precision", "ieee") for o in owners if hasattr(o, "fp32_precision")]
    return [(b.cuda.matmul, "allow_tf32", False), (b.cudnn, "allow_tf32", False)]


@contextmanager
def exact_float32():
    """Plain IEEE float32 products while coding: no TF32 on a GPU and no bf16 shortcut for
    float32 matmuls on a CPU, whatever the caller has set."""
    switches = _precision_switches()
    saved = [getattr(owner, name) for owner, name, _ in switches]
    for owner, name, value in switches:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for (owner, name, _), value in zip(switches, saved):
            setattr(owner, name, value)


def _sampler(model, lengths, speaker_id, forced, layout, backend, threads) -> Sampler:
    batch = len(lengths)
    speaker = None if speaker_id is None else torch.full((batch,), int(speaker_id), dtype=torch.int64)
    return Sampler(
        model,
        None,
        speaker,
        lengths=torch.as_tensor(lengths, dtype=torch.int64),
        num_samples=int(lengths.max()),
        temperature=0.0,
        forced=forced,
        keep_logits=True,
        backend=backend,
        chunk=layout.chunk,
        threads=threads,
        dtype=torch.float32,
    )


def _forced(codes: np.ndarray, start: int, lengths: np.ndarray, segment: int, fill: int) -> torch.Tensor:
    """(B, max length) int64: segment b of the batch in row b, ``fill`` past its end."""
    out = torch.full((len(lengths), int(lengths.max())), fill, dtype=torch.int64)
    for b, n in enumerate(lengths.tolist()):
        first = start + b * segment
        out[b, :n] = torch.from_numpy(codes[first : first + n])
    return out


@torch.no_grad()
@exact_float32()
def encode(
    model: WaveNet,
    codes: np.ndarray,
    layout: Layout,
    speaker_id: int | None = None,
    backend: str = "auto",
    threads: int | None = None,
    progress=None,
) -> tuple[np.ndarray, float, str]:
    """Range-code ``codes`` ((T,) int64 μ-law classes) -> (uint32 words, ideal bits, backend).

    ``ideal bits`` is Σ −log2 p of the coded symbols under the coder's own probabilities (what
    an ideal entropy coder would spend); ``backend`` is the one the sampler ran.
    """
    import constriction

    encoder = constriction.stream.queue.RangeEncoder()
    family = constriction.stream.model.Categorical(perfect=False)
    Q, fill = model.config.quantize_channels, model.start_class
    ideal, used = 0.0, backend
    for start, lengths in layout.batches():
        forced = _forced(codes, start, lengths, layout.segment_samples, fill)
        sampler = _sampler(model, lengths, speaker_id, forced, layout, backend, threads)
        used = sampler.backend
        steps = max(1, ENCODE_FLOATS // (len(lengths) * Q))
        t = 0
        while sampler.remaining:
            _, logits = sampler.run(steps)  # (B, n, Q)
            n = logits.shape[1]
            live = (torch.arange(t, t + n)[:, None] < torch.from_numpy(lengths)[None, :]).numpy()  # (n, B)
            probs = probabilities(logits.transpose(0, 1).cpu().numpy()[live])  # (m, Q), time-major
            symbols = forced[:, t : t + n].t().numpy()[live].astype(np.int32)
            encoder.encode(symbols, family, probs)
            ideal += information_bits(probs, symbols)
            t += n
            if progress is not None:
                progress.update(int(live.sum()))
    return encoder.get_compressed(), ideal, used


@torch.no_grad()
@exact_float32()
def decode(
    model: WaveNet,
    words: np.ndarray,
    layout: Layout,
    speaker_id: int | None = None,
    backend: str = "auto",
    threads: int | None = None,
    progress=None,
) -> np.ndarray:
    """Invert :func:`encode`: uint32 words -> (T,) int64 μ-law classes.

    ``threads`` defaults to 1: the decoder calls the kernel once per step, and starting threads
    every step costs more than it saves unless the model is large. (Rows are computed alike
    whatever the thread count, so it need not match the encoder's.)
    """
    import constriction

    threads = threads or 1
    decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(words, dtype=np.uint32))
    family = constriction.stream.model.Categorical(perfect=False)
    fill = model.start_class
    codes = np.empty(layout.samples, dtype=np.int64)
    for start, lengths in layout.batches():
        batch, total = len(lengths), int(lengths.max())
        placeholder = torch.full((batch, total), fill, dtype=torch.int64)
        sampler = _sampler(model, lengths, speaker_id, placeholder, layout, backend, threads)
        rows = np.empty((batch, total), dtype=np.int64)
        classes = np.full(batch, fill, dtype=np.int64)
        fed = torch.from_numpy(classes)  # shares memory with classes
        reported = 0
        shortest = int(lengths.min())
        for t in range(total):
            logits = sampler.step_logits().cpu().numpy()  # (B, Q)
            if t < shortest:  # every row is live (the usual case: only the last row is shorter)
                classes[:] = decoder.decode(family, probabilities(logits))
            else:
                live = t < lengths  # (B,)
                classes[live] = decoder.decode(family, probabilities(logits[live]))
                classes[~live] = fill  # what the encoder forced past a row's end
            rows[:, t] = classes
            sampler.feed(fed)  # (a copy to the device on a GPU)
            if progress is not None and (t % 256 == 255 or t == total - 1):
                done = int(np.minimum(lengths, t + 1).sum())
                progress.update(done - reported)
                reported = done
        for b, n in enumerate(lengths.tolist()):
            first = start + b * layout.segment_samples
            codes[first : first + n] = rows[b, :n]
    return codes
