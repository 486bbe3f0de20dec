"""Checks of what a checkpoint or an exported config.json stores about its model: the mel
preset and the model section, each problem one line naming the key.

Both :mod:`wavegen.artifacts.checkpoint` and :mod:`wavegen.artifacts.export` read them, so they
live here, below both.
"""

from __future__ import annotations

import dataclasses

from ..core.config import ModelConfig, from_dict, model_config_from_dict, validate_model
from ..core.errors import WavegenError
from ..core.features import MelPreset, get_preset


def check_preset(data, where: str) -> MelPreset:
    """A stored mel preset: all its fields, typed, and equal to wavegen's preset of that name."""
    if not isinstance(data, dict):
        raise WavegenError(f"{where}: expected a mapping of the preset's fields, got {short(data)}")
    fields = [f.name for f in dataclasses.fields(MelPreset)]
    missing = [k for k in fields if k not in data]
    if missing:
        raise WavegenError(f"{where}.{missing[0]}: missing")
    preset = from_dict(MelPreset, data, where)
    known = get_preset(preset.name)
    for name in fields:
        if getattr(preset, name) != getattr(known, name):
            raise WavegenError(
                f"{where}.{name} is {getattr(preset, name)!r}, but wavegen's {known.name} preset has "
                f"{getattr(known, name)!r}"
            )
    return known


def checked_model_config(data, preset: str, where: str, complete: bool = False) -> ModelConfig:
    """A stored model section (config.json, a checkpoint's recipe) checked as a recipe's is:
    types, unknown keys and :func:`wavegen.core.config.validate`'s rules against ``preset``.

    ``complete``: every key must be present (config.json); a checkpoint's missing keys take
    their defaults, as its recipe did.
    """
    if not isinstance(data, dict):
        raise WavegenError(f"{where}: expected a mapping, got {short(data)}")
    missing = [f.name for f in dataclasses.fields(ModelConfig) if f.name not in data]
    if complete and missing:
        raise WavegenError(f"{where}.{missing[0]}: missing")
    config = model_config_from_dict(data)
    if config.n_speakers < 0:  # -1, one per speaker in the feature cache, is resolved by training
        raise WavegenError(f"{where}.n_speakers must be at least 0, got {config.n_speakers}")
    p = get_preset(preset)
    try:
        validate_model(config, p.hop_length, p.n_mels, p.name)
    except WavegenError as err:
        raise WavegenError(f"{where}: {err}") from None
    return config


def short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
