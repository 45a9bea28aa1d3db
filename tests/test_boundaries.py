"""The house is one-way: packages import only packages below them (ARCHITECTURE.md), and
the core (data, models, train, transfer, evaluate, experiment) runs without Ray, Optuna or W&B."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import xfer

ROOT = Path(xfer.__file__).parent

LAYERS: dict[str, int] = {
    "errors": 0, "io": 1,
    "data": 2, "models": 3, "train": 4, "transfer": 5, "evaluate": 6, "experiment": 7, "study": 8,
    "tracking": 9, "report": 9,
    "hooks": 10, "cli": 11,
}
"""Rank of each top-level package or module of ``xfer``: a module may import its own package
and packages of a strictly lower rank; packages of the same rank do not import each other."""


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "xfer" and len(parts) > 1 else None


def violations(root: Path) -> list[str]:
    """Every import (module level or inside a function) that points up or sideways."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        here = _package(".".join(rel.parts))
        if here is None or here == "__init__":
            continue
        if here not in LAYERS:
            out.append(f"{rel}: package {here!r} has no layer in LAYERS")
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            for t in targets:
                there = _package(t)
                if there is None or there == here:
                    continue
                if LAYERS.get(there, 99) >= LAYERS[here]:
                    out.append(f"{rel}:{node.lineno}: {here} (layer {LAYERS[here]}) imports {t} "
                               f"(layer {LAYERS.get(there)})")
    return out


def _module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the ``xfer`` modules it imports (module level or inside a function; relative
    imports resolved; ``from pkg import sub`` counts as importing ``pkg.sub`` when that is a module)."""
    mods = {_module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            graph[mod] |= {n for n in names if n in mods and n != mod}
    return graph


def circles(root: Path) -> list[list[str]]:
    """Import circles between modules of one package (strongly connected groups of >= 2 modules),
    a package's ``__init__`` re-exporting its own modules left out (that is not a circle of use)."""
    graph = module_graph(root)
    for m in graph:
        graph[m] = {t for t in graph[m] if not (m.endswith("__init__") or t == m.rpartition(".")[0])}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_between_modules() -> None:
    assert circles(ROOT) == []


def test_a_circle_is_caught(tmp_path: Path) -> None:
    """The circle check can fail: two throwaway modules of one package that import each other
    (one of them only inside a function, as the runner/remote circle did)."""
    copy = tmp_path / "xfer"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("*.parquet", "__pycache__"))
    (copy / "study" / "ping.py").write_text("from xfer.study import pong\n")
    (copy / "study" / "pong.py").write_text("def f():\n    from .ping import g\n    return g\n")
    assert circles(copy) == [["xfer.study.ping", "xfer.study.pong"]]


def test_imports_run_one_way() -> None:
    assert violations(ROOT) == []


def test_a_back_arrow_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "xfer"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("*.parquet", "__pycache__"))
    (copy / "train" / "bad.py").write_text("def f():\n    from xfer.study.spec import load\n    return load\n")
    (copy / "tracking" / "sideways.py").write_text("import xfer.report.html\n")
    found = violations(copy)
    assert any("train/bad:2: train (layer 4) imports xfer.study.spec" in v for v in found), found
    assert any("tracking/sideways:1: tracking (layer 9) imports xfer.report.html" in v for v in found), found


@pytest.mark.slow
def test_core_imports_without_ray_optuna_wandb() -> None:
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"ray", "optuna", "wandb"}:
                    raise ImportError(f"blocked: {name}")
                return None
        sys.meta_path.insert(0, Block())
        import xfer.data, xfer.models.backbones, xfer.transfer.strategies, xfer.transfer.dann
        import xfer.train.population, xfer.train.sequential, xfer.experiment.run
        import xfer.evaluate.metrics, xfer.evaluate.tables, xfer.evaluate.inference, xfer.evaluate.baselines, xfer.evaluate.importance, xfer.evaluate.domain
        import xfer.evaluate.tables
        print("ok", sorted(m for m in sys.modules if m.split(".")[0] in {"ray", "optuna", "wandb"}))
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok []"
