"""Score every (utterance, system) pair of a plan in a process pool, resuming from metrics.csv.

One task is one utterance with all its systems, so the reference's features (mel-cepstra,
Harvest F0, log-mel, 16 kHz audio) are computed once and shared; a system file identical to
the reference (the ground-truth row) reuses them outright. Each finished task's rows are added
to metrics.csv at once (rewritten atomically), so an interrupted run loses at most the tasks in
flight and the next run computes only the pairs missing from the file.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.audio import atomic_path, read_audio, resample
from ..core.errors import WavegenError
from ..core.features import MelPreset
from .metrics import DNSMOS, METRICS, Features, check_dependencies, score
from .pairing import REFERENCE, Plan

INFO_COLUMNS = ("seconds", "ref_seconds", "sample_rate", "notes")
COLUMNS = ("system", "utterance", *METRICS, *INFO_COLUMNS)
LENGTH_TOLERANCE = 0.05  # relative length difference above which a pair is reported


@dataclass
class Outcome:
    """What scoring one utterance gave: rows for metrics.csv, pairs skipped with their reason,
    and (for the utterances shown in the report) every signal's F0 track."""

    utterance: str
    rows: list[dict]
    skipped: list[dict]
    tracks: dict[str, np.ndarray] | None = None


# ---- metrics.csv ---------------------------------------------------------------------------------


def read_rows(path: Path) -> list[dict]:
    """Rows of an earlier metrics.csv with numbers parsed (empty cells -> NaN); [] if none."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise WavegenError(
                f"{path}: its columns are not this version's ({', '.join(COLUMNS[:4])}, ...); "
                "evaluate into a new folder or pass --overwrite"
            )
        rows = []
        for number, raw in enumerate(reader, 2):
            try:
                row = {"system": raw["system"], "utterance": raw["utterance"], "notes": raw["notes"]}
                for key in (*METRICS, "seconds", "ref_seconds"):
                    row[key] = float(raw[key]) if raw[key] != "" else math.nan
                row["sample_rate"] = int(raw["sample_rate"])
            except (TypeError, ValueError):
                raise WavegenError(
                    f"{path}:{number}: not a metrics row; delete the file or pass --overwrite"
                ) from None
            rows.append(row)
        return rows


def write_rows(path: Path, rows: list[dict], system_order: list[str]) -> None:
    """metrics.csv, atomically: one row per (system, utterance), systems in the order given."""
    rank = {name: i for i, name in enumerate(system_order)}
    rows = sorted(rows, key=lambda r: (rank.get(r["system"], len(rank)), r["utterance"]))
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, COLUMNS, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _cell(row.get(k)) for k in COLUMNS})


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else str(value)


# ---- one task --------------------------------------------------------------------------------------


def load(path: Path, preset: MelPreset) -> tuple[np.ndarray, int]:
    """(T,) float64 at the preset's rate, and the file's own rate."""
    wav, sr = read_audio(path)
    if sr != preset.sample_rate:
        wav = resample(wav, sr, preset.sample_rate)
    return wav.astype(np.float64), sr


def score_utterance(
    utterance: str,
    reference: Path,
    systems: dict[str, Path],
    preset: MelPreset,
    want_tracks: bool = False,
    dnsmos: DNSMOS | None = None,
) -> Outcome:
    """Every system's row for one utterance (a bad file skips only its own pair)."""
    dnsmos = dnsmos or DNSMOS()
    out = Outcome(utterance, [], [])
    try:
        ref_wav, ref_rate = load(reference, preset)
        ref = Features(ref_wav, preset)
        ref.mcep  # noqa: B018  (fails here, once, for a reference too short to analyse)
    except Exception as err:
        reason = f"reference unreadable: {_reason(err)}"
        out.skipped = [{"system": s, "utterance": utterance, "reason": reason} for s in systems]
        return out
    tracks = {}
    for name, path in systems.items():
        try:
            if path == reference:
                sys_, rate = ref, ref_rate
            else:
                wav, rate = load(path, preset)
                sys_ = Features(wav, preset)
            row = {"system": name, "utterance": utterance, **score(ref, sys_, dnsmos)}
        except Exception as err:
            out.skipped.append({"system": name, "utterance": utterance, "reason": _reason(err)})
            continue
        sr = preset.sample_rate
        row.update(
            seconds=len(sys_.wav) / sr,
            ref_seconds=len(ref.wav) / sr,
            sample_rate=rate,
            notes="; ".join(sys_.notes),
        )
        out.rows.append(row)
        if want_tracks:
            tracks[name] = sys_.f0
    if want_tracks:
        tracks.setdefault(REFERENCE, ref.f0)
        out.tracks = tracks
    return out


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text if isinstance(err, WavegenError) else f"{type(err).__name__}: {text}".rstrip(": ")


