"""The sampler loop compiled by numba: the CPU kernel that needs no C++ compiler.

The maths, the buffers and the order of every floating-point operation are those of the C++
loop (``sampler.cpp``), which is :meth:`StepState.step` (``step.py``) for one row at a time:

    x = embed[prev]
    for each layer l:  ring_l[t] = x
                       h = cond[t, l] + [x_{t-(k-1)d} … x_t] @ conv_w[l]        (B, G)
                       z = tanh(h[:G/2]) · σ(h[G/2:])                           (B, G/2)
                       o = z @ os_w[l] + os_b[l]                                (B, R+S)
                       x = (x + o[:R])·√½;   skip += o[R:]
    logits = relu(relu(skip) @ post1_w + post1_b) @ post2_w + post2_b           (B, Q)

Products accumulate every sum left to right, one rounding per operation (no fused multiply-add,
no reassociation), exactly as the C++ does, so the two kernels agree bit for bit and a row's
result does not depend on which rows share its block or call. LLVM vectorises the column loops;
the row and input blocking below is what keeps loads and stores per multiply low, as the C++
register blocking does.

Rows are split over Python threads (the compiled function releases the GIL); each worker thread
flushes denormals, as the C++ threads do. :func:`load` compiles once per process (``cache=True``
into a writable cache dir, so later processes load the machine code in a fraction of a second).
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# One signature, compiled eagerly: calls with other types fail instead of compiling again.
#   model: dilation, ring_off, ring_size (L,) int32; embed (Q, R); conv_w (L, k·R, G);
#          os_w (L, G/2, R+S); os_b (L, R+S); post1_w (1, S, S); post1_b (S,); post2_w (1, S, Q);
#          post2_b (Q,); decode (Q,)
#   run:   b0, b1 (rows), steps, t0 (absolute time), i0 (chunk index), temperature,
#          rings (B, ring_total, R), prev (B,), cond (B, chunk, L·G), uniform (chunk, B),
#          forced (chunk, B), limit (B,), audio (B, chunk), logits (B, chunk, Q),
#          mode (0 sample, 1 argmax, 2 forced), keep_logits
SIGNATURE = (
    "void(int32[::1], int32[::1], int32[::1], float32[:, ::1], float32[:, :, ::1], "
    "float32[:, :, ::1], float32[:, ::1], float32[:, :, ::1], float32[::1], float32[:, :, ::1], "
    "float32[::1], float32[::1], int64, int64, int64, int64, int64, float32, float32[:, :, ::1], "
    "int64[::1], float32[:, :, ::1], float32[:, ::1], int64[:, ::1], int64[::1], float32[:, ::1], "
    "float32[:, :, ::1], int64, boolean)"
)
SAMPLE, ARGMAX, FORCED = 0, 1, 2


@intrinsic
def _float_from_bits(typingctx, bits):
    """Reinterpret int32 bits as a float32 (C++: memcpy), which LLVM vectorises."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@njit(inline="always", error_model="numpy")
def _exp(x):
    """exp(x) to ~1e-7 relative error (Cephes expf), branch-free: the C++ wg_exp, step by step."""
    x = np.float32(-87.0) if x < np.float32(-87.0) else (np.float32(88.0) if x > np.float32(88.0) else x)
    n = (x * np.float32(1.44269504088896341) + np.float32(12582912.0)) - np.float32(12582912.0)
    r = x - n * np.float32(0.693359375)
    r = r + n * np.float32(2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    y = p * r * r + r + np.float32(1.0)
    return y * _float_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))


