"""Fast autoregressive generation from a WaveNet (Paine et al. 2016), batched and streaming.

Every dilated layer keeps a ring buffer of its past inputs, so a sample costs O(layers) and
nothing is recomputed over the receptive field; the conditioning V·c + U·g of all layers is
computed for a chunk of steps at a time. The machinery lives in :mod:`wavegen.generation`;
this module is the API:

    audio = generate(model, mel)                       # (B, T) float in [-1, 1]
    for piece in stream(model, mel, chunk_samples=4096):
        play(piece)                                    # (B, ≤ 4096) pieces of the same audio

Backends: a compiled loop on the CPU (C++, or numba where no compiler builds it; plain torch,
with a loud warning, if neither runs), a CUDA graph of the same step on a GPU, or the plain
torch step (``backend="torch"``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator

import torch

from ..core.errors import WavegenError
from ..model import WaveNet
from .sampler import Sampler


def check_temperature(temperature) -> float:
    """A sampling temperature as a float: finite and ≥ 0 (0 = argmax), else a WavegenError."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise WavegenError(f"temperature must be a number, got {temperature!r}")
    if not math.isfinite(temperature) or temperature < 0:
        raise WavegenError(f"temperature must be a finite number ≥ 0 (0 = argmax), got {temperature}")
    return float(temperature)


def stream(
    model: WaveNet,
    mel: torch.Tensor | None = None,
    speaker: torch.Tensor | int | None = None,
    temperature: float = 1.0,
    seed: int | None = None,
    lengths: torch.Tensor | None = None,
    num_samples: int | None = None,
    chunk_samples: int = 4096,
    backend: str = "auto",
    threads: int | None = None,
    dtype: torch.dtype = torch.float32,
    precision: str = "auto",
) -> Iterator[torch.Tensor]:
    """Yield the waveform in pieces as it is generated.

    Args:
        model: a WaveNet.
        mel: (B, n_mels, F) or (n_mels, F) raw preset log-mel, no context padding; None for a
            model without local conditioning.
        speaker: (B,) speaker ids (or one int) for a multi-speaker model.
        temperature: softmax temperature, finite and ≥ 0; 0 takes the most likely class (argmax).
        seed: seeds the sampling; the same seed gives the same audio.
        lengths: (B,) frames of each utterance in a ragged batch; samples past
            ``lengths[b]·hop`` are zeros (trim them). The CPU kernels drop a row from the
            computation at the first chunk boundary after its end, so a batch costs about
            the sum of its lengths rather than B × the longest.
        num_samples: length for a model without mel conditioning.
        chunk_samples: samples per yielded piece (the last may be shorter).
        backend: "auto", "kernel" (the compiled CPU loop: cpp, else numba), "cpp", "numba",
            "cuda-graph", "torch" or "cpp-bf16" (the same as precision "bf16").
        threads: CPU threads for the kernel (rows are split between them).
        dtype: weights and state dtype; torch.bfloat16 / float16 for the CUDA graph (the CPU
            kernels are float32 only). Logits and sampling stay float32.
        precision: CPU kernel arithmetic: "fp32" (exact), "bf16" (the ``cpp-bf16`` kernel:
            bf16 weights, fp32 sums) or "auto" (bf16 where the CPU has a vector path for it).

    Yields:
        (B, n) float32 pieces that concatenate to what :func:`generate` returns.
    """
    if chunk_samples < 1:
        raise WavegenError(f"chunk_samples must be at least 1, got {chunk_samples}")
    temperature = check_temperature(temperature)
    if isinstance(speaker, int):
        speaker = torch.tensor([speaker])
    sampler = Sampler(
        model,
        mel,
        speaker,
        lengths,
        num_samples,
        temperature,
        seed,
        backend=backend,
        threads=threads,
        dtype=dtype,
        precision=precision,
    )
    while sampler.remaining:
        audio, _ = sampler.run(chunk_samples)
        yield audio


def generate(
    model: WaveNet,
    mel: torch.Tensor | None = None,
    speaker: torch.Tensor | int | None = None,
    temperature: float = 1.0,
    seed: int | None = None,
    lengths: torch.Tensor | None = None,
    num_samples: int | None = None,
    backend: str = "auto",
    threads: int | None = None,
    dtype: torch.dtype = torch.float32,
    precision: str = "auto",
) -> torch.Tensor:
    """Generate a batch of waveforms: (B, T) float32 in [-1, 1], T = F·hop.

    Arguments as for :func:`stream`. Rows of a ragged batch are zero past their own length.
    """
    pieces = list(
        stream(
            model,
            mel,
            speaker,
            temperature,
            seed,
            lengths,
            num_samples,
            chunk_samples=1 << 30,
            backend=backend,
            threads=threads,
            dtype=dtype,
            precision=precision,
        )
    )
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)  # no copy of the output


@torch.no_grad()
def teacher_forced_logits(
    model: WaveNet,
    audio: torch.Tensor,
    mel: torch.Tensor | None = None,
    speaker: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    backend: str = "auto",
    chunk: int | None = None,
    precision: str = "fp32",
    threads: int | None = None,
) -> torch.Tensor:
    """Run the incremental sampler fed the given classes instead of its own samples.

    The result equals ``model(audio, model.pad_mel(mel), speaker)`` up to rounding, which is how
    the sampler's buffers are tested.

    Args:
        audio: (B, T) int64 μ-law classes.
        mel, speaker, lengths, backend: as for :func:`stream`.
        chunk: steps per conditioning chunk, and samples of mel upsampled at a time (small
            values exercise the chunk boundaries).
        precision: "fp32" (default: equals the forward pass up to rounding) or "bf16" (the
            ``cpp-bf16`` kernel's logits, for measuring what its rounding costs).
        threads: CPU threads for the kernel.

    Returns:
        (B, Q, T) logits; column t is the distribution of audio[:, t] given audio[:, :t].
        Columns past a row's end (``lengths[b]·hop``) are zero.
    """
    sampler = Sampler(
        model,
        mel,
        speaker,
        lengths,
        num_samples=audio.shape[1],
        temperature=0.0,
        forced=audio,
        keep_logits=True,
        backend=backend,
        chunk=chunk,
        span=chunk,
        precision=precision,
        threads=threads,
    )
    _, logits = sampler.run(sampler.remaining)
    return logits.transpose(1, 2)
