"""Training windows from the feature cache, and the seeded sampler that picks them.

A window is ``W = data.window_samples`` samples starting on a frame boundary: for start frame s
and n = W / hop frames it holds

    audio  [s·hop, (s + n)·hop)                     -> μ-law classes, (W,) int64
    mel    [s − cin_pad, s + n + cin_pad)           -> (n_mels, n + 2·cin_pad) float32

where the mel is the utterance's mel replicate-padded by cin_pad frames at both ends, exactly as
``WaveNet.pad_mel`` pads a whole utterance at synthesis time.

Utterances shorter than one window are skipped (not padded): padding would teach the model that
silence follows the last mel frame whatever that frame says. :func:`load_split` reports how many.

The sampler is DistributedSampler-like: each epoch is a seeded permutation of the train
utterances (``set_epoch``), one window per utterance per epoch, and global batches are consecutive
runs of ``data.batch_size`` entries of that endless stream. The start frame of entry i of epoch e
comes from its own RNG seeded by (seed, e, i), so a window depends on nothing but its position:
every rank draws the same global batch and keeps its slice, a 1-process and an N-process run see
the same windows, and the position (epoch, index) in a checkpoint is all resume needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..artifacts.workdir import MANIFEST
from ..core.errors import WavegenError
from ..core.mulaw import mulaw_encode


# ---- one split of the cache ------------------------------------------------------------------
@dataclass(frozen=True)
class Utterance:
    id: str
    speaker: int  # index into features.json "speakers"
    audio: Path  # float32 (frames·hop,)
    mel: Path  # float32 (n_mels, frames)
    frames: int


def load_split(
    workdir: str | Path, manifest: list[dict], speakers: list[str], split: str, window_frames: int
) -> tuple[list[Utterance], int]:
    """Utterances of ``split`` at least ``window_frames`` long, and how many were too short."""
    workdir = Path(workdir)
    index = {name: i for i, name in enumerate(speakers)}
    out, short = [], 0
    for entry in manifest:
        if entry.get("split") != split:
            continue
        try:
            utt = Utterance(
                id=str(entry["id"]),
                speaker=index[entry["speaker"]],
                audio=workdir / entry["audio"],
                mel=workdir / entry["mel"],
                frames=int(entry["frames"]),
            )
        except KeyError as err:
            raise WavegenError(
                f"{workdir / MANIFEST}: entry {entry.get('id')!r} has no valid {err} "
                "(speaker must be listed in features.json)"
            ) from None
        if utt.frames < window_frames:
            short += 1
        else:
            out.append(utt)
    return out, short


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise WavegenError(f"{path}: unreadable cache file ({err})") from None


class WindowDataset:
    """Map (utterance index, start frame) -> one aligned training window."""

    def __init__(
        self,
        utterances: list[Utterance],
        window_samples: int,
        hop_length: int,
        cin_pad: int,
        quantize_channels: int,
    ):
        self.utterances = utterances
        self.hop_length = hop_length
        self.window_frames = window_samples // hop_length
        self.cin_pad = cin_pad
        self.quantize_channels = quantize_channels

    def max_start(self, utt_index: int) -> int:
        return self.utterances[utt_index].frames - self.window_frames

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """-> (audio classes (W,) int64, mel (n_mels, n + 2·cin_pad) float32, speaker index)."""
        utt_index, start = item
        utt = self.utterances[utt_index]
        hop, n, pad = self.hop_length, self.window_frames, self.cin_pad
        audio = _load_npy(utt.audio)[start * hop : (start + n) * hop]
        if len(audio) != n * hop:
            raise WavegenError(
                f"{utt.audio}: holds fewer samples than its manifest entry's {utt.frames} frames"
            )
        mel = _load_npy(utt.mel)
        # Replicate padding of the whole utterance = clamping frame indices to [0, F − 1].
        frames = np.clip(np.arange(start - pad, start + n + pad), 0, mel.shape[1] - 1)
        mel = np.asarray(mel[:, frames], dtype=np.float32)
        classes = mulaw_encode(np.asarray(audio, dtype=np.float32), self.quantize_channels)
        return torch.from_numpy(classes), torch.from_numpy(mel), utt.speaker


def collate(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> dict[str, torch.Tensor]:
    """-> {"audio": (B, W) int64, "mel": (B, n_mels, n + 2·cin_pad), "speaker": (B,) int64}."""
    audio, mel, speaker = zip(*items, strict=True)
    return {
        "audio": torch.stack(audio),
        "mel": torch.stack(mel),
        "speaker": torch.tensor(speaker, dtype=torch.int64),
    }


# ---- sampling ------------------------------------------------------------------------------
class WindowSampler:
    """Endless seeded stream of (utterance, start frame), cut into global batches.

    Yields this rank's share (``batch_size / world_size`` items) of each global batch; use it as
    a DataLoader ``batch_sampler``. ``state_dict`` is the position after the batches consumed so
    far; DataLoader prefetching does not move it, :meth:`advance` does (call once per step).
    """

    def __init__(
        self, dataset: WindowDataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ):
        if batch_size % world_size:
            raise WavegenError(
                f"data.batch_size ({batch_size}) must be divisible by the number of processes ({world_size})"
            )
        self.dataset = dataset
        self.num_utts = len(dataset.utterances)
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.index = 0  # next entry of the epoch's permutation

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.index = epoch, 0

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_utts)

    def _entry(self, epoch: int, i: int, order: np.ndarray) -> tuple[int, int]:
        utt = int(order[i])
        start = int(
            np.random.default_rng([self.seed, epoch, i, 1]).integers(0, self.dataset.max_start(utt) + 1)
        )
        return utt, start

    def global_batch(self, epoch: int, index: int) -> tuple[list[tuple[int, int]], int, int]:
        """The global batch starting at (epoch, index), and the position after it."""
        items, order = [], self._order(epoch)
        while len(items) < self.batch_size:
            if index == self.num_utts:
                epoch, index = epoch + 1, 0
                order = self._order(epoch)
            items.append(self._entry(epoch, index, order))
            index += 1
        return items, epoch, index

    def local_slice(self, items: list) -> list:
        share = self.batch_size // self.world_size
        return items[self.rank * share : (self.rank + 1) * share]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, index = self.epoch, self.index
        while True:
            items, epoch, index = self.global_batch(epoch, index)
            yield self.local_slice(items)

    def advance(self) -> None:
        """Move the saved position past one consumed global batch."""
        _, self.epoch, self.index = self.global_batch(self.epoch, self.index)

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "index": self.index,
            "seed": self.seed,
            "num_utts": self.num_utts,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("num_utts") != self.num_utts:
            raise WavegenError(
                f"the checkpoint sampled from {state.get('num_utts')} train utterances; the "
                f"feature cache now has {self.num_utts}: cannot resume exactly "
                "(use another --run-dir)"
            )
        self.epoch, self.index = int(state["epoch"]), int(state["index"])


def validation_windows(dataset: WindowDataset, count: int, seed: int = 0) -> list[tuple[int, int]]:
    """``count`` fixed windows cycling over the utterances, starts drawn once from ``seed``."""
    rng = np.random.default_rng(seed)
    n = len(dataset.utterances)
    if n == 0:
        return []
    return [(i % n, int(rng.integers(0, dataset.max_start(i % n) + 1))) for i in range(count)]