@njit(inline="always", error_model="numpy")
def _gemm(X, W, layer, K, N, Y, rows):
    """Y[:rows, :N] += X[:rows, :K] @ W[layer, :K, :N], each sum in order of K.

    Four rows share every load of W, and eight inputs share every load and store of Y; the
    innermost loop runs over the N columns, which LLVM vectorises. (Keeping Y in registers as the
    C++ does is not expressible here; this blocking measured fastest of the forms tried.)
    """
    r = 0
    while r + 4 <= rows:
        i = 0
        while i + 8 <= K:
            a0, a1, a2, a3 = X[r, i], X[r, i + 1], X[r, i + 2], X[r, i + 3]
            a4, a5, a6, a7 = X[r, i + 4], X[r, i + 5], X[r, i + 6], X[r, i + 7]
            b0, b1, b2, b3 = X[r + 1, i], X[r + 1, i + 1], X[r + 1, i + 2], X[r + 1, i + 3]
            b4, b5, b6, b7 = X[r + 1, i + 4], X[r + 1, i + 5], X[r + 1, i + 6], X[r + 1, i + 7]
            c0, c1, c2, c3 = X[r + 2, i], X[r + 2, i + 1], X[r + 2, i + 2], X[r + 2, i + 3]
            c4, c5, c6, c7 = X[r + 2, i + 4], X[r + 2, i + 5], X[r + 2, i + 6], X[r + 2, i + 7]
            d0, d1, d2, d3 = X[r + 3, i], X[r + 3, i + 1], X[r + 3, i + 2], X[r + 3, i + 3]
            d4, d5, d6, d7 = X[r + 3, i + 4], X[r + 3, i + 5], X[r + 3, i + 6], X[r + 3, i + 7]
            for j in range(N):
                w0, w1, w2, w3 = W[layer, i, j], W[layer, i + 1, j], W[layer, i + 2, j], W[layer, i + 3, j]
                w4, w5 = W[layer, i + 4, j], W[layer, i + 5, j]
                w6, w7 = W[layer, i + 6, j], W[layer, i + 7, j]
                y = (((Y[r, j] + a0 * w0) + a1 * w1) + a2 * w2) + a3 * w3
                Y[r, j] = (((y + a4 * w4) + a5 * w5) + a6 * w6) + a7 * w7
                y = (((Y[r + 1, j] + b0 * w0) + b1 * w1) + b2 * w2) + b3 * w3
                Y[r + 1, j] = (((y + b4 * w4) + b5 * w5) + b6 * w6) + b7 * w7
                y = (((Y[r + 2, j] + c0 * w0) + c1 * w1) + c2 * w2) + c3 * w3
                Y[r + 2, j] = (((y + c4 * w4) + c5 * w5) + c6 * w6) + c7 * w7
                y = (((Y[r + 3, j] + d0 * w0) + d1 * w1) + d2 * w2) + d3 * w3
                Y[r + 3, j] = (((y + d4 * w4) + d5 * w5) + d6 * w6) + d7 * w7
            i += 8
        while i < K:
            a0, b0, c0, d0 = X[r, i], X[r + 1, i], X[r + 2, i], X[r + 3, i]
            for j in range(N):
                w0 = W[layer, i, j]
                Y[r, j] += a0 * w0
                Y[r + 1, j] += b0 * w0
                Y[r + 2, j] += c0 * w0
                Y[r + 3, j] += d0 * w0
            i += 1
        r += 4
    while r < rows:
        i = 0
        while i + 8 <= K:
            a0, a1, a2, a3 = X[r, i], X[r, i + 1], X[r, i + 2], X[r, i + 3]
            a4, a5, a6, a7 = X[r, i + 4], X[r, i + 5], X[r, i + 6], X[r, i + 7]
            for j in range(N):
                y = ((Y[r, j] + a0 * W[layer, i, j]) + a1 * W[layer, i + 1, j]) + a2 * W[layer, i + 2, j]
                y = ((y + a3 * W[layer, i + 3, j]) + a4 * W[layer, i + 4, j]) + a5 * W[layer, i + 5, j]
                Y[r, j] = (y + a6 * W[layer, i + 6, j]) + a7 * W[layer, i + 7, j]
            i += 8
        while i < K:
            a0 = X[r, i]
            for j in range(N):
                Y[r, j] += a0 * W[layer, i, j]
            i += 1
        r += 1


