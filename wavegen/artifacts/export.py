"""Export a trained model to the distribution format: ``model.safetensors`` + ``config.json``.

``model.safetensors`` holds the EMA weights (raw weights if the run had no EMA) including the
``mel_mean``/``mel_std`` buffers; ``config.json`` holds everything needed to rebuild and use the
model: architecture, mel preset and its parameters, sample rate, hop, speakers, mel statistics.
Nothing in either file is pickled.

Loading validates config.json like a recipe: every key present with its type and nothing else,
the preset equal to wavegen's preset of that name, the sample rate, hop and speakers consistent
with it and with the model, and the model section checked by :func:`wavegen.core.config.validate`;
each problem is one line naming the file and the key.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..core.audio import write_files
from ..core.config import ModelConfig
from ..core.errors import WavegenError
from ..core.features import get_preset
from ..model import WaveNet
from .checkpoint import load_checkpoint, model_from_checkpoint, resolve_checkpoint
from .stored import check_preset, checked_model_config, short

FORMAT = "wavegen-vocoder-1"
WEIGHTS, CONFIG = "model.safetensors", "config.json"


def export_model(source: str | Path, outdir: str | Path) -> Path:
    """Write OUTDIR/model.safetensors + OUTDIR/config.json from a checkpoint or run dir."""
    from safetensors.torch import save

    path = resolve_checkpoint(source)
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, use_ema=True, where=path)
    recipe = ckpt["recipe"]
    preset = ckpt.get("preset") or {}
    config = {
        "format": FORMAT,
        "model": recipe["model"],
        "preset": preset,
        "mel_normalize": bool(recipe.get("audio", {}).get("mel_normalize", False)),
        "mel_stats": {"mean": model.mel_mean.tolist(), "std": model.mel_std.tolist()},
        "sample_rate": int(preset.get("sample_rate", 0)),
        "hop_length": model.hop_length,
        "speakers": list(ckpt.get("speakers") or []),
        "step": int(ckpt.get("step", 0)),
        "ema": ckpt.get("ema") is not None,
        "recipe": recipe.get("name", ""),
        "source_checkpoint": path.name,
    }
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise WavegenError(f"{outdir}: is a file; expected the folder to export into")
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    weights = save(tensors, metadata={"format": FORMAT})
    text = (json.dumps(config, indent=2) + "\n").encode()
    # Both or neither: new weights beside an old config.json would be another model.
    write_files({outdir / WEIGHTS: lambda f: f.write(weights), outdir / CONFIG: lambda f: f.write(text)})
    return outdir


# config.json's keys and what each holds (see export_model).
_KEYS = {
    "format": (str, "a string"),
    "model": (dict, "a mapping"),
    "preset": (dict, "a mapping"),
    "mel_normalize": (bool, "true or false"),
    "mel_stats": (dict, "a mapping"),
    "sample_rate": (int, "an integer"),
    "hop_length": (int, "an integer"),
    "speakers": (list, "a list"),
    "step": (int, "an integer"),
    "ema": (bool, "true or false"),
    "recipe": (str, "a string"),
    "source_checkpoint": (str, "a string"),
}


def load_exported(folder: str | Path, device: str | torch.device = "cpu"):
    """Rebuild (model, config) from an exported folder; the model is in eval mode.

    ``config`` is config.json's mapping, checked (see the module doc), with ``preset`` as a
    :class:`MelPreset`.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, weights = folder / CONFIG, folder / WEIGHTS
    for path in (cfg_path, weights):
        if not path.is_file():
            raise WavegenError(f"{path}: missing (an exported model holds {CONFIG} and {WEIGHTS})")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WavegenError(f"{cfg_path}: not valid JSON ({err})") from None
    try:
        model_config = check_config(config)
    except WavegenError as err:
        raise WavegenError(f"{cfg_path}: {err}") from None
    model = WaveNet(model_config)
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as err:  # header garbage, truncated file
        raise WavegenError(
            f"{weights}: not a readable safetensors file ({str(err).splitlines()[0]})"
        ) from None
    try:
        model.load_weights(state)
    except WavegenError as err:
        raise WavegenError(f"{weights}: {err} ({CONFIG}'s model section)") from None
    config["preset"] = get_preset(config["preset"]["name"])  # equal to it, checked above
    return model.to(device).eval(), config


def check_config(config) -> ModelConfig:
    """Check a config.json mapping key by key; -> its model section. Errors name the key."""
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise WavegenError(f"not a wavegen vocoder config (expected format {FORMAT!r})")
    missing = [k for k in _KEYS if k not in config]
    if missing:
        raise WavegenError(f"missing key {missing[0]!r} (a {FORMAT} config holds {', '.join(_KEYS)})")
    unknown = [k for k in config if k not in _KEYS]
    if unknown:
        raise WavegenError(f"unknown key {unknown[0]!r}; expected only {', '.join(_KEYS)}")
    for key, (kind, what) in _KEYS.items():
        value = config[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise WavegenError(f"key {key!r}: expected {what}, got {short(value)}")
    preset = check_preset(config["preset"], "preset")
    model = checked_model_config(config["model"], preset.name, "model", complete=True)
    if config["sample_rate"] != preset.sample_rate:
        raise WavegenError(
            f"key 'sample_rate': expected the {preset.name} preset's {preset.sample_rate}, "
            f"got {config['sample_rate']}"
        )
    hop = math.prod(model.upsample_scales) if model.cin_channels else 1
    if config["hop_length"] != hop:
        raise WavegenError(
            f"key 'hop_length': expected {hop} (the product of model.upsample_scales), "
            f"got {config['hop_length']}"
        )
    speakers = config["speakers"]
    if not all(isinstance(s, str) and s for s in speakers) or len(set(speakers)) != len(speakers):
        raise WavegenError(
            f"key 'speakers': expected a list of distinct speaker names, got {short(speakers)}"
        )
    if 0 < model.n_speakers < len(speakers):
        raise WavegenError(
            f"key 'speakers': {len(speakers)} speakers for model.n_speakers {model.n_speakers} embeddings"
        )
    if config["step"] < 0:
        raise WavegenError(f"key 'step': expected a step ≥ 0, got {config['step']}")
    _check_mel_stats(config["mel_stats"], max(model.cin_channels, 1))
    return model


def _check_mel_stats(stats: dict, n: int) -> None:
    if set(stats) != {"mean", "std"}:
        raise WavegenError(
            f"key 'mel_stats': expected exactly mean and std, got {', '.join(map(str, stats))}"
        )
    for key in ("mean", "std"):
        values = stats[key]
        ok = isinstance(values, list) and len(values) == n
        ok = ok and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
        )
        if not ok or (key == "std" and min(values) <= 0):
            raise WavegenError(f"key 'mel_stats.{key}': expected {n} finite numbers{' > 0' * (key == 'std')}")
