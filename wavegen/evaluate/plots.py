"""The report's pictures (matplotlib, Agg, no display): bar charts with 95 % intervals, and for
a few utterances every system's log-mel spectrogram side by side above their F0 tracks.

Figures are built with ``matplotlib.figure.Figure`` (not pyplot: no global state, no GUI
backend) and saved to a temporary name, then renamed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..core.audio import atomic_path
from ..core.features import MelPreset
from .metrics import HIGHER_IS_BETTER

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def colors(systems: list[str]) -> dict[str, str]:
    """One colour per system, the same in every figure."""
    return {name: COLORS[i % len(COLORS)] for i, name in enumerate(systems)}


def bar_charts(summary: dict[str, dict[str, dict]], metrics: list[str], path: Path) -> Path:
    """One panel per metric: each system's mean with its 95 % t-interval as an error bar."""
    from matplotlib.figure import Figure

    systems = list(summary)
    palette = colors(systems)
    cols = 4
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(rows, cols, i + 1)
        means, errors = [], [[], []]
        for s in systems:
            d = summary[s].get(metric, {})
            mean = d.get("mean")
            lo, hi = d.get("ci95") or (None, None)
            means.append(np.nan if mean is None else mean)
            errors[0].append(0.0 if lo is None or mean is None else mean - lo)
            errors[1].append(0.0 if hi is None or mean is None else hi - mean)
        x = np.arange(len(systems))
        ax.bar(x, means, yerr=errors, capsize=4, color=[palette[s] for s in systems])
        ax.set_xticks(x, systems, rotation=20, fontsize=8)
        arrow = "↑" if metric in HIGHER_IS_BETTER else "↓"
        ax.set_title(f"{metric} {arrow}", fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle("mean and 95% t-interval per system", fontsize=11)
    return _save(fig, path)


def utterance_figure(
    utterance: str,
    mels: dict[str, np.ndarray],
    f0: dict[str, np.ndarray],
    preset: MelPreset,
    path: Path,
    palette: dict[str, str] | None = None,
) -> Path:
    """Log-mel spectrograms ({system: (n_mels, frames)}) in one row, shared colour scale, and
    all F0 tracks ({system: (frames,) Hz, 0 = unvoiced}) overlaid below."""
    from matplotlib.figure import Figure

    names = list(mels)
    palette = palette or colors(names)
    frame_s = preset.hop_length / preset.sample_rate
    fig = Figure(figsize=(3.6 * len(names), 5.4), layout="constrained")
    grid = fig.add_gridspec(2, len(names), height_ratios=(3, 2))
    ref = mels[names[0]]
    vmin, vmax = np.percentile(ref, 1), ref.max()
    for i, name in enumerate(names):
        ax = fig.add_subplot(grid[0, i])
        mel = mels[name]
        ax.imshow(
            mel,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=vmin,
            vmax=vmax,
            extent=(0, mel.shape[1] * frame_s, 0, mel.shape[0]),
            interpolation="nearest",
        )
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("s", fontsize=8)
        if i == 0:
            ax.set_ylabel(f"mel bin ({preset.name})", fontsize=8)
        ax.tick_params(labelsize=8)
    ax = fig.add_subplot(grid[1, :])
    for i, name in enumerate(names):
        track = f0.get(name)
        if track is None:
            continue
        t = np.arange(len(track)) * frame_s
        voiced = np.where(track > 0, track, np.nan)  # gaps where unvoiced
        ax.plot(t, voiced, color=palette[name], lw=1.4 if i == 0 else 1.0, label=name)
    ax.set_ylabel("F0 (Hz, Harvest)", fontsize=8)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    fig.suptitle(f"{utterance}: log-mel spectrograms and F0", fontsize=11)
    return _save(fig, path)
