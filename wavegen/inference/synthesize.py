"""Batch synthesis: copy-synthesis from audio, vocoding of TTS mel files, or a corpus split.

Utterances are sorted by length and batched through the cached generator; each output is a
16-bit WAV written atomically, so an interrupted run leaves only whole files and a rerun skips
them. Under ``torchrun`` each rank takes every WORLD_SIZE-th utterance.

Each utterance is written to OUTDIR/<id>.wav, its id being the input file's stem (or the
manifest id for a split). Two inputs with one id (``a/x.wav`` and ``b/x.wav``, ``x.npy`` and
``x.pt``) are refused before any work, naming both, rather than one overwriting the other; the
same file given twice is vocoded once.

A speaker goes with each utterance only when the model is speaker-conditioned
(``model.n_speakers`` > 0): a single-speaker model such as LJSpeech's still lists its speaker
('LJ') but takes none (see :meth:`wavegen.inference.vocoder.Vocoder.speaker_ids`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..artifacts.workdir import load_features_info, load_manifest
from ..core.audio import AUDIO_SUFFIXES, read_audio, read_npy, write_audio
from ..core.errors import WavegenError
from ..generation.generate import check_temperature
from ..generation.sampler import check_seed
from .vocoder import Vocoder

MEL_SUFFIXES = {".npy", ".pt"}


@dataclass
class Item:
    id: str  # the output is OUTDIR/<id>.wav
    mel: torch.Tensor  # (n_mels, T) raw preset mel
    speaker: str | None = None  # None for a model without speaker conditioning
    source: str = ""  # where it came from (a file, or a work dir's utterance), for messages


def expand(paths: list[Path], suffixes: frozenset[str] | set[str]) -> list[Path]:
    """Files as given, and the matching files inside any folders (sorted); each file once."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in suffixes)
        elif p.is_file():
            out.append(p)
        else:
            raise WavegenError(f"{p}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for p in out:  # `--wav a.wav --wav .` names a.wav twice: one file, one output
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def load_mel_file(path: Path) -> torch.Tensor:
    """A TTS mel file: .npy (no pickle) or .pt (weights_only) holding one 2-D array."""
    try:
        if path.suffix == ".npy":
            data = torch.from_numpy(read_npy(path))
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


def _check_speaker(vocoder: Vocoder, speaker: str | None) -> str | None:
    """The speaker each utterance is vocoded with: checked now, before any work; None when the
    model takes no speaker (a speaker it was trained on is then accepted and dropped)."""
    vocoder.speaker_ids(speaker, 1)  # unknown, missing or unwanted speakers fail here
    return speaker if vocoder.speaker_conditioned else None


def items_from_wavs(vocoder: Vocoder, paths: list[Path], speaker: str | None) -> list[Item]:
    """Copy-synthesis: the model's own mel of each audio file (resampled to its rate)."""
    vocoder.require_mel_conditioning()
    speaker = _check_speaker(vocoder, speaker)
    items = []
    for p in expand(paths, AUDIO_SUFFIXES):
        wav, _ = read_audio(p, sample_rate=vocoder.sample_rate)
        try:
            mel = vocoder.mel(wav)
        except WavegenError as err:  # e.g. audio too short: say which file
            raise WavegenError(f"{p}: {err}") from None
        items.append(Item(p.stem, mel, speaker, str(p)))
    return items


def items_from_mels(vocoder: Vocoder, paths: list[Path], speaker: str | None) -> list[Item]:
    """TTS output: .npy/.pt mel files, checked against the model's preset."""
    vocoder.require_mel_conditioning()
    speaker = _check_speaker(vocoder, speaker)
    items = []
    for p in expand(paths, MEL_SUFFIXES):
        raw = load_mel_file(p)  # its errors name the file already
        try:
            mel = vocoder.prepare_mel(raw)[0].cpu()
        except WavegenError as err:
            raise WavegenError(f"{p}: {err}") from None
        items.append(Item(p.stem, mel, speaker, str(p)))
    return items


def items_from_split(vocoder: Vocoder, workdir: Path, split: str, speaker: str | None) -> list[Item]:
    """A split of a feature cache; each utterance with its own speaker (or ``speaker``) when the
    model is speaker-conditioned."""
    vocoder.require_mel_conditioning()
    if speaker is not None:
        speaker = _check_speaker(vocoder, speaker)
    info = load_features_info(workdir)
    if info.get("preset") != vocoder.mel_preset:
        raise WavegenError(
            f"{workdir}: feature cache uses the {info.get('preset')} preset, the model {vocoder.mel_preset}"
        )
    rows = [r for r in load_manifest(workdir) if r["split"] == split]
    if not rows:
        raise WavegenError(f"{workdir}: no utterances in split {split!r}")
    own = vocoder.speaker_conditioned and speaker is None
    return [
        Item(
            r["id"],
            torch.from_numpy(np.load(workdir / r["mel"])),
            r["speaker"] if own else speaker,
            f"{workdir} utterance {r['id']}",
        )
        for r in rows
    ]


def check_output_names(items: list[Item], outdir: Path) -> None:
    """Refuse an OUTDIR that is a file, and two items that would be written to the same
    OUTDIR/<id>.wav, naming both."""
    if outdir.exists() and not outdir.is_dir():
        raise WavegenError(f"{outdir}: is a file; -o expects the folder to write the WAVs into")
    first: dict[str, Item] = {}
    for it in items:
        other = first.setdefault(it.id, it)
        if other is not it:
            raise WavegenError(
                f"{other.source} and {it.source} would both be written to {outdir / (it.id + '.wav')}; "
                "rename one or synthesize them into separate output folders"
            )


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
    """Vocode ``items`` into OUTDIR/<id>.wav; -> summary dict (counts, seconds, realtime factor).

    ``synthesized`` counts the WAVs written; ``skipped_existing`` those already there and kept
    (``overwrite`` regenerates them).
    """
    from tqdm import tqdm

    vocoder.require_mel_conditioning()
    temperature = check_temperature(temperature)
    check_seed(seed)
    check_output_names(items, outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    todo = [it for it in items if overwrite or not (outdir / f"{it.id}.wav").exists()]
    todo.sort(key=lambda it: -it.mel.shape[-1])  # similar lengths share a batch
    total_audio = sum(it.mel.shape[-1] for it in todo) * vocoder.hop_length / vocoder.sample_rate
    done_audio, written, start = 0.0, 0, time.perf_counter()
    bar = tqdm(  # on a terminal only: piped stderr stays one line per event (and per error)
        total=round(total_audio, 2),
        unit="s audio",
        disable=not (progress and sys.stderr.isatty()),
        dynamic_ncols=True,
        file=sys.stderr,
    )
    for b in range(0, len(todo), batch_size):
        group = todo[b : b + batch_size]
        speakers = [it.speaker for it in group] if vocoder.speaker_conditioned else None
        batch_seed = None if seed is None else seed + b
        wavs = vocoder.batch(
            [it.mel for it in group], speakers, temperature=temperature, seed=batch_seed, check=False
        )
        for it, wav in zip(group, wavs):
            write_audio(outdir / f"{it.id}.wav", wav.cpu().numpy(), vocoder.sample_rate)
            written += 1
            seconds = len(wav) / vocoder.sample_rate
            done_audio += seconds
            bar.update(round(seconds, 2))
        elapsed = time.perf_counter() - start
        bar.set_postfix(rtf=f"{done_audio / max(elapsed, 1e-9):.3f}x")
    bar.close()
    wall = time.perf_counter() - start
    return {
        "synthesized": written,
        "skipped_existing": len(items) - len(todo),
        "audio_seconds": round(done_audio, 3),
        "seconds": round(wall, 3),
        "realtime_factor": round(done_audio / wall, 4) if wall > 0 and written else None,
        "outdir": str(outdir),
        "backend": vocoder.backend,
        "precision": vocoder.precision,
    }
