"""Batch synthesis: copy-synthesis from audio, vocoding of TTS mel files, or a corpus split.

Utterances are sorted by length and batched through the cached generator; each output is a
16-bit WAV written atomically, so an interrupted run leaves only whole files and a rerun skips
them. Under ``torchrun`` each rank takes every WORLD_SIZE-th utterance.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import read_audio, write_audio
from .corpora.folder import AUDIO_SUFFIXES
from .errors import WavegenError
from .vocoder import Vocoder
from .workdir import load_features_info, load_manifest

MEL_SUFFIXES = {".npy", ".pt"}


@dataclass
class Item:
    id: str
    mel: torch.Tensor  # (n_mels, T) raw preset mel
    speaker: str | None = None


def expand(paths: list[Path], suffixes: frozenset[str] | set[str]) -> list[Path]:
    """Files as given, and the matching files inside any folders, sorted."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in suffixes)
        elif p.is_file():
            out.append(p)
        else:
            raise WavegenError(f"{p}: no such file or folder")
    return out


def load_mel_file(path: Path) -> torch.Tensor:
    """A TTS mel file: .npy (no pickle) or .pt (weights_only) holding one 2-D array."""
    try:
        if path.suffix == ".npy":
            data = torch.from_numpy(np.load(path, allow_pickle=False))
        elif path.suffix == ".pt":
            data = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise WavegenError(f"{path}: expected a .npy or .pt mel file")
    except WavegenError:
        raise
    except Exception as err:
        raise WavegenError(f"{path}: not a readable mel array ({str(err).splitlines()[0]})") from None
    if not isinstance(data, torch.Tensor) or data.dim() != 2:
        shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise WavegenError(f"{path}: expected a 2-D mel array [n_mels, T] or [T, n_mels], got {shape}")
    return data.float()


def items_from_wavs(vocoder: Vocoder, paths: list[Path], speaker: str | None) -> list[Item]:
    items = []
    for p in expand(paths, AUDIO_SUFFIXES):
        wav, _ = read_audio(p, sample_rate=vocoder.sample_rate)
        items.append(Item(p.stem, vocoder.mel(wav), speaker))
    return items


def items_from_mels(vocoder: Vocoder, paths: list[Path], speaker: str | None) -> list[Item]:
    items = []
    for p in expand(paths, MEL_SUFFIXES):
        try:
            mel = vocoder.prepare_mel(load_mel_file(p))[0].cpu()
        except WavegenError as err:
            raise WavegenError(f"{p}: {err}") from None
        items.append(Item(p.stem, mel, speaker))
    return items


def items_from_split(vocoder: Vocoder, workdir: Path, split: str, speaker: str | None) -> list[Item]:
    info = load_features_info(workdir)
    if info.get("preset") != vocoder.mel_preset:
        raise WavegenError(
            f"{workdir}: feature cache uses the {info.get('preset')} preset, the model {vocoder.mel_preset}"
        )
    rows = [r for r in load_manifest(workdir) if r["split"] == split]
    if not rows:
        raise WavegenError(f"{workdir}: no utterances in split {split!r}")
    return [
        Item(
            r["id"],
            torch.from_numpy(np.load(workdir / r["mel"])),
            speaker or (r["speaker"] if vocoder.speakers else None),
        )
        for r in rows
    ]


def shard(items: list[Item]) -> list[Item]:
    """This rank's share under torchrun (RANK / WORLD_SIZE), else everything."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return items[rank::world]


def synthesize(
    vocoder: Vocoder,
    items: list[Item],
    outdir: Path,
    batch_size: int = 8,
    temperature: float = 1.0,
    seed: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Vocode ``items`` into OUTDIR/<id>.wav; -> summary dict (counts, seconds, realtime factor)."""
    from tqdm import tqdm

    outdir.mkdir(parents=True, exist_ok=True)
    todo = [it for it in items if overwrite or not (outdir / f"{it.id}.wav").exists()]
    todo.sort(key=lambda it: -it.mel.shape[-1])  # similar lengths share a batch
    total_audio = sum(it.mel.shape[-1] for it in todo) * vocoder.hop_length / vocoder.sample_rate
    done_audio, start = 0.0, time.perf_counter()
    bar = tqdm(total=round(total_audio, 2), unit="s audio", disable=not progress, dynamic_ncols=True)
    for b in range(0, len(todo), batch_size):
        group = todo[b : b + batch_size]
        speakers = [it.speaker for it in group] if vocoder.speakers else None
        batch_seed = None if seed is None else seed + b
        wavs = vocoder.batch(
            [it.mel for it in group], speakers, temperature=temperature, seed=batch_seed, check=False
        )
        for it, wav in zip(group, wavs):
            write_audio(outdir / f"{it.id}.wav", wav.cpu().numpy(), vocoder.sample_rate)
            seconds = len(wav) / vocoder.sample_rate
            done_audio += seconds
            bar.update(round(seconds, 2))
        elapsed = time.perf_counter() - start
        bar.set_postfix(rtf=f"{done_audio / max(elapsed, 1e-9):.3f}x")
    bar.close()
    wall = time.perf_counter() - start
    return {
        "synthesized": len(todo),
        "skipped_existing": len(items) - len(todo),
        "audio_seconds": round(done_audio, 3),
        "seconds": round(wall, 3),
        "realtime_factor": round(done_audio / wall, 4) if wall > 0 and todo else None,
        "outdir": str(outdir),
    }
