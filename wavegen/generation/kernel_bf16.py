"""Build and call the reduced-precision C++ sampler (``sampler_bf16.cpp``): backend "cpp-bf16".

Weights in bfloat16 (two rows packed per 32-bit word), sums in fp32 with fused multiply-adds,
the instruction set chosen at run time: AVX-512F, else AVX2+FMA, else scalar ``std::fma``. The
three compute the same bits (the scalar path is the exact emulation of the vector ones), so the
choice changes the speed only. ``$WAVEGEN_CPU_LEVEL`` (``avx512``, ``avx2`` or ``scalar``) or
the ``level`` argument caps it, which is how a CPU without the instructions is simulated.

The library is built without ``-march=native`` (only functions marked with a target attribute
use wider vectors), cached like the fp32 kernel's (:mod:`.kernel_cpp`).
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

import torch

from ..core.errors import WavegenError
from .kernel_cpp import KernelUnavailable, build_and_open, check_struct_sizes, ptr
from .weights import StepWeights

SOURCE = Path(__file__).with_name("sampler_bf16.cpp")
# No -march=native: the vector paths are chosen at run time. -ffp-contract=off: no fused
# multiply-adds besides the explicit ones, so every path rounds the same.
FLAGS = ["-O3", "-std=c++17", "-ffp-contract=off", "-fPIC", "-shared", "-pthread"]
LEVELS = ("scalar", "avx2", "avx512")  # index = the C++ level
LEVEL_ENV = "WAVEGEN_CPU_LEVEL"

_i32p = ctypes.POINTER(ctypes.c_int32)
_i64p = ctypes.POINTER(ctypes.c_int64)
_f32p = ctypes.POINTER(ctypes.c_float)
_f64p = ctypes.POINTER(ctypes.c_double)


class WGLModel(ctypes.Structure):
    _fields_ = [
        *[(n, ctypes.c_int32) for n in ("layers", "kernel", "R", "G", "S", "Q", "ring_total")],
        ("dilation", _i32p),
        ("ring_off", _i32p),
        ("ring_size", _i32p),
        ("embed", _f32p),
        ("conv_w", _i32p),  # uint32 words in C++
        ("os_w", _i32p),
        ("os_b", _f32p),
        ("post1_w", _i32p),
        ("post1_b", _f32p),
        ("post2_w", _i32p),
        ("post2_b", _f32p),
        ("decode", _f32p),
    ]


class WGLRun(ctypes.Structure):
    _fields_ = [
        ("batch", ctypes.c_int32),
        ("steps", ctypes.c_int32),
        ("threads", ctypes.c_int32),
        ("level", ctypes.c_int32),
        ("split", ctypes.c_int32),
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
        ("profile", _f64p),
    ]


def load(cache_dir: Path):
    """Build (once, cached) and load the library -> the ctypes library; KernelUnavailable if not."""
    lib = build_and_open(cache_dir, SOURCE, FLAGS, "wavegen_sampler_bf16")
    check_struct_sizes(lib, lib._name, (("wg_lp_sizeof_model", WGLModel), ("wg_lp_sizeof_run", WGLRun)))
    lib.wg_lp_run.argtypes = [ctypes.POINTER(WGLModel), ctypes.POINTER(WGLRun)]
    lib.wg_lp_run.restype = ctypes.c_int
    lib.wg_lp_cpu_level.restype = ctypes.c_int
    lib.wg_lp_barrier_seconds.argtypes = [ctypes.c_int]
    lib.wg_lp_barrier_seconds.restype = ctypes.c_double
    return lib


def level_cap() -> int:
    """The instruction-set cap from $WAVEGEN_CPU_LEVEL (default: no cap)."""
    text = os.environ.get(LEVEL_ENV, "").strip().lower()
    if not text:
        return len(LEVELS) - 1
    if text not in LEVELS:
        raise WavegenError(f"${LEVEL_ENV}: expected one of {', '.join(LEVELS)}, got {text!r}")
    return LEVELS.index(text)


def cpu_level(lib, cap: int | None = None) -> int:
    """The widest path this CPU runs (0 scalar, 1 AVX2+FMA, 2 AVX-512F), capped."""
    return min(int(lib.wg_lp_cpu_level()), level_cap() if cap is None else cap)


def bf16_round(w: torch.Tensor) -> torch.Tensor:
    """fp32 values rounded to bfloat16 (nearest, ties to even) and back: what the kernel uses."""
    return w.to(torch.bfloat16).float()


def pack_pairs(w: torch.Tensor) -> torch.Tensor:
    """(K, N) float -> (K/2, N) int32 words: bf16(w[2i+1]) << 16 | bf16(w[2i]) (K even)."""
    bits = w.to(torch.bfloat16).view(torch.int16).to(torch.int64) & 0xFFFF
    words = (bits[1::2] << 16) | bits[0::2]
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32).contiguous()


def fits(config) -> bool:
    """Whether a model (its ModelConfig) fits the packing: gate channels a multiple of 8 (two
    parts of an even number of pairs), even kernel·residual, skip and classes."""
    c = config
    kr = c.kernel_size * c.residual_channels
    return (
        c.gate_channels % 8 == 0 and kr % 2 == 0 and c.skip_channels % 2 == 0 and c.quantize_channels % 2 == 0
    )


def check_shapes(w: StepWeights) -> None:
    """The packing needs even k·R, S and G/4 pairs per part, and an even number of classes."""
    H = w.gate // 2
    if w.gate % 2 or H % 4 or (w.kernel_size * w.residual) % 2 or w.skip % 2 or w.classes % 2:
        raise WavegenError(
            f"backend 'cpp-bf16' needs gate channels a multiple of 8 and even kernel·residual, skip "
            f"and classes; this model has gate {w.gate}, kernel·residual {w.kernel_size * w.residual}, "
            f"skip {w.skip}, classes {w.classes} (use precision fp32)"
        )


def pack(w: StepWeights) -> dict[str, torch.Tensor]:
    """The step weights in the kernel's layout (see ``sampler_bf16.cpp``)."""
    check_shapes(w)
    H, P = w.gate // 2, w.gate // 4
    conv, os_ = [], []
    for layer in range(w.layers):
        cw, ow = w.conv_w[layer].float(), w.os_w[layer].float()  # (kR, G), (H, R+S)
        for part in range(2):
            cols = torch.cat([cw[:, part * P : (part + 1) * P], cw[:, H + part * P : H + (part + 1) * P]], 1)
            conv.append(pack_pairs(cols))
            os_.append(pack_pairs(ow[part * P : (part + 1) * P]))
    return {
        "conv_w": torch.stack(conv).contiguous(),  # (L·2, kR/2, H)
        "os_w": torch.stack(os_).contiguous(),  # (L·2, P/2, R+S)
        "post1_w": pack_pairs(w.post1_w.float()),
        "post2_w": pack_pairs(w.post2_w.float()),
    }


