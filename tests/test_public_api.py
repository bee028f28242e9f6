"""The public API: every `__all__` name imports, ARCHITECTURE.md names what exists, docstring examples run."""

from __future__ import annotations

import contextlib
import doctest
import importlib
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = [
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
]
#: ARCHITECTURE.md sections another change owns (the prediction API is being rewritten beside this test)
PENDING_SECTIONS: set[str] = set()  # stages whose ARCHITECTURE.md section is being rewritten (none now)
#: modules whose docstring examples run here
DOCTEST_MODULES = [
    "temshift.preprocess.rescale",
    "temshift.preprocess.patches",
    "temshift.preprocess.flatfield",
    "temshift.preprocess.xrays",
]


@pytest.mark.parametrize("package", ["temshift"] + [f"temshift.{s}" for s in STAGES])
def test_every_name_in_all_imports(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    assert len(names) == len(set(names)), f"{package}.__all__ repeats a name"
    missing = [n for n in names if getattr(module, n, None) is None]
    assert not missing, f"{package}.__all__ names that do not import: {missing}"
    assert set(names) <= set(dir(module))


def test_import_temshift_is_light() -> None:
    heavy = "{'numpy', 'torch', 'pandas', 'pydantic', 'dask', 'abtem', 'h5py'}"
    code = f"import sys, temshift; print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", ["temshift.training.trainer", "temshift.models", "temshift.predict.pipeline"])
def test_model_and_training_imports_load_no_tables_or_plots(module: str) -> None:
    # pandas/pyarrow (its allocator, its threads) and matplotlib belong to readers, reports and figures
    heavy = "{'pandas', 'pyarrow', 'matplotlib'}"
    code = f"import sys, {module}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"import {module} loads {out.strip()}"


def _instance_attributes(cls: type) -> set[str]:
    """Fields and constructor arguments of a class (attributes its instances carry)."""
    import inspect

    names = set(getattr(cls, "model_fields", {})) | set(getattr(cls, "__dataclass_fields__", {}))
    with contextlib.suppress(TypeError, ValueError):
        names |= set(inspect.signature(cls).parameters)
    return names


def _resolve(dotted: str, bases: list[ModuleType]) -> Any:
    """`dotted` as an attribute chain from one of `bases` (importing submodules on the way), or None."""
    for base in bases:
        obj: Any = base
        for part in dotted.split("."):
            nxt = getattr(obj, part, None)
            if nxt is None and isinstance(obj, type) and part in _instance_attributes(obj):
                nxt = part
            if nxt is None and isinstance(obj, ModuleType):
                try:
                    nxt = importlib.import_module(f"{obj.__name__}.{part}")
                except ImportError:
                    nxt = None
            if nxt is None:
                break
            obj = nxt
        else:
            return obj
    return None


def _sections() -> list[tuple[str, str]]:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    return [(s.splitlines()[0], s) for s in re.split(r"\n### ", text)[1:]]


#: a code span that names API: a call ``name(...)``/``a.b(...)``, a class ``Name``, or ``temshift.a.b``
_API_SPAN = re.compile(r"^(?:temshift\.)?([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:\(|$)")


_FILE = re.compile(r"\.(csv|json|png|h5|toml|pt|html|tif|txt|py)$")


@pytest.mark.parametrize("heading, body", _sections(), ids=[h for h, _ in _sections()])
def test_architecture_names_exist(heading: str, body: str) -> None:
    stages = [s for s in STAGES if re.search(rf"\b{s}\b", heading)]
    if set(stages) & PENDING_SECTIONS:
        pytest.skip(f"{heading}: owned by the prediction-API change")
    bases = [importlib.import_module(f"temshift.{s}") for s in stages] + [importlib.import_module("temshift")]
    missing = []
    for span in re.findall(r"`([^`]+)`", body):
        m = _API_SPAN.match(span.strip())
        if not m:
            continue
        name = m.group(1)
        called = span.strip().removeprefix("temshift.").startswith(name + "(")
        if not (called or name[0].isupper() or span.startswith("temshift.") or "." in name):
            continue  # a plain word (a column, a key), not an API name
        if name.split(".")[0] in {"np", "torch", "pandas", "warnings"} or "/" in span or _FILE.search(span):
            continue
        if _resolve(name, bases) is None:
            missing.append(name)
    assert not missing, f"ARCHITECTURE.md {heading}: names that do not exist: {missing}"


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_docstring_examples_run(module: str) -> None:
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{module} has no docstring examples"
    assert result.failed == 0


def test_architecture_lists_the_top_level_api() -> None:
    import temshift

    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text[text.index("## Public API") : text.index("## Contracts")]
    listed = set(re.findall(r"`(\w+)`", section))
    assert set(temshift.__all__) - {"__version__"} <= listed
