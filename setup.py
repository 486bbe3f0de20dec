"""Packaging glue that pyproject.toml cannot express (everything else is there).

The recipes stay at the top of the repository (``recipes/``, where users of recipe toolkits look
for them) and ship inside the package as ``wavegen/recipes/``: the mapping below makes them the
data-only package ``wavegen.recipes``, whose files pyproject.toml's package-data selects. A
source checkout (``pip install -e .``) reads them in place; see wavegen/artifacts/bundled.py.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["wavegen", "wavegen.*"]), "wavegen.recipes"],
    package_dir={"wavegen.recipes": "recipes"},
)
