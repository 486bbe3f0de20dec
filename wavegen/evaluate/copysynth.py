"""The first form of ``wavegen evaluate``: copy-synthesis of a corpus split with a model, and two
baselines from the same mels, then the metrics of all three against the references.

OUT/wavs/ground_truth/  the split's cached audio (what the mels were computed from), 16-bit
OUT/wavs/<name>/        the model's output (batched, seeded, the cached generator)
OUT/wavs/griffin_lim/   Griffin-Lim from the same mels (the preset's STFT, 32 iterations)

Every WAV is written atomically and a rerun skips the ones that exist. Under torchrun each
rank synthesizes its share (like ``wavegen synthesize``); rank 0 then scores everything.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..artifacts.workdir import load_manifest
from ..core import distributed
from ..core.audio import atomic_path, write_audio
from ..core.errors import WavegenError
from ..inference.griffinlim import DEFAULT_ITERATIONS, griffin_lim
from ..model.identity import model_sha256
from .pairing import REFERENCE, check_name, make_plan
from .pipeline import check_run, run_plan

GRIFFIN_LIM = "griffin_lim"


def evaluate_model(
    checkpoint: str | Path,
    workdir: str | Path,
    out: str | Path,
    split: str = "test",
    name: str = "wavegen",
    device: str = "cpu",
    batch_size: int = 8,
    temperature: float = 1.0,
    seed: int = 0,
    gl_iterations: int = DEFAULT_ITERATIONS,
    jobs: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    echo=print,
    model_wavs: str | Path | None = None,
    restart_if_changed: bool = False,
) -> dict | None:
    """Copy-synthesize ``split`` and evaluate; -> the summary (None on ranks other than 0).

    ``model_wavs`` puts the model's WAVs somewhere else than OUT/wavs/NAME (the demo keeps them
    in its synth/ folder); ``restart_if_changed`` starts OUT afresh when it holds the evaluation
    of another model or setting, instead of refusing.
    """
    from ..generation.generate import check_temperature
    from ..generation.sampler import check_seed
    from ..inference.synthesize import items_from_split, synthesize
    from ..inference.vocoder import load_vocoder
    from .metrics import check_dependencies

    check_name(name, "--name")
    if name in (REFERENCE, GRIFFIN_LIM):
        raise WavegenError(f"--name {name}: taken by a baseline; choose another system name")
    check_dependencies()
    check_temperature(temperature)
    check_seed(seed)
    workdir, out = Path(workdir), Path(out)
    info, dev = distributed.init(device)
    vocoder = load_vocoder(checkpoint, device=dev)
    items = items_from_split(vocoder, workdir, split, None)
    identity = {
        "form": "copy-synthesis",
        "model": model_sha256(vocoder.model),
        "workdir": str(workdir.resolve()),
        "split": split,
        "name": name,
        "temperature": temperature,
        "seed": seed,
        "griffin_lim_iterations": gl_iterations,
        "batch_size": batch_size,
        "model_wavs": str(model_wavs) if model_wavs is not None else None,
    }
    fresh = check_run(out, identity, overwrite, restart_if_changed) if info.is_main else overwrite
    overwrite = distributed.broadcast_flag(info, fresh)  # a restarted evaluation re-synthesizes on every rank
    distributed.barrier(info)
    wavs = out / "wavs"
    model_dir = Path(model_wavs) if model_wavs is not None else wavs / name
    mine = distributed.shard(items, info)
    audio = {r["id"]: r["audio"] for r in load_manifest(workdir)}
    for it in mine:  # the references: exactly the audio the mels came from
        target = wavs / REFERENCE / f"{it.id}.wav"
        if overwrite or not target.exists():
            write_audio(target, np.load(workdir / audio[it.id]), vocoder.sample_rate)

    echo(f"synthesize {len(mine)} utterances of {split} with {name} -> {model_dir}")
    model = synthesize(
        vocoder,
        mine,
        model_dir,
        batch_size=batch_size,
        temperature=temperature,
        seed=seed,
        overwrite=overwrite,
        progress=progress and info.is_main,
    )
    echo(f"Griffin-Lim ({gl_iterations} iterations) -> {wavs / GRIFFIN_LIM}")
    gl = griffin_lim_folder(
        mine, vocoder.preset, wavs / GRIFFIN_LIM, gl_iterations, jobs, overwrite, progress
    )
    timings = _gather(
        info, {name: _timing(model["seconds"], model["audio_seconds"], model["synthesized"]), GRIFFIN_LIM: gl}
    )
    distributed.leave(info)  # synthesis is done everywhere; rank 0 scores alone
    if not info.is_main:
        return None
    rtf = _remember_timings(out / "synthesis.json", timings)
    plan = make_plan(wavs / REFERENCE, [(name, model_dir), (GRIFFIN_LIM, wavs / GRIFFIN_LIM)])
    context = {
        "title": f"wavegen evaluation: {name} on the {split} split",
        "description": [
            f"model: {checkpoint} ({vocoder.model.num_params():,} parameters, receptive field "
            f"{vocoder.model.receptive_field} samples), sampled at temperature {temperature}, seed {seed}",
            f"split: {split} of {workdir} ({len(items)} utterances, "
            f"{sum(it.mel.shape[-1] for it in items) * vocoder.hop_length / vocoder.sample_rate:.1f} s), "
            f"preset {vocoder.mel_preset} at {vocoder.sample_rate} Hz",
            f"baselines from the same mels: {GRIFFIN_LIM} (librosa, {gl_iterations} iterations, the preset's "
            f"STFT) and {REFERENCE} (the references scored against themselves: the best possible row)",
        ],
        "form": "copy-synthesis",
        "checkpoint": str(checkpoint),
        "split": split,
    }
    echo(f"evaluate -> {out}")
    return run_plan(plan, vocoder.preset, out, context, rtf, jobs, progress)


# ---- Griffin-Lim ---------------------------------------------------------------------------------


def _griffin_lim_one(args) -> tuple[str, float, float]:
    uid, mel, preset, target, iterations = args
    start = time.perf_counter()
    wav = griffin_lim(mel, preset, n_iter=iterations, seed=0)
    seconds = time.perf_counter() - start
    write_audio(target, wav, preset.sample_rate)
    return uid, seconds, len(wav) / preset.sample_rate


def griffin_lim_folder(
    items, preset, outdir: Path, iterations: int, jobs, overwrite: bool, progress: bool
) -> dict:
    """Griffin-Lim WAVs for ``items`` (one process per core); -> timing dict (CPU seconds per item)."""
    from tqdm import tqdm

    todo = [it for it in items if overwrite or not (outdir / f"{it.id}.wav").exists()]
    args = [(it.id, it.mel.numpy(), preset, outdir / f"{it.id}.wav", iterations) for it in todo]
    workers = max(1, min(jobs or os.cpu_count() or 1, len(args)))
    seconds = audio = 0.0
    bar = tqdm(
        total=len(args), unit="utt", desc="griffin-lim", disable=not (progress and sys.stderr.isatty())
    )
    with bar:
        if workers == 1:
            results = map(_griffin_lim_one, args)
            for _, s, a in results:
                seconds, audio = seconds + s, audio + a
                bar.update()
        else:
            with cf.ProcessPoolExecutor(workers) as pool:
                for _, s, a in pool.map(_griffin_lim_one, args):
                    seconds, audio = seconds + s, audio + a
                    bar.update()
    return _timing(seconds, audio, len(args))


# ---- timings across ranks and resumed runs -----------------------------------------------------------


def _timing(seconds: float, audio_seconds: float, utterances: int) -> dict:
    return {"seconds": float(seconds), "audio_seconds": float(audio_seconds), "utterances": int(utterances)}


def _remember_timings(path: Path, new: dict[str, dict]) -> dict[str, dict]:
    """Add this run's synthesis timings to synthesis.json's (a resumed run synthesizes only the
    rest); -> {system: {seconds, audio_seconds, utterances, rtf}}."""
    try:
        total = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        total = {}
    for system, t in new.items():
        old = total.get(system, _timing(0.0, 0.0, 0))
        merged = _timing(
            old["seconds"] + t["seconds"],
            old["audio_seconds"] + t["audio_seconds"],
            old["utterances"] + t["utterances"],
        )
        merged["rtf"] = (
            round(merged["seconds"] / merged["audio_seconds"], 5) if merged["audio_seconds"] > 0 else None
        )
        total[system] = merged
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(total, indent=2) + "\n")
    return total


def _gather(info, timings: dict[str, dict]) -> dict[str, dict]:
    """Sum every rank's timings on rank 0 (under torchrun); the ranks' work is also done by then."""
    if not info.enabled:
        return timings
    everyone = distributed.gather(info, timings)
    total: dict[str, dict] = {}
    for part in everyone:
        for system, t in part.items():
            old = total.get(system, _timing(0.0, 0.0, 0))
            total[system] = _timing(
                old["seconds"] + t["seconds"],
                old["audio_seconds"] + t["audio_seconds"],
                old["utterances"] + t["utterances"],
            )
    return total
