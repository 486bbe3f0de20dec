"""Fine-tuning: start a run from a trained model's weights (``wavegen train --init-from MODEL``).

    source = load_init_source("exp/ljspeech/export")   # a run dir, a checkpoint or an export
    check_fits(source, recipe)                          # one line naming the key and both values
    rows, report = speaker_rows(source, speakers, speaker_map)
    apply_init(model, source.weights, rows, source.path)          # and source.ema into the EMA copy

What is taken: the weights, and the EMA weights where the source has them (an export holds the
EMA weights only, so both start from them), including the ``mel_mean``/``mel_std`` buffers: the
trained layers expect inputs normalised with the statistics they were trained with, not with the
new feature cache's. Everything else is fresh and comes from the recipe: optimiser, learning-rate
schedule, step counter (from 0), EMA warm-up (from its first update, so the average follows the
fine-tuned weights instead of clinging to the old ones at decay 0.9999), data, seed.

The architecture (every ``model`` key but ``n_speakers``), ``audio.preset`` and
``audio.mel_normalize`` must equal the source's. Speakers are matched by name: a speaker the
source knows keeps its trained embedding row, a new one keeps the fresh row the recipe's seed
gave it, and ``speaker_map`` ({new: known}) starts a new speaker from a known one's row.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..artifacts import checkpoint as ckpt_io
from ..artifacts.export import CONFIG, load_exported
from ..artifacts.stored import check_preset
from ..core.config import ModelConfig, Recipe
from ..core.errors import WavegenError

log = logging.getLogger(__name__)
SPEAKER_TABLE = "speaker_embed.weight"  # (n_speakers, gin_channels)


@dataclass
class InitSource:
    """A trained model to start from, read and checked."""

    path: Path  # what was given (a run dir, checkpoint file or export folder)
    file: Path  # the file the weights came from
    model: ModelConfig
    preset: str
    mel_normalize: bool
    weights: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None  # None: the source has no EMA copy
    speakers: list[str]
    step: int


@dataclass
class InitReport:
    """What a fine-tune took from its source (stored in its checkpoints as ``init_from``)."""

    source: str
    step: int  # the source's training step
    ema: bool  # whether the EMA weights came from the source's EMA copy
    speakers_taken: list[str] = field(default_factory=list)  # rows copied by name
    speakers_mapped: dict[str, str] = field(default_factory=dict)  # new -> known row copied
    speakers_new: list[str] = field(default_factory=list)  # fresh rows

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_init_source(path: str | Path) -> InitSource:
    """Read a run dir (newest valid checkpoint), a checkpoint file or an exported folder; its
    weights (and EMA weights) must be finite."""
    source = _read_source(Path(path))
    where = f"--init-from {source.path} ({source.file})"
    table = source.weights.get(SPEAKER_TABLE)  # None: a model without speakers (its list names the voice)
    if table is not None and len(source.speakers) > table.shape[0]:
        count = len(source.speakers)
        raise WavegenError(f"{where}: speakers: {count} names for a speaker table of {table.shape[0]} rows")
    twice = next((s for i, s in enumerate(source.speakers) if s in source.speakers[:i]), None)
    if twice is not None:
        raise WavegenError(f"{where}: speakers: {twice!r} is listed twice")
    for what, state in (("", source.weights), ("EMA weights: ", source.ema or {})):
        for name, value in state.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise WavegenError(
                    f"{where}: {what}{name} holds NaN or infinite values; not a usable trained model"
                )
    return source


def _read_source(path: Path) -> InitSource:
    folder = path.parent if path.is_file() and path.suffix == ".safetensors" else path
    if folder.is_dir() and (folder / CONFIG).is_file():
        model, config = load_exported(folder)
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        return InitSource(
            path=path,
            file=folder / "model.safetensors",
            model=model.config,
            preset=config["preset"].name,
            mel_normalize=config["mel_normalize"],
            weights=weights,
            ema=weights if config["ema"] else None,
            speakers=list(config["speakers"]),
            step=config["step"],
        )
    file = ckpt_io.resolve_checkpoint(path)
    ck = ckpt_io.load_checkpoint(file)
    model = ckpt_io.model_from_checkpoint(ck, use_ema=False, where=file)  # checks the stored recipe
    try:
        preset = check_preset(ck.get("preset"), "preset").name
    except WavegenError as err:
        raise WavegenError(f"{file}: {err}") from None
    if ck.get("ema") is not None:
        ckpt_io.model_from_checkpoint(ck, use_ema=True, where=file)  # the EMA weights fit as well
    audio = ck["recipe"].get("audio") if isinstance(ck["recipe"].get("audio"), dict) else {}
    speakers = ck.get("speakers") or []
    if not isinstance(speakers, list) or not all(isinstance(s, str) for s in speakers):
        raise WavegenError(f"{file}: speakers: expected a list of speaker names")
    return InitSource(
        path=path,
        file=file,
        model=model.config,
        preset=preset,
        mel_normalize=bool(audio.get("mel_normalize", False)),
        weights=ck["model"],
        ema=ck.get("ema"),
        speakers=list(speakers),
        step=int(ck.get("step", 0)),
    )


def check_fits(source: InitSource, recipe: Recipe) -> None:
    """Refuse a recipe whose model shape or mel front-end differs from the source's.

    The message names the key and both values, e.g. ``--init-from exp/x: model.layers is 12 in
    the recipe, 30 in the trained model``.
    """
    where = f"--init-from {source.path}"
    pairs = [("audio.preset", recipe.audio.preset, source.preset)]
    pairs.append(("audio.mel_normalize", recipe.audio.mel_normalize, source.mel_normalize))
    for f in dataclasses.fields(ModelConfig):
        if f.name != "n_speakers":
            pairs.append((f"model.{f.name}", getattr(recipe.model, f.name), getattr(source.model, f.name)))
    has_table = (recipe.model.n_speakers > 0, source.model.n_speakers > 0)
    pairs.append(("model.n_speakers", *(recipe.model.n_speakers, source.model.n_speakers)))
    for key, mine, theirs in pairs:
        if key == "model.n_speakers" and has_table[0] == has_table[1]:
            continue  # tables of different sizes are fine: rows are matched by speaker name
        if mine != theirs:
            hint = ""
            if key == "model.n_speakers":  # e.g. a multi-speaker model fine-tuned on one voice
                hint = " (one has a speaker table, the other not: set model.n_speakers, e.g. to 1)"
            raise WavegenError(
                f"{where}: {key} is {mine!r} in the recipe, {theirs!r} in the trained model{hint}"
            )


def speaker_rows(
    source: InitSource, speakers: list[str], speaker_map: dict[str, str] | None = None
) -> tuple[dict[int, int], InitReport]:
    """{row in the new table: row in the source's} by speaker name, and the report of it.

    ``speakers``: the new run's speakers in table order (features.json). ``speaker_map``
    {new speaker: known speaker} starts a new speaker from a known one's row.
    """
    speaker_map = dict(speaker_map or {})
    for new, known in speaker_map.items():
        if new not in speakers:
            raise WavegenError(f"speaker map {new}={known}: {new!r} is not a speaker of this feature cache")
        if known not in source.speakers:
            raise WavegenError(
                f"speaker map {new}={known}: the trained model knows no speaker {known!r} "
                f"(it knows {', '.join(source.speakers) or 'none'})"
            )
    report = InitReport(str(source.path), source.step, source.ema is not None)
    rows: dict[int, int] = {}
    for row, name in enumerate(speakers):
        if name in speaker_map:
            rows[row] = source.speakers.index(speaker_map[name])
            report.speakers_mapped[name] = speaker_map[name]
        elif name in source.speakers:
            rows[row] = source.speakers.index(name)
            report.speakers_taken.append(name)
        else:
            report.speakers_new.append(name)
    return rows, report


def apply_init(model: torch.nn.Module, weights: dict, rows: dict[int, int], where: str | Path) -> None:
    """Load ``weights`` (a source's raw or EMA state_dict) into ``model``, built for the recipe.

    The speaker table is copied row by row (``rows``: {new row: source row}, from
    :func:`speaker_rows`); the other rows keep the fresh values the recipe's seed gave them.
    """
    state = dict(weights)
    if SPEAKER_TABLE in state and model.speaker_embed is not None:
        table = model.state_dict()[SPEAKER_TABLE].clone()  # (n_speakers, gin_channels)
        for new_row, old_row in rows.items():
            table[new_row] = state[SPEAKER_TABLE][old_row]
        state[SPEAKER_TABLE] = table
    try:
        model.load_weights(state)
    except WavegenError as err:
        raise WavegenError(f"--init-from {where}: {err}") from None


def log_report(report: dict) -> None:
    """Say in the run's log what a fine-tune took (``report``: :meth:`InitReport.to_dict`)."""
    log.info(
        "initialised from %s (trained %d steps; %s); optimiser, schedule and step start afresh",
        report["source"],
        report["step"],
        "weights and EMA weights" if report["ema"] else "weights (no EMA copy: the EMA starts from them)",
    )
    taken, mapped, new = report["speakers_taken"], report["speakers_mapped"], report["speakers_new"]
    if taken or mapped or new:
        pairs = ", ".join(f"{n} from {k}" for n, k in mapped.items())
        log.info(
            "speakers: %d taken from the trained model (%s)%s; %d new with fresh rows (%s)",
            len(taken),
            ", ".join(taken) or "none",
            f", {len(mapped)} started from a known one ({pairs})" if mapped else "",
            len(new),
            ", ".join(new) or "none",
        )
