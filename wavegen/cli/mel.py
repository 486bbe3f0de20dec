"""``wavegen mel``: compute a preset's log-mel spectrogram of an audio file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from ..core.audio import read_audio, write_npy
from ..core.errors import WavegenError
from ..core.features import get_preset, mel_spectrogram
from ._app import app


@app.command()
def mel(
    wav: Path = typer.Argument(..., help="Input audio file (any format soundfile reads)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .npy, float32 [n_mels, frames]."),
    preset: str = typer.Option("tacotron2", "--preset", help="tacotron2, espnet or espnet-24k."),
) -> None:
    """Write the log-mel spectrogram of WAV (resampled to the preset's rate) as .npy."""
    p = get_preset(preset)
    audio, _ = read_audio(wav, sample_rate=p.sample_rate)
    try:
        m = mel_spectrogram(audio, p).astype(np.float32)
    except WavegenError as err:  # audio too short for the preset: say which file
        raise WavegenError(f"{wav}: {err}") from None
    write_npy(output, m)
    typer.echo(f"{output}: {m.shape[0]} mels x {m.shape[1]} frames ({p.name})")
