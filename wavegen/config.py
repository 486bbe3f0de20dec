"""The one typed configuration schema and the source of every default: audio, model, data, train.

A recipe is YAML holding values for these dataclasses; ``extends: base.yaml`` (relative to the
recipe) merges a base file first, so variants override a few keys instead of copying a file.
Unknown keys and wrongly typed values are errors that name the key. ``--set key=value``
overrides go through the same checks.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import WavegenError

# The allowed values of the keys that take a name; from_dict refuses anything else.
Normalize = Literal["none", "peak", "loudness"]
Corpus = Literal["ljspeech", "vctk", "folder", "demo"]  # the wavegen.corpora readers
Mic = Literal["mic1", "mic2", "both"]
Optimizer = Literal["adam", "adamw"]
Decay = Literal["exponential", "cosine", "none"]
Precision = Literal["auto", "bf16", "fp32"]  # see wavegen.training.precision
CORPORA = typing.get_args(Corpus)
PRECISIONS = typing.get_args(Precision)


@dataclass
class AudioConfig:
    preset: str = "tacotron2"  # mel front-end preset (wavegen.features.PRESETS)
    trim_top_db: float = 60.0  # silence trim: dB below the peak counted as silence; 0 = off
    normalize: Normalize = "none"  # gain before the mel: none, peak (peak_level) or loudness
    peak_level: float = 0.95  # target peak for normalize=peak (linear)
    loudness_db: float = -23.0  # target RMS level in dBFS for normalize=loudness
    min_seconds: float = 0.5  # utterances shorter than this (after trimming) are skipped
    mel_normalize: bool = True  # mean/variance-normalise mels with train-split stats (in the model)


@dataclass
class ModelConfig:
    quantize_channels: int = 256  # μ-law classes (input embedding and output logits)
    layers: int = 30  # dilated residual layers in all
    stacks: int = 3  # dilation cycles: dilations 1, 2, … 2^(layers/stacks − 1) in each
    kernel_size: int = 3  # taps of each dilated causal convolution (2 or 3)
    residual_channels: int = 512
    gate_channels: int = 512  # split in two halves for tanh and sigmoid
    skip_channels: int = 256
    cin_channels: int = 80  # mel bins for local conditioning; 0 = unconditioned
    cin_pad: int = 2  # mel frames of context each side for the upsampler's input conv
    upsample_scales: list[int] = field(default_factory=lambda: [4, 4, 4, 4])  # product = hop
    n_speakers: int = 0  # speaker table size; 0 = none; -1 = one per speaker in the feature cache
    gin_channels: int = 16  # speaker embedding size


@dataclass
class DataConfig:
    corpus: Corpus = "folder"
    corpus_path: str = ""  # where the corpus is unpacked (relative to the recipe or absolute)
    mic: Mic = "mic1"  # VCTK 0.92 microphone
    valid_per_speaker: int = 2  # held-out validation utterances per speaker
    test_per_speaker: int = 2  # held-out test utterances per speaker
    held_out_speakers: list[str] = field(default_factory=list)  # whole speakers kept for test
    split_seed: int = 1234  # seed of the deterministic train/valid/test split
    window_samples: int = 10240  # audio samples per training window (multiple of hop)
    batch_size: int = 8  # windows per optimisation step (global, across DDP ranks)
    num_workers: int = 2  # DataLoader worker processes


@dataclass
class TrainConfig:
    max_steps: int = 1_000_000
    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    warmup_steps: int = 4000  # linear warm-up from 0 to lr
    decay: Decay = "exponential"
    decay_rate: float = 0.5  # exponential: lr halves every decay_steps
    decay_steps: int = 200_000
    min_lr: float = 1e-5
    grad_clip: float = 1.0  # global gradient norm clip; 0 = off
    ema_decay: float = 0.9999  # exponential moving average of the weights; 0 = off
    # Products in "bf16" (mixed precision: float32 master weights, sums and loss) or "fp32";
    # "auto" = bf16 where the hardware has it (CUDA, CPUs with AVX512-BF16 or AMX), else fp32.
    precision: Precision = "auto"
    seed: int = 1234
    log_interval: int = 100  # steps between TensorBoard scalars
    valid_interval: int = 5000  # steps between validation (bits per sample)
    valid_batches: int = 8
    sample_interval: int = 20_000  # steps between generated audio samples
    sample_seconds: float = 1.0  # length of each generated sample
    checkpoint_interval: int = 5000  # steps between checkpoints
    keep_checkpoints: int = 3  # latest checkpoints kept (the best on valid is kept as well)


@dataclass
class Recipe:
    name: str = "recipe"
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def from_dict(cls, data: Any, where: str = ""):
    """Build dataclass ``cls`` from nested plain data, checking keys and types."""
    if not isinstance(data, dict):
        raise WavegenError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known:
            raise WavegenError(f"unknown config key {path!r}; expected one of: {', '.join(sorted(known))}")
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


def _coerce(tp, value, path: str):
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed or isinstance(value, bool):
            raise WavegenError(f"{path} must be one of {', '.join(map(str, allowed))}, got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise WavegenError(f"config key {path!r}: expected a list, got {value!r}")
        return [_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(args[0], value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise WavegenError(f"config key {path!r}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise WavegenError(f"config key {path!r}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise WavegenError(f"config key {path!r}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise WavegenError(f"config key {path!r}: expected a string, got {value!r}")
    return value


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise WavegenError(f"{path}: recipe not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise WavegenError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise WavegenError(f"{path}: expected a mapping of config sections")
    base = data.pop("extends", None)
    if base is None:
        return data
    return _merge(_read_yaml((path.parent / base).resolve()), data)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Load a recipe YAML (following ``extends``) and apply ``key=value`` overrides.

    A relative ``data.corpus_path`` is resolved against the recipe's folder.
    """
    path = Path(path)
    data = _read_yaml(path)
    data.setdefault("name", path.parent.name if path.name == "config.yaml" else path.stem)
    for item in overrides or []:
        data = _merge(data, parse_override(item))
    recipe = from_dict(Recipe, data)
    cp = recipe.data.corpus_path
    if cp and not Path(cp).is_absolute() and recipe.data.corpus != "demo":
        recipe.data.corpus_path = str((path.parent / cp).resolve())
    validate(recipe)
    return recipe


