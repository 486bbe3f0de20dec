"""Which compiled loop runs generation on the CPU, prepared once per process.

    cpp    the C++ loop (``kernel_cpp.py``), when a C++ compiler builds it
    numba  the same loop compiled by numba (``kernel_numba.py``): needs no compiler
    torch  :meth:`StepState.step` from Python, the reference: many times slower, so falling back
           to it is a loud warning that says how much slower and how to fix it

Both kernels compute the same samples bit for bit; ``cpp`` is tried first because it is the
faster of the two (see ``wavegen bench``). ``$WAVEGEN_KERNEL`` restricts the choice to one of
:data:`KERNEL_CHOICES`: a kernel's name, ``auto`` (the default), or ``torch`` (``0``) for none;
any other value is an error naming those. Builds and compiled code are cached in
``$WAVEGEN_CACHE`` (default ``~/.cache/wavegen``), or in a temporary directory when that is not
writable, so only the first process on a machine pays for them.
"""

from __future__ import annotations

import getpass
import os
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..core.device import resolve_device
from ..core.errors import WavegenError

CPU_KERNELS = ("cpp", "numba")
# What $WAVEGEN_KERNEL may say: "auto" (the default: the first of CPU_KERNELS that runs), one
# kernel's name (only it), or "torch" (none). A new kernel's name goes here (and in CPU_KERNELS
# if auto may pick it).
KERNEL_CHOICES = ("auto", *CPU_KERNELS, "torch")
_NO_KERNEL = ("torch", "0", "none")  # "0" and "none": older spellings of "torch"
# How many times slower the torch step is than the kernels at batch 1 (bench config, 2 threads,
# 2-core AMD EPYC, same process): 14-16x best of three runs, 9.5-13x in `wavegen bench`'s
# torch_step_slowdown on a heavily loaded machine.
TORCH_SLOWDOWN = 15


@dataclass
class Kernel:
    """A prepared CPU kernel: ``handle`` is the ctypes library (cpp) or compiled function (numba)."""

    name: str
    handle: object
    seconds: float  # what preparing it took in this process (build/compile or cache load)
    cached: bool  # loaded from the cache rather than built or compiled now
    cache_dir: Path


_kernels: dict[str, Kernel | None] = {}
_errors: dict[str, str] = {}
_lock = threading.Lock()
_warned_torch = False


def cache_root() -> Path:
    """A writable cache dir: $WAVEGEN_CACHE, else ~/.cache/wavegen, else a temporary one."""
    candidates = [os.environ.get("WAVEGEN_CACHE") or Path.home() / ".cache" / "wavegen"]
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    candidates.append(Path(tempfile.gettempdir()) / f"wavegen-cache-{user}")
    for candidate in candidates:
        path = Path(candidate)
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
            return path
        except OSError:
            continue
    return Path(tempfile.mkdtemp(prefix="wavegen-cache-"))


def allowed_kernels() -> tuple[str, ...]:
    """The CPU kernels ``auto`` may use, in order of preference ($WAVEGEN_KERNEL)."""
    value = os.environ.get("WAVEGEN_KERNEL")
    choice = (value or "").strip().lower() or "auto"  # set but empty: as if unset
    if choice in _NO_KERNEL:
        return ()
    if choice not in KERNEL_CHOICES:
        raise WavegenError(
            f"WAVEGEN_KERNEL={value!r}: expected one of {', '.join(KERNEL_CHOICES)} (or unset)"
        )
    return CPU_KERNELS if choice == "auto" else (choice,)


def _prepare(name: str) -> Kernel:
    root = cache_root()
    start = time.perf_counter()
    if name == "cpp":
        from . import kernel_cpp

        cache_dir = root / "kernels"
        cache_dir.mkdir(parents=True, exist_ok=True)
        compiler = kernel_cpp.find_compiler()
        cached = compiler is not None and kernel_cpp.library_path(cache_dir, compiler).exists()
        handle = kernel_cpp.load(cache_dir)
        return Kernel(name, handle, time.perf_counter() - start, cached, cache_dir)
    from . import kernel_numba

    cache_dir = kernel_numba.cache_dir_for_numba(root)
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, seconds = kernel_numba.compile_run_rows(cache_dir)
    cached = sum(handle.stats.cache_hits.values()) > 0
    return Kernel(name, handle, seconds, cached, cache_dir)


def get_kernel(name: str) -> Kernel | None:
    """The prepared kernel ``name`` ("cpp" or "numba"), or None if it cannot run here.

    Prepared at most once per process; why it failed is kept in :func:`kernel_error`.
    """
    with _lock:
        if name not in _kernels:
            try:
                _kernels[name] = _prepare(name)
            except Exception as err:  # any failure means "not available": the caller falls back
                _kernels[name] = None
                _errors[name] = f"{type(err).__name__}: {err}" if name == "numba" else str(err)
                _warn_if_broken(name, _errors[name])
        return _kernels[name]


def kernel_error(name: str) -> str | None:
    return _errors.get(name)


def _warn_if_broken(name: str, error: str) -> None:
    """A compiler that exists but fails deserves a warning with its output; no compiler at all
    is the normal case the numba kernel is for, so that is quiet."""
    if name == "cpp" and not error.startswith("no C++ compiler"):
        warnings.warn(
            f"wavegen: the C++ sampler kernel could not be built; using the numba kernel if it "
            f"works. {error}",
            RuntimeWarning,
            stacklevel=4,
        )


def best_cpu_kernel() -> Kernel | None:
    """The fastest CPU kernel that runs here (cpp, else numba), or None with a loud warning."""
    for name in allowed_kernels():
        kernel = get_kernel(name)
        if kernel is not None:
            return kernel
    _warn_torch_fallback()
    return None


def _warn_torch_fallback() -> None:
    global _warned_torch
    if _warned_torch:
        return
    _warned_torch = True
    allowed = allowed_kernels()
    why = "; ".join(f"{n}: {kernel_error(n)}" for n in allowed) or "disabled by WAVEGEN_KERNEL"
    warnings.warn(
        f"wavegen: NO COMPILED CPU SAMPLER ({why}). Generation falls back to the pure-torch step, "
        f"about {TORCH_SLOWDOWN}x slower at batch 1 (`wavegen bench` measures it). To fix it, make numba "
        "importable (`pip install numba`, it comes with librosa) or install a C++ compiler "
        "(g++ or clang, or set CXX); unset WAVEGEN_KERNEL if it is set. `wavegen warmup` "
        "shows which backend runs.",
        RuntimeWarning,
        stacklevel=4,
    )


def cpu_backend() -> str:
    """What ``backend="auto"`` runs on the CPU here: "cpp", "numba" or "torch"."""
    kernel = best_cpu_kernel()
    return "torch" if kernel is None else kernel.name


def backend_for(device) -> str:
    """What ``backend="auto"`` runs for a float32 model on ``device`` (prepares the kernel).

    Raises:
        WavegenError: ``device`` does not exist here (see :func:`wavegen.device.resolve_device`).
    """
    return "cuda-graph" if resolve_device(device).type == "cuda" else cpu_backend()
