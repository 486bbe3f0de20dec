"""Test helpers: tiny but real feature caches and recipes, written per the cache contract.

``make_feature_cache`` writes a work dir's manifest, cache/<id>.audio.npy (float32,
frames·hop samples), cache/<id>.mel.npy (the preset's real log-mel of that audio), features.json
and stats.json, exactly as ``wavegen preprocess`` does, so the training engine can be tested
without a corpus or the preprocessing code. The file names come from ``wavegen.artifacts.workdir``, the one
place that spells them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from wavegen.artifacts import workdir as wd
from wavegen.artifacts.checkpoint import save_checkpoint, step_path
from wavegen.core.config import Recipe
from wavegen.core.features import get_preset, mel_spectrogram, num_frames


def _voice(rng: np.random.Generator, seconds: float, sr: int, f0: float) -> np.ndarray:
    """A harmonic tone with a wandering pitch and a syllable-like envelope, in [-0.8, 0.8]."""
    t = np.arange(int(seconds * sr)) / sr
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    wav = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 5) * t) ** 2
    wav = wav * envelope + 0.01 * rng.standard_normal(len(t))
    return (0.8 * wav / np.abs(wav).max()).astype(np.float32)


def make_feature_cache(
    workdir: Path,
    n_utts: int = 4,
    speakers: tuple[str, ...] = ("spk1",),
    preset: str = "tacotron2",
    seconds: float = 0.6,
    valid_per_speaker: int = 1,
    seed: int = 0,
) -> Path:
    """Write a feature cache with ``n_utts`` train utterances per speaker plus the valid ones."""
    p = get_preset(preset)
    rng = np.random.default_rng(seed)
    workdir = Path(workdir)
    cache = wd.cache_dir(workdir)
    cache.mkdir(parents=True, exist_ok=True)
    entries, train_mels = [], []
    for s, speaker in enumerate(speakers):
        for i in range(n_utts + valid_per_speaker):
            uid = f"{speaker}_{i:03d}"
            wav = _voice(rng, seconds * rng.uniform(0.9, 1.3), p.sample_rate, 110.0 + 40 * s)
            frames = num_frames(len(wav), p.hop_length) - 1  # whole frames of audio
            wav = wav[: frames * p.hop_length]
            mel = mel_spectrogram(wav, p)[:, :frames].astype(np.float32)
            audio_file, mel_file = wd.cache_files(cache, uid)
            np.save(audio_file, wav)
            np.save(mel_file, mel)
            split = "train" if i < n_utts else "valid"
            if split == "train":
                train_mels.append(mel)
            entries.append(
                {
                    "id": uid,
                    "speaker": speaker,
                    "audio": audio_file.relative_to(workdir).as_posix(),
                    "mel": mel_file.relative_to(workdir).as_posix(),
                    "frames": frames,
                    "seconds": len(wav) / p.sample_rate,
                    "split": split,
                    "source": f"synthetic/{uid}",
                }
            )
    (workdir / wd.MANIFEST).write_text("".join(json.dumps(e) + "\n" for e in entries))
    all_frames = np.concatenate(train_mels, axis=1)
    (workdir / wd.STATS).write_text(
        json.dumps({"mean": all_frames.mean(axis=1).tolist(), "std": all_frames.std(axis=1).tolist()})
    )
    (workdir / wd.FEATURES).write_text(
        json.dumps(
            {
                "preset": p.name,
                "preset_params": p.to_dict(),
                "sample_rate": p.sample_rate,
                "hop_length": p.hop_length,
                "n_mels": p.n_mels,
                "speakers": sorted(speakers),
                "corpus": "synthetic",
                "recipe": {},
            }
        )
    )
    return workdir


TINY_RECIPE = {
    "name": "tiny",
    "audio": {"preset": "tacotron2"},
    "model": {
        "layers": 4,
        "stacks": 2,
        "kernel_size": 3,
        "residual_channels": 8,
        "gate_channels": 16,
        "skip_channels": 8,
        "n_speakers": -1,
        "gin_channels": 4,
    },
    "data": {"window_samples": 512, "batch_size": 2},
    "train": {
        "max_steps": 6,
        "lr": 0.002,
        "warmup_steps": 2,
        "decay_steps": 100,
        "ema_decay": 0.9,
        "log_interval": 1,
        "valid_interval": 3,
        "valid_batches": 1,
        "sample_interval": 1000,
        "sample_seconds": 0.01,
        "checkpoint_interval": 3,
        "keep_checkpoints": 2,
        "seed": 7,
        # "auto" would be bf16 on some CPUs and fp32 on others; tests that want bf16 say so.
        "precision": "fp32",
    },
}


def write_recipe(path: Path, **sections) -> Path:
    """TINY_RECIPE with ``sections`` (e.g. train={"max_steps": 3}) merged in, as YAML."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_RECIPE.items()}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(data))
    return path


def save_model_run(run_dir: Path, model, preset: str = "tacotron2", speakers: tuple[str, ...] = ()) -> Path:
    """A run dir holding ``model`` (a WaveNet) as its one checkpoint, loadable by load_vocoder."""
    recipe = Recipe()
    recipe.audio.preset = preset
    recipe.model = model.config
    save_checkpoint(
        step_path(run_dir, 1),
        {
            "step": 1,
            "model": model.state_dict(),
            "ema": None,
            "recipe": recipe.to_dict(),
            "speakers": list(speakers),
            "preset": get_preset(preset).to_dict(),
            "valid_bits": None,
        },
    )
    return Path(run_dir)