def parse_override(item: str) -> dict:
    """``"model.layers=30"`` -> ``{"model": {"layers": 30}}`` (the value is parsed as YAML)."""
    if "=" not in item:
        raise WavegenError(f"override {item!r}: expected key=value, e.g. train.lr=0.0005")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def validate(recipe: Recipe) -> None:
    """Cross-field checks, each a one-line error naming the key."""
    from .features import get_preset

    preset = get_preset(recipe.audio.preset)
    m = recipe.model
    hop = 1
    for s in m.upsample_scales:
        hop *= s
    if m.cin_channels and hop != preset.hop_length:
        raise WavegenError(
            f"model.upsample_scales {m.upsample_scales} multiply to {hop}, but the "
            f"{preset.name} preset's hop_length is {preset.hop_length}"
        )
    if m.cin_channels and m.cin_channels != preset.n_mels:
        raise WavegenError(
            f"model.cin_channels is {m.cin_channels}, but the {preset.name} preset has "
            f"{preset.n_mels} mel bins"
        )
    if m.kernel_size < 2:
        raise WavegenError(f"model.kernel_size must be at least 2, got {m.kernel_size}")
    if m.layers % m.stacks:
        raise WavegenError(f"model.layers ({m.layers}) must be a multiple of model.stacks ({m.stacks})")
    if m.gate_channels % 2:
        raise WavegenError(f"model.gate_channels must be even, got {m.gate_channels}")
    if recipe.data.window_samples % preset.hop_length:
        raise WavegenError(
            f"data.window_samples ({recipe.data.window_samples}) must be a multiple of the hop "
            f"length ({preset.hop_length})"
        )
    for section in ("audio", "model", "data"):
        _check_names(getattr(recipe, section), section)
    validate_train(recipe.train)


def validate_train(cfg: TrainConfig) -> None:
    """Checks of the train section that its types cannot express."""
    _check_names(cfg, "train")
    if len(cfg.betas) != 2:
        raise WavegenError(f"train.betas must be two numbers, got {cfg.betas}")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise WavegenError(f"train.ema_decay must be in [0, 1), got {cfg.ema_decay}")
    if cfg.lr <= 0:
        raise WavegenError(f"train.lr must be positive, got {cfg.lr}")
    for key in (
        "log_interval",
        "valid_interval",
        "sample_interval",
        "checkpoint_interval",
        "decay_steps",
        "valid_batches",
        "keep_checkpoints",
    ):
        if getattr(cfg, key) < 1:
            raise WavegenError(f"train.{key} must be at least 1, got {getattr(cfg, key)}")


def _check_names(section, where: str) -> None:
    """The Literal-typed keys of a section built in Python (from_dict checks those it builds)."""
    hints = typing.get_type_hints(type(section))
    for f in dataclasses.fields(section):
        if typing.get_origin(hints[f.name]) is Literal:
            _coerce(hints[f.name], getattr(section, f.name), f"{where}.{f.name}")


def model_config_from_dict(data: dict) -> ModelConfig:
    """Rebuild a :class:`ModelConfig` stored in a checkpoint or config.json."""
    return from_dict(ModelConfig, data, "model")
