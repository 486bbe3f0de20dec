"""The one typed configuration schema and the source of every default: audio, model, data, train.

A recipe is YAML holding values for these dataclasses; ``extends: base.yaml`` (relative to the
recipe) merges a base file first, so variants override a few keys instead of copying a file.
Unknown keys and wrongly typed values are errors that name the key. ``--set key=value``
overrides go through the same checks. YAML 1.1 reads ``1e-4`` (no dot) as a string: number keys
accept such text. :func:`validate` holds every range rule (one line naming the key); it runs on
every loaded recipe and on a Recipe built in Python.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import WavegenError

# The allowed values of the keys that take a name; from_dict refuses anything else.
Normalize = Literal["none", "peak", "loudness"]
Corpus = Literal["ljspeech", "vctk", "folder", "demo"]  # the wavegen.data.corpora readers
Mic = Literal["mic1", "mic2", "both"]
Optimizer = Literal["adam", "adamw"]
Decay = Literal["exponential", "cosine", "none"]
Precision = Literal["auto", "bf16", "fp32"]  # see wavegen.training.precision
MelConvention = Literal["auto", "natural-log", "log10", "coqui-db", "standardised"]  # wavegen.data.tts_mels
CORPORA = typing.get_args(Corpus)
PRECISIONS = typing.get_args(Precision)


@dataclass
class AudioConfig:
    preset: str = "tacotron2"  # mel front-end preset (wavegen.core.features.PRESETS)
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
    # Train on a TTS model's teacher-forced mels instead of the audio's (wavegen.data.tts_mels): a folder
    # of <utterance id>.npy (relative to the recipe or absolute); "" = mels computed from the audio.
    tts_mels: str = ""
    tts_mels_convention: MelConvention = "auto"  # how those mels are scaled; auto = diagnosed
    tts_mels_params: str = ""  # coqui-db: the Coqui config.json; standardised: the statistics file
    tts_mels_max_frame_diff: int = 3  # frames a TTS mel may differ from the audio (trimmed/padded)
    # true: the TTS mels are of the audio after the same silence trimming (Coqui's do_trim_silence
    # with trim_db = audio.trim_top_db); false: of the whole file (ESPnet2, NVIDIA Tacotron 2)
    tts_mels_trimmed: bool = False


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


# What YAML 1.1 leaves a string but is a number: 1e-4, +5E-4, .5e3 (a plain decimal is a float).
_NUMBER_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def from_dict(cls, data: Any, where: str = "", text_numbers: bool = True):
    """Build dataclass ``cls`` from nested plain data, checking keys and types.

    ``text_numbers``: number keys accept numeric text (``"1e-4"``, what YAML 1.1 makes of it);
    off for values set in Python. A section given as null (``train:`` with nothing under it) is
    empty.
    """
    if data is None and where:
        data = {}
    if not isinstance(data, dict):
        raise WavegenError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known:
            raise WavegenError(f"unknown config key {path!r}; expected one of: {', '.join(sorted(known))}")
        kwargs[key] = _coerce(hints[key], value, path, text_numbers)
    return cls(**kwargs)


def _number(value, path: str, text_numbers: bool) -> float | int:
    if isinstance(value, str) and text_numbers and _NUMBER_TEXT.match(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WavegenError(f"config key {path!r}: expected a number, got {value!r}")
    return value


def _coerce(tp, value, path: str, text_numbers: bool = True):
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path, text_numbers)
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
        return [_coerce(item, v, f"{path}[{i}]", text_numbers) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(args[0], value, path, text_numbers)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise WavegenError(f"config key {path!r}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            number = _number(value, path, text_numbers)
        except WavegenError:
            number = None
        if isinstance(number, float) and number.is_integer():  # 1e6, or 3.0
            return int(number)
        raise WavegenError(f"config key {path!r}: expected an integer, got {value!r}")
    if tp is float:
        number = float(_number(value, path, text_numbers))
        if not math.isfinite(number):
            raise WavegenError(f"config key {path!r}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise WavegenError(f"config key {path!r}: expected a string, got {value!r}")
    return value


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The mapping in ``path`` merged over the one it ``extends`` (``chain``: the files that
    extend this one, to name a cycle)."""
    if not path.is_file():
        raise WavegenError(f"{path}: recipe not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is fine
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise WavegenError(f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at line {line})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise WavegenError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise WavegenError(f"{path}: expected a mapping of config sections")
    if "extends" not in data:
        return data
    base = data.pop("extends")
    if not isinstance(base, str) or not base.strip():
        raise WavegenError(f"{path}: extends must be the path of a recipe file, got {base!r}")
    target = (path.parent / base).resolve()
    chain = (*chain, path.resolve())
    if target in chain:
        names = " -> ".join(p.name for p in (*chain[chain.index(target) :], target))
        raise WavegenError(f"{path}: extends cycle: {names}")
    if not target.is_file():
        raise WavegenError(f"{path}: extends {base!r}, but {target} does not exist")
    return _merge(_read_yaml(target, chain), data)


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
    for key in ("tts_mels", "tts_mels_params"):  # relative to the recipe, as corpus_path
        value = getattr(recipe.data, key)
        if value and not Path(value).is_absolute():
            setattr(recipe.data, key, str((path.parent / value).resolve()))
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
    """Every rule of the schema, each failure a one-line error naming the key.

    Types and allowed names first (a Recipe built in Python has not been through from_dict),
    then the range of every key and the rules between keys.
    """
    from .features import get_preset

    if not isinstance(recipe.name, str) or not recipe.name.strip():
        raise WavegenError(f"name must be a non-empty string, got {recipe.name!r}")
    for section in ("audio", "model", "data", "train"):
        _check_types(getattr(recipe, section), section)
    try:
        preset = get_preset(recipe.audio.preset)
    except WavegenError as err:
        raise WavegenError(f"audio.preset: {err}") from None
    validate_audio(recipe.audio)
    validate_model(recipe.model, preset.hop_length, preset.n_mels, preset.name)
    validate_data(recipe.data, preset.hop_length)
    validate_train(recipe.train)


def _check_types(section, where: str) -> None:
    """The keys of a section built in Python: types, Literal names, finite floats."""
    hints = typing.get_type_hints(type(section))
    for f in dataclasses.fields(section):
        _coerce(hints[f.name], getattr(section, f.name), f"{where}.{f.name}", text_numbers=False)


def _at_least(key: str, value, low) -> None:
    if value < low:
        raise WavegenError(f"{key} must be at least {low}, got {value!r}")


def _within(key: str, value, low, high, closed_low: bool, closed_high: bool) -> None:
    ok = (value >= low if closed_low else value > low) and (value <= high if closed_high else value < high)
    if not ok:
        interval = f"{'[' if closed_low else '('}{low}, {high}{']' if closed_high else ')'}"
        raise WavegenError(f"{key} must be in {interval}, got {value!r}")


def validate_audio(a: AudioConfig) -> None:
    _at_least("audio.trim_top_db", a.trim_top_db, 0)
    _within("audio.peak_level", a.peak_level, 0, 1, closed_low=False, closed_high=True)
    if a.loudness_db > 0:
        raise WavegenError(f"audio.loudness_db must be at most 0 (dBFS), got {a.loudness_db!r}")
    _at_least("audio.min_seconds", a.min_seconds, 0)


def validate_model(m: ModelConfig, hop_length: int, n_mels: int, preset: str = "the") -> None:
    """A model section against a preset's hop length and mel bins."""
    _at_least("model.quantize_channels", m.quantize_channels, 2)
    _at_least("model.layers", m.layers, 1)
    _at_least("model.stacks", m.stacks, 1)
    if m.layers % m.stacks:
        raise WavegenError(f"model.layers ({m.layers}) must be a multiple of model.stacks ({m.stacks})")
    _at_least("model.kernel_size", m.kernel_size, 2)
    _at_least("model.residual_channels", m.residual_channels, 1)
    _at_least("model.gate_channels", m.gate_channels, 2)
    if m.gate_channels % 2:
        raise WavegenError(f"model.gate_channels must be even, got {m.gate_channels}")
    _at_least("model.skip_channels", m.skip_channels, 1)
    _at_least("model.cin_channels", m.cin_channels, 0)
    _at_least("model.cin_pad", m.cin_pad, 0)
    for i, scale in enumerate(m.upsample_scales):
        _at_least(f"model.upsample_scales[{i}]", scale, 1)
    _at_least("model.n_speakers", m.n_speakers, -1)
    if m.n_speakers:
        if m.gin_channels < 1:
            raise WavegenError(
                f"model.gin_channels must be at least 1 when model.n_speakers is not 0, got {m.gin_channels}"
            )
    else:
        _at_least("model.gin_channels", m.gin_channels, 0)
    hop = math.prod(m.upsample_scales)
    if m.cin_channels and hop != hop_length:
        raise WavegenError(
            f"model.upsample_scales {m.upsample_scales} multiply to {hop}, but the "
            f"{preset} preset's hop_length is {hop_length}"
        )
    if m.cin_channels and m.cin_channels != n_mels:
        raise WavegenError(
            f"model.cin_channels is {m.cin_channels}, but the {preset} preset has {n_mels} mel bins"
        )


def validate_data(d: DataConfig, hop_length: int) -> None:
    _at_least("data.valid_per_speaker", d.valid_per_speaker, 0)
    _at_least("data.test_per_speaker", d.test_per_speaker, 0)
    seen = set()
    for i, speaker in enumerate(d.held_out_speakers):
        if not speaker.strip():
            raise WavegenError(f"data.held_out_speakers[{i}] must be a speaker id, got {speaker!r}")
        if speaker in seen:
            raise WavegenError(f"data.held_out_speakers lists {speaker!r} twice")
        seen.add(speaker)
    _at_least("data.split_seed", d.split_seed, 0)
    if d.window_samples <= 0 or d.window_samples % hop_length:
        raise WavegenError(
            f"data.window_samples must be a positive multiple of the hop length ({hop_length}), "
            f"got {d.window_samples}"
        )
    _at_least("data.batch_size", d.batch_size, 1)
    _at_least("data.tts_mels_max_frame_diff", d.tts_mels_max_frame_diff, 0)
    if d.tts_mels_params and not d.tts_mels:
        raise WavegenError("data.tts_mels_params is set, but data.tts_mels (the mels' folder) is not")
    if d.tts_mels_convention != "auto" and not d.tts_mels:
        raise WavegenError(
            f"data.tts_mels_convention is set ({d.tts_mels_convention}), "
            "but data.tts_mels (the mels' folder) is not"
        )
    _at_least("data.num_workers", d.num_workers, 0)


def validate_train(cfg: TrainConfig) -> None:
    """Checks of the train section that its types cannot express."""
    _check_types(cfg, "train")
    _at_least("train.max_steps", cfg.max_steps, 0)
    if cfg.lr <= 0:
        raise WavegenError(f"train.lr must be positive, got {cfg.lr}")
    if len(cfg.betas) != 2:
        raise WavegenError(f"train.betas must be two numbers, got {cfg.betas}")
    for i, beta in enumerate(cfg.betas):
        _within(f"train.betas[{i}]", beta, 0, 1, closed_low=True, closed_high=False)
    _at_least("train.weight_decay", cfg.weight_decay, 0)
    _at_least("train.warmup_steps", cfg.warmup_steps, 0)
    _within("train.decay_rate", cfg.decay_rate, 0, 1, closed_low=False, closed_high=True)
    _at_least("train.min_lr", cfg.min_lr, 0)
    if cfg.min_lr > cfg.lr:
        raise WavegenError(f"train.min_lr ({cfg.min_lr:g}) must not exceed train.lr ({cfg.lr:g})")
    _at_least("train.grad_clip", cfg.grad_clip, 0)
    _within("train.ema_decay", cfg.ema_decay, 0, 1, closed_low=True, closed_high=False)
    _at_least("train.seed", cfg.seed, 0)
    if cfg.seed >= 2**63:
        raise WavegenError(f"train.seed must be below 2**63, got {cfg.seed}")
    for key in (
        "log_interval",
        "valid_interval",
        "sample_interval",
        "checkpoint_interval",
        "decay_steps",
        "valid_batches",
        "keep_checkpoints",
    ):
        _at_least(f"train.{key}", getattr(cfg, key), 1)
    if cfg.sample_seconds <= 0:
        raise WavegenError(f"train.sample_seconds must be positive, got {cfg.sample_seconds}")


def model_config_from_dict(data: dict) -> ModelConfig:
    """Rebuild a :class:`ModelConfig` stored in a checkpoint or config.json."""
    return from_dict(ModelConfig, data, "model")
