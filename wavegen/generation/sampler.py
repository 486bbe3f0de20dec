"""The incremental sampler: conditioning chunk by chunk, then one of the step backends.

    cpp         CPU: the C++ loop (``kernel_cpp.py``) runs many steps per call, rows split over
                threads.
    numba       CPU: the same loop compiled by numba (``kernel_numba.py``), for machines without
                a C++ compiler; it computes the same samples bit for bit.
    cuda-graph  CUDA: ``StepState.step`` captured in a CUDA graph (``cuda_graph.py``).
    torch       anywhere: ``StepState.step`` called from Python (the reference).
    cpp-bf16    CPU, reduced precision (``kernel_bf16.py``): bf16 weights, fp32 fused sums;
                precision "bf16" picks it (and "auto" where the CPU has a vector path for it).

``backend="kernel"`` asks for the best CPU kernel (cpp, else numba); ``"auto"`` also falls back
to torch, with a loud warning (``backends.py``). All of them read and write the same
:class:`StepState` buffers, so they are interchangeable between calls. Random numbers are drawn
on the CPU from a seeded ``torch.Generator`` in time-major order, one per row and step, so a
seed gives the same audio whatever the chunking.

Ragged batches: at each chunk boundary the rows that have ended are dropped from the state and
the conditioner (``compact``), so a batch of 1.5 … 10 s utterances stops paying for the short
ones; ``rows`` maps the state's rows back to the batch. Random numbers are still drawn for every
row, finished or not, so compaction changes no draw. It is on by default for the CPU kernels,
which compute each row the same whatever rows share the call (and the conditioner computes a
row left alone as one of a pair, see ``Conditioner.keep_rows``), so the audio is bit-identical
with or without it. The torch and CUDA-graph steps leave it off unless asked: their BLAS
products round a row differently for another batch size, so a sample whose random number falls
within that rounding of a class boundary could flip, and the row diverge from there. The CUDA
graph, asked, is captured anew for each smaller batch.
"""

from __future__ import annotations

import torch

from ..core.errors import WavegenError
from ..model import WaveNet
from . import backends, kernel_bf16
from .conditioning import Conditioner
from .step import StepState
from .weights import StepWeights

# Conditioning chunk budget: (B, chunk, L·G) float32 stays under this many bytes.
COND_BUDGET_BYTES = 32 * 2**20
# At most this many samples of mel are upsampled at a time. Longer spans measured no faster, and
# the upsampler's intermediates (several times the span) are most of generation's working memory.
SPAN_MAX = 1 << 13
BACKENDS = ("auto", "kernel", "cpp", "numba", "cuda-graph", "torch", "cpp-bf16")
CPU_KERNELS = backends.CPU_KERNELS
KERNEL_NAMES = backends.KERNEL_NAMES


