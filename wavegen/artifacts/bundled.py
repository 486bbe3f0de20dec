"""The recipes that ship with wavegen: find one by name, list them, copy one for editing.

They live at the top of the repository in ``recipes/`` and are packaged from there as
``wavegen/recipes/`` (see setup.py), so the same names work from a source checkout
(``pip install -e .``) and from an installed wheel, in any working directory:

    wavegen train ljspeech              # the bundled recipes/ljspeech/config.yaml
    wavegen train my/recipe.yaml        # any recipe by path
    wavegen recipes copy ljspeech DIR   # DIR/ljspeech/{config.yaml,run.sh}, DIR/base.yaml, DIR/stages.sh

An installed recipe's relative ``data.corpus_path`` would point into site-packages; it is read
as ``./data/<folder>`` instead, where ``run.sh`` of an installed recipe puts corpora too.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..core.config import Recipe, load_recipe
from ..core.errors import WavegenError

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # wavegen/, which holds recipes/ in a wheel
SHARED_FILES = ("base.yaml", "stages.sh")  # what every recipe folder needs beside it


def recipes_dir() -> Path:
    """The folder holding base.yaml and one folder per recipe."""
    installed = PACKAGE_DIR / "recipes"  # a wheel: package data
    if installed.is_dir():
        return installed
    checkout = PACKAGE_DIR.parent / "recipes"  # a source checkout, or `pip install -e .`
    if checkout.is_dir():
        return checkout
    raise WavegenError(
        f"{installed}: the bundled recipes are missing from this installation; reinstall wavegen"
    )


def names() -> list[str]:
    """The bundled recipes' names (the folders with a config.yaml), sorted."""
    return sorted(p.parent.name for p in recipes_dir().glob("*/config.yaml"))


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe YAML by path (a file, or a folder with config.yaml), else a bundled one by name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir() and (path / "config.yaml").is_file():
        return path / "config.yaml"
    if str(name_or_path) in names():
        return recipes_dir() / str(name_or_path) / "config.yaml"
    raise WavegenError(
        f"{name_or_path}: no such recipe file, and no bundled recipe of that name "
        f"(bundled: {', '.join(names())}; see `wavegen recipes`)"
    )


def load(name_or_path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """:func:`wavegen.core.config.load_recipe` of :func:`find_recipe`, with an installed recipe's
    corpus path read from ``./data`` (unless ``data.corpus_path`` is overridden)."""
    overrides = list(overrides or [])
    recipe = load_recipe(find_recipe(name_or_path), overrides)
    corpus = recipe.data.corpus_path
    overridden = any(item.split("=", 1)[0].strip() == "data.corpus_path" for item in overrides)
    if corpus and not overridden and PACKAGE_DIR in Path(corpus).parents:
        recipe.data.corpus_path = str(Path.cwd() / "data" / Path(corpus).name)
    return recipe


def describe(name: str) -> dict:
    """A bundled recipe's name, corpus kind, mel preset and the first line of its header comment."""
    path = find_recipe(name)
    recipe = load_recipe(path)
    paragraph = []  # the header comment's first paragraph
    for line in path.read_text().splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or not text:
            break
        paragraph.append(text)
    first_sentence = re.split(r"(?<=\.)\s+(?=[A-Z])", " ".join(paragraph))[0]
    return {
        "name": recipe.name,
        "corpus": recipe.data.corpus,
        "preset": recipe.audio.preset,
        "description": first_sentence,
        "path": str(path),
    }


def copy(name: str, dest: str | Path) -> list[Path]:
    """Copy bundled recipe ``name`` to ``dest``/name with base.yaml and stages.sh beside it, so
    ``extends`` and run.sh work unchanged. Refuses to overwrite; returns the files written.

    A base.yaml or stages.sh already in ``dest`` is kept if it is byte-identical (a second
    recipe copied into the same folder) and refused otherwise.
    """
    if name not in names():
        raise WavegenError(f"{name}: no bundled recipe of that name (bundled: {', '.join(names())})")
    if not str(dest).strip():
        raise WavegenError("DEST: expected a folder path, got an empty string")
    source, dest = recipes_dir(), Path(dest)
    if dest.exists() and not dest.is_dir():
        raise WavegenError(f"{dest}: is a file; expected a folder to copy the recipe into")
    target = dest / name
    if target.exists():
        raise WavegenError(f"{target}: already exists; wavegen recipes copy never overwrites")
    for shared in SHARED_FILES:
        there = dest / shared
        if there.exists() and there.read_bytes() != (source / shared).read_bytes():
            raise WavegenError(f"{there}: already exists and differs from the bundled one; not overwritten")
    written = []
    dest.mkdir(parents=True, exist_ok=True)
    for shared in SHARED_FILES:
        if not (dest / shared).exists():
            shutil.copy2(source / shared, dest / shared)
            written.append(dest / shared)
    shutil.copytree(source / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    written += sorted(p for p in target.rglob("*") if p.is_file())
    return written
