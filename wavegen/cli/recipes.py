"""``wavegen recipes``: list the bundled recipes; ``wavegen recipes copy NAME DIR`` copies one."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..artifacts import bundled
from ._app import app

recipes_app = typer.Typer(
    help="The bundled recipes: list them (no subcommand), or copy one for editing.",
    no_args_is_help=False,
    invoke_without_command=True,
)
app.add_typer(recipes_app, name="recipes")


@recipes_app.callback()
def recipes(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per recipe, one per line."),
) -> None:
    """List the bundled recipes: name, corpus, mel preset, what it is."""
    if ctx.invoked_subcommand is not None:
        return
    rows = [bundled.describe(name) for name in bundled.names()]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        typer.echo(f"{r['name']:<{width}}  {r['corpus']:<8}  {r['preset']:<10}  {r['description']}")
    typer.echo(f"\n(in {bundled.recipes_dir()}; use one by name, e.g. `wavegen train {rows[0]['name']}`)")


@recipes_app.command("copy")
def copy(
    name: str = typer.Argument(..., help="A bundled recipe, e.g. ljspeech."),
    dest: Path = typer.Argument(..., help="Folder to copy into (NAME/, base.yaml, stages.sh)."),
) -> None:
    """Copy a bundled recipe with its base.yaml and stages.sh, for editing; never overwrites."""
    for path in bundled.copy(name, dest):
        typer.echo(str(path))
