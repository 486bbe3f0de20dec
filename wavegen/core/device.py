"""``--device`` values: parsed and checked against this machine once, with one-line errors."""

from __future__ import annotations

import torch

from .errors import WavegenError

SUPPORTED = ("cpu", "cuda")


def resolve_device(name: str | torch.device | None, option: str = "--device") -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` -> a torch.device that exists here (None: cuda if any).

    Raises:
        WavegenError: not a device name, a device type wavegen does not run on (``tpu``,
            ``mps``, ...), CUDA asked for on a machine without it, or a CUDA index past the
            last GPU. The message names ``option`` and the value.
    """
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise WavegenError(f"{option} {name!r}: not a device; expected cpu, cuda or cuda:N") from None
    if device.type not in SUPPORTED:
        raise WavegenError(
            f"{option} {name}: wavegen runs on {' or '.join(SUPPORTED)}, not {device.type}; "
            "expected cpu, cuda or cuda:N"
        )
    if device.type == "cpu":
        return torch.device("cpu")  # "cpu:3" means nothing different
    if not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
        raise WavegenError(f"{option} {name}: CUDA is not available on this machine ({why}); use cpu")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise WavegenError(
            f"{option} {name}: this machine has {count} CUDA device{'s' if count > 1 else ''} "
            f"(cuda:0{f' .. cuda:{count - 1}' if count > 1 else ''})"
        )
    return device
