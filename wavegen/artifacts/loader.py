"""The one way to load a trained model: a path -> the model and what is needed to use it.

    loaded = load_model("exp/ljspeech/export")  # or a run dir, a checkpoint file, model.safetensors
    loaded.model      # WaveNet, eval mode, on ``device``
    loaded.preset     # its MelPreset
    loaded.speakers   # the speaker names it was trained on (see wavegen.inference.vocoder)
    loaded.source     # the export folder or checkpoint file that was read

An exported folder (model.safetensors + config.json, see :mod:`wavegen.artifacts.export`) is read
as exported; anything else is a checkpoint file or a run dir, whose newest valid checkpoint is
read (EMA weights when it has them). Nothing is unpickled, and every problem is one line naming
the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.errors import WavegenError
from ..core.features import MelPreset
from ..model import WaveNet
from .checkpoint import load_checkpoint, model_from_checkpoint, resolve_checkpoint
from .export import CONFIG, load_exported
from .stored import check_preset


@dataclass
class LoadedModel:
    """A trained WaveNet with its mel preset, speaker names and mel normalisation."""

    model: WaveNet
    preset: MelPreset
    speakers: list[str] = field(default_factory=list)
    mel_normalize: bool = False  # the model normalises raw mels inside (its mel_mean/mel_std)
    source: Path = Path()


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load the model at ``path``: an exported folder or its model.safetensors, a run dir (its
    newest valid checkpoint) or a checkpoint file."""
    path = Path(path)
    if path.is_file() and path.suffix == ".safetensors":
        path = path.parent
    if path.is_dir() and (path / CONFIG).is_file():
        model, config = load_exported(path, device)
        return LoadedModel(model, config["preset"], config["speakers"], config["mel_normalize"], path)
    file = resolve_checkpoint(path)
    ckpt = load_checkpoint(file)
    if not ckpt.get("preset"):
        raise WavegenError(f"{file}: checkpoint has no mel preset")
    try:
        preset = check_preset(ckpt["preset"], "preset")
    except WavegenError as err:
        raise WavegenError(f"{file}: {err}") from None
    model = model_from_checkpoint(ckpt, use_ema=True, where=file)
    audio = ckpt["recipe"].get("audio") if isinstance(ckpt["recipe"].get("audio"), dict) else {}
    speakers = ckpt.get("speakers") or []
    if not isinstance(speakers, list) or not all(isinstance(s, str) for s in speakers):
        raise WavegenError(f"{file}: speakers: expected a list of speaker names")
    return LoadedModel(model.to(device), preset, speakers, bool(audio.get("mel_normalize", False)), file)