def _run_rows(
    dilation,
    ring_off,
    ring_size,
    embed,
    conv_w,
    os_w,
    os_b,
    post1_w,
    post1_b,
    post2_w,
    post2_b,
    decode,
    b0,
    b1,
    steps,
    t0,
    i0,
    temperature,
    rings,
    prev,
    cond,
    uniform,
    forced,
    limit,
    audio,
    logits,
    mode,
    keep_logits,
):
    """Run ``steps`` sampling steps for rows [b0, b1) (see SIGNATURE for the arguments)."""
    L, KR, G = conv_w.shape
    Q, R = embed.shape
    RS = os_w.shape[2]
    k, H, S, nr = KR // R, G // 2, RS - R, b1 - b0
    one, zero, half = np.float32(1.0), np.float32(0.0), np.float32(math.sqrt(0.5))
    X = np.empty((nr, KR), np.float32)
    Hb = np.empty((nr, G), np.float32)
    Z = np.empty((nr, H), np.float32)
    Os = np.empty((nr, RS), np.float32)
    x = np.empty((nr, R), np.float32)
    skip = np.empty((nr, S), np.float32)
    p1 = np.empty((nr, S), np.float32)
    lg = np.empty((nr, Q), np.float32)
    for s in range(steps):
        t, ci = t0 + s, i0 + s
        for r in range(nr):
            c = prev[b0 + r]
            for j in range(R):
                x[r, j] = embed[c, j]
            for j in range(S):
                skip[r, j] = zero
        for layer in range(L):
            d, size, off = dilation[layer], ring_size[layer], ring_off[layer]
            wpos = off + t % size
            for r in range(nr):
                b = b0 + r
                for j in range(R):
                    rings[b, wpos, j] = x[r, j]
                for tap in range(k):
                    pos = off + (t - (k - 1 - tap) * d) % size  # Python %: never negative
                    for j in range(R):
                        X[r, tap * R + j] = rings[b, pos, j]
                for j in range(G):
                    Hb[r, j] = cond[b, ci, layer * G + j]
            _gemm(X, conv_w, layer, KR, G, Hb, nr)
            for r in range(nr):
                for j in range(H):  # tanh(a) = 2·σ(2a) − 1
                    th = np.float32(2.0) / (one + _exp(np.float32(-2.0) * Hb[r, j])) - one
                    Z[r, j] = th * (one / (one + _exp(-Hb[r, H + j])))
                for j in range(RS):
                    Os[r, j] = os_b[layer, j]
            _gemm(Z, os_w, layer, H, RS, Os, nr)
            for r in range(nr):
                for j in range(R):
                    x[r, j] = (x[r, j] + Os[r, j]) * half
                for j in range(S):
                    skip[r, j] += Os[r, R + j]
        for r in range(nr):
            for j in range(S):
                skip[r, j] = skip[r, j] if skip[r, j] > zero else zero
                p1[r, j] = post1_b[j]
            for j in range(Q):
                lg[r, j] = post2_b[j]
        _gemm(skip, post1_w, 0, S, S, p1, nr)
        for r in range(nr):
            for j in range(S):
                p1[r, j] = p1[r, j] if p1[r, j] > zero else zero
        _gemm(p1, post2_w, 0, S, Q, lg, nr)
        for r in range(nr):
            b = b0 + r
            if keep_logits:
                for j in range(Q):
                    logits[b, ci, j] = lg[r, j]
            q = 0
            if mode == FORCED:
                q = forced[ci, b]
            elif mode == ARGMAX:
                best = lg[r, 0]
                for j in range(1, Q):
                    if lg[r, j] > best:
                        best = lg[r, j]
                        q = j
            else:  # inverse-CDF sampling with one uniform per row (the logits are done)
                mx = lg[r, 0]
                for j in range(1, Q):
                    mx = lg[r, j] if lg[r, j] > mx else mx
                inv = one / temperature
                for j in range(Q):
                    lg[r, j] = _exp((lg[r, j] - mx) * inv)
                total = zero
                for j in range(Q):
                    total += lg[r, j]
                    lg[r, j] = total
                target = uniform[ci, b] * total
                count = 0
                for j in range(Q):
                    count += lg[r, j] <= target
                q = count if count < Q else Q - 1
            prev[b] = q
            audio[b, ci] = decode[q] if t < limit[b] else zero


