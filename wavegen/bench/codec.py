"""The codec's figures: wavegen against FLAC and xz on the same μ-law stream, and its speed.

For each audio file, its μ-law stream (read as mono at the model's rate, ``mulaw_encode``d) is
coded by:

    wavegen   ``wavegen compress``'s bytes (header included), and the model's ideal −log2 P
              (``wavegen score``) beside them;
    FLAC -8   the classes as 8-bit signed PCM (q − 128), FLAC at libsndfile's highest
              compression level (1.0 = FLAC level 8) through soundfile; decoded back and checked;
    xz        the classes as bytes, LZMA2 preset 9 | extreme (``xz -9e``), through lzma.

``*_bits_per_sample`` are total bits over total samples of all files; ``compress_samples_per_s``
and ``decompress_samples_per_s`` are total samples over the summed wall time of the calls (one
file at a time, each file's segments batched).
"""

from __future__ import annotations

import io
import lzma
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..core.audio import read_audio
from ..core.errors import WavegenError
from ..core.mulaw import mulaw_encode


def flac_bytes(codes: np.ndarray, sample_rate: int) -> int:
    """Size of the 8-bit μ-law classes as a FLAC -8 file (decoded back and checked)."""
    if int(codes.max()) > 255:
        raise WavegenError("FLAC comparison: needs 8-bit μ-law (quantize_channels ≤ 256)")
    pcm = ((codes.astype(np.int16) - 128) * 256).astype(np.int16)  # libsndfile keeps the top 8 bits
    buffer = io.BytesIO()
    sf.write(buffer, pcm, sample_rate, subtype="PCM_S8", format="FLAC", compression_level=1.0)
    data = buffer.getvalue()
    back, _ = sf.read(io.BytesIO(data), dtype="int16")
    if not np.array_equal(back, pcm):
        raise RuntimeError("FLAC round trip of the μ-law stream is not lossless")
    return len(data)


def xz_bytes(codes: np.ndarray) -> int:
    """Size of the μ-law classes (one byte each) compressed by xz -9e."""
    return len(lzma.compress(codes.astype(np.uint8).tobytes(), preset=9 | lzma.PRESET_EXTREME))


@dataclass
class CodecRun:
    """The codec bench's inputs, loaded and checked before anything is measured."""

    checkpoint: str
    vocoder: object  # a wavegen.vocoder.Vocoder
    audio: list[tuple[Path, np.ndarray]]  # (file, (T,) float32 at the model's rate)

    @classmethod
    def load(cls, checkpoint: str | Path, audio: list[str | Path]) -> CodecRun:
        from ..codec.compress import _check_model
        from ..inference.vocoder import load_vocoder

        if not audio:
            raise WavegenError("the codec bench needs audio files (--codec-audio)")
        vocoder = load_vocoder(checkpoint)
        _check_model(vocoder.model, "the codec bench")
        if vocoder.model.config.n_speakers:
            raise WavegenError("the codec bench measures single-speaker codec models (n_speakers 0)")
        wavs = [(Path(path), read_audio(path, vocoder.sample_rate)[0]) for path in audio]
        return cls(str(checkpoint), vocoder, wavs)

    def measure(self, segment_seconds: float = 1.0, backend: str = "auto", log=None) -> dict:
        """Compress and decompress each file -> the figures (see the module docstring)."""
        from ..codec import compress, decompress
        from ..inference.score import score

        log = log or (lambda line: None)
        vocoder = self.vocoder
        model, sr = vocoder.model, vocoder.sample_rate
        Q = model.config.quantize_channels
        totals = dict.fromkeys(("samples", "wavegen", "payload", "ideal", "score", "flac", "xz"), 0.0)
        enc_s = dec_s = 0.0
        used = backend
        for path, wav in self.audio:
            codes = mulaw_encode(wav, Q)
            log(f"codec: {path.name}, {len(codes)} samples")
            start = time.perf_counter()
            data, header = compress(model, codes, sr, segment_seconds=segment_seconds, backend=backend)
            enc_s += time.perf_counter() - start
            start = time.perf_counter()
            decoded, _ = decompress(model, data, sr)
            dec_s += time.perf_counter() - start
            if not np.array_equal(decoded, codes):
                raise RuntimeError(f"{path}: codec round trip is not lossless")
            used = header["setup"]["backend"]
            totals["samples"] += len(codes)
            totals["wavegen"] += 8 * len(data)
            totals["payload"] += 8 * header["payload_bytes"]
            totals["ideal"] += header["ideal_bits"]
            totals["score"] += score(vocoder, wav).bits
            totals["flac"] += 8 * flac_bytes(codes, sr)
            totals["xz"] += 8 * xz_bytes(codes)
        n = totals["samples"]
        return {
            "checkpoint": self.checkpoint,
            "files": len(self.audio),
            "samples": int(n),
            "sample_rate": sr,
            "backend": used,
            "segment_seconds": segment_seconds,
            "wavegen_bits_per_sample": round(totals["wavegen"] / n, 4),
            "wavegen_payload_bits_per_sample": round(totals["payload"] / n, 4),
            "wavegen_ideal_bits_per_sample": round(totals["ideal"] / n, 4),
            "score_bits_per_sample": round(totals["score"] / n, 4),
            "flac8_bits_per_sample": round(totals["flac"] / n, 4),
            "xz_bits_per_sample": round(totals["xz"] / n, 4),
            "compress_samples_per_s": round(n / enc_s, 1),
            "decompress_samples_per_s": round(n / dec_s, 1),
        }


def codec_bench(
    checkpoint: str | Path,
    audio: list[str | Path],
    segment_seconds: float = 1.0,
    backend: str = "auto",
    log=None,
) -> dict:
    """Compress and decompress each file with the codec model at ``checkpoint``; -> the figures."""
    return CodecRun.load(checkpoint, audio).measure(segment_seconds, backend, log)
