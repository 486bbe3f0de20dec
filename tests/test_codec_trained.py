"""The codec with a trained model: a small unconditional WaveNet trained briefly on ljspeech-mini
minus its test clips (the ljspeech-codec recipe's split: it asks for 4, and preprocess caps a
speaker's held-out share at 10%, so 2 of the excerpt's 20 clips) compresses held-out speech smaller
than FLAC -8 on the same μ-law stream, and the coded size tracks the model's −log2 P, which
``wavegen score`` computes.

Figures from this test (300 steps: ~20 s on 2 quiet CPU cores, ~4 min on heavily loaded ones):
on LJ001-0008 (1.78 s, held out) wavegen 5.51 bits/sample for the whole file (5.35 payload; the
model's −log2 P 5.34), FLAC -8 5.79, xz -9e 6.04.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wavegen.artifacts.workdir import load_manifest
from wavegen.bench.codec import flac_bytes, xz_bytes
from wavegen.codec import compress, decompress
from wavegen.core.audio import read_audio
from wavegen.core.config import load_recipe
from wavegen.core.mulaw import mulaw_encode
from wavegen.data.preprocess import held_out_counts, preprocess
from wavegen.inference.score import score
from wavegen.inference.vocoder import load_vocoder
from wavegen.training import train

REPO = Path(__file__).resolve().parents[1]
LJ = REPO.parent / "shared" / "corpora" / "ljspeech-mini"
pytestmark = [
    pytest.mark.slow,  # trains a model for 300 steps
    pytest.mark.skipif(not LJ.is_dir(), reason=f"shared corpora not found at {LJ}"),
]

STEPS = 300
# The recipe's split and data; a smaller network (8 layers, receptive field 511) and a short,
# fast schedule (constant lr 4e-3 after warm-up), so it trains in a couple of minutes on 2 CPU cores.
OVERRIDES = [
    "model.layers=8",
    "model.stacks=1",
    "model.residual_channels=32",
    "model.gate_channels=64",
    "model.skip_channels=32",
    "data.window_samples=2048",
    f"train.max_steps={STEPS}",
    "train.lr=0.004",
    "train.warmup_steps=20",
    "train.decay=none",
    "train.ema_decay=0.98",
    "train.precision=fp32",
    f"train.log_interval={STEPS}",
    f"train.checkpoint_interval={STEPS}",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(vocoder, the shortest held-out clip's path)."""
    root = tmp_path_factory.mktemp("codec_trained")
    recipe = load_recipe(REPO / "recipes" / "ljspeech-codec" / "config.yaml", OVERRIDES)
    preprocess(recipe, root / "work", corpus_path=LJ, workers=1, progress=False)
    manifest = load_manifest(root / "work")
    held_out = [e for e in manifest if e["split"] == "test"]
    assert len(held_out) == held_out_counts(len(manifest), 0, recipe.data.test_per_speaker)[1] == 2
    result = train(recipe, root / "work", root / "run", device="cpu", progress=False)
    assert result.step == STEPS
    shortest = min(held_out, key=lambda e: e["seconds"])
    return load_vocoder(root / "run"), Path(shortest["source"])


def test_trained_codec_beats_flac_on_held_out_speech(trained):
    vocoder, clip = trained
    wav, sr = read_audio(clip, vocoder.sample_rate)
    codes = mulaw_encode(wav)
    data, header = compress(vocoder.model, codes, sr)
    flac, xz = flac_bytes(codes, sr), xz_bytes(codes)
    n = len(codes)
    print(
        f"{clip.name}: wavegen {8 * len(data) / n:.3f} bits/sample "
        f"(payload {8 * header['payload_bytes'] / n:.3f}), FLAC -8 {8 * flac / n:.3f}, xz {8 * xz / n:.3f}"
    )
    assert len(data) < flac  # the whole .wgc file, header included
    decoded, _ = decompress(vocoder.model, data, sr)
    assert np.array_equal(decoded, codes)


def test_coded_size_tracks_the_models_minus_log2_p(trained):
    """Within 1% (plus the header) of −log2 P, which equals ``wavegen score`` within 0.1% even
    with the restarts of 0.5 s segments."""
    vocoder, clip = trained
    wav, sr = read_audio(clip, vocoder.sample_rate)
    codes = mulaw_encode(wav)
    data, header = compress(vocoder.model, codes, sr, segment_seconds=0.5)
    scored = score(vocoder, wav)
    assert scored.samples == len(codes)
    header_bits = 8 * (len(data) - header["payload_bytes"])
    assert 8 * len(data) <= 1.01 * scored.bits + header_bits
    payload_bits, ideal = 8 * header["payload_bytes"], header["ideal_bits"]
    assert abs(payload_bits - ideal) <= 0.01 * ideal, (payload_bits, ideal)
    assert abs(ideal - scored.bits) <= 0.001 * scored.bits, (ideal, scored.bits)
