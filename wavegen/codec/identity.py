"""What must match between compressing and decompressing: the model and the arithmetic.

``model_sha256`` (:mod:`wavegen.model.identity`) names the weights and architecture (the same
for a run dir's EMA weights and their export). ``setup`` names what computes the probabilities.
Its *hard* fields decide whether decoding can work at all and are refused up front when they
differ; its *soft* fields (the compiler, the CPU, library builds) may or may not change the last
bit of a logit: decoding goes ahead with a warning, and the digest of the decoded codes tells if
it went wrong.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..core.errors import WavegenError
from ..generation.backends import CPU_KERNELS
from . import probability
from .container import VERSION

HARD = ("backend", "kernel_source", "constriction", "probability")
SOFT = ("torch", "numpy", "machine", "cpu_capability")  # "kernel" and "compiler" are only recorded


@lru_cache(maxsize=1)
def _compiler() -> str:
    import os

    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        return ""
    try:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (out.stdout.strip().splitlines() or [""])[0]


def _kernel_sources() -> str:
    """sha256 (16 hex) of both CPU kernels' sources: they compute the same bits by design (the
    same sums in the same order, no fused multiply-add), so a stream coded by one decodes with
    the other, and a change to either is a different arithmetic."""
    folder = Path(__file__).resolve().parents[1] / "generation"
    digest = hashlib.sha256()
    for name in ("sampler.cpp", "kernel_numba.py"):
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]


def arithmetic(backend: str) -> str:
    """The backend family recorded in a file: "kernel" for either CPU kernel, else the name."""
    return "kernel" if backend in CPU_KERNELS else backend


def setup(backend: str) -> dict:
    """The setup that computes the probabilities with ``backend`` (a resolved backend name, or
    "kernel": whichever CPU kernel this machine runs)."""
    from importlib.metadata import version

    import constriction  # noqa: F401  (its version is what matters; importing checks it exists)

    family = arithmetic(backend)
    uses_kernel = family == "kernel"
    return {
        "backend": family,
        "kernel_source": _kernel_sources() if uses_kernel else "",
        "constriction": version("constriction"),
        "probability": probability.VERSION,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "kernel": backend if backend in CPU_KERNELS else "",  # which one ran (for the record)
        "compiler": _compiler() if backend == "cpp" else "",
    }


def check(header: dict, model_digest: str, here: dict, name) -> None:
    """Refuse a file made by another model or with a hard setup difference; warn on soft ones."""
    if header.get("format_version") != VERSION:
        found = header.get("format_version")
        raise WavegenError(f"{name}: header format_version {found!r}, expected {VERSION}")
    if header.get("model_sha256") != model_digest:
        raise WavegenError(
            f"{name}: made with another model (model sha256 {str(header.get('model_sha256'))[:12]}…, "
            f"this one is {model_digest[:12]}…); decompress with the checkpoint it was compressed with"
        )
    theirs = header.get("setup", {})
    for key in HARD:
        if theirs.get(key) != here.get(key):
            raise WavegenError(
                f"{name}: compressed with {key} {theirs.get(key)!r}, this setup has {here.get(key)!r}; "
                "the probabilities would differ, so it cannot be decoded here"
            )
    differ = [f"{k} {theirs.get(k)!r} vs {here.get(k)!r}" for k in SOFT if theirs.get(k) != here.get(k)]
    if differ:
        warnings.warn(
            f"{name}: compressed on another setup ({'; '.join(differ)}); decoding is checked "
            "against the encoder's digest",
            RuntimeWarning,
            stacklevel=3,
        )
