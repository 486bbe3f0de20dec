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
    """Build or load the CPU sampler kernel (C++, else numba) and say which backend runs."""
    from ..generation import backends

    start = time.perf_counter()
    backend = backends.backend_for(resolve_device(device))
    seconds = time.perf_counter() - start
    kernel = backends.get_kernel(backend) if backend in backends.CPU_KERNELS else None
    result = {"backend": backend, "seconds": round(seconds, 3)}
    if kernel is not None:
        result.update(from_cache=kernel.cached, cache_dir=str(kernel.cache_dir))
    skipped = {n: backends.kernel_error(n) for n in backends.CPU_KERNELS if backends.kernel_error(n)}
    if skipped:
        result["unavailable"] = skipped
    if as_json:
        typer.echo(json.dumps(result))
        return
    how = ""
    if kernel is not None:
        how = f" ({'loaded from' if kernel.cached else 'built into'} {kernel.cache_dir})"
    typer.echo(f"backend: {backend}, ready in {seconds:.2f} s{how}")
    for name, why in skipped.items():
        typer.echo(f"{name}: unavailable: {why.splitlines()[0]}")
