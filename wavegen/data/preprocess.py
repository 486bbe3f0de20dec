"""Corpus -> feature cache + manifest, the input of training and synthesis.

What a work dir holds is :mod:`wavegen.artifacts.workdir`. Every file is written atomically, the
per-utterance files as soon as they are done and the manifest (rebuilt from the finished cache
files) periodically and at the end, so a killed run loses at most the utterances in flight and a
rerun skips everything already cached.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..artifacts import workdir as workdir_io
from ..core.audio import read_audio, write_error_message, write_npy
from ..core.config import AudioConfig, DataConfig, Recipe
from ..core.dirlock import folder_lock
from ..core.errors import OutputError, WavegenError
from ..core.features import MelPreset, get_preset, mel_spectrogram, num_frames
from ..core.interrupt import ignore_interrupts_in_worker
from .corpora import Utterance, read_corpus
from .tts_mels import MelSource, load_aligned, open_source

MANIFEST_EVERY = 30.0  # seconds between manifest rewrites during a run


@dataclass
class PreprocessSummary:
    processed: int  # utterances computed in this run
    cached: int  # utterances already in the cache before this run
    skipped: list[dict]  # {"id", "file", "reason"} of unusable files
    seconds: float  # wall-clock time of the run
    audio_seconds: float  # source audio read in this run (before trimming)
    splits: dict[str, int] = field(default_factory=dict)  # usable utterances per split
    # Speakers whose valid/test share was capped (see held_out_counts): {"speaker",
    # "utterances", "valid", "test", "asked_valid", "asked_test"}.
    split_caps: list[dict] = field(default_factory=list)
    workdir: str = ""
    # Where the mels came from: {"kind": "audio"}, or a TTS model's (wavegen.data.tts_mels) with how
    # many of this run's utterances matched the audio's frame count exactly, were trimmed or padded.
    mels: dict = field(default_factory=lambda: {"kind": "audio"})

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "realtime_factor": self.realtime_factor}


# ---- the pipeline -----------------------------------------------------------------------------


def preprocess(
    recipe: Recipe,
    workdir: str | Path,
    corpus_path: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> PreprocessSummary:
    """Build or complete the feature cache of ``recipe``'s corpus in ``workdir``.

    Args:
        corpus_path: overrides ``recipe.data.corpus_path`` (for ``demo``, where to generate it;
            default ``workdir/demo_corpus``).
        workers: processes (default: all CPU cores); 1 runs in this process.
        progress: show a tqdm bar on stderr (only when stderr is a terminal).

    Raises:
        WavegenError: missing corpus, a work dir in use by another process (wavegen.core.dirlock) or
            made from another corpus or with other settings (workdir.check_workdir), or no
            usable utterance at all (the reasons are then in the summary log).
        OutputError: the cache cannot be written (no space left, ...): the utterances already
            finished are kept and a rerun continues from them.
    """
    workdir = Path(workdir)
    with folder_lock(workdir, "work dir"):  # one preprocess (or demo) per work dir
        return _preprocess(recipe, workdir, corpus_path, workers, progress)


def _preprocess(recipe: Recipe, workdir: Path, corpus_path, workers, progress) -> PreprocessSummary:
    start = time.perf_counter()
    preset = get_preset(recipe.audio.preset)
    corpus_path = _corpus_path(recipe, workdir, corpus_path)
    if corpus_path is None:
        _list_corpus(recipe, None)  # the corpus reader's own error: no corpus given
    workdir_io.check_workdir(workdir, recipe, corpus_path)  # before the demo corpus is generated
    utterances = _list_corpus(recipe, corpus_path)
    check_held_out_speakers(utterances, recipe.data.held_out_speakers)  # a typo fails before any work
    tts = open_source(recipe.data, preset, [u.id for u in utterances]) if recipe.data.tts_mels else None
    mels = tts.describe() if tts else {"kind": "audio"}
    aligned = {"exact": 0, "trimmed": 0, "padded": 0}

    def split_usable() -> tuple[dict[str, str], list[dict]]:
        # Over the usable utterances only: a file that failed to load takes no valid/test slot.
        return plan_splits([u for u in utterances if u.id in done], recipe.data)

    cache = workdir_io.cache_dir(workdir)
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob(".*.tmp"):  # left by a run killed mid-write
        stale.unlink(missing_ok=True)

    done: dict[str, int] = {}  # id -> frames, for every finished utterance
    todo = []
    for utt in utterances:
        frames = workdir_io.cached_frames(cache, utt.id, preset.n_mels)
        if frames is None:
            todo.append(utt)
        else:
            done[utt.id] = frames
    cached = len(done)
    if not (workdir / workdir_io.FEATURES).is_file():  # claim the work dir for these settings right away
        speakers = [{"speaker": u.speaker} for u in utterances]
        workdir_io.write_features_info(workdir, recipe, preset, speakers, corpus_path, mels)

    skipped: list[dict] = []
    audio_seconds = 0.0
    last_write = time.monotonic()
    with _LogFile(workdir / workdir_io.LOG) as log:
        log.write(f"run: {len(utterances)} utterances listed, {cached} cached, {len(todo)} to do")
        try:
            for utt, result in _run(todo, preset, recipe.audio, cache, workers, progress, tts):
                if isinstance(result, str):
                    skipped.append({"id": utt.id, "file": str(utt.path), "reason": result})
                    log.write(f"skipped {utt.id} ({utt.path}): {result}")
                    continue
                done[utt.id], source_seconds, frame_diff = result
                if tts is not None:
                    aligned["exact" if frame_diff == 0 else "padded" if frame_diff > 0 else "trimmed"] += 1
                if frame_diff:
                    what = f"padded by {frame_diff}" if frame_diff > 0 else f"trimmed by {-frame_diff}"
                    log.write(f"TTS mel of {utt.id} {what} frame(s) to the audio's {done[utt.id]}")
                audio_seconds += source_seconds
                if time.monotonic() - last_write > MANIFEST_EVERY:
                    workdir_io.write_manifest(workdir, utterances, split_usable()[0], done, preset)
                    last_write = time.monotonic()
        except OutputError as err:
            raise OutputError(
                f"{err} (preprocessing stopped; the {len(done)} utterances in the cache are kept "
                "and a rerun continues from them)"
            ) from None
        if not done:
            log.write("no usable utterance left")
            reason = skipped[0]["reason"] if skipped else "nothing listed"
            raise WavegenError(
                f"no usable utterance in the corpus ({len(skipped)} skipped, e.g. {reason}); "
                f"see {workdir / workdir_io.LOG}"
            )
        splits, caps = split_usable()
        check_held_out_speakers([u for u in utterances if u.id in done], recipe.data.held_out_speakers, True)
        if caps:
            log.write(describe_split_caps(caps))
        entries = workdir_io.write_manifest(workdir, utterances, splits, done, preset)
        workdir_io.write_stats(workdir, entries, preset)
        workdir_io.write_features_info(workdir, recipe, preset, entries, corpus_path, mels)
        if tts is not None:
            mels = {**mels, **aligned}
        summary = PreprocessSummary(
            processed=len(done) - cached,
            cached=cached,
            skipped=skipped,
            seconds=time.perf_counter() - start,
            audio_seconds=audio_seconds,
            splits={s: sum(e["split"] == s for e in entries) for s in ("train", "valid", "test")},
            split_caps=caps,
            workdir=str(workdir),
            mels=mels,
        )
        log.write(
            f"done: {summary.processed} processed, {summary.cached} cached, {len(skipped)} skipped, "
            f"{audio_seconds:.1f} s of audio in {summary.seconds:.1f} s "
            f"({summary.realtime_factor:.0f}x real time), splits {summary.splits}"
        )
        if tts is not None:
            log.write(describe_mels(mels))
    return summary


def describe_mels(mels: dict) -> str:
    """One line on a run's TTS mels: where from, their convention, how they were aligned."""
    return (
        f"mels from {mels['folder']} ({mels['convention']}, {mels['layout']}): {mels['exact']} matched "
        f"the audio's frame count, {mels['trimmed']} trimmed, {mels['padded']} padded "
        f"(at most data.tts_mels_max_frame_diff={mels['max_frame_diff']} frames)"
    )