def check_seed(seed) -> int | None:
    """A sampling seed: None (fresh randomness) or an integer 0 … 2**63 − 1, as train.seed."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise WavegenError(f"seed: expected an integer from 0 to 2**63 - 1, got {seed!r}")
    return seed


def default_chunk(weights: StepWeights, batch: int) -> int:
    """Steps per conditioning chunk: as many as the budget allows, 64 … 4096."""
    per_step = batch * weights.layers * weights.gate * 4
    return int(min(4096, max(64, COND_BUDGET_BYTES // per_step)))


class Sampler:
    """One batch of utterances being generated; call :meth:`run` until :attr:`remaining` is 0.

    Args:
        model: a WaveNet (eval mode is the caller's business).
        mel: (B, C_in, F) raw preset mel without context padding, or None if unconditioned.
        speaker: (B,) int64 speaker ids or None.
        lengths: (B,) frames per row for a ragged batch, or None.
        num_samples: samples to generate when the model has no mel conditioning.
        temperature: softmax temperature; 0 = argmax.
        seed: seed of the sampling random numbers (None: nondeterministic).
        forced: (B, T) int64 classes to feed instead of sampling (teacher forcing), or None.
        keep_logits: also return each step's logits from :meth:`run`.
        backend: "auto", "kernel" (cpp, else numba), "cpp", "numba", "cuda-graph", "torch" or
            "cpp-bf16" (the same as precision "bf16"); :attr:`backend` says which one runs.
        chunk: steps per conditioning chunk (default from :data:`COND_BUDGET_BYTES`).
        threads: CPU threads for the kernel (default ``torch.get_num_threads()``).
        span: samples of mel upsampled at a time (default from the same budget, ≥ chunk, and at
            most :data:`SPAN_MAX`).
        dtype: dtype of the weights and buffers (the CPU kernels need float32).
        compact: drop rows from the computation once they have ended (default: for the CPU
            kernels only, see the module doc).
        precision: "fp32" (default: the exact kernels), "bf16" (the ``cpp-bf16`` kernel) or
            "auto" (bf16 where :func:`backends.default_precision` says so, for backend "auto" or
            "kernel" on the CPU); :attr:`precision` says which one runs.
    """

    def __init__(
        self,
        model: WaveNet,
        mel: torch.Tensor | None = None,
        speaker: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        num_samples: int | None = None,
        temperature: float = 1.0,
        seed: int | None = None,
        forced: torch.Tensor | None = None,
        keep_logits: bool = False,
        backend: str = "auto",
        chunk: int | None = None,
        threads: int | None = None,
        span: int | None = None,
        dtype: torch.dtype = torch.float32,
        compact: bool | None = None,
        precision: str = "fp32",
    ):
        backends.check_precision(precision)
        if backend not in BACKENDS:
            raise WavegenError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.device = device = model.embed.weight.device
        hop = model.hop_length
        if mel is not None:
            mel = mel.to(device=device, dtype=torch.float32)
            if mel.dim() == 2:
                mel = mel[None]
            if mel.dim() != 3 or mel.shape[1] != model.config.cin_channels:
                raise WavegenError(
                    f"mel: expected shape (batch, {model.config.cin_channels}, frames), "
                    f"got {tuple(mel.shape)}"
                )
            batch, total = mel.shape[0], mel.shape[2] * hop
        elif model.upsampler is not None:
            raise WavegenError("this model needs a mel spectrogram (local conditioning)")
        else:
            if num_samples is None:
                raise WavegenError("num_samples is required for a model without mel conditioning")
            batch = len(speaker) if speaker is not None else (1 if forced is None else len(forced))
            total = int(num_samples)
        if lengths is not None:
            lengths = torch.as_tensor(lengths, dtype=torch.int64, device=device).reshape(-1)
            if len(lengths) != batch or int(lengths.min()) < 1 or int(lengths.max()) * hop > total:
                raise WavegenError(
                    f"lengths: expected {batch} frame counts in 1 … {total // hop}, got {lengths.tolist()}"
                )
        if speaker is not None:
            speaker = torch.as_tensor(speaker, dtype=torch.int64, device=device).reshape(-1)
            n_spk = model.config.n_speakers
            if len(speaker) != batch or (n_spk and (speaker.min() < 0 or speaker.max() >= n_spk)):
                raise WavegenError(
                    f"speaker: expected {batch} ids in 0 … {n_spk - 1}, got {speaker.tolist()}"
                )
        self.batch, self.total = batch, total
        self.weights = StepWeights.from_model(model, dtype)
        self.chunk = int(chunk or default_chunk(self.weights, batch))
        if span is None:
            per_step = 4 * batch * max(1, model.config.cin_channels)
            span = min(SPAN_MAX, max(self.chunk, COND_BUDGET_BYTES // per_step))
        self.conditioner = Conditioner(model, self.weights, mel, lengths, speaker, batch, span)
        self.state = StepState(
            self.weights,
            batch,
            self.chunk,
            temperature,
            forced=forced is not None,
            keep_logits=keep_logits,
            start_class=model.start_class,
        )
        limit = lengths * hop if lengths is not None else torch.full((batch,), total)
        self.state.limit.copy_(limit)
        self.limit = self.state.limit.clone()  # (B,) end of each row, for masking the logits
        self._first_end = int(self.limit.min())
        self.rows = torch.arange(batch, device=device)  # batch row of each state row
        self.forced_all = None if forced is None else forced.to(device=device, dtype=torch.int64)
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed) % 2**64)  # torch's range; seed + offset may pass it
        self.threads = threads or torch.get_num_threads()
        self.precision = precision  # as asked; _pick_backend resolves it
        self.model_config = model.config
        self.backend = self._pick_backend(backend, dtype)
        self.precision = "bf16" if self.backend == "cpp-bf16" else "fp32"
        # cpp-bf16 also computes a row the same whatever rows share the call.
        self.compact = self.backend in KERNEL_NAMES if compact is None else bool(compact)
        self.t = 0  # host copy of state.t
        self.chunk_start = self.chunk_end = 0
        self._runner = None

    def _pick_backend(self, backend: str, dtype: torch.dtype) -> str:
        cuda = self.device.type == "cuda"
        cpu_float32 = self.device.type == "cpu" and dtype == torch.float32
        precision = self.precision
        if precision == "auto":
            auto_cpu = backend in ("auto", "kernel") and cpu_float32 and kernel_bf16.fits(self.model_config)
            precision = backends.default_precision() if auto_cpu else "fp32"
        if precision == "bf16" or backend == "cpp-bf16":
            if backend not in ("auto", "kernel", "cpp-bf16") or not cpu_float32:
                raise WavegenError(
                    f"precision bf16 runs on the CPU kernel cpp-bf16 with a float32 model, not on "
                    f"backend {backend!r} with a {dtype} model on {self.device}"
                )
            if backends.get_kernel("cpp-bf16") is None:
                why = backends.kernel_error("cpp-bf16")
                raise WavegenError(f"precision bf16: the cpp-bf16 kernel could not be built ({why})")
            kernel_bf16.check_shapes(self.weights)
            return "cpp-bf16"
        if backend == "auto":
            if cuda:
                return "cuda-graph"
            return backends.cpu_backend() if cpu_float32 else "torch"
        if backend in ("kernel", *CPU_KERNELS):
            if not cpu_float32:
                raise WavegenError(f"backend {backend!r} needs a float32 model on the CPU")
            names = CPU_KERNELS if backend == "kernel" else (backend,)
            for name in names:
                if backends.get_kernel(name) is not None:
                    return name
            why = "; ".join(f"{n}: {backends.kernel_error(n)}" for n in names)
            raise WavegenError(f"backend {backend!r}: the compiled sampler could not be built ({why})")
        if backend == "cuda-graph" and not cuda:
            raise WavegenError("backend 'cuda-graph' needs the model on a CUDA device")
        return backend

    @property
    def remaining(self) -> int:
        return self.total - self.t

    def _drop_finished_rows(self) -> None:
        """Keep only the rows whose end is still ahead in the state and the conditioner."""
        live = self.state.limit > self.t
        if bool(live.all()):
            return
        keep = live.nonzero()[:, 0]
        self.state.keep_rows(keep)
        self.conditioner.keep_rows(keep)
        self.rows = self.rows[keep]
        if self.backend == "cuda-graph":
            self._runner = None  # its graph replays the old buffers: capture anew

    def _refill(self) -> None:
        """Drop ended rows (if compacting), then fill the chunk's conditioning, random numbers
        and forced classes."""
        if self.compact:
            self._drop_finished_rows()
        s = self.state
        self.chunk_start, self.chunk_end = self.t, min(self.t + self.chunk, self.total)
        n = self.chunk_end - self.chunk_start
        if s.batch:
            self.conditioner.chunk(self.chunk_start, self.chunk_end, out=s.cond[:, :n])
        if s.mode == "sample":
            u = torch.rand(n, self.batch, generator=self.generator)  # time-major: see module doc
            s.uniform[:n].copy_(u.to(self.device).index_select(1, self.rows))
        if s.forced is not None:
            forced = self.forced_all[:, self.chunk_start : self.chunk_end]
            s.forced[:n].copy_(forced.index_select(0, self.rows).t())
        s.i.zero_()

    @torch.no_grad()
    def run(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Generate the next n samples -> ((B, n) float audio, (B, n, Q) logits or None).

        Both are zero past each row's end (``lengths·hop``).
        """
        n = min(n, self.remaining)
        t0 = self.t
        audio = torch.zeros(self.batch, n, device=self.device)
        logits = (
            None
            if self.state.logits is None
            else torch.zeros(self.batch, n, self.weights.classes, device=self.device)
        )
        done = 0
        while done < n:
            if self.t == self.chunk_end:
                self._refill()  # may drop rows: read self.state after it
            s, i0 = self.state, self.t - self.chunk_start
            steps = min(n - done, self.chunk_end - self.t)
            self._steps(i0, steps)
            audio[:, done : done + steps].index_copy_(0, self.rows, s.audio[:, i0 : i0 + steps])
            if logits is not None:
                logits[:, done : done + steps].index_copy_(0, self.rows, s.logits[:, i0 : i0 + steps])
            done += steps
            self.t += steps
        if logits is not None:
            # A row runs on until the chunk boundary after its end (or to the batch's end if
            # not compacted): hide those steps, so every backend returns the same.
            ended = torch.arange(t0, t0 + n, device=self.device)[None, :] >= self.limit[:, None]
            logits.masked_fill_(ended[:, :, None], 0.0)
        return audio, logits

    def step_logits(self) -> torch.Tensor:
        """Advance one sample -> its (B, Q) float32 logits, zero for rows that have ended.

        The lean form of ``run(1)`` (no audio, needs ``keep_logits``) for an entropy decoder,
        which learns each sample only from its step's logits: call it with ``forced``
        placeholders, decode the classes from the logits, :meth:`feed` them, repeat. The step is
        the one ``run`` takes, so the logits are bit-identical to ``run``'s at the same position.
        (No autograd context needed: the step weights are detached copies.)
        """
        if self.state.logits is None or self.remaining < 1:
            raise WavegenError("step_logits needs keep_logits=True and a sample left to generate")
        if self.t == self.chunk_end:
            self._refill()
        i0 = self.t - self.chunk_start
        self._steps(i0, 1)
        s = self.state
        if s.batch == self.batch:
            logits = s.logits[:, i0].clone()
        else:
            logits = torch.zeros(self.batch, self.weights.classes, device=self.device)
            logits.index_copy_(0, self.rows, s.logits[:, i0])
        if self.t >= self._first_end:
            logits.masked_fill_((self.limit <= self.t)[:, None], 0.0)
        self.t += 1
        return logits

    def feed(self, classes: torch.Tensor) -> None:
        """Condition the next step on ``classes`` ((B,) int64) as the samples just produced.

        Every backend reads the previous sample from ``state.prev`` only, so the step after
        ``feed`` computes exactly what it would have had ``forced`` held these classes (see
        :meth:`step_logits`). Audio that ``run`` already returned is left as it was.
        """
        if classes.dtype != torch.int64 or classes.device != self.device:
            classes = classes.to(device=self.device, dtype=torch.int64)
        if classes.shape != (self.batch,):
            raise WavegenError(f"feed: expected {self.batch} classes, got {len(classes)}")
        self.state.prev.copy_(classes.index_select(0, self.rows))

    def _steps(self, i0: int, steps: int) -> None:
        if self.state.batch == 0:  # every row has ended; the rest of the audio is zeros
            self.state.i.add_(steps)
            self.state.t.add_(steps)
        elif self.backend in KERNEL_NAMES:
            if self._runner is None:
                self._runner = self._cpu_runner()
            self._runner.run(self.state, self.t, i0, steps, self.threads)
            # Keep the tensor counters in step, so the torch step could take over from here.
            self.state.i.fill_(i0 + steps)
            self.state.t.fill_(self.t + steps)
        elif self.backend == "cuda-graph":
            if self._runner is None:
                from .cuda_graph import GraphRunner

                self._runner = GraphRunner(self.state)
            self._runner.run(steps)
        else:
            for _ in range(steps):
                self.state.step()

    def _cpu_runner(self):
        kernel = backends.get_kernel(self.backend)
        if self.backend == "cpp-bf16":
            return kernel_bf16.Bf16Runner(kernel.handle, self.weights)
        if self.backend == "cpp":
            from .kernel_cpp import CppRunner

            return CppRunner(kernel.handle, self.weights)
        from .kernel_numba import NumbaRunner

        return NumbaRunner(kernel.handle, self.weights)
