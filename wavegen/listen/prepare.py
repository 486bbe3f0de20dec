"""``wavegen listen prepare``: vocoder output folders -> a blinded, loudness-matched test dir.

Items are matched by file name (without extension) across the reference folder and every
system's folder; each item's stimuli are resampled to one rate, cut to the shortest of them
(and to ``max_seconds``), faded at both ends, and brought to one loudness. MUSHRA adds the
hidden reference and the BS.1534-3 anchors (the reference low-passed at 3.5 and 7 kHz).

The whole test dir is built in a hidden sibling folder and renamed into place at the end, so a
test dir either is complete or does not exist.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.audio import atomic_path, audio_sample_rate, current_umask, read_audio, write_audio, write_npy
from ..core.errors import WavegenError
from .experiment import Experiment
from .spec import (
    ANCHORS,
    MAX_MUSHRA_CONDITIONS,
    REFERENCE,
    STIMULI,
    TEST_FILE,
    TYPES,
    Condition,
    Item,
    ListeningTest,
    check_system_name,
)
from .stimuli import (
    MIN_SECONDS,
    TARGET_LUFS,
    check_measurable,
    common_target,
    fade,
    integrated_loudness,
    lowpass,
    peak_dbfs,
)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aif", ".aiff")


@dataclass
class Matched:
    """Items found in every folder, and the names some folders lack."""

    items: list[str]  # sorted file names without extension
    files: dict[str, dict[str, Path]]  # system -> item -> file
    unmatched: list[str]  # names present in some folders but not all


def audio_files(folder: Path, what: str) -> dict[str, Path]:
    """name without extension -> file, for the audio files directly in ``folder``."""
    if not folder.is_dir():
        raise WavegenError(f"{folder}: {what} folder not found")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith("."):
            if path.stem in files:
                raise WavegenError(f"{folder}: both {files[path.stem].name} and {path.name}; keep one")
            files[path.stem] = path
    if not files:
        raise WavegenError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in the {what} folder")
    return files


def match_items(folders: dict[str, Path]) -> Matched:
    """Match items by file name across ``folders`` (system -> folder)."""
    files = {name: audio_files(folder, f"{name!r}") for name, folder in folders.items()}
    names = [set(f) for f in files.values()]
    common, every = set.intersection(*names), set.union(*names)
    if not common:
        raise WavegenError(
            "no file name is present in every folder: "
            + ", ".join(f"{name}={folder}" for name, folder in folders.items())
        )
    return Matched(items=sorted(common), files=files, unmatched=sorted(every - common))


def check_arguments(kind: str, reference: Path | None, systems: dict[str, Path], gold: bool) -> None:
    if kind not in TYPES:
        raise WavegenError(f"--type {kind!r}: expected one of {', '.join(TYPES)}")
    for name in systems:
        check_system_name(name, "--sys")
    if kind in ("mushra", "abx") and reference is None:
        raise WavegenError(f"--type {kind} needs --ref (the reference recordings)")
    if not systems:
        raise WavegenError("give at least one --sys NAME=DIR")
    if kind == "mushra" and len(systems) + 1 + len(ANCHORS) > MAX_MUSHRA_CONDITIONS:
        raise WavegenError(
            f"MUSHRA allows at most {MAX_MUSHRA_CONDITIONS} conditions per page (BS.1534-3): "
            f"{len(systems)} systems + hidden reference + 2 anchors is too many"
        )
    if kind == "ab" and len(systems) + (reference is not None) < 2:
        raise WavegenError("--type ab compares at least two systems (two --sys, or one --sys and --ref)")
    if gold and (kind != "mos" or reference is None):
        raise WavegenError("--gold is for --type mos with --ref (the reference trials are the gold items)")


def prepare_test(
    kind: str,
    out_dir: str | Path,
    systems: dict[str, str | Path],
    reference: str | Path | None = None,
    items_per_listener: int | None = None,
    seed: int = 0,
    sample_rate: int | None = None,
    max_seconds: float | None = None,
    gold: bool = False,
    loudness_lufs: float = TARGET_LUFS,
    experiment: Experiment | None = None,
    echo: Callable[[str], None] = lambda _: None,
) -> ListeningTest:
    """Build a listening test in ``out_dir`` (which must not exist, or be empty).

    Args:
        kind: mushra, mos, ab or abx.
        systems: system name -> folder of its output WAVs.
        reference: folder of the reference recordings (MUSHRA, ABX: required; MOS, AB: optional,
            then rated as the system ``reference``).
        items_per_listener: each listener gets a balanced subset of this many items (None: all).
        sample_rate: the test's rate (default: the first reference file's, else the first system's).
        max_seconds: cut every item to at most this long.
        gold: MOS only: the reference trials are attention checks (a listener must rate them >= 4).
        experiment: consent, calibration, questionnaire, comments, wording (experiment.py).
    """
    out_dir = Path(out_dir)
    ref = Path(reference) if reference is not None else None
    sys_dirs = {name: Path(folder) for name, folder in systems.items()}
    check_arguments(kind, ref, sys_dirs, gold)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise WavegenError(f"{out_dir}: already exists and is not empty; choose a new -o for a new test")
    if items_per_listener is not None and items_per_listener < 1:
        raise WavegenError(f"--items must be at least 1, got {items_per_listener}")
    if not -70.0 < loudness_lufs < 0.0:
        raise WavegenError(f"--loudness {loudness_lufs:g}: expected a level between -70 and 0 LUFS")
    if max_seconds is not None and not max_seconds >= MIN_SECONDS:  # nan too
        raise WavegenError(
            f"--max-seconds {max_seconds:g}: expected at least {MIN_SECONDS} s (what loudness matching needs)"
        )

    folders = ({REFERENCE: ref} if ref is not None else {}) | sys_dirs
    matched = match_items(folders)
    if items_per_listener is not None and items_per_listener > len(matched.items):
        raise WavegenError(f"--items {items_per_listener}: only {len(matched.items)} items are matched")
    first = next(iter(folders))
    rate = sample_rate or audio_sample_rate(matched.files[first][matched.items[0]])
    if not 8000 <= rate <= 96000:  # what browsers' Web Audio decodes and plays
        raise WavegenError(f"--rate {rate}: expected 8000 to 96000 Hz (what browsers play)")
    if kind == "mushra" and rate <= 2 * max(ANCHORS.values()):
        raise WavegenError(
            f"MUSHRA needs a rate above 14 kHz for the 7 kHz anchor; the test's rate is {rate} Hz"
        )
    echo(
        f"{len(matched.items)} items matched at {rate} Hz"
        + (f"; {len(matched.unmatched)} names not in every folder" if matched.unmatched else "")
    )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        test = _build(kind, scratch, matched, folders, rate, seed, max_seconds, loudness_lufs, echo)
        test.items_per_listener = items_per_listener
        test.gold = gold
        test.experiment = experiment or Experiment()
        test.systems = list(sys_dirs)
        test.extra["unmatched"] = matched.unmatched
        with atomic_path(scratch / TEST_FILE) as tmp:
            tmp.write_text(test.to_json(), encoding="utf-8")
        # mkdtemp makes it private; a test dir is an ordinary folder, made as mkdir would make it
        scratch.chmod(0o777 & ~current_umask())
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above); rename cannot replace a non-empty one anyway
        os.replace(scratch, out_dir)
        _fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return test


def _build(kind, scratch, matched, folders, rate, seed, max_seconds, target, echo) -> ListeningTest:
    """Two passes: process and measure every stimulus (kept as float32 .npy in ``scratch``),
    then apply one common target and write the WAVs."""
    raw_dir = scratch / "raw"
    raw_dir.mkdir()
    pending: list[tuple[int, str, str, Path]] = []  # (item index, system, source, raw .npy)
    loudness, peaks = [], []
    for index, name in enumerate(matched.items):
        sources = {system: matched.files[system][name] for system in folders}
        wavs = {system: read_audio(path, sample_rate=rate)[0] for system, path in sources.items()}
        shortest = min(wavs, key=lambda system: len(wavs[system]))
        check_measurable(wavs[shortest], rate, sources[shortest])  # every stimulus is cut to it
        length = len(wavs[shortest])
        if max_seconds is not None:
            length = min(length, int(max_seconds * rate))
        stimuli = {system: fade(w[:length], rate) for system, w in wavs.items()}
        if kind == "mushra":
            for anchor, cutoff in ANCHORS.items():
                stimuli[anchor] = lowpass(stimuli[REFERENCE], rate, cutoff)
                sources[anchor] = sources[REFERENCE]
        for system, wav in stimuli.items():
            label = f"{sources[system]}" + (f" ({system})" if system in ANCHORS else "")
            loudness.append(integrated_loudness(wav, rate, label))
            peaks.append(peak_dbfs(wav))
            raw = raw_dir / f"{index}-{len(pending)}.npy"
            write_npy(raw, wav)
            pending.append((index, system, str(sources[system]), raw))

    level = common_target(loudness, peaks, target)
    if level < target:
        echo(f"loudness target lowered from {target:g} to {level:.2f} LUFS so that no stimulus clips")
    (scratch / STIMULI).mkdir()
    items = []
    for index, name in enumerate(matched.items):
        entries = [(p, lufs) for p, lufs in zip(pending, loudness) if p[0] == index]
        # Condition ids in a seeded shuffled order: c1 is not always the reference.
        random.Random(f"{seed}:ids:{name}").shuffle(entries)
        conditions = []
        for number, ((_, system, source, raw), lufs) in enumerate(entries, 1):
            gain_db = level - lufs
            wav = np.load(raw) * np.float32(10 ** (gain_db / 20))
            cond = Condition(
                id=f"c{number}",
                system=system,
                file=f"{STIMULI}/i{index:03d}_c{number}.wav",
                gain_db=round(gain_db, 3),
                source=source,
                source_lufs=round(lufs, 3),
                peak_dbfs=round(peak_dbfs(wav), 3),
            )
            write_audio(scratch / cond.file, wav, rate)
            raw.unlink()
            conditions.append(cond)
        items.append(Item(id=name, conditions=conditions))
    raw_dir.rmdir()
    return ListeningTest(
        type=kind,
        test_id=f"lt-{secrets.token_hex(6)}",
        sample_rate=rate,
        loudness_lufs=round(level, 3),
        seed=seed,
        systems=[],
        items=items,
        extra={"loudness_requested_lufs": target},
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
