"""``NAME=DIR`` values of a repeatable option (``--sys hifigan=out/hifigan``): one parser for
``wavegen evaluate`` and ``wavegen listen prepare``. Each command checks the names themselves
against its own rules (they become folder, column and page names)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .errors import WavegenError


def parse_named_folders(values: Iterable[str] | None, option: str = "--sys") -> dict[str, Path]:
    """``["a=x/", "b=y/"]`` -> ``{"a": Path("x"), "b": Path("y")}`` in the order given.

    A value without ``=``, an empty name or folder, and a name given twice are one-line errors.
    """
    folders: dict[str, Path] = {}
    for value in values or []:
        name, sep, folder = value.partition("=")
        name = name.strip()
        if not sep or not name or not folder:
            raise WavegenError(f"{option} {value!r}: expected NAME=DIR")
        if name in folders:
            raise WavegenError(f"{option} {name!r} given twice")
        folders[name] = Path(folder)
    return folders
