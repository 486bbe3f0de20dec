"""A TTS model's own mels as training input (``wavegen preprocess --mels DIR``, ``data.tts_mels``).

A vocoder trained on real mels turns a TTS model's smoother predictions into buzz; trained on the
mels the TTS model predicts teacher-forced on the same corpus ("ground-truth aligned", Shen et al.
2018) it learns to vocode them. DIR holds one ``<utterance id>.npy`` per utterance, ``(n_mels, T)``
or ``(T, n_mels)``, in one of these conventions (``data.tts_mels_convention``):

    natural-log   ln(max(mel, floor))                   NVIDIA Tacotron 2, Coqui with log_func=ln
    log10         log10(max(mel, floor))                ESPnet2 (log_base 10), ParallelWaveGAN
    coqui-db      Coqui TTS AudioProcessor: 20·log10(max(mel, 1e-5)) − ref_level_db, then
                  normalised to [−max_norm, max_norm] (symmetric_norm) or [0, max_norm]
    standardised  (logmel − mean) / std per bin, ESPnet's GlobalMVN (feats_stats.npz)
    auto          natural-log or log10, diagnosed from the values as the vocoder does
                  (wavegen.core.mel_scale.judge_scale)

Parameters (``data.tts_mels_params``): for coqui-db the model's Coqui config.json (its ``audio``
section: ref_level_db, min_level_db, max_norm, symmetric_norm, signal_norm; Coqui's defaults
otherwise); for standardised a statistics file: ESPnet's feats_stats.npz (count, sum,
sum_square) or JSON {"mean": [...], "std": [...]}; the base of the log under it is diagnosed.

Every mel is converted to the recipe's preset (its log base, clamped at its floor) and aligned to
the cached audio: a TTS model pads differently, so up to ``data.tts_mels_max_frame_diff`` frames
more are trimmed and fewer padded (the last frame repeated), and counted; a larger difference
skips the utterance with the reason. Silence trimming (``audio.trim_top_db``) cuts whole hops at
the start, and the TTS mel is cut by the same number of frames, unless ``data.tts_mels_trimmed``
says the TTS model saw the trimmed audio (Coqui trims with librosa.effects.trim at trim_db, which
wavegen's trim reproduces: see wavegen.data.preprocess.trim_silence).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.audio import read_npy
from ..core.errors import WavegenError
from ..core.features import MelPreset
from ..core.mel_scale import judge_scale

CONVENTIONS = ("auto", "natural-log", "log10", "coqui-db", "standardised")
DIAGNOSE_FILES = 20  # mels read to diagnose a folder's layout and log base
COQUI_DEFAULTS = {  # Coqui TTS BaseAudioConfig
    "ref_level_db": 20.0,
    "min_level_db": -100.0,
    "max_norm": 4.0,
    "symmetric_norm": True,
    "signal_norm": True,
    "spec_gain": 20.0,
    "log_func": "np.log10",  # or "np.log"
}
COQUI_LOG_FUNCS = {"np.log10": math.log(10), "np.log": 1.0}  # ln of the log's base


@dataclass(frozen=True)
class MelSource:
    """A folder of TTS mels and how to read them (picklable: sent to the preprocess workers)."""

    folder: str
    convention: str  # natural-log, log10, coqui-db or standardised (auto resolved)
    transposed: bool  # files are (T, n_mels)
    max_frame_diff: int
    trimmed: bool = False  # the mels are of the silence-trimmed audio (no frames cut at the start)
    coqui: tuple[tuple[str, float], ...] = ()  # coqui-db settings
    mean: tuple[float, ...] = ()  # standardised: per-bin statistics ...
    std: tuple[float, ...] = ()
    base: str = ""  # ... of a log mel of this base ("e" or "10")

    def describe(self) -> dict:
        """What features.json records about where the cache's mels came from."""
        out = {"kind": "tts", "folder": self.folder, "convention": self.convention}
        out["layout"] = "(T, n_mels)" if self.transposed else "(n_mels, T)"
        out["max_frame_diff"] = self.max_frame_diff
        out["of_trimmed_audio"] = self.trimmed
        if self.coqui:
            out["coqui"] = dict(self.coqui)
        if self.base:
            out["standardised_log_base"] = self.base
        return out

    def path(self, uid: str) -> Path:
        return Path(self.folder) / f"{uid}.npy"


