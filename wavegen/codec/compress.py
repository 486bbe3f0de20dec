"""``compress`` / ``decompress``: μ-law codes <-> ``.wgc`` bytes, and the same for files.

What is lossless: the model's μ-law stream of the input (the audio read as mono, resampled to the
model's rate, ``mulaw_encode``d to its classes). ``decompress`` returns exactly those classes;
the WAV it writes is their ``mulaw_decode``, not the 16-bit original.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..core.audio import atomic_path, audio_writer, npy_writer, read_audio, refuse_overwriting, write_files
from ..core.errors import WavegenError
from ..core.mulaw import mulaw_decode, mulaw_encode
from ..generation.backends import REDUCED_KERNELS
from ..model import WaveNet
from ..model.identity import model_sha256
from . import coder, identity
from .container import VERSION, Container, parse
from .header import FORMAT, MIN_SEGMENT_SAMPLES, validate

# Default segment length. Each segment restarts the model, which cost 0.01 % in size against 2 s
# segments on held-out LJSpeech, and each is a row of the decoder's batch, so shorter segments
# decode a short file faster (1.1x at 1 s, 1.5x at 0.5 s there, for 0.03 % at 0.5 s).
SEGMENT_SECONDS = 1.0


def codes_sha256(codes: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(codes, dtype="<i8").tobytes()).hexdigest()


def _check_model(model: WaveNet, what: str = "compress") -> None:
    if model.upsampler is not None:
        raise WavegenError(
            f"{what} needs a model without mel conditioning (model.cin_channels 0, e.g. "
            "recipes/ljspeech-codec): the decoder has nothing but the compressed bits"
        )


def _progress(enabled: bool, total: int, what: str):
    return tqdm(total=total, unit="sample", unit_scale=True, desc=what, disable=not enabled, leave=False)


def compress(
    model: WaveNet,
    codes: np.ndarray,
    sample_rate: int,
    speaker_id: int | None = None,
    speaker: str | None = None,
    segment_seconds: float = SEGMENT_SECONDS,
    backend: str = "auto",
    threads: int | None = None,
    progress: bool = False,
) -> tuple[bytes, dict]:
    """(T,) int μ-law classes -> (the ``.wgc`` bytes, their header).

    Args:
        model: an unconditional or speaker-only WaveNet (``cin_channels`` 0), eval mode.
        codes: the classes, each in 0 … quantize_channels − 1.
        sample_rate: Hz of the stream (recorded, and checked when decompressing).
        speaker_id / speaker: the speaker's index (required for a speaker model) and name.
        segment_seconds: length of the independently coded segments.
        backend: the sampler backend ("auto" picks as generation does); recorded.
        threads: CPU threads for the kernel (default: torch's).
    """
    _check_model(model)
    if backend in REDUCED_KERNELS:  # the codec codes with the exact fp32 arithmetic only
        raise WavegenError(
            f"--backend {backend}: the codec runs on the fp32 kernels (auto, kernel, cpp, numba)"
        )
    codes = np.asarray(codes)
    Q = model.config.quantize_channels
    if codes.ndim != 1 or len(codes) < 1 or not np.issubdtype(codes.dtype, np.integer):
        raise WavegenError(f"codes: expected a non-empty 1-D integer array, got {codes.dtype} {codes.shape}")
    if codes.min() < 0 or codes.max() >= Q:
        raise WavegenError(f"codes: expected μ-law classes in 0 … {Q - 1}, got {codes.min()} … {codes.max()}")
    if (speaker_id is None) != (model.config.n_speakers == 0):
        raise WavegenError(
            f"this model has {model.config.n_speakers} speakers: "
            + ("give a speaker" if speaker_id is None else "do not give a speaker")
        )
    wanted = segment_seconds * sample_rate  # inf for a finite 1e308 s
    if not math.isfinite(segment_seconds) or (math.isfinite(wanted) and round(wanted) < MIN_SEGMENT_SAMPLES):
        raise WavegenError(
            f"--segment-seconds: expected a finite number of at least {MIN_SEGMENT_SAMPLES / sample_rate:.4f}"
            f" ({MIN_SEGMENT_SAMPLES} samples at {sample_rate} Hz), got {segment_seconds}"
        )
    codes = codes.astype(np.int64)
    # A segment longer than the stream is the whole stream (and no overflow for 1e20 s).
    segment_samples = round(min(wanted, max(len(codes), MIN_SEGMENT_SAMPLES)))
    layout = coder.default_layout(model, len(codes), segment_samples)
    with _progress(progress, len(codes), "compress") as bar:
        words, ideal, used = coder.encode(model, codes, layout, speaker_id, backend, threads, bar)
    header = {
        "format": FORMAT,
        "format_version": VERSION,
        "model_sha256": model_sha256(model),
        "setup": identity.setup(used),
        "sample_rate": int(sample_rate),
        "quantize_channels": Q,
        **layout.to_dict(),
        "speaker_id": speaker_id,
        "speaker": speaker,
        "codes_sha256": codes_sha256(codes),
        "ideal_bits": round(ideal, 3),
    }
    container = Container(header, words.astype("<u4").tobytes())
    return container.to_bytes(), container.header


def decompress(
    model: WaveNet,
    data: bytes,
    sample_rate: int | None = None,
    name: str | Path = "input",
    threads: int | None = None,
    progress: bool = False,
    kernel: str | None = None,
) -> tuple[np.ndarray, dict]:
    """``.wgc`` bytes -> ((T,) int64 μ-law classes, the header); every problem is one line.

    ``kernel`` ("cpp" or "numba") picks the CPU kernel for a stream coded by either kernel
    (default: the one generation uses here); both compute the same bits.
    """
    _check_model(model, "decompress")
    container = parse(data, name)
    header = container.header
    layout, setup = validate(container, model, name, sample_rate)
    speaker_id = header.get("speaker_id")
    words = np.frombuffer(container.payload, dtype="<u4")
    with _progress(progress, layout.samples, "decompress") as bar:
        try:
            run_on = kernel if kernel and setup["backend"] == "kernel" else setup["backend"]
            codes = coder.decode(model, words, layout, speaker_id, run_on, threads, bar)
        except (ValueError, RuntimeError, AssertionError) as err:  # constriction ran out of words
            raise WavegenError(f"{name}: the payload does not decode ({err})") from None
        except MemoryError:  # a valid header can still name more samples than this machine holds
            raise WavegenError(f"{name}: {layout.samples} samples do not fit in memory here") from None
    if codes_sha256(codes) != header.get("codes_sha256"):
        raise WavegenError(
            f"{name}: the decoded μ-law stream does not match the encoder's sha256: this machine "
            "computed other probabilities (see the warning about the setup, if any); nothing written"
        )
    return codes, header


def compress_file(
    vocoder,
    source: str | Path,
    output: str | Path,
    speaker=None,
    verify: bool = False,
    segment_seconds: float = SEGMENT_SECONDS,
    backend: str = "auto",
    threads: int | None = None,
    progress: bool = False,
) -> dict:
    """Compress an audio file with a loaded :class:`~wavegen.inference.vocoder.Vocoder`'s model -> summary.

    ``verify`` decodes the bytes before writing them (as ``flac --verify``); the output is
    written atomically, so a failure leaves no file.
    """
    source, output = Path(source), Path(output)
    refuse_overwriting(output, [("the input", source)])
    model = vocoder.model
    _check_model(model)
    wav, sr = read_audio(source, vocoder.sample_rate)
    codes = mulaw_encode(wav, model.config.quantize_channels)
    ids = vocoder.speaker_ids(speaker, 1)
    speaker_id = None if ids is None else int(ids[0])
    name = None if speaker_id is None or not vocoder.speakers else vocoder.speakers[speaker_id]
    start = time.perf_counter()
    data, header = compress(model, codes, sr, speaker_id, name, segment_seconds, backend, threads, progress)
    seconds = time.perf_counter() - start
    summary = {
        "input": str(source),
        "output": str(output),
        "samples": len(codes),
        "sample_rate": sr,
        "bytes": len(data),
        "bits_per_sample": round(8 * len(data) / len(codes), 4),
        "payload_bits_per_sample": round(8 * header["payload_bytes"] / len(codes), 4),
        "ideal_bits_per_sample": round(header["ideal_bits"] / len(codes), 4),
        "segments": -(-len(codes) // header["segment_samples"]),
        "backend": header["setup"]["backend"],
        "encode_samples_per_s": round(len(codes) / seconds, 1),
        "verified": False,
    }
    if verify:
        start = time.perf_counter()
        decoded, _ = decompress(model, data, sr, output, threads, progress)
        summary["decode_samples_per_s"] = round(len(codes) / (time.perf_counter() - start), 1)
        if not np.array_equal(decoded, codes):  # cannot happen past the digest check; belt and braces
            raise WavegenError(f"{output}: --verify: the decoded stream differs; nothing written")
        summary["verified"] = True
    with atomic_path(output) as tmp:
        tmp.write_bytes(data)
    return summary


def decompress_file(
    vocoder,
    source: str | Path,
    output: str | Path,
    codes_path: str | Path | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> dict:
    """Decompress a ``.wgc`` file to a 16-bit WAV (and the μ-law classes to ``codes_path``)."""
    source, output = Path(source), Path(output)
    if not source.is_file():
        raise WavegenError(f"{source}: no such file")
    refuse_overwriting(output, [("the input", source)])
    if codes_path is not None:
        refuse_overwriting(codes_path, [("the input", source), ("the WAV output", output)])
    data = source.read_bytes()
    start = time.perf_counter()
    codes, header = decompress(vocoder.model, data, vocoder.sample_rate, source, threads, progress)
    seconds = time.perf_counter() - start
    Q = header["quantize_channels"]
    outputs = {output: audio_writer(output, mulaw_decode(codes, Q), header["sample_rate"])}
    if codes_path is not None:
        outputs[Path(codes_path)] = npy_writer(codes)
    write_files(outputs)  # both or neither
    return {
        "input": str(source),
        "output": str(output),
        "codes": None if codes_path is None else str(codes_path),
        "samples": len(codes),
        "sample_rate": header["sample_rate"],
        "speaker": header.get("speaker") or header.get("speaker_id"),
        "backend": header["setup"]["backend"],
        "decode_samples_per_s": round(len(codes) / seconds, 1),
    }
