"""The cached incremental sampler behind :mod:`wavegen.generate`.

weights.py       a WaveNet's weights rearranged for one-sample steps
conditioning.py  V·c + U·g for a chunk of steps, upsampling only the frames it needs
step.py          StepState: static buffers and the one-sample step in plain torch
kernel.py        the same loop compiled from C++ (kernel_source.py), called via ctypes
cuda_graph.py    the torch step captured in a CUDA graph
sampler.py       Sampler: drives a batch through chunks with one of those backends
"""

from .sampler import BACKENDS, Sampler
from .step import StepState
from .weights import StepWeights

__all__ = ["BACKENDS", "Sampler", "StepState", "StepWeights"]
