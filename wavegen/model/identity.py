"""The identity of a model: one sha256 over its architecture and its weights.

It is the same for a run dir's EMA weights, the checkpoint they are in and their export (the
bytes of the files differ, the model does not), and it changes with any weight. The codec records
it in a .wgc header (decoding needs the same model) and ``wavegen evaluate`` in its output folder
(a rerun with another model starts again). A checkpoint's .sha256 sidecar is something else: a
checksum of the file's bytes, which tells a torn or corrupt file.
"""

from __future__ import annotations

import hashlib
import json

import torch

from .wavenet import WaveNet


def model_sha256(model: WaveNet) -> str:
    """sha256 (64 hex) of a WaveNet's config and its state_dict (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256(json.dumps(model.config.__dict__, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
