"""``wavegen synthesize``: vocode audio files, TTS mel files or a corpus split."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..core.errors import WavegenError
from ._app import app
from .options import device_option, json_option, speaker_option, speaker_value


@app.command()
def synthesize(
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", "-c", help="Exported model folder, run dir or checkpoint file."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the 16-bit WAVs."),
    wav: list[Path] = typer.Option(None, "--wav", help="Audio file or folder (repeatable): copy-synthesis."),
    mel: list[Path] = typer.Option(None, "--mel", help=".npy/.pt mel file or folder (repeatable)."),
    split: str = typer.Option(None, "--split", help="Corpus split of --workdir: train, valid or test."),
    workdir: Path = typer.Option(
        None, "--workdir", help="Feature cache for --split (default: the run dir's parent)."
    ),
    device: str = device_option(),
    batch: int = typer.Option(8, "--batch", min=1, help="Utterances generated together."),
    speaker: str = speaker_option(),
    temperature: float = typer.Option(1.0, "--temperature", help="Finite, ≥ 0; 0 = argmax."),
    seed: int = typer.Option(None, "--seed", help="Seed for reproducible sampling."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Regenerate WAVs that already exist."),
    as_json: bool = json_option("End with one JSON summary line."),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="CPU kernel arithmetic: fp32 (exact), bf16 (bf16 weights, fp32 sums: faster) or auto "
        "(bf16 where the CPU has AVX2/AVX-512 for it).",
    ),
) -> None:
    """Vocode --wav files (copy-synthesis), --mel files from a TTS model, or a --split.

    Each input becomes OUTPUT/<its name>.wav; two inputs of one name are refused. --speaker is
    for speaker-conditioned models (a --split uses each utterance's own speaker by default).
    """
    from ..artifacts.workdir import workdir_of
    from ..core.distributed import shard
    from ..generation.generate import check_temperature
    from ..generation.sampler import check_seed
    from ..inference.synthesize import (
        check_output_names,
        items_from_mels,
        items_from_split,
        items_from_wavs,
    )
    from ..inference.synthesize import synthesize as run
    from ..inference.vocoder import load_vocoder

    sources = [bool(wav), bool(mel), split is not None]
    if sum(sources) != 1:
        raise WavegenError("give exactly one of --wav, --mel or --split")
    check_temperature(temperature)
    check_seed(seed)
    vocoder = load_vocoder(checkpoint, device=device, precision=precision)
    try:
        vocoder.require_mel_conditioning()
    except WavegenError as err:
        raise WavegenError(f"{checkpoint}: {err}") from None
    speaker = speaker_value(vocoder.speakers, speaker)
    if wav:
        items = items_from_wavs(vocoder, wav, speaker)
    elif mel:
        items = items_from_mels(vocoder, mel, speaker)
    else:
        if workdir is None:
            workdir = workdir_of(checkpoint)
        if workdir is None:
            raise WavegenError("--split needs --workdir (the preprocessed feature cache)")
        items = items_from_split(vocoder, workdir, split, speaker)
    check_output_names(items, output)  # across all ranks' shares, before any work
    typer.echo(f"sampler: backend {vocoder.backend}, precision {vocoder.precision}", err=True)
    summary = run(
        vocoder,
        shard(items),
        output,
        batch_size=batch,
        temperature=temperature,
        seed=seed,
        overwrite=overwrite,
    )
    kept = summary["skipped_existing"]
    kept_note = f"; {kept} already there and kept (--overwrite regenerates them)" if kept else ""
    typer.echo(
        f"wrote {summary['synthesized']} WAVs to {output} "
        f"({summary['audio_seconds']} s of audio, realtime factor {summary['realtime_factor']}){kept_note}",
        err=as_json,
    )
    if as_json:
        typer.echo(json.dumps(summary))
