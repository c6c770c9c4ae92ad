"""The layout's rule: no import runs back up a layer, and module-level imports form no circle.

Layers, bottom to top (README, "Layout"). A module may import its own layer and the ones below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PKG = Path(__file__).resolve().parents[1] / "src" / "warnframe"

LAYERS: list[set[str]] = [
    {"runtime", "schema", "config", "sections"},  # infrastructure and the tables every layer reads
    {"stats", "paper", "families"},
    {"detector"},
    {"lm"},
    {"corpus"},
    {"mech", "evals"},
    {"experiments"},
    {"report"},
    {"audit"},
    {"study", "grid", "cli", "__init__"},  # face and orchestration
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _room(module: str) -> str:
    """The layer-room of a dotted module: its first component below ``warnframe``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, top_level_only: bool) -> list[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("warnframe"):
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names
                    if (PKG.parent / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("warnframe")]
    return out


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


FILES = sorted(PKG.rglob("*.py"))


def test_every_room_has_a_layer():
    rooms = {_room(_module(f)) for f in FILES}
    assert rooms <= set(RANK), rooms - set(RANK)


def test_no_import_runs_up_a_layer():
    up = []
    for f in FILES:
        me = _room(_module(f))
        for target in _imports(f, top_level_only=False):
            if RANK[_room(target)] > RANK[me]:
                up.append(f"{f.relative_to(PKG)} imports {target}")
    assert not up, "\n".join(up)


def test_module_level_imports_form_no_circle():
    g = nx.DiGraph()
    names = {_module(f) for f in FILES}
    for f in FILES:
        for target in _imports(f, top_level_only=True):
            if target in names and target != _module(f):
                g.add_edge(_module(f), target)
    cycles = list(nx.simple_cycles(g))
    assert not cycles, cycles[:5]


def test_no_module_in_experiments_is_over_400_lines():
    long = {f.name: n for f in (PKG / "experiments").glob("*.py") if (n := len(f.read_text().splitlines())) > 400}
    assert not long, long


def test_at_most_eight_modules_at_the_package_root():
    assert len(list(PKG.glob("*.py"))) <= 8
