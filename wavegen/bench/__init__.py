"""``wavegen bench``: throughput of training and generation, measured beside the peer.

measure.py  the measurements and run_bench(), which returns the JSON object
peer.py     r9y9/wavenet_vocoder re-implemented (its sampler and training step), the baseline
"""

from .measure import BENCH_CONFIG, resolve_config, run_bench

__all__ = ["BENCH_CONFIG", "resolve_config", "run_bench"]
