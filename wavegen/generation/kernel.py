"""Build and call the compiled CPU sampler loop (``kernel_source.py``) through ctypes.

The library is a plain C ABI shared object built with the machine's ``g++`` at first use
(about a second: it includes no torch headers) and cached under
``$WAVEGEN_CACHE`` or ``~/.cache/wavegen/kernels``, keyed by a hash of the source, the flags and
the CPU (it is built with ``-march=native``). If there is no compiler or the build fails,
:func:`load_kernel` returns None once with a warning and callers use the pure-torch step.
``WAVEGEN_KERNEL=0`` disables it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

from .kernel_source import SOURCE

_FLAGS = ["-O3", "-march=native", "-std=c++17", "-fPIC", "-shared", "-pthread"]
_NOT_LOADED = object()
_lib = _NOT_LOADED

_i32p = ctypes.POINTER(ctypes.c_int32)
_i64p = ctypes.POINTER(ctypes.c_int64)
_f32p = ctypes.POINTER(ctypes.c_float)


class WGModel(ctypes.Structure):
    _fields_ = [
        ("layers", ctypes.c_int32),
        ("kernel", ctypes.c_int32),
        ("R", ctypes.c_int32),
        ("G", ctypes.c_int32),
        ("S", ctypes.c_int32),
        ("Q", ctypes.c_int32),
        ("ring_total", ctypes.c_int32),
        ("dilation", _i32p),
        ("ring_off", _i32p),
        ("ring_size", _i32p),
        ("embed", _f32p),
        ("conv_w", _f32p),
        ("os_w", _f32p),
        ("os_b", _f32p),
        ("post1_w", _f32p),
        ("post1_b", _f32p),
        ("post2_w", _f32p),
        ("post2_b", _f32p),
        ("decode", _f32p),
    ]


class WGRun(ctypes.Structure):
    _fields_ = [
        ("batch", ctypes.c_int32),
        ("steps", ctypes.c_int32),
        ("threads", ctypes.c_int32),
        ("t0", ctypes.c_int64),
        ("temperature", ctypes.c_float),
        ("rings", _f32p),
        ("prev", _i64p),
        ("cond", _f32p),
        ("cond_stride", ctypes.c_int64),
        ("uniform", _f32p),
        ("forced", _i64p),
        ("limit", _i64p),
        ("audio", _f32p),
        ("audio_stride", ctypes.c_int64),
        ("classes", _i64p),
        ("logits", _f32p),
    ]


_POINTER_TYPES = {torch.float32: _f32p, torch.int64: _i64p, torch.int32: _i32p}


def ptr(tensor: torch.Tensor | None, offset: int = 0):
    """A ctypes pointer to element ``offset`` of a contiguous CPU tensor (None -> NULL)."""
    if tensor is None:
        return None
    kind = _POINTER_TYPES[tensor.dtype]
    return ctypes.cast(tensor.data_ptr() + offset * tensor.element_size(), kind)


def _cache_dir() -> Path:
    root = os.environ.get("WAVEGEN_CACHE") or os.path.join(Path.home(), ".cache", "wavegen")
    return Path(root) / "kernels"


def _cpu_signature() -> str:
    # -march=native code must not run on another CPU sharing the same home directory.
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def _build(target: Path) -> None:
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("no C++ compiler (g++) found")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "wavegen_sampler.cpp"
        src.write_text(SOURCE)
        out = Path(tmp) / target.name
        proc = subprocess.run([compiler, *_FLAGS, str(src), "-o", str(out)], capture_output=True, text=True)
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["?"])[0]
            raise RuntimeError(f"{compiler} failed: {first}")
        os.replace(out, target)  # atomic: a concurrent build just replaces it with the same


def load_kernel():
    """The loaded ctypes library, or None if it is disabled or cannot be built (warns once)."""
    global _lib
    if _lib is not _NOT_LOADED:
        return _lib
    _lib = None
    if os.environ.get("WAVEGEN_KERNEL", "1") == "0":
        return None
    key = hashlib.sha256((SOURCE + " ".join(_FLAGS) + _cpu_signature()).encode()).hexdigest()
    target = _cache_dir() / f"wavegen_sampler_{key[:16]}.so"
    try:
        if not target.exists():
            _build(target)
        lib = ctypes.CDLL(str(target))
        lib.wg_run.argtypes = [ctypes.POINTER(WGModel), ctypes.POINTER(WGRun)]
        lib.wg_run.restype = ctypes.c_int
        _lib = lib
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        warnings.warn(
            f"wavegen: compiled CPU sampler unavailable ({err}); using the slower torch step",
            RuntimeWarning,
            stacklevel=2,
        )
    return _lib
