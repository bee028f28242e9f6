"""The inference, training and evaluation modules import only downward (issue 13, point 4).

Stage order, bottom first: catalog/io, preprocess, simulate, datasets, models, training,
evaluation, studies, predict, cli. Imports inside functions count too: a deferred import is still
a dependency. (The whole package's import direction is checked elsewhere; this covers the modules
of the one inference path.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "temshift"
ORDER = [
    "errors",
    "units",
    "threads",
    "catalog",
    "io",
    "preprocess",
    "simulate",
    "datasets",
    "models",
    "training",
    "evaluation",
    "studies",
    "realism",
    "predict",
    "cli",
]
CHECKED = [
    *sorted((SRC / "models").glob("*.py")),
    *sorted((SRC / "evaluation").glob("*.py")),
    SRC / "datasets" / "contrast.py",
    *(
        SRC / "training" / f"{name}.py"
        for name in ("trainer", "segmenter", "data", "runtime", "fold", "augment", "settings", "freeze", "splits")
    ),
    SRC / "studies" / "stats.py",
]


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "temshift" else None


def upward_imports(path: Path, root: Path = SRC) -> list[str]:
    """``"line: module"`` for each import of `path` (a module under `root`) from a stage above its own."""
    own = path.relative_to(root).parts[0].removesuffix(".py")
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            stage = _stage(name)
            if stage in ORDER and ORDER.index(stage) > ORDER.index(own):
                found.append(f"{node.lineno}: {name}")
    return found


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(SRC)))
def test_module_imports_only_lower_stages(path):
    assert path.is_file()
    assert upward_imports(path) == []


def test_the_check_catches_an_upward_import(tmp_path):
    fake = tmp_path / "temshift" / "models" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "import numpy\nfrom temshift.datasets import splits\n\n\ndef f():\n"
        "    from temshift.training.data import expand\n    import temshift.predict.pipeline\n"
    )
    assert upward_imports(fake, tmp_path / "temshift") == ["6: temshift.training.data", "7: temshift.predict.pipeline"]
