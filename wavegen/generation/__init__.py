"""Fast autoregressive generation: the cached incremental sampler and its API.

generate.py      generate(), stream(), teacher_forced_logits(): the API
sampler.py       Sampler: drives a batch through chunks with one of the step backends
weights.py       a WaveNet's weights rearranged for one-sample steps
conditioning.py  V·c + U·g for a chunk of steps, upsampling only the frames it needs
step.py          StepState: static buffers and the one-sample step in plain torch
backends.py      which CPU kernel runs (cpp, numba, or the torch step) and preparing it
kernel_cpp.py    the same loop in C++ (sampler.cpp, shipped in the package), called via ctypes
kernel_numba.py  the same loop compiled by numba: no C++ compiler needed
kernel_bf16.py   cpp-bf16, reduced precision (sampler_bf16.cpp): bf16 weights, fp32 fused sums
cuda_graph.py    the torch step captured in a CUDA graph
"""

from .generate import check_temperature, generate, stream, teacher_forced_logits
from .sampler import BACKENDS, Sampler
from .step import StepState
from .weights import StepWeights

__all__ = [
    "BACKENDS",
    "Sampler",
    "StepState",
    "StepWeights",
    "check_temperature",
    "generate",
    "stream",
    "teacher_forced_logits",
]
