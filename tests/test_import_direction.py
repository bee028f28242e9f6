"""Dependencies flow one way: no module of src/temshift imports from a stage above its own.

Checked over the source with `ast` (no import of the package, so it is fast and sees every
import: module level, inside functions, and the ``"temshift.x.y:NAME"`` strings that task
registries are resolved from on Dask workers). Imports under ``if TYPE_CHECKING:`` do not
count. No exceptions: an upward import fails the test. An `ast` walk rather than import-linter:
no extra dependency, and the registry strings are checked the same way.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import temshift

SRC = Path(temshift.__file__).resolve().parent

LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(x)
    for x in (
        {"errors", "units", "threads", "compute", "progress", "_lazy"},  # helpers everything may use
        {"io"},
        {"catalog"},
        {"preprocess"},
        {"simulate"},
        {"datasets"},
        {"models"},
        {"training"},
        {"evaluation"},
        {"predict"},  # the prediction API: frames in, masks and shift reports out
        {"studies", "realism"},  # task graphs over the stages below, prediction included (acceptance, extra models)
        {"cli", "demo", "__main__", "temshift"},  # entry points (and the lazy facade temshift/__init__) on top
    )
)
"""Stages from the bottom up; a module may import its own layer and the layers below."""

MODULE_LAYERS: dict[str, str] = {}
"""Modules placed in another stage's layer than their package's, with the reason."""

_REGISTRY = re.compile(r"^(temshift(?:\.[a-z_][a-z0-9_]*)+):[A-Za-z_][A-Za-z0-9_]*$")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    """Layer index of a ``temshift...`` module (its first component below the package)."""
    parts = module.split(".")
    stage = next((s for m, s in MODULE_LAYERS.items() if module == m or module.startswith(m + ".")), None)
    stage = stage or (parts[1] if len(parts) > 1 else "temshift")
    for i, names in enumerate(LAYERS):
        if stage in names:
            return i
    raise AssertionError(f"{module}: stage {stage!r} is in no layer of LAYERS; add it")


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported temshift module) of every import in one file."""
    tree = ast.parse(path.read_text(), str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skip = _type_checking_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from temshift import x` / `from temshift.stage import sub`: the names may be modules
            found.append((node.lineno, target))
            found += [
                (node.lineno, f"{target}.{a.name}")
                for a in node.names
                if target in ("temshift", *(f"temshift.{s}" for layer in LAYERS for s in layer))
                and (SRC.parent / Path(*f"{target}.{a.name}".split("."))).with_suffix(".py").exists()
            ]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (m := _REGISTRY.match(node.value)):
            found.append((node.lineno, m.group(1)))
    return [(line, t) for line, t in found if t == "temshift" or t.startswith("temshift.")]


def upward_imports() -> set[tuple[str, str, int]]:
    """(importing module, imported module, line) of every import that goes up a layer."""
    out = set()
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        for line, target in imports(path):
            if target == "temshift":
                continue  # the package itself: `from temshift import __version__`
            if _layer(target) > _layer(module):
                out.add((module, target, line))
    return out


def test_nothing_imports_upward():
    bad = sorted(upward_imports())
    listing = "\n".join(f"  {m}:{line} imports {t}" for m, t, line in bad)
    assert not bad, f"imports against the layer order (see LAYERS):\n{listing}"


def test_the_checker_sees_lazy_relative_and_registry_imports(tmp_path):
    """The walk finds imports inside functions, relative ones and registry strings, and skips TYPE_CHECKING."""
    pkg = tmp_path / "temshift" / "models"
    pkg.mkdir(parents=True)
    (tmp_path / "temshift" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (tmp_path / "temshift" / "studies").mkdir()
    (tmp_path / "temshift" / "studies" / "plan.py").write_text("")
    (pkg / "x.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from temshift.predict import shift\n"
        "def f():\n    from ..studies import plan\n"
        "REG = 'temshift.cli.common:app'\n"
    )
    global SRC
    saved, SRC = SRC, tmp_path / "temshift"
    try:
        found = {t for _, t in imports(pkg / "x.py")}
        assert "temshift.studies.plan" in found and "temshift.cli.common" in found
        assert "temshift.predict.shift" not in found and "temshift.predict" not in found
        assert {(m, t) for m, t, _ in upward_imports()} == {
            ("temshift.models.x", "temshift.studies"),
            ("temshift.models.x", "temshift.studies.plan"),
            ("temshift.models.x", "temshift.cli.common"),
        }
    finally:
        SRC = saved


def test_only_the_entry_points_draw_with_rich():
    """Library code reports progress through `temshift.progress.Reporter`; rich is the CLI's."""
    drawing = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        if _layer(module) == len(LAYERS) - 1:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            drawing += [f"{module}:{node.lineno} imports {n}" for n in names if n == "rich" or n.startswith("rich.")]
    assert not drawing, "\n".join(drawing)
