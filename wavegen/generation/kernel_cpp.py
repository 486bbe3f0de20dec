"""Build and call the C++ sampler loop (``sampler.cpp``, shipped in the package) through ctypes.

The library is a plain C ABI shared object built with the machine's C++ compiler (``$CXX``,
else ``g++``, else ``c++``; GCC 9+ or clang) at first use, in about a second (it includes no
torch headers), and cached in the kernel cache dir keyed by a hash of the source, the compiler,
the flags and the CPU (it is built with ``-march=native``). Several processes starting at once
build it once: the build runs under a file lock and the others wait for it, then load it. At
load the ctypes mirrors of the C++ structs are checked against the sizes the library reports.

:func:`load` raises :class:`KernelUnavailable` with the compiler's whole output when anything
fails; :mod:`.backends` turns that into one warning and picks the numba kernel instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("sampler.cpp")
# -ffp-contract=off: no fused multiply-adds (clang fuses by default), so every sum is rounded
# as in the numba kernel and the two agree bit for bit.
FLAGS = ["-O3", "-march=native", "-std=c++17", "-ffp-contract=off", "-fPIC", "-shared", "-pthread"]


class KernelUnavailable(RuntimeError):
    """The C++ kernel cannot be built or loaded here; the message says why, in full."""


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


_POINTER_TYPES = {
    torch.float32: _f32p,
    torch.int64: _i64p,
    torch.int32: _i32p,
    torch.float64: ctypes.POINTER(ctypes.c_double),
}


def ptr(tensor: torch.Tensor | None, offset: int = 0):
    """A ctypes pointer to element ``offset`` of a contiguous CPU tensor (None -> NULL)."""
    if tensor is None:
        return None
    kind = _POINTER_TYPES[tensor.dtype]
    return ctypes.cast(tensor.data_ptr() + offset * tensor.element_size(), kind)


def _cpu_signature() -> str:
    # -march=native code must not run on another CPU sharing the same home directory.
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags", "Features"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def find_compiler() -> str | None:
    """$CXX, else g++, else c++ on PATH (None if there is none)."""
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def library_path(
    cache_dir: Path,
    compiler: str,
    source: Path = SOURCE,
    flags: list[str] = FLAGS,
    stem: str = "wavegen_sampler",
) -> Path:
    """Where the library for this source, compiler, flags and CPU is cached."""
    key = "\n".join([source.read_text(), compiler, " ".join(flags), _cpu_signature()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"{stem}_{digest}.so"


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive lock on ``path`` across processes (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent builds just replace each other's result
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(compiler: str, target: Path, source: Path, flags: list[str]) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        command = [compiler, *flags, str(source), "-o", str(out)]
        try:
            proc = subprocess.run(command, capture_output=True, text=True)
        except OSError as err:
            raise KernelUnavailable(f"{compiler} could not be run: {err}") from None
        if proc.returncode != 0 or not out.is_file():
            output = (proc.stdout + proc.stderr).strip() or "(no output)"
            raise KernelUnavailable(f"{' '.join(command)} failed with exit code {proc.returncode}:\n{output}")
        os.replace(out, target)  # atomic: a reader never sees half a library


def build_and_open(cache_dir: Path, source: Path, flags: list[str], stem: str) -> ctypes.CDLL:
    """Build ``source`` into a cached library if needed (once, under a lock) and open it.

    Raises:
        KernelUnavailable: no compiler, a failed build (with the compiler's whole output), or a
            library that does not load.
    """
    compiler = find_compiler()
    if compiler is None:
        raise KernelUnavailable("no C++ compiler found (set CXX, or install g++ or clang)")
    target = library_path(cache_dir, compiler, source, flags, stem)
    if not target.exists():
        with _file_lock(cache_dir / "build.lock"):
            if not target.exists():  # another process may have built it while we waited
                _build(compiler, target, source, flags)
    try:
        return ctypes.CDLL(str(target))
    except OSError as err:
        raise KernelUnavailable(f"{target} does not load: {err}") from None


def check_struct_sizes(lib, target: str, pairs) -> None:
    """Refuse a library whose structs differ from their ctypes mirrors: ((C function, Structure), …)."""
    for name, struct in pairs:
        size = getattr(lib, name)
        size.restype = ctypes.c_int64
        if size() != ctypes.sizeof(struct):
            raise KernelUnavailable(
                f"{target}: sizeof({struct.__name__}) is {size()} in C++ but {ctypes.sizeof(struct)} "
                "in Python; the two struct definitions differ"
            )


def load(cache_dir: Path):
    """Build the library if needed (once, under a lock) and load it -> the ctypes library.

    Raises:
        KernelUnavailable: no compiler, a failed build (with the compiler's whole output), or a
            library whose structs differ from the ctypes mirrors.
    """
    lib = build_and_open(cache_dir, SOURCE, FLAGS, "wavegen_sampler")
    check_struct_sizes(lib, lib._name, (("wg_sizeof_model", WGModel), ("wg_sizeof_run", WGRun)))
    lib.wg_run.argtypes = [ctypes.POINTER(WGModel), ctypes.POINTER(WGRun)]
    lib.wg_run.restype = ctypes.c_int
    return lib


class CppRunner:
    """Runs :class:`StepState` steps with the library: the model struct is built once."""

    def __init__(self, lib, weights):
        w = weights
        self.lib = lib
        # The int tensors must live as long as the struct that points into them.
        self._ints = [torch.tensor(v, dtype=torch.int32) for v in (w.dilations, w.ring_offsets, w.ring_sizes)]
        self.model = WGModel(
            w.layers,
            w.kernel_size,
            w.residual,
            w.gate,
            w.skip,
            w.classes,
            w.ring_total,
            *[ptr(v) for v in self._ints],
            ptr(w.embed),
            ptr(w.conv_w),
            ptr(w.os_w),
            ptr(w.os_b),
            ptr(w.post1_w),
            ptr(w.post1_b),
            ptr(w.post2_w),
            ptr(w.post2_b),
            ptr(w.decode),
        )

    def run(self, s, t: int, i0: int, steps: int, threads: int) -> None:
        """Advance every row of state ``s`` by ``steps`` samples from absolute time ``t``, chunk
        index ``i0`` (the state's counters are the caller's business)."""
        B, LG, Q = s.batch, s.weights.layers * s.weights.gate, s.weights.classes
        run = WGRun(
            B,
            steps,
            threads,
            t,
            s.temperature,
            ptr(s.rings),
            ptr(s.prev),
            ptr(s.cond, i0 * LG),
            s.chunk * LG,
            ptr(s.uniform, i0 * B) if s.mode == "sample" else None,
            ptr(s.forced, i0 * B) if s.forced is not None else None,
            ptr(s.limit),
            ptr(s.audio, i0),
            s.chunk,
            None,
            ptr(s.logits, i0 * Q) if s.logits is not None else None,
        )
        self.lib.wg_run(self.model, run)
