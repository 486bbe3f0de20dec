"""Which compiled loop runs generation on the CPU, prepared once per process.

    cpp    the C++ loop (``kernel_cpp.py``), when a C++ compiler builds it
    numba  the same loop compiled by numba (``kernel_numba.py``): needs no compiler
    torch  :meth:`StepState.step` from Python, the reference: many times slower, so falling back
           to it is a loud warning that says how much slower and how to fix it
    cpp-bf16  reduced precision (``kernel_bf16.py``): bf16 weights, fp32 fused sums, AVX-512 /
           AVX2 / scalar chosen at run time; close to the others, not bit-exact with them

The two fp32 kernels compute the same samples bit for bit; ``cpp`` is tried first because it is
the faster of the two (see ``wavegen bench``). Precision ``auto`` (:func:`default_precision`)
is bf16 where ``cpp-bf16`` builds and the CPU has a vector path for it (AVX2+FMA or AVX-512),
else fp32. ``$WAVEGEN_KERNEL`` restricts the choice to one of :data:`KERNEL_CHOICES`: a kernel's
name, ``auto`` (the default), or ``torch`` (``0``) for none; any other value is an error naming
those. Builds and compiled code are cached in
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

CPU_KERNELS = ("cpp", "numba")  # the fp32 kernels, bit-exact with each other (the codec's)
REDUCED_KERNELS = ("cpp-bf16",)  # reduced precision, chosen by precision "bf16"
KERNEL_NAMES = CPU_KERNELS + REDUCED_KERNELS  # every compiled CPU kernel
PRECISIONS = ("auto", "fp32", "bf16")
# What $WAVEGEN_KERNEL may say: "auto" (the default: any kernel, the precision picks among them),
# one kernel's name (only it), or "torch" (none). A new kernel's name goes in KERNEL_NAMES.
KERNEL_CHOICES = ("auto", *KERNEL_NAMES, "torch")
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
    return KERNEL_NAMES if choice == "auto" else (choice,)


def _prepare(name: str) -> Kernel:
    root = cache_root()
    start = time.perf_counter()
    if name == "cpp-bf16":
        from . import kernel_bf16, kernel_cpp

        cache_dir = root / "kernels"
        cache_dir.mkdir(parents=True, exist_ok=True)
        compiler = kernel_cpp.find_compiler()
        path = compiler and kernel_cpp.library_path(
            cache_dir, compiler, kernel_bf16.SOURCE, kernel_bf16.FLAGS, "wavegen_sampler_bf16"
        )
        cached = bool(path) and path.exists()
        handle = kernel_bf16.load(cache_dir)
        return Kernel(name, handle, time.perf_counter() - start, cached, cache_dir)
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
    """The prepared kernel ``name`` (one of :data:`KERNEL_NAMES`), or None if it cannot run here.

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
    if name in ("cpp", "cpp-bf16") and not error.startswith("no C++ compiler"):
        instead = "the numba kernel if it works" if name == "cpp" else "an fp32 kernel"
        warnings.warn(
            f"wavegen: the C++ sampler kernel {name} could not be built; using {instead}. {error}",
            RuntimeWarning,
            stacklevel=4,
        )


def best_cpu_kernel() -> Kernel | None:
    """The fastest fp32 CPU kernel that runs here (cpp, else numba), or None with a loud warning."""
    for name in allowed_kernels():
        if name not in CPU_KERNELS:
            continue
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


def bf16_level() -> int | None:
    """The instruction-set level ``cpp-bf16`` runs at here (0 scalar, 1 AVX2+FMA, 2 AVX-512F,
    capped by $WAVEGEN_CPU_LEVEL), or None if it is not allowed or does not build."""
    if "cpp-bf16" not in allowed_kernels():
        return None
    kernel = get_kernel("cpp-bf16")
    if kernel is None:
        return None
    from .kernel_bf16 import cpu_level

    return cpu_level(kernel.handle)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise WavegenError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def default_precision() -> str:
    """What precision "auto" means on this CPU: "bf16" where ``cpp-bf16`` has a vector path
    (the scalar emulation is slower than the fp32 kernel), else "fp32"."""
    level = bf16_level()
    return "bf16" if level is not None and level >= 1 else "fp32"


def cpu_backend(precision: str = "fp32") -> str:
    """What ``backend="auto"`` runs on the CPU here: "cpp-bf16" (precision bf16, or auto where
    :func:`default_precision` says so), else "cpp", "numba" or "torch"."""
    if check_precision(precision) == "auto":
        precision = default_precision()
    if precision == "bf16":
        if get_kernel("cpp-bf16") is None:
            raise WavegenError(
                f"precision bf16: the cpp-bf16 kernel could not be built ({kernel_error('cpp-bf16')})"
            )
        return "cpp-bf16"
    kernel = best_cpu_kernel()
    return "torch" if kernel is None else kernel.name


def backend_for(device, precision: str = "fp32") -> str:
    """What ``backend="auto"`` runs for a float32 model on ``device`` at ``precision``
    (prepares the kernel).

    Raises:
        WavegenError: ``device`` does not exist here (see :func:`wavegen.device.resolve_device`).
    """
    if resolve_device(device).type == "cuda":
        if check_precision(precision) == "bf16":
            raise WavegenError("precision bf16 is a CPU kernel; on CUDA pass dtype=torch.bfloat16")
        return "cuda-graph"
    return cpu_backend(precision)
