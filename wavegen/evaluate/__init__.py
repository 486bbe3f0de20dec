"""Objective evaluation of vocoders: the metrics vocoder papers report, with baselines, 95 %
t-intervals, plots and a report, in one call.

- :func:`evaluate_model`: copy-synthesis of a corpus split with a wavegen model, plus the
  Griffin-Lim and ground-truth baselines from the same mels;
- :func:`evaluate_folders`: any systems' WAVs, matched to reference WAVs by file name.

Modules: ``metrics`` (each metric and its definition), ``alignment`` (DTW), ``stats`` (the
t-interval), ``pairing`` (which files are compared), ``runner`` (the process pool and
metrics.csv), ``plots`` and ``report`` (the pictures and the report files), ``pipeline`` (from
a plan to the report folder) and ``copysynth`` (the first form).
"""

from __future__ import annotations

from pathlib import Path

from ..core.features import MelPreset, get_preset
from .copysynth import GRIFFIN_LIM, evaluate_model
from .metrics import DEFINITIONS, METRICS
from .pairing import REFERENCE, make_plan
from .pipeline import check_run, run_plan

# The preset (log-mel, hop, evaluation rate) used for folders of WAVs at these rates.
PRESET_BY_RATE = {22050: "tacotron2", 24000: "espnet-24k"}


def evaluate_folders(
    reference: str | Path,
    systems: list[tuple[str, str | Path]],
    out: str | Path,
    preset: str | MelPreset | None = None,
    jobs: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Score each (name, folder) of WAVs against the reference folder; -> the summary dict.

    ``preset`` (default: by the first reference file's rate, tacotron2 at 22.05 kHz, espnet-24k
    at 24 kHz) sets the log-mel and the evaluation rate; files at other rates are resampled.
    """
    from ..core.errors import WavegenError
    from .metrics import check_dependencies

    check_dependencies()
    reference, out = Path(reference), Path(out)
    plan = make_plan(reference, [(n, Path(f)) for n, f in systems])
    if preset is None:
        import soundfile as sf

        first = plan.references[plan.utterances[0]]
        try:
            rate = sf.info(str(first)).samplerate
        except Exception as err:
            raise WavegenError(f"{first}: not readable as audio ({err})") from None
        if rate not in PRESET_BY_RATE:
            raise WavegenError(
                f"{first}: references at {rate} Hz; pass --preset (tacotron2 evaluates at 22050 Hz, "
                "espnet-24k at 24000 Hz)"
            )
        preset = PRESET_BY_RATE[rate]
    p = get_preset(preset) if isinstance(preset, str) else preset
    identity = {
        "form": "folders",
        "reference": str(reference.resolve()),
        "systems": {n: str(Path(f).resolve()) for n, f in systems},
        "preset": p.name,
    }
    check_run(out, identity, overwrite)
    context = {
        "title": "wavegen evaluation: " + ", ".join(n for n, _ in systems),
        "description": [
            f"references: {reference} ({len(plan.references)} files)",
            *[f"system {n}: {f}" for n, f in systems],
            f"evaluated at {p.sample_rate} Hz with the {p.name} preset's log-mel; {REFERENCE} is the "
            "references scored against themselves (the best possible row)",
        ],
        "form": "folders",
        "reference": str(reference),
    }
    return run_plan(plan, p, out, context, None, jobs, progress)


__all__ = [
    "DEFINITIONS",
    "GRIFFIN_LIM",
    "METRICS",
    "REFERENCE",
    "check_run",
    "evaluate_folders",
    "evaluate_model",
    "make_plan",
]
