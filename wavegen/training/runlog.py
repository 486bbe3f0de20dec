"""What a training run reports: RUN_DIR/train.log, TensorBoard events in RUN_DIR/tb, a progress bar.

Only the main process builds a :class:`RunLog`; the other ranks get a :class:`NullLog`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

log = logging.getLogger("wavegen")


class _TqdmHandler(logging.Handler):
    """Log lines to stderr without breaking the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


class RunLog:
    def __init__(self, run_dir: Path, max_steps: int, start_step: int, progress: bool = True):
        from torch.utils.tensorboard import SummaryWriter  # slow import: only where needed

        run_dir.mkdir(parents=True, exist_ok=True)
        self._file = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
        self._file.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S")
        )
        self._console = _TqdmHandler()
        self._console.setFormatter(logging.Formatter("%(message)s"))
        self._old_level = log.level
        log.setLevel(logging.INFO)
        log.addHandler(self._file)
        log.addHandler(self._console)
        self.writer = SummaryWriter(str(run_dir / "tb"))
        self.bar = tqdm(
            total=max_steps,
            initial=start_step,
            unit="step",
            dynamic_ncols=True,
            disable=not progress,
            file=sys.stderr,
        )

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def audio(self, step: int, tag: str, wav: np.ndarray, sample_rate: int) -> None:
        wav = torch.as_tensor(wav).reshape(1, -1)
        self.writer.add_audio(tag, wav, step, sample_rate=sample_rate)

    def image(self, step: int, tag: str, mel: np.ndarray) -> None:
        self.writer.add_image(tag, mel_image(mel), step, dataformats="CHW")

    def progress(self, step: int, loss: float, samples_per_s: float) -> None:
        self.bar.n = step
        self.bar.set_postfix(loss=f"{loss:.3f}", samples_s=f"{samples_per_s:.0f}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
        log.removeHandler(self._file)
        log.removeHandler(self._console)
        log.setLevel(self._old_level)
        self._file.close()


class NullLog:
    """Non-main ranks: report nothing."""

    def scalars(self, *args, **kwargs) -> None: ...
    def audio(self, *args, **kwargs) -> None: ...
    def image(self, *args, **kwargs) -> None: ...
    def progress(self, *args, **kwargs) -> None: ...
    def close(self) -> None: ...


def mel_image(mel: np.ndarray) -> torch.Tensor:
    """(n_mels, F) log-mel -> (1, n_mels, F) image in [0, 1], low frequencies at the bottom."""
    mel = np.asarray(mel, dtype=np.float32)
    lo, hi = float(mel.min()), float(mel.max())
    img = (mel - lo) / (hi - lo) if hi > lo else np.zeros_like(mel)
    return torch.from_numpy(np.ascontiguousarray(img[::-1]))[None]