SPLITS = ("auto", "rows", "team")  # index = WGLRun.split
TEAM_MIN_STEPS = 64  # as in sampler_bf16.cpp: shorter calls run on one thread
RETRY_EVERY = 8  # calls between re-measurements of the split auto did not pick
PROBE_STEPS = 256  # steps of a timed probe of one split


class Bf16Runner:
    """Runs :class:`StepState` steps with the library: weights packed and the struct built once.

    ``split``: "auto", or "rows" / "team" to force one. At batch ≥ threads auto splits the rows.
    At batch < threads it measures: the first call runs a short probe (:data:`PROBE_STEPS`) as a
    team of two threads on the same rows and one on one thread, then the rest of its steps and
    later calls with the faster; every :data:`RETRY_EVERY` calls the other is probed again.
    A team only pays on idle cores (each sample waits at layers + 1 barriers); on a machine
    whose cores are busy with other work, a barrier can wait for a whole time slice. Both
    compute the same bits, so the choice changes only the speed. ``profile``: ``profile_seconds``
    sums, over the runs, (threads, 2) seconds: each thread's time in the kernel and at barriers.
    """

    def __init__(
        self, lib, weights: StepWeights, level: int | None = None, split: str = "auto", profile: bool = False
    ):
        w = weights
        self.lib = lib
        self.level = cpu_level(lib, level)
        self.packed = pack(w)
        self._ints = [torch.tensor(v, dtype=torch.int32) for v in (w.dilations, w.ring_offsets, w.ring_sizes)]
        self.split = SPLITS.index(split)
        self._rates: dict[int, float] = {}  # split -> samples/s of its last timed call
        self._calls = 0
        self.profile = profile
        self.profile_seconds: torch.Tensor | None = None
        p = self.packed
        self.model = WGLModel(
            w.layers,
            w.kernel_size,
            w.residual,
            w.gate,
            w.skip,
            w.classes,
            w.ring_total,
            *[ptr(v) for v in self._ints],
            ptr(w.embed),
            ptr(p["conv_w"]),
            ptr(p["os_w"]),
            ptr(w.os_b),
            ptr(p["post1_w"]),
            ptr(w.post1_b),
            ptr(p["post2_w"]),
            ptr(w.post2_b),
            ptr(w.decode),
        )

    def run(self, s, t: int, i0: int, steps: int, threads: int) -> None:
        """Advance every row of state ``s`` by ``steps`` samples (as ``CppRunner.run``)."""
        if not (self.split == 0 and s.batch < threads and steps >= TEAM_MIN_STEPS):
            self._call(s, t, i0, steps, threads, self.split)
            return
        # Time a short probe of each split not measured yet (or due again), then run the rest
        # with the faster: consecutive calls continue from the state's buffers, so the samples
        # are the same however the steps are cut.
        self._calls += 1
        due = [sp for sp in (2, 1) if sp not in self._rates]
        if not due and self._calls % RETRY_EVERY == 0:
            due = [3 - max(self._rates, key=self._rates.get)]
        for split in due:
            n = min(PROBE_STEPS, steps)
            if n < TEAM_MIN_STEPS:
                break
            start = time.perf_counter()
            self._call(s, t, i0, n, threads, split)
            self._rates[split] = n / max(time.perf_counter() - start, 1e-9)
            t, i0, steps = t + n, i0 + n, steps - n
        if steps:
            self._call(s, t, i0, steps, threads, max(self._rates, key=self._rates.get))

    def _call(self, s, t: int, i0: int, steps: int, threads: int, split: int) -> None:
        B, LG, Q = s.batch, s.weights.layers * s.weights.gate, s.weights.classes
        prof = torch.zeros(max(threads, 2), 2, dtype=torch.float64) if self.profile else None
        run = WGLRun(
            B,
            steps,
            threads,
            self.level,
            split,
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
            ptr(prof),
        )
        if self.lib.wg_lp_run(self.model, run) != 0:
            raise KernelUnavailable(f"cpp-bf16: instruction-set level {self.level} is not supported here")
        if prof is not None:
            self.profile_seconds = prof if self.profile_seconds is None else self.profile_seconds + prof
