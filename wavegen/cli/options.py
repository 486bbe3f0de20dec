"""The options several commands share, each defined once: what --speaker, --device and --json
mean is the same in every command that takes them."""

from __future__ import annotations

import typer


def speaker_option():
    return typer.Option(
        None,
        "--speaker",
        help="Speaker name, or its index in the model's speaker list (speaker-conditioned models).",
    )


def speaker_value(speakers: list[str], speaker: str | None) -> str | int | None:
    """--speaker as the library takes it: a name of the model's speakers, else ASCII digits as an
    index (str.isdigit alone takes "²", which int() refuses, and "١", which it reads as 1)."""
    if speaker is None or speaker in speakers or not (speaker.isascii() and speaker.isdigit()):
        return speaker
    return int(speaker)


def device_option(default: str | None = "cpu", help: str = "cpu, cuda or cuda:N."):
    return typer.Option(default, "--device", help=help)


def json_option(help: str = "Print one JSON summary."):
    return typer.Option(False, "--json", help=help)
