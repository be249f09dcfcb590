"""The package's import graph: no circles, and the light entry points stay free of torch.

The graph is read from the source with ``ast``: every ``import`` / ``from ... import`` statement
anywhere in a module (at the top or inside functions) is an edge to the ``skcgcnn`` module it
names; only the blocks under ``if TYPE_CHECKING:``, which never run, are left out.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import skcgcnn

PACKAGE_DIR = Path(skcgcnn.__file__).resolve().parent


def _module_name(path: Path, package_dir: Path) -> tuple[str, bool]:
    """Dotted name of a source file, and whether it is a package's ``__init__``."""
    parts = (package_dir.name, *path.relative_to(package_dir).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}`` for every module under ``package_dir``."""
    files = {_module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}
    modules = {name for name, _ in files}
    graph: dict[str, set[str]] = {}
    for (name, is_package), path in files.items():
        edges = graph.setdefault(name, set())
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for block in [n for n in ast.walk(tree) if isinstance(n, ast.If)
                      and "TYPE_CHECKING" in ast.unparse(n.test)]:
            block.body = []  # for type checkers only: never imported at run time
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")
                    base = base[: len(base) - node.level + (1 if is_package else 0)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                # ``from pkg import sub`` imports the submodule pkg.sub
                targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules
                           else origin for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # ``import skcgcnn.a.b`` -> deepest
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_package_import_graph_has_no_cycle():
    graph = import_graph()
    assert "skcgcnn.estimators" in graph and "skcgcnn.checkpoints" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "skcgcnn"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import A\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from .. import a\n")
    graph = import_graph(pkg)
    assert graph["skcgcnn"] == {"skcgcnn.a"}
    assert graph["skcgcnn.a"] == {"skcgcnn.sub.b"}
    assert graph["skcgcnn.sub.b"] == {"skcgcnn.a"}
    assert find_cycle(graph) == ["skcgcnn.a", "skcgcnn.sub.b", "skcgcnn.a"]
    (pkg / "sub" / "b.py").write_text("import numpy\n")
    assert find_cycle(import_graph(pkg)) is None


# --------------------------------------------------------------------------- lazy imports
def _modules_after(code: str) -> set[str]:
    """Top-level packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = (
        "import sys\n"
        f"{code}\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=300, check=True)
    return set(result.stdout.split())


HEAVY = {"torch", "skorch", "sklearn"}


@pytest.mark.parametrize(
    ("code", "allowed"),
    [
        ("import skcgcnn", set()),
        ("import skcgcnn; skcgcnn.__version__", set()),
        ("import skcgcnn.graph", set()),
        ("import skcgcnn.pretrained; skcgcnn.pretrained.list_models()", set()),
        ("from skcgcnn.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
         set()),
        ("from skcgcnn.cli import main\nmain(['models'])", set()),
        # the featurizer needs matminer, which needs scikit-learn; still no torch
        ("from skcgcnn import CrystalGraphFeaturizer", {"sklearn"}),
    ],
    ids=["import", "version", "graph", "pretrained-list", "cli-help", "cli-models", "featurizer"],
)
def test_light_entry_points_do_not_import_torch(code, allowed):
    loaded = _modules_after(code)
    assert "skcgcnn" in loaded
    assert not (loaded & HEAVY) - allowed, sorted(loaded & HEAVY)


def test_lazy_names_resolve_and_are_listed():
    loaded = _modules_after(
        "import skcgcnn\n"
        "assert skcgcnn.CGCNNRegressor.__name__ == 'CGCNNRegressor'\n"
        "assert set(skcgcnn.__all__) <= set(dir(skcgcnn))\n"
        "from skcgcnn import load_checkpoint, StructureMemory, build_graph\n"
        "try:\n"
        "    skcgcnn.NoSuchThing\n"
        "except AttributeError as exc:\n"
        "    assert 'NoSuchThing' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    assert "torch" in loaded  # the estimators were imported on first use


def test_every_public_name_is_importable():
    assert set(skcgcnn.__all__) == set(skcgcnn._EXPORTS) | {"__version__"}
    for name in skcgcnn.__all__:
        assert getattr(skcgcnn, name) is not None, name
