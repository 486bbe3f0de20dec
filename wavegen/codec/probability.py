"""Logits -> the float32 probabilities both sides of the codec give the range coder.

The encoder and the decoder must hand constriction bit-identical probability tables, or decoding
derails within a few samples. ``softmax`` is not safe for that: its ``exp`` and its summation
order depend on the vector unit a library dispatches to at run time. So the probabilities are
read from a fixed table instead:

    p[q] = TABLE[round((max(logits) − logits[q]) · STEPS_PER_NAT)]   (unnormalised, float32)

where TABLE[k] = e^(−k / STEPS_PER_NAT) is built by repeated float64 multiplication from a
literal (exact IEEE arithmetic, the same on every machine). Subtraction, scaling by a power of
two and rounding are exact IEEE operations too, so equal logits give equal tables everywhere;
constriction normalises them itself. Rounding a logit to 1/64 nat moves a probability by at most
0.8 %, which costs ~1e-5 bits/sample; classes more than 24 nats below the best get probability 0,
which constriction raises to its smallest representable value (2^-24), so every class stays
codable.
"""

from __future__ import annotations

import numpy as np

STEPS_PER_NAT = 64  # table resolution: logits are rounded to 1/64 nat
TABLE_NATS = 24  # classes further below the best than this get constriction's floor
_E_MINUS_STEP = 0.9844964370054085  # e^(−1/64) as a float64 literal (so no libm is involved)
VERSION = f"table-exp-1/{STEPS_PER_NAT}-{TABLE_NATS}"  # recorded in the container header


def _table() -> np.ndarray:
    values = np.empty(STEPS_PER_NAT * TABLE_NATS + 1, dtype=np.float64)
    value = 1.0
    for k in range(len(values)):
        values[k] = value
        value *= _E_MINUS_STEP
    values[-1] = 0.0  # everything at or beyond TABLE_NATS below the best
    return values.astype(np.float32)


TABLE = _table()


def probabilities(logits: np.ndarray) -> np.ndarray:
    """(N, Q) float32 logits -> (N, Q) float32 C-contiguous unnormalised probabilities."""
    logits = np.asarray(logits, dtype=np.float32)
    below = logits.max(axis=-1, keepdims=True) - logits  # ≥ 0, IEEE float32 rounding
    scaled = np.minimum(below, np.float32(TABLE_NATS)) * np.float32(STEPS_PER_NAT)  # exact: × 2^6
    index = (scaled + np.float32(0.5)).astype(np.int32)  # round half up (truncation of ≥ 0)
    return TABLE[index]  # fancy indexing: a new C-contiguous (N, Q) array


def information_bits(probs: np.ndarray, symbols: np.ndarray) -> float:
    """Σ −log2 p(symbol) under the normalised ``probs`` (N, Q): the ideal code length in bits."""
    if len(symbols) == 0:
        return 0.0
    p = probs.astype(np.float64)
    chosen = p[np.arange(len(symbols)), symbols]
    return float(np.sum(np.log2(p.sum(axis=-1)) - np.log2(np.maximum(chosen, 2.0**-24 * p.sum(axis=-1)))))
