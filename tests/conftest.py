"""Fixtures shared by the test modules (helpers that are plain functions live in helpers.py).

Tiers: tests that train a model, build the package or run the demo are marked ``slow``;
``pytest -m "not slow"`` is the quick loop while editing, CI runs everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import make_feature_cache

# The shared corpora (ljspeech-mini, vctk-mini) sit beside the repository, never inside it.
SHARED_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: tiny models run ~10x faster on one thread than on two
    cores shared with other jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def two_speaker_cache(tmp_path_factory) -> Path:
    """A feature cache of two speakers, 4 train + 1 valid utterances each (read-only for tests)."""
    return make_feature_cache(tmp_path_factory.mktemp("cache"), n_utts=4, speakers=("a", "b"))


@pytest.fixture(scope="session")
def shared_corpora() -> Path:
    """../shared/corpora, or the test is skipped saying where they were looked for."""
    if not SHARED_CORPORA.is_dir():
        pytest.skip(f"needs the shared corpora at {SHARED_CORPORA}")
    return SHARED_CORPORA