def _corpus_path(recipe: Recipe, workdir: Path, corpus_path) -> Path | None:
    """Where the corpus is (None: not given; reading it then says so)."""
    path = corpus_path or recipe.data.corpus_path
    if recipe.data.corpus == "demo" and not path:
        path = workdir / workdir_io.DEMO_CORPUS
    return Path(path) if path else None


def _list_corpus(recipe: Recipe, path: Path | None) -> list[Utterance]:
    utterances = read_corpus(
        recipe.data.corpus, path or Path(""), mic=recipe.data.mic, seed=recipe.data.split_seed
    )
    ids = [u.id for u in utterances]
    if len(set(ids)) != len(ids):
        raise WavegenError(f"{path}: utterance ids are not unique")
    return utterances


MAX_HELD_OUT_PERCENT = 10  # of a speaker's utterances, for valid and for test each


def held_out_counts(utterances: int, valid_per_speaker: int, test_per_speaker: int) -> tuple[int, int]:
    """(valid, test) utterances of a speaker that has ``utterances`` usable ones.

    As many as asked, but each at most 10% of the speaker's utterances, rounded to the nearest
    whole number and at least 1 (so up to 14 utterances give at most 1 each, 15-24 at most 2,
    13,100 at most 1,310), and at least one utterance always stays in train (valid is served
    first: a speaker with 2 utterances gets 1 valid, 0 test). A recipe
    written for the full corpus (LJSpeech: 100 + 100) thus still leaves a 19-clip excerpt
    trainable: 2 valid, 2 test, 15 train.
    """
    cap = max(1, (utterances * MAX_HELD_OUT_PERCENT + 50) // 100)
    n_valid = min(valid_per_speaker, cap, max(utterances - 1, 0))
    n_test = min(test_per_speaker, cap, max(utterances - 1 - n_valid, 0))
    return n_valid, n_test


def check_held_out_speakers(
    utterances: list[Utterance], held_out_speakers: list[str] | tuple, usable: bool = False
) -> None:
    """Refuse held-out speakers the corpus lacks, or holding out every speaker."""
    speakers = {u.speaker for u in utterances}
    unknown = sorted(set(held_out_speakers) - speakers)
    if unknown and not usable:  # among the usable ones, a speaker may have lost every file
        raise WavegenError(f"data.held_out_speakers names {', '.join(unknown)}, not speakers of this corpus")
    if speakers and set(held_out_speakers) >= speakers:
        which = "usable speaker (the others' files failed to load)" if usable else "speaker"
        raise WavegenError(f"data.held_out_speakers holds out every {which}; nothing is left to train on")


def plan_splits(utterances: list[Utterance], data) -> tuple[dict[str, str], list[dict]]:
    """({id: split}, capped speakers) per ``data`` (a DataConfig): see :func:`assign_splits`."""
    by_speaker: dict[str, list[str]] = {}
    for utt in sorted(utterances):
        by_speaker.setdefault(utt.speaker, []).append(utt.id)
    splits, caps = {}, []
    for speaker, ids in by_speaker.items():
        if speaker in data.held_out_speakers:
            splits.update(dict.fromkeys(ids, "test"))
            continue
        order = list(ids)
        random.Random(f"{data.split_seed}:{speaker}").shuffle(order)  # str seeds hash stably (sha512)
        n_valid, n_test = held_out_counts(len(ids), data.valid_per_speaker, data.test_per_speaker)
        if (n_valid, n_test) != (data.valid_per_speaker, data.test_per_speaker):
            caps.append(
                {
                    "speaker": speaker,
                    "utterances": len(ids),
                    "valid": n_valid,
                    "test": n_test,
                    "asked_valid": data.valid_per_speaker,
                    "asked_test": data.test_per_speaker,
                }
            )
        for i, uid in enumerate(order):
            splits[uid] = "valid" if i < n_valid else "test" if i < n_valid + n_test else "train"
    return splits, caps


def assign_splits(
    utterances: list[Utterance],
    valid_per_speaker: int,
    test_per_speaker: int,
    held_out_speakers: list[str] | tuple = (),
    seed: int = 1234,
) -> dict[str, str]:
    """{id: "train" | "valid" | "test"}, a function of the utterance list and seed only.

    Per speaker (in id order) a generator seeded with ``(seed, speaker)`` picks the valid and
    test utterances, so adding a speaker or a file of another speaker leaves the others' split
    unchanged. Each of valid and test takes at most 10% of the speaker's utterances and at
    least one stays in train (:func:`held_out_counts`). Held-out speakers are test entirely.
    preprocess passes the usable utterances only, so files that fail to load take no slot.
    """
    check_held_out_speakers(utterances, held_out_speakers)
    data = DataConfig(
        valid_per_speaker=valid_per_speaker,
        test_per_speaker=test_per_speaker,
        held_out_speakers=list(held_out_speakers),
        split_seed=seed,
    )
    return plan_splits(utterances, data)[0]


def describe_split_caps(caps: list[dict], shown: int = 3) -> str:
    """One line saying whose valid/test share was capped, and to what."""
    first = caps[0]
    asked = f"data.valid_per_speaker={first['asked_valid']}, data.test_per_speaker={first['asked_test']}"
    each = ", ".join(
        f"{c['speaker']} {c['valid']} valid + {c['test']} test of {c['utterances']}" for c in caps[:shown]
    )
    more = f" and {len(caps) - shown} more" if len(caps) > shown else ""
    speakers = "speaker" if len(caps) == 1 else "speakers"
    return (
        f"split capped for {len(caps)} {speakers} ({asked}; valid and test each take at most "
        f"10% of a speaker's utterances, and one stays in train): {each}{more}"
    )


# ---- per-utterance work (runs in the worker processes) -----------------------------------------


def process_utterance(
    utt: Utterance, preset: MelPreset, audio: AudioConfig, cache: Path, tts: MelSource | None = None
) -> tuple[int, float, int] | str:
    """Compute and write one utterance's cache files; the mel from ``tts`` when given.

    Returns (frames, source seconds, frames the TTS mel was padded (+) or trimmed (−) by) on
    success, or the reason the file is unusable.
    """
    try:
        wav, sr = read_audio(utt.path, sample_rate=preset.sample_rate)
    except WavegenError as err:
        return str(err).removeprefix(f"{utt.path}: ")
    except OSError as err:  # permission denied, I/O error, ... on this input: skip it
        return f"not readable ({err.strerror or err})"
    source_seconds = len(wav) / sr
    start = 0
    if audio.trim_top_db > 0:
        start, end = trim_bounds(wav, audio.trim_top_db, preset.win_length, preset.hop_length)
        wav = wav[start:end]
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak == 0.0:
        return "silent (every sample is zero)"
    if len(wav) < audio.min_seconds * sr or len(wav) <= preset.n_fft // 2:
        return (
            f"too short: {len(wav) / sr:.2f} s after trimming, "
            f"need at least {audio.min_seconds} s (audio.min_seconds)"
        )
    wav = normalize(wav, audio)
    frames = num_frames(len(wav), preset.hop_length)
    # Pad with silence to exactly frames * hop samples and take the mel of that audio, so the
    # cached mel describes the cached audio exactly (the extra last frame is dropped).
    wav = np.pad(wav, (0, frames * preset.hop_length - len(wav))).astype(np.float32)
    frame_diff = 0
    if tts is None:
        mel = mel_spectrogram(wav, preset)[:, :frames].astype(np.float32)
    else:  # trimming starts at a whole hop: the TTS mel loses that many frames too
        found = load_aligned(tts, utt.id, preset, frames, start // preset.hop_length)
        if isinstance(found, str):
            return found
        mel, frame_diff = found
    # audio first, mel last: a finished utterance is one whose two files both exist. A failed
    # write raises OutputError: the cache is unwritable, which no other input would change.
    audio_path, mel_path = workdir_io.cache_files(cache, utt.id)
    write_npy(audio_path, wav)
    write_npy(mel_path, mel)
    return frames, source_seconds, frame_diff


def trim_silence(wav: np.ndarray, top_db: float, frame_length: int, hop_length: int) -> np.ndarray:
    """Drop leading and trailing frames quieter than ``top_db`` below the loudest frame.

    The same result as ``librosa.effects.trim(wav, top_db=top_db, frame_length=frame_length,
    hop_length=hop_length)[0]`` (frame RMS of the zero-padded centred frames, in dB relative to
    the maximum, threshold strictly above -top_db), without importing librosa.feature, which
    costs each preprocessing run about a second.

    Args:
        wav: (T,) float audio.

    Returns:
        (T',) a slice of ``wav`` (all of it if every frame is equally loud, e.g. all zeros).
    """
    start, end = trim_bounds(wav, top_db, frame_length, hop_length)
    return wav[start:end]


def trim_bounds(wav: np.ndarray, top_db: float, frame_length: int, hop_length: int) -> tuple[int, int]:
    """(start, end) samples of :func:`trim_silence`'s slice; ``start`` is a multiple of ``hop_length``."""
    padded = np.pad(wav, frame_length // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length]
    rms = np.sqrt(np.mean(np.square(frames), axis=-1))  # (frames,)
    power = np.square(rms)
    db = 10 * np.log10(np.maximum(1e-10, power)) - 10 * np.log10(np.maximum(1e-10, power.max()))
    loud = np.flatnonzero(db > -top_db)
    return int(loud[0] * hop_length), min(len(wav), int((loud[-1] + 1) * hop_length))


def normalize(wav: np.ndarray, audio: AudioConfig) -> np.ndarray:
    """Peak or loudness (RMS dBFS) normalisation; the gain never pushes the peak above 0.999."""
    peak = float(np.abs(wav).max())
    if audio.normalize == "peak":
        gain = audio.peak_level / peak
    elif audio.normalize == "loudness":
        rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
        gain = 10 ** ((audio.loudness_db - 20 * np.log10(rms)) / 20)
    else:
        return np.clip(wav, -1.0, 1.0)
    gain = min(gain, 0.999 / peak)  # no clipping: clipped speech is not what a TTS model emits
    return (wav * gain).astype(np.float32)


def _warm_up(preset: MelPreset, audio: AudioConfig) -> None:
    """Do the one-time work (importing librosa, the mel basis, torch's first STFT) before
    the pool forks, so workers inherit it instead of each paying seconds for it."""
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 4 * preset.n_fft).astype(np.float32)
    mel_spectrogram(noise, preset)


def _init_worker() -> None:
    # One thread per process: the pool already uses every core.
    import torch

    torch.set_num_threads(1)
    ignore_interrupts_in_worker()  # a Ctrl-C reaches the whole group: the main process decides


def _work(args):
    utt, preset, audio, cache, tts = args
    try:
        return utt, process_utterance(utt, preset, audio, cache, tts)
    except (OutputError, MemoryError):
        raise  # the cache or the machine fails, not this input: stop the run
    except Exception as err:  # one bad file must not stop the corpus; reported with its reason
        return utt, f"{type(err).__name__}: {err}"


def _run(todo, preset, audio, cache, workers, progress, tts=None):
    """Yield (utterance, result) as they finish, over a process pool when it pays off."""
    from tqdm import tqdm

    workers = min(workers or os.cpu_count() or 1, max(len(todo), 1))
    bar = tqdm(
        total=len(todo),
        unit="utt",
        disable=not (progress and sys.stderr.isatty()),
        file=sys.stderr,
        desc="preprocess",
    )
    jobs = ((utt, preset, audio, cache, tts) for utt in todo)
    with bar:
        if workers <= 1:
            for job in jobs:
                yield _work(job)
                bar.update()
            return
        _warm_up(preset, audio)
        with cf.ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
            futures = [pool.submit(_work, job) for job in jobs]
            try:
                for future in cf.as_completed(futures):
                    yield future.result()
                    bar.update()
            finally:  # on an interrupt, drop the queue instead of finishing it
                for future in futures:
                    future.cancel()


class _LogFile:
    """Append-only, line-buffered preprocess.log (one line per event, flushed at once)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> _LogFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a", encoding="utf-8", buffering=1)
        return self

    def write(self, line: str) -> None:
        try:
            self.file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        except OSError as err:
            raise OutputError(write_error_message(self.path, err)) from None

    def __exit__(self, *exc) -> None:
        try:
            self.file.close()
        except OSError:
            if exc[0] is None:
                raise