def open_source(data, preset: MelPreset, ids: list[str]) -> MelSource:
    """Check ``data.tts_mels*`` (a DataConfig) against the folder; diagnose what is not declared.

    ``ids``: the corpus's utterance ids (some of whose mels are read to find the layout and, for
    ``auto``, the log base).
    """
    folder = Path(data.tts_mels)
    if not folder.is_dir():
        raise WavegenError(f"data.tts_mels: {folder} is not a folder of <utterance id>.npy mels")
    present = [uid for uid in ids if (folder / f"{uid}.npy").is_file()]
    if not present:
        raise WavegenError(
            f"data.tts_mels: {folder} holds no <utterance id>.npy for any of the {len(ids)} utterances"
        )
    samples = [read_mel(folder / f"{uid}.npy") for uid in present[:DIAGNOSE_FILES]]
    transposed = _layout(samples, preset.n_mels, folder)
    samples = [m.T if transposed else m for m in samples]
    convention, extra = data.tts_mels_convention, {}
    params = Path(data.tts_mels_params) if data.tts_mels_params else None
    if convention == "coqui-db":
        extra["coqui"] = tuple(sorted(_coqui_settings(params).items()))
    elif convention == "standardised":
        if params is None:
            raise WavegenError(
                "data.tts_mels_convention standardised needs data.tts_mels_params (the statistics file)"
            )
        mean, std = read_statistics(params, preset.n_mels)
        extra.update(mean=tuple(mean), std=tuple(std))
        logs = [m * std[:, None] + mean[:, None] for m in samples]
        extra["base"] = {"natural-log": "e", "log10": "10"}[
            diagnose(logs, preset, folder, "after de-standardising")
        ]
    elif convention == "auto":
        convention = diagnose(samples, preset, folder)
    elif convention not in CONVENTIONS:
        raise WavegenError(
            f"data.tts_mels_convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}"
        )
    return MelSource(
        str(folder), convention, transposed, data.tts_mels_max_frame_diff, data.tts_mels_trimmed, **extra
    )


def read_mel(path: Path) -> np.ndarray:
    """A 2-D float .npy (never unpickled), or a WavegenError naming the file."""
    mel = read_npy(path)
    if mel.ndim != 2 or mel.dtype.kind != "f":
        raise WavegenError(f"{path}: expected a 2-D float mel, got shape {mel.shape} dtype {mel.dtype}")
    if not np.isfinite(mel).all():
        raise WavegenError(f"{path}: contains NaN or infinite values")
    return mel.astype(np.float32)


def _layout(mels: list[np.ndarray], n_mels: int, folder: Path) -> bool:
    """True if the folder's mels are (T, n_mels); judged on the files that are not square."""
    for mel in mels:
        if mel.shape[0] == n_mels and mel.shape[1] != n_mels:
            return False
        if mel.shape[1] == n_mels and mel.shape[0] != n_mels:
            return True
        if n_mels not in mel.shape:
            raise WavegenError(
                f"data.tts_mels: {folder} has a mel of shape {mel.shape}; the preset has {n_mels} bins"
            )
    return False  # only square mels: read as (n_mels, T)


def diagnose(mels: list[np.ndarray], preset: MelPreset, folder: Path, when: str = "") -> str:
    """natural-log or log10, judged as the vocoder judges a mel (wavegen.core.mel_scale.judge_scale)."""
    values = torch.from_numpy(np.concatenate([m.reshape(-1) for m in mels]))
    looks, seen = judge_scale(values, preset)
    if looks in ("natural-log", "log10"):
        return looks
    hint = {
        "normalised": "declare data.tts_mels_convention standardised with data.tts_mels_params",
        "dB": "declare data.tts_mels_convention coqui-db (with the Coqui config as data.tts_mels_params)",
        "linear": "take the log of them first",
        None: "declare data.tts_mels_convention",
    }[looks]
    what = f"look {looks}" if looks else "are too quiet to tell the log base"
    after = f" {when}" if when else ""
    raise WavegenError(f"data.tts_mels: the mels in {folder}{after} {what} {seen}; {hint}")