# ---- the pool ----------------------------------------------------------------------------------------

_dnsmos: DNSMOS | None = None


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # the pool already uses every core


def _task(args) -> Outcome:
    global _dnsmos
    if _dnsmos is None:
        _dnsmos = DNSMOS()  # one per process: onnxruntime sessions are not shared across a fork
    return score_utterance(*args, dnsmos=_dnsmos)


def _warm_up(preset: MelPreset) -> None:
    """Import the metric libraries and build the mel basis before forking, so that workers
    inherit them instead of each paying seconds for them."""
    check_dependencies()
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, 4096)
    Features(noise, preset).log_mel  # noqa: B018


def score_plan(
    plan: Plan,
    preset: MelPreset,
    csv_path: Path,
    jobs: int | None = None,
    track_utterances: tuple[str, ...] = (),
    on_tracks: Callable[[str, dict], None] | None = None,
    progress: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Score what metrics.csv lacks; -> (all rows of the plan, skipped pairs).

    ``on_tracks(utterance, {system: f0})`` receives the F0 tracks of ``track_utterances``.
    """
    from tqdm import tqdm

    order = list(plan.systems)
    wanted = {(s, u) for s, files in plan.systems.items() for u in files}
    rows = [r for r in read_rows(csv_path) if (r["system"], r["utterance"]) in wanted]
    done = {(r["system"], r["utterance"]) for r in rows}
    tasks = []
    for u in plan.utterances:
        todo = {s: files[u] for s, files in plan.systems.items() if u in files and (s, u) not in done}
        if todo:
            tasks.append((u, plan.references[u], todo, preset, u in track_utterances))
    skipped = list(plan.skipped)
    if not tasks:
        return rows, skipped
    check_dependencies()
    workers = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    bar = tqdm(
        total=len(tasks),
        unit="utt",
        desc="evaluate",
        disable=not (progress and sys.stderr.isatty()),
        file=sys.stderr,
        dynamic_ncols=True,
    )
    last_write = 0.0

    def take(outcome: Outcome) -> None:
        nonlocal last_write
        rows.extend(outcome.rows)
        skipped.extend(outcome.skipped)
        if outcome.tracks is not None and on_tracks is not None:
            on_tracks(outcome.utterance, outcome.tracks)
        bar.update()
        if time.monotonic() - last_write > 2.0:  # at most every 2 s: the rewrite is O(rows)
            write_rows(csv_path, rows, order)
            last_write = time.monotonic()

    try:
        if workers == 1:
            for args in tasks:
                take(_task(args))
        else:
            _warm_up(preset)
            with cf.ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
                futures = [pool.submit(_task, args) for args in tasks]
                try:
                    for future in cf.as_completed(futures):
                        take(future.result())
                finally:  # on an interrupt, drop the queue instead of finishing it
                    for future in futures:
                        future.cancel()
    finally:
        write_rows(csv_path, rows, order)  # whatever finished is kept, interrupted or not
        bar.close()
    return rows, skipped
