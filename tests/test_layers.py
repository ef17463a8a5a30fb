"""The package's layers, as the folders show them, enforced on every import (lazy ones too).

From the bottom up:
1. ``errors``, ``schema``, ``config``, ``models``, ``text``, ``testsets``: facts and formats;
2. ``ingest``, ``index``, ``generation``, ``fast``: the components;
3. ``rag`` (and ``api``, its public face): retrieval + generation = answers;
4. ``qagen``, ``eval``, ``train``, ``serve``, ``cli`` and ``app.py``: the stages and apps.

A module may import its own layer and those below, never above, and the packages form no
cycle. An AST walk, so an import hidden inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "pmpprag"

LAYERS: dict[str, int] = {
    **dict.fromkeys(["errors", "schema", "config", "models", "text", "testsets"], 1),
    **dict.fromkeys(["ingest", "index", "generation", "fast"], 2),
    **dict.fromkeys(["rag", "api"], 3),
    **dict.fromkeys(["qagen", "eval", "train", "serve", "cli", "app", "__main__"], 4),
}


def _unit(module: str) -> str | None:
    """``pmpprag.index.build`` -> ``index``; ``pmpprag`` itself -> None (the package root)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "pmpprag" and len(parts) > 1 else None


def _imports(path: Path, module: str, text: str | None = None) -> list[tuple[str, int]]:
    """Every ``pmpprag`` module that ``path`` imports, with the line, at any depth."""
    found = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    text = path.read_text(encoding="utf-8") if text is None else text
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pmpprag import eval` names a subpackage: count it as imported
            found += [(f"{base}.{alias.name}" if base == "pmpprag" else base, node.lineno)
                      for alias in node.names]  # fmt: skip
    return [(name, line) for name, line in found if name.split(".")[0] == "pmpprag"]


def _modules() -> list[tuple[Path, str]]:
    out = [(ROOT / "app.py", "pmpprag.app")]
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        out.append((path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)))
    return out


def test_every_unit_has_a_layer() -> None:
    units = {_unit(module) for _, module in _modules()} - {None}
    assert units <= set(LAYERS), f"give these a layer in LAYERS: {sorted(units - set(LAYERS))}"


def test_no_module_imports_from_a_higher_layer() -> None:
    wrong = []
    for path, module in _modules():
        mine = _unit(module)
        for target, line in _imports(path, module):
            theirs = _unit(target)
            if mine is None or theirs is None or theirs == mine:
                continue
            if LAYERS[theirs] > LAYERS[mine]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {mine} (layer {LAYERS[mine]}) "
                             f"imports {target} (layer {LAYERS[theirs]})")  # fmt: skip
    assert not wrong, "\n".join(sorted(set(wrong)))


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_packages_form_no_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for path, module in _modules():
        mine = _unit(module)
        for target, _ in _imports(path, module):
            theirs = _unit(target)
            if mine and theirs and theirs != mine:
                edges[mine].add(theirs)
    assert _cycle(edges) is None, f"import cycle: {' -> '.join(_cycle(edges) or [])}"


def test_the_checks_catch_a_violation() -> None:
    """The walk sees a lazy import of a higher layer, and the cycle finder sees a cycle."""
    tree = {"rag": {"generation"}, "generation": {"serve"}, "serve": {"rag"}}
    assert _cycle(tree) == ["generation", "serve", "rag", "generation"]
    assert _cycle({"rag": {"generation"}, "serve": {"rag"}}) is None
    lazy = "def f():\n    from pmpprag.serve import server\n    from . import prompt\n"
    found = _imports(SRC / "generation" / "base.py", "pmpprag.generation.base", lazy)
    assert found == [("pmpprag.serve", 2), ("pmpprag.generation", 3)]


def test_importing_qagen_loads_no_rag_serve_or_eval() -> None:
    code = (
        "import sys, pmpprag.qagen\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['pmpprag', 'rag'], ['pmpprag', 'serve'], ['pmpprag', 'eval'], ['pmpprag', 'index']))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import pmpprag.qagen also imported {out.stdout.strip()}"


def test_long_modules_say_why() -> None:
    """A module over 400 lines says in its first lines why it stays one module."""
    long = []
    for path, _ in _modules():
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > 400 and not any("stays one module" in line for line in lines[:15]):
            long.append(f"{path.relative_to(ROOT)} ({len(lines)} lines)")
    assert not long, "split these or say why they stay one module: " + ", ".join(long)
