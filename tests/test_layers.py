"""The package's import graph, read from the source (every import, those inside functions too):
dependencies point one way, from the command line down to the core, and there are no cycles.

    core <- model <- generation <- artifacts <- {data, training, inference}
         <- {codec, evaluate, listen, integrations} <- {bench, demo} <- cli, and the public API in
    wavegen/__init__

(bench measures the codec, the demo runs an evaluation: they sit one layer higher.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wavegen"

# Each top-level part of the package and its rank: a module imports only from lower ranks and
# from its own part. Parts of one rank are siblings and do not import each other.
RANKS = {
    "core": 0,
    "model": 1,
    "generation": 2,
    "artifacts": 3,
    "data": 4,
    "training": 4,
    "inference": 4,
    "codec": 5,
    "evaluate": 5,
    "listen": 5,
    "integrations": 5,  # TTS framework adapters over the vocoder (inference) and data.tts_mels
    "bench": 6,
    "demo": 6,
    "cli": 7,
    "__main__": 8,
    "__init__": 8,  # the public API re-exports from everywhere
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The wavegen modules (or packages) that module ``name`` imports, anywhere in its body."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "wavegen")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.split(".")[0] != "wavegen":
                continue
            for alias in node.names:  # `from . import x` imports the module x
                sub = f"{source}.{alias.name}"
                found.add(sub if sub in MODULES else source)
    return found - {name}


GRAPH = {name: imports_of(name) for name in MODULES}


def part(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_belongs_to_a_ranked_part():
    assert {part(n) for n in MODULES} <= set(RANKS), {part(n) for n in MODULES} - set(RANKS)


def test_the_graph_was_read():
    """A check that could pass on an empty graph proves nothing."""
    assert len(MODULES) > 80 and sum(map(len, GRAPH.values())) > 200
    assert "wavegen.inference.vocoder" in GRAPH["wavegen"]


@pytest.mark.parametrize("side", ["inference", "codec", "evaluate"])
def test_the_inference_side_never_imports_training(side):
    bad = [(a, b) for a, deps in GRAPH.items() for b in deps if part(a) == side and part(b) == "training"]
    assert not bad, bad


def test_imports_point_down_the_layers():
    bad = [
        f"{a} -> {b}"
        for a, deps in GRAPH.items()
        for b in deps
        if part(a) != part(b) and RANKS[part(b)] >= RANKS[part(a)] and part(b) != "__init__"
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    """Depth-first search over the module graph; a back edge is a cycle (printed in full)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(GRAPH.get(name, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
