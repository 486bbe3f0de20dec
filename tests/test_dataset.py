"""Training windows: alignment with the model's padding, skipping, a reproducible sampler."""

import numpy as np
import pytest
import torch

from tests.helpers import make_feature_cache
from wavegen.artifacts.workdir import read_feature_cache
from wavegen.core.config import ModelConfig
from wavegen.core.errors import WavegenError
from wavegen.core.mulaw import mulaw_encode
from wavegen.model import WaveNet
from wavegen.training.dataset import (
    WindowDataset,
    WindowSampler,
    collate,
    load_split,
    validation_windows,
)

HOP = 256


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_feature_cache(tmp_path_factory.mktemp("cache"), n_utts=5, speakers=("a", "b"))


def dataset(cache, window=512, cin_pad=2, split="train"):
    manifest, features, _ = read_feature_cache(cache)
    utts, short = load_split(cache, manifest, features["speakers"], split, window // HOP)
    return WindowDataset(utts, window, HOP, cin_pad, 256), short


def test_window_matches_whole_utterance_padding(cache):
    """Audio [s·hop, (s+n)·hop) and mel frames [s−pad, s+n+pad) of WaveNet.pad_mel(whole mel)."""
    ds, _ = dataset(cache, window=1024, cin_pad=3)
    model = WaveNet(ModelConfig(layers=2, stacks=1, cin_pad=3))
    for utt_index in range(len(ds.utterances)):
        utt = ds.utterances[utt_index]
        audio, mel = np.load(utt.audio), np.load(utt.mel)
        padded = model.pad_mel(torch.from_numpy(mel)[None])[0]  # (80, F + 6)
        for start in (0, 1, ds.max_start(utt_index)):  # both edges use the replicated frames
            classes, window_mel, speaker = ds[(utt_index, start)]
            assert classes.dtype == torch.int64 and classes.shape == (1024,)
            assert torch.equal(
                classes, torch.from_numpy(mulaw_encode(audio[start * HOP : (start + 4) * HOP]))
            )
            # Frame s of the utterance sits at index s + pad of the padded mel.
            assert torch.equal(window_mel, padded[:, start : start + 4 + 6])
            assert speaker == utt.speaker


def test_window_feeds_the_model(cache):
    ds, _ = dataset(cache)
    batch = collate([ds[(0, 0)], ds[(1, 2)]])
    model = WaveNet(ModelConfig(layers=2, stacks=1, residual_channels=4, gate_channels=8, skip_channels=4))
    assert model(batch["audio"], batch["mel"]).shape == (2, 256, 512)


def test_short_utterances_are_skipped_and_counted(cache):
    manifest, features, _ = read_feature_cache(cache)
    frames = sorted(e["frames"] for e in manifest if e["split"] == "train")
    window_frames = frames[3]  # longer than the three shortest
    utts, short = load_split(cache, manifest, features["speakers"], "train", window_frames)
    assert short == 3 and len(utts) == len(frames) - 3
    assert all(u.frames >= window_frames for u in utts)


def test_sampler_epochs_are_permutations_and_resume_exactly(cache):
    ds, _ = dataset(cache)
    n = len(ds.utterances)  # 10
    sampler = WindowSampler(ds, batch_size=4, seed=3)
    stream = iter(sampler)
    first = [next(stream) for _ in range(5)]  # 20 windows = 2 epochs
    flat = [utt for batch in first for utt, _ in batch]
    assert sorted(flat[:n]) == list(range(n)) and sorted(flat[n : 2 * n]) == list(range(n))
    assert flat[:n] != flat[n : 2 * n]  # set_epoch: a new order each epoch
    for batch in first:
        for utt, start in batch:
            assert 0 <= start <= ds.max_start(utt)
    # Consume 3 batches, save, restore into a fresh sampler: the next batches are identical.
    for _ in range(3):
        sampler.advance()
    state = sampler.state_dict()
    assert (state["epoch"], state["index"]) == (1, 2)
    other = WindowSampler(ds, batch_size=4, seed=3)
    other.load_state_dict(state)
    assert next(iter(other)) == first[3]
    resumed = iter(other)
    assert [next(resumed) for _ in range(2)] == first[3:5]
    # A different seed gives different windows.
    assert next(iter(WindowSampler(ds, batch_size=4, seed=4))) != first[0]


def test_ranks_split_the_same_global_batch(cache):
    ds, _ = dataset(cache)
    single = iter(WindowSampler(ds, batch_size=6, seed=1))
    ranks = [iter(WindowSampler(ds, batch_size=6, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    for _ in range(4):
        parts = [next(r) for r in ranks]
        assert len(parts[0]) == len(parts[1]) == 3
        assert parts[0] + parts[1] == next(single)
    with pytest.raises(WavegenError, match="divisible"):
        WindowSampler(ds, batch_size=5, seed=1, world_size=2)


def test_sampler_refuses_a_changed_cache(cache):
    ds, _ = dataset(cache)
    state = WindowSampler(ds, batch_size=2, seed=0).state_dict()
    state["num_utts"] += 1
    with pytest.raises(WavegenError, match="cannot resume exactly"):
        WindowSampler(ds, batch_size=2, seed=0).load_state_dict(state)


def test_validation_windows_are_fixed(cache):
    ds, _ = dataset(cache, split="valid")
    a, b = validation_windows(ds, 6), validation_windows(ds, 6)
    assert a == b and len(a) == 6
    assert {utt for utt, _ in a} == set(range(len(ds.utterances)))


def test_missing_or_corrupt_cache_names_the_file(tmp_path):
    with pytest.raises(WavegenError, match="no feature cache"):
        read_feature_cache(tmp_path / "nope")
    with pytest.raises(WavegenError, match="manifest"):
        read_feature_cache(tmp_path)
    make_feature_cache(tmp_path, n_utts=1)
    (tmp_path / "features.json").write_text("{not json")
    with pytest.raises(WavegenError, match="features.json"):
        read_feature_cache(tmp_path)
