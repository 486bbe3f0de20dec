"""The work-dir contract: what ``wavegen preprocess`` writes and training and synthesis read.

Layout of a work dir::

    manifest.jsonl         one JSON object per usable utterance: id, speaker, audio, mel, frames,
                           seconds, split, source (paths relative to the work dir)
    cache/<id>.audio.npy   float32 (frames * hop,) audio at the preset's rate
    cache/<id>.mel.npy     float32 (n_mels, frames) raw preset log-mel of exactly that audio
    features.json          preset, rates, sorted speakers, corpus kind and location, what the
                           cache was made from (identity: a different one is refused), recipe;
                           where the mels came from (the audio or a TTS model's: wavegen.data.tts_mels)
    wavegen.lock           held by the preprocess (or demo) writing here (wavegen.core.dirlock)
    stats.json             per-bin mean and std of the train split's mel frames
    preprocess.log         every run's summary and skipped files (id, file, reason)

Every reader and writer of these files is here, and every file name is spelled here only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.audio import atomic_path
from ..core.config import Recipe
from ..core.errors import WavegenError
from ..core.features import MelPreset

MANIFEST = "manifest.jsonl"
FEATURES = "features.json"
STATS = "stats.json"
LOG = "preprocess.log"
CACHE = "cache"
DEMO_CORPUS = "demo_corpus"  # where the demo recipe generates its corpus when none is given
# Audio settings that change what is in the cache: a work dir made with other values is refused.
CACHE_AFFECTING = ("preset", "trim_top_db", "normalize", "peak_level", "loudness_db", "min_seconds")
# Data settings that change the manifest's train/valid/test split, and those that change the mels
# (a TTS model's instead of the audio's: wavegen.data.tts_mels).
SPLIT_AFFECTING = ("valid_per_speaker", "test_per_speaker", "held_out_speakers", "split_seed")
MEL_AFFECTING = (
    "tts_mels",
    "tts_mels_convention",
    "tts_mels_params",
    "tts_mels_max_frame_diff",
    "tts_mels_trimmed",
)


def cache_dir(workdir: str | Path) -> Path:
    return Path(workdir) / CACHE


def cache_files(cache: Path, uid: str) -> tuple[Path, Path]:
    """(audio, mel) cache files of utterance ``uid`` in the folder ``cache``."""
    return cache / f"{uid}.audio.npy", cache / f"{uid}.mel.npy"


def is_workdir(path: str | Path) -> bool:
    """Whether ``path`` holds a preprocessed feature cache (a manifest)."""
    return (Path(path) / MANIFEST).is_file()


def default_workdir(recipe_name: str) -> Path:
    """Where ``wavegen preprocess`` and ``train`` put a recipe's work dir when none is given."""
    return Path("exp") / recipe_name


def workdir_of(model_path: str | Path) -> Path | None:
    """The work dir a run dir (or a model beside it) was trained from: its parent, when that
    holds a feature cache (``train`` puts the run dir at <workdir>/run by default)."""
    parent = Path(model_path).parent
    return parent if is_workdir(parent) else None


# ---- readers --------------------------------------------------------------------------------


def load_manifest(workdir: str | Path) -> list[dict]:
    """The manifest's entries, in file order (sorted by id)."""
    path = Path(workdir) / MANIFEST
    if not path.is_file():
        raise WavegenError(f"{path}: no manifest; run `wavegen preprocess` for this work dir first")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise WavegenError(f"{path}:{number}: not valid JSON") from None
        missing = {"id", "speaker", "audio", "mel", "frames", "seconds", "split"} - set(entry)
        if missing:
            raise WavegenError(f"{path}:{number}: entry lacks {', '.join(sorted(missing))}")
        entries.append(entry)
    return entries


def load_features_info(workdir: str | Path) -> dict:
    """features.json: preset, preset_params, sample_rate, hop_length, n_mels, speakers, ..."""
    return _read_json(Path(workdir) / FEATURES, ("preset", "sample_rate", "hop_length", "speakers"))


def load_stats(workdir: str | Path) -> dict:
    """stats.json: {"mean": [n_mels], "std": [n_mels]} of the train split's mel frames."""
    return _read_json(Path(workdir) / STATS, ("mean", "std"))


