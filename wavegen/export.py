"""Export a trained model to the distribution format: ``model.safetensors`` + ``config.json``.

``model.safetensors`` holds the EMA weights (raw weights if the run had no EMA) including the
``mel_mean``/``mel_std`` buffers; ``config.json`` holds everything needed to rebuild and use the
model: architecture, mel preset and its parameters, sample rate, hop, speakers, mel statistics.
Nothing in either file is pickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .audio import atomic_path
from .config import model_config_from_dict
from .errors import WavegenError
from .features import MelPreset
from .training.checkpoint import latest_checkpoint, load_checkpoint, model_from_checkpoint

FORMAT = "wavegen-vocoder-1"
WEIGHTS, CONFIG = "model.safetensors", "config.json"


def resolve_checkpoint(source: str | Path) -> Path:
    """A checkpoint file, or the newest valid checkpoint of a run dir."""
    source = Path(source)
    if source.is_file():
        return source
    if source.is_dir():
        found = latest_checkpoint(source)
        if found is None:
            raise WavegenError(f"{source}: no valid checkpoint in {source / 'checkpoints'}")
        return found
    raise WavegenError(f"{source}: no such checkpoint or run directory")


def export_model(source: str | Path, outdir: str | Path) -> Path:
    """Write OUTDIR/model.safetensors + OUTDIR/config.json from a checkpoint or run dir."""
    from safetensors.torch import save_file

    path = resolve_checkpoint(source)
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, use_ema=True)
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
    outdir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(outdir / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    with atomic_path(outdir / CONFIG) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n")
    return outdir


def load_exported(folder: str | Path, device: str | torch.device = "cpu"):
    """Rebuild (model, config) from an exported folder; the model is in eval mode."""
    from safetensors.torch import load_file

    from .model import WaveNet

    folder = Path(folder)
    cfg_path, weights = folder / CONFIG, folder / WEIGHTS
    for path in (cfg_path, weights):
        if not path.is_file():
            raise WavegenError(f"{path}: missing (an exported model holds {CONFIG} and {WEIGHTS})")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise WavegenError(f"{cfg_path}: not valid JSON ({err})") from None
    if config.get("format") != FORMAT:
        raise WavegenError(f"{cfg_path}: not a wavegen vocoder config (expected format {FORMAT!r})")
    model = WaveNet(model_config_from_dict(config["model"]))
    try:
        state = load_file(str(weights), device="cpu")
        model.load_state_dict(state)
    except Exception as err:  # header garbage, wrong shapes, missing keys
        raise WavegenError(f"{weights}: weights do not fit {CONFIG} ({str(err).splitlines()[0]})") from None
    config["preset"] = MelPreset(**config["preset"])
    return model.to(device).eval(), config
