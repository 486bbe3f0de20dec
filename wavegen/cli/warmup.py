"""``wavegen warmup``: prepare the sampler kernel now, so the first generation does not pay."""

from __future__ import annotations

import json
import time

import typer

from ..core.device import resolve_device
from ._app import app
from .options import device_option, json_option


@app.command()
def warmup(
    device: str = device_option(help="cpu, cuda or cuda:N (a CUDA graph needs no preparation)."),
    as_json: bool = json_option("Print one JSON object instead of a line."),
) -> None:
    """Build or load the CPU sampler kernels (C++, else numba; cpp-bf16) and say which backend runs."""
    from ..generation import backends

    start = time.perf_counter()
    backends.backend_for(resolve_device(device), "fp32")  # the exact kernel too: codec, --precision fp32
    backend = backends.backend_for(resolve_device(device), "auto")
    seconds = time.perf_counter() - start
    kernel = backends.get_kernel(backend) if backend in backends.KERNEL_NAMES else None
    precision = "bf16" if backend in backends.REDUCED_KERNELS else "fp32"
    result = {"backend": backend, "precision": precision, "seconds": round(seconds, 3)}
    if kernel is not None:
        result.update(from_cache=kernel.cached, cache_dir=str(kernel.cache_dir))
    skipped = {n: backends.kernel_error(n) for n in backends.KERNEL_NAMES if backends.kernel_error(n)}
    if skipped:
        result["unavailable"] = skipped
    if as_json:
        typer.echo(json.dumps(result))
        return
    how = ""
    if kernel is not None:
        how = f" ({'loaded from' if kernel.cached else 'built into'} {kernel.cache_dir})"
    typer.echo(f"backend: {backend} (precision {precision}), ready in {seconds:.2f} s{how}")
    for name, why in skipped.items():
        typer.echo(f"{name}: unavailable: {why.splitlines()[0]}")
