"""Which files are compared: references matched to each system's WAVs by file name.

A reference folder defines the utterances (one per audio file, named by its file name without
the suffix). Each system's folder is searched the same way; an utterance a system lacks, or a
system file with no reference of its name, is listed as skipped with the reason, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core.audio import AUDIO_SUFFIXES
from ..core.errors import WavegenError

REFERENCE = "ground_truth"  # the name of the sanity row: the references scored against themselves


@dataclass
class Plan:
    """utterances: sorted ids; systems: {name: {utterance: path}} in the order given (the
    reference's own row, REFERENCE, is one of them); skipped: [{"system", "utterance", "reason"}]."""

    references: dict[str, Path]
    systems: dict[str, dict[str, Path]]
    skipped: list[dict] = field(default_factory=list)

    @property
    def utterances(self) -> list[str]:
        return sorted(self.references)


def check_name(name: str, option: str) -> str:
    """System names become folder and column names: letters, digits, '-', '_', '.' only."""
    if not name or name.startswith(".") or not all(c.isalnum() or c in "-_." for c in name):
        raise WavegenError(f"{option} {name!r}: a system name may hold letters, digits, '-', '_' and '.'")
    return name


def audio_files(folder: Path, what: str) -> dict[str, Path]:
    """{file name without suffix: path} of the audio files in ``folder`` and below."""
    if not folder.is_dir():
        raise WavegenError(f"{folder}: no such folder ({what})")
    files: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if hidden or path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
            continue
        if path.stem in files:
            raise WavegenError(f"{path}: two {what} files are named {path.stem!r} (also {files[path.stem]})")
        files[path.stem] = path
    return files


def make_plan(reference: Path, systems: list[tuple[str, Path]], reference_row: bool = True) -> Plan:
    """Match every system folder's files to the reference folder's by name."""
    names = [n for n, _ in systems]
    for name in names:
        check_name(name, "--sys")
        if names.count(name) > 1 or name == REFERENCE:
            raise WavegenError(
                f"--sys {name}: system names must be unique and not {REFERENCE!r} (the references' own row)"
            )
    references = audio_files(reference, "reference")
    if not references:
        raise WavegenError(f"{reference}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    plan = Plan(references, {})
    for name, folder in systems:
        found = audio_files(folder, f"system {name}")
        if not set(found) & set(references):  # a wrong folder, not a few missing files
            raise WavegenError(
                f"--sys {name}={folder}: none of its {len(found)} audio files is named like a reference in "
                f"{reference} (e.g. {next(iter(sorted(references)))}.wav)"
            )
        plan.systems[name] = {u: p for u, p in found.items() if u in references}
        for u in sorted(set(references) - set(found)):
            plan.skipped.append({"system": name, "utterance": u, "reason": f"missing: no {u}.* in {folder}"})
        for u in sorted(set(found) - set(references)):
            plan.skipped.append(
                {"system": name, "utterance": u, "reason": f"no reference named {u} in {reference}"}
            )
    if reference_row:
        plan.systems[REFERENCE] = dict(references)
    return plan