def _coqui_settings(params: Path | None) -> dict:
    settings = dict(COQUI_DEFAULTS)
    if params is None:
        return settings
    try:
        config = json.loads(params.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise WavegenError(
            f"data.tts_mels_params: {params}: not a readable Coqui config.json ({err})"
        ) from None
    audio = config.get("audio", config) if isinstance(config, dict) else None
    if not isinstance(audio, dict):
        raise WavegenError(f"data.tts_mels_params: {params}: expected a Coqui config with an audio section")
    try:
        return coqui_settings(audio)
    except WavegenError as err:
        raise WavegenError(f"data.tts_mels_params: {params}: {err}") from None


def coqui_settings(audio) -> dict:
    """The normalisation settings of a Coqui audio config (a mapping, or an object with those
    attributes such as its AudioProcessor), Coqui's defaults for the missing ones, checked."""
    settings = {}
    for key, default in COQUI_DEFAULTS.items():
        value = audio.get(key, default) if isinstance(audio, dict) else getattr(audio, key, default)
        if key == "log_func":
            value = getattr(value, "__name__", value)  # an AudioProcessor holds the function
            value = {"log10": "np.log10", "log": "np.log"}.get(value, value)
            if value not in COQUI_LOG_FUNCS:
                raise WavegenError(f"audio.log_func must be np.log10 or np.log, got {value!r}")
        elif isinstance(default, bool) != isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WavegenError(f"audio.{key} must be like {default!r}, got {value!r}")
        elif not math.isfinite(value):  # JSON's NaN and Infinity read as floats
            raise WavegenError(f"audio.{key} must be a finite number, got {value!r}")
        settings[key] = value
    if settings["max_norm"] <= 0 or settings["min_level_db"] >= 0 or settings["spec_gain"] <= 0:
        raise WavegenError("a Coqui audio config needs max_norm > 0, min_level_db < 0 and spec_gain > 0")
    return settings


def read_statistics(params: Path, n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per bin from ESPnet's feats_stats.npz or a JSON {"mean", "std"}."""
    try:
        if params.suffix == ".npz":
            with np.load(params, allow_pickle=False) as stats:
                if {"count", "sum", "sum_square"} <= set(stats.files):
                    count = float(stats["count"])
                    if not count > 0:
                        raise WavegenError(
                            f"data.tts_mels_params: {params}: count is {count:g}; expected > 0"
                        )
                    mean = stats["sum"] / count
                    std = np.sqrt(np.maximum(stats["sum_square"] / count - mean**2, 1e-20))
                else:
                    mean, std = stats["mean"], stats["std"]
        else:
            data = json.loads(params.read_text(encoding="utf-8"))
            mean, std = np.asarray(data["mean"], dtype=np.float64), np.asarray(data["std"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise WavegenError(
            f"data.tts_mels_params: {params}: expected feats_stats.npz (count, sum, sum_square) or JSON "
            f"mean/std ({type(err).__name__}: {err})"
        ) from None
    mean, std = np.asarray(mean, dtype=np.float64).reshape(-1), np.asarray(std, dtype=np.float64).reshape(-1)
    finite = np.isfinite(mean).all() and np.isfinite(std).all()
    if mean.shape != (n_mels,) or std.shape != (n_mels,) or not finite or not (std > 0).all():
        raise WavegenError(
            f"data.tts_mels_params: {params}: expected {n_mels} finite means and {n_mels} finite stds > 0"
        )
    return mean, std


def to_natural_log(mel: np.ndarray, source: MelSource) -> np.ndarray:
    """(n_mels, T) mel in ``source``'s convention -> ln of the mel magnitudes."""
    mel = mel.astype(np.float64)
    if source.convention == "natural-log":
        return mel
    if source.convention == "log10":
        return mel * math.log(10)
    if source.convention == "standardised":
        logmel = mel * np.asarray(source.std)[:, None] + np.asarray(source.mean)[:, None]
        return logmel * math.log(10) if source.base == "10" else logmel
    return coqui_db_to_natural_log(mel, dict(source.coqui))


def coqui_db_to_natural_log(mel: np.ndarray, settings: dict) -> np.ndarray:
    """Undo Coqui's AudioProcessor.normalize and amp_to_db: -> ln(mel).

    amp_to_db: db = spec_gain·log_func(max(mel, 1e-5)); normalize: S = db − ref_level_db;
    S' = (S − min_level_db) / −min_level_db, then symmetric: 2·max_norm·S' − max_norm, clipped to
    [−max_norm, max_norm]; else max_norm·S' clipped to [0, max_norm].
    """
    s = dict(COQUI_DEFAULTS, **settings)
    max_norm, min_db = s["max_norm"], s["min_level_db"]
    if s["signal_norm"]:
        if s["symmetric_norm"]:
            mel = (np.clip(mel, -max_norm, max_norm) + max_norm) * -min_db / (2 * max_norm) + min_db
        else:
            mel = np.clip(mel, 0, max_norm) * -min_db / max_norm + min_db
    db = mel + s["ref_level_db"]
    return db / s["spec_gain"] * COQUI_LOG_FUNCS[s["log_func"]]


def natural_log_to_coqui_db(ln_mel: np.ndarray, settings: dict) -> np.ndarray:
    """ln(mel) -> Coqui's normalised dB (its amp_to_db then normalize), for adapters and tests."""
    s = dict(COQUI_DEFAULTS, **settings)
    max_norm, min_db = s["max_norm"], s["min_level_db"]
    ln_mel = np.maximum(ln_mel, math.log(1e-5))
    db = s["spec_gain"] * ln_mel / COQUI_LOG_FUNCS[s["log_func"]] - s["ref_level_db"]
    if not s["signal_norm"]:
        return db
    norm = (db - min_db) / -min_db
    if s["symmetric_norm"]:
        return np.clip(2 * max_norm * norm - max_norm, -max_norm, max_norm)
    return np.clip(max_norm * norm, 0, max_norm)


def to_preset(ln_mel: np.ndarray, preset: MelPreset) -> np.ndarray:
    """ln(mel) (n_mels, T) -> ``preset``'s log base, clamped at its floor, float32."""
    ln_mel = np.maximum(ln_mel, math.log(preset.floor))
    out = ln_mel if preset.log_base == "e" else ln_mel / math.log(10)
    return out.astype(np.float32)


def load_aligned(source: MelSource, uid: str, preset: MelPreset, frames: int, start_frame: int = 0):
    """The TTS mel of ``uid`` in ``preset``'s convention, aligned to ``frames`` frames of audio.

    ``start_frame``: frames cut from the start of the audio by silence trimming (ignored when
    the TTS mels are of the trimmed audio: ``source.trimmed``). -> (mel
    (n_mels, frames) float32, frames added (+) or dropped (−)), or the reason it is unusable.
    """
    path = source.path(uid)
    if not path.is_file():
        return f"no TTS mel {path}"
    try:
        mel = read_mel(path)
    except WavegenError as err:
        return str(err).removeprefix(f"{path}: ")
    mel = mel.T if source.transposed else mel
    if mel.shape[0] != preset.n_mels:
        return f"TTS mel {path} has shape {mel.shape}; expected {preset.n_mels} bins"
    start_frame = 0 if source.trimmed else start_frame
    mel = mel[:, start_frame:]
    diff = frames - mel.shape[1]
    if abs(diff) > source.max_frame_diff:
        return (
            f"TTS mel has {mel.shape[1]} frames, the audio {frames} (after {start_frame} trimmed): more than "
            f"data.tts_mels_max_frame_diff={source.max_frame_diff} apart"
        )
    if diff > 0:
        mel = np.concatenate([mel, np.repeat(mel[:, -1:], diff, axis=1)], axis=1)
    mel = to_preset(to_natural_log(mel[:, :frames], source), preset)
    return mel, diff