def _read_json(path: Path, required: tuple[str, ...]) -> dict:
    if not path.is_file():
        raise WavegenError(f"{path}: missing; run `wavegen preprocess` for this work dir first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise WavegenError(f"{path}: corrupt (not valid JSON)") from None
    if not isinstance(data, dict) or any(k not in data for k in required):
        raise WavegenError(f"{path}: corrupt (expected keys {', '.join(required)})")
    return data


def read_feature_cache(workdir: str | Path) -> tuple[list[dict], dict, dict]:
    """(manifest entries, features.json, stats.json) of a feature cache, or a WavegenError."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise WavegenError(f"{workdir}: no feature cache here (run `wavegen preprocess` first)")
    return load_manifest(workdir), load_features_info(workdir), load_stats(workdir)


def corpus_location(workdir: Path, corpus_path: str | Path) -> str:
    """How features.json records where the corpus is: relative to the work dir when inside it
    (the demo's generated corpus, so the folder can move), else absolute."""
    path = Path(corpus_path).resolve()
    try:
        return path.relative_to(Path(workdir).resolve()).as_posix()
    except ValueError:
        return str(path)


def identity(recipe: Recipe, workdir: Path, corpus_path: str | Path) -> dict:
    """What a work dir was made from: a cache made with other values is another cache.

    The corpus (kind, location, VCTK microphone), the audio settings the cached files depend on,
    and the split settings the manifest depends on (a run trains on the train split).
    """
    a, d = recipe.audio, recipe.data
    out = {"corpus": d.corpus, "corpus_path": corpus_location(workdir, corpus_path)}
    if d.corpus == "vctk":
        out["data.mic"] = d.mic
    out.update({f"audio.{k}": getattr(a, k) for k in CACHE_AFFECTING})
    out.update({f"data.{k}": getattr(d, k) for k in SPLIT_AFFECTING})
    out.update({f"data.{k}": getattr(d, k) for k in MEL_AFFECTING})
    return out


def recorded_identity(info: dict) -> dict:
    """:func:`identity` as a features.json records it (older files: what they hold)."""
    recorded = dict(info.get("identity") or {})
    if not recorded:  # written before the identity was recorded: what it held then
        recorded["corpus"] = info.get("corpus")
        audio = info.get("recipe", {}).get("audio", {"preset": info.get("preset")})
        recorded.update({f"audio.{k}": v for k, v in audio.items() if k in CACHE_AFFECTING})
    return recorded


def check_workdir(workdir: Path, recipe: Recipe, corpus_path: str | Path) -> None:
    """Refuse a work dir made from another corpus or with other settings (never mix caches)."""
    if not (workdir / FEATURES).is_file():
        return
    old = recorded_identity(load_features_info(workdir))
    new = identity(recipe, workdir, corpus_path)
    if (
        old.get("corpus") is not None
        and old["corpus"] != new["corpus"]
        or ("corpus_path" in old and old["corpus_path"] != new["corpus_path"])
    ):
        where = f" at {old['corpus_path']}" if "corpus_path" in old else ""
        raise WavegenError(
            f"{workdir} holds the cache of the {old['corpus']} corpus{where}; this run reads "
            f"the {new['corpus']} corpus at {new['corpus_path']}: use another --workdir (or "
            "delete that one)"
        )
    for key, value in new.items():
        if key in old and old[key] != value:
            raise WavegenError(
                f"{workdir} was preprocessed with {key}={old[key]!r}, the recipe has {value!r}; "
                "use another --workdir (or delete that one)"
            )


def cached_frames(cache: Path, uid: str, n_mels: int) -> int | None:
    """Frames of a finished utterance (both files present and consistent), else None."""
    audio, mel = cache_files(cache, uid)
    if not (audio.is_file() and mel.is_file()):
        return None
    try:  # headers only: cheap even for 13,100 utterances
        mel_shape = np.load(mel, mmap_mode="r").shape
        audio_shape = np.load(audio, mmap_mode="r").shape
    except (ValueError, OSError):
        return None
    if len(mel_shape) != 2 or mel_shape[0] != n_mels or len(audio_shape) != 1:
        return None
    frames = mel_shape[1]
    return frames if audio_shape[0] % frames == 0 and audio_shape[0] // frames > 1 else None


# ---- writers


def write_manifest(workdir: Path, utterances, splits, done, preset: MelPreset) -> list[dict]:
    entries = []
    for utt in utterances:
        if utt.id not in done:
            continue
        frames = done[utt.id]
        entries.append(
            {
                "id": utt.id,
                "speaker": utt.speaker,
                "audio": f"{CACHE}/{utt.id}.audio.npy",  # relative to the work dir
                "mel": f"{CACHE}/{utt.id}.mel.npy",
                "frames": frames,
                "seconds": round(frames * preset.hop_length / preset.sample_rate, 4),
                "split": splits[utt.id],
                "source": str(utt.path),
            }
        )
    with atomic_path(workdir / MANIFEST) as tmp:
        tmp.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
    return entries


def write_stats(workdir: Path, entries: list[dict], preset: MelPreset) -> None:
    """Per-bin mean and std over every mel frame of the train split (float64 sums)."""
    total = np.zeros(preset.n_mels)
    total_sq = np.zeros(preset.n_mels)
    count = 0
    for e in entries:
        if e["split"] != "train":
            continue
        mel = np.load(workdir / e["mel"]).astype(np.float64)
        total += mel.sum(axis=1)
        total_sq += np.square(mel).sum(axis=1)
        count += mel.shape[1]
    if count == 0:
        raise WavegenError("the train split is empty; lower data.valid_per_speaker/test_per_speaker")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0)).clip(min=1e-5)
    with atomic_path(workdir / STATS) as tmp:
        tmp.write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist(), "frames": count}) + "\n")


def write_features_info(
    workdir: Path,
    recipe: Recipe,
    preset: MelPreset,
    entries,
    corpus_path: str | Path,
    mels: dict | None = None,
) -> None:
    info = {
        "preset": preset.name,
        "preset_params": preset.to_dict(),
        "sample_rate": preset.sample_rate,
        "hop_length": preset.hop_length,
        "n_mels": preset.n_mels,
        "speakers": sorted({e["speaker"] for e in entries}),
        "corpus": recipe.data.corpus,
        "corpus_path": corpus_location(workdir, corpus_path),
        "identity": identity(recipe, workdir, corpus_path),
        "recipe": recipe.to_dict(),
        "mels": mels or {"kind": "audio"},  # where the cached mels came from (wavegen.data.tts_mels)
    }
    with atomic_path(workdir / FEATURES) as tmp:
        tmp.write_text(json.dumps(info, indent=1) + "\n")