def cache_dir_for_numba(root: Path) -> Path:
    """Where the compiled loop is cached: $NUMBA_CACHE_DIR if set, else ``root``/numba."""
    return Path(os.environ["NUMBA_CACHE_DIR"]) if os.environ.get("NUMBA_CACHE_DIR") else root / "numba"


def compile_run_rows(cache_dir: Path):
    """Compile (or load from ``cache_dir``) the loop -> (dispatcher, seconds it took)."""
    start = time.perf_counter()
    saved = numba.config.CACHE_DIR
    # The cache locator reads the setting when the function is decorated; restore it at once so
    # other libraries' numba functions keep their own cache.
    numba.config.CACHE_DIR = str(cache_dir)
    try:
        compiled = njit(SIGNATURE, cache=True, nogil=True, error_model="numpy", boundscheck=False)(_run_rows)
    finally:
        numba.config.CACHE_DIR = saved
    return compiled, time.perf_counter() - start


# Worker threads flush denormals (x86: ~100x slower arithmetic otherwise), as the C++ threads
# do; the caller's thread keeps its own setting. A fork child gets a fresh pool.
_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] = (0, 0)
_pool_lock = threading.Lock()


def _worker_init() -> None:
    torch.set_flush_denormal(True)


def pool(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_key
    with _pool_lock:
        size = max(threads, _pool_key[1])
        if _pool is None or _pool_key != (os.getpid(), size):
            if _pool is not None and _pool_key[0] == os.getpid():
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(size, "wavegen-numba", initializer=_worker_init)
            _pool_key = (os.getpid(), size)
        return _pool


def run(run_rows, model_args: tuple, batch: int, threads: int, run_args: tuple) -> None:
    """Run the loop over ``batch`` rows split into ``threads`` contiguous parts, and wait."""
    threads = max(1, min(threads, batch))
    per = -(-batch // threads)
    parts = [(b0, min(batch, b0 + per)) for b0 in range(0, batch, per)]
    executor = pool(len(parts))
    futures = [executor.submit(run_rows, *model_args, b0, b1, *run_args) for b0, b1 in parts]
    for future in futures:
        future.result()


class NumbaRunner:
    """Runs :class:`StepState` steps with the compiled loop; the weights are viewed once."""

    def __init__(self, run_rows, weights):
        w = weights
        self.run_rows = run_rows
        ints = [np.asarray(v, dtype=np.int32) for v in (w.dilations, w.ring_offsets, w.ring_sizes)]
        arrays = [w.embed, w.conv_w, w.os_w, w.os_b, w.post1_w[None], w.post1_b, w.post2_w[None]]
        self.model_args = (*ints, *[a.numpy() for a in arrays], w.post2_b.numpy(), w.decode.numpy())
        self._no_forced = np.zeros((1, 1), np.int64)
        self._no_logits = np.zeros((1, 1, 1), np.float32)

    def run(self, s, t: int, i0: int, steps: int, threads: int) -> None:
        """As :meth:`CppRunner.run`: ``steps`` samples of state ``s`` from time ``t``, index ``i0``."""
        mode = FORCED if s.forced is not None else (ARGMAX if s.mode == "argmax" else SAMPLE)
        run_args = (
            steps,
            t,
            i0,
            s.temperature,
            s.rings.numpy(),
            s.prev.numpy(),
            s.cond.numpy(),
            s.uniform.numpy(),
            self._no_forced if s.forced is None else s.forced.numpy(),
            s.limit.numpy(),
            s.audio.numpy(),
            self._no_logits if s.logits is None else s.logits.numpy(),
            mode,
            s.logits is not None,
        )
        run(self.run_rows, self.model_args, s.batch, threads, run_args)
