"""The CUDA path: :meth:`StepState.step` captured in a CUDA graph and replayed.

The step reads its time and chunk position from tensors and writes only static buffers, so a
graph of ``steps_per_graph`` consecutive steps replays correctly at any position: one launch
per ``steps_per_graph`` samples instead of hundreds of small kernels per sample. Steps that do
not fill a whole graph run eagerly with the same function. Not measured in this repository's
CI (no GPU); the step itself is covered by the CPU tests.
"""

from __future__ import annotations

import torch

from .step import StepState


class GraphRunner:
    def __init__(self, state: StepState, steps_per_graph: int = 16):
        self.state = state
        self.steps_per_graph = max(1, min(steps_per_graph, state.chunk))
        self.graph = None

    def _capture(self) -> None:
        s = self.state
        # Capture runs the step for real: save the counters and the buffers it writes.
        saved = [b.clone() for b in (s.rings, s.prev, s.t, s.i, s.audio)]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(min(2, self.steps_per_graph)):  # warm-up: allocator, kernels
                s.step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(self.steps_per_graph):
                s.step()
        for buf, value in zip((s.rings, s.prev, s.t, s.i, s.audio), saved):
            buf.copy_(value)
        self.graph = graph

    def run(self, steps: int) -> None:
        """Advance the state by ``steps`` samples (within the current chunk)."""
        if self.graph is None and steps >= self.steps_per_graph:
            self._capture()
        whole, rest = divmod(steps, self.steps_per_graph)
        for _ in range(whole):
            self.graph.replay()
        for _ in range(rest):
            self.state.step()
