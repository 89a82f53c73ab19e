"""Imports go one way: core → capture → datasets → cleaning → preparation → models → scoring →
service / CLI. Every import of the package's own modules is read from the source (including
imports inside functions and under ``TYPE_CHECKING``) and checked against the layer order."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "flowsentinel"

#: top-level module or sub-package of ``flowsentinel`` → its layer (lower may not import higher)
LAYERS: dict[str, int] = {
    "core": 0,
    "capture": 1,
    "datasets": 2,
    "cleaning": 3,
    "cleaning_cluster": 3,
    "preparation": 4,
    "models": 5,
    "scoring": 6,
    "evaluation": 6,
    "scanning": 6,
    "batch": 6,
    "bounded": 6,
    "incidents": 6,
    "membership": 6,
    "alerts": 7,
    "service": 7,
    "cli": 7,
    "demo": 7,
    "__main__": 7,
}


def _unit(module: str) -> str:
    """``flowsentinel.capture.meter`` → ``capture``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of the package's own modules in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module == "flowsentinel":  # from flowsentinel import cleaning, ...
                found += [(node.lineno, f"flowsentinel.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, module))
    return [(line, m) for line, m in found if m.startswith("flowsentinel.")]


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_layer() -> None:
    units = {_unit(_module_name(p)) for p in _sources()} - {""}
    assert units <= set(LAYERS), f"modules without a layer: {sorted(units - set(LAYERS))}"


def test_imports_go_one_way() -> None:
    wrong = []
    for path in _sources():
        unit = _unit(_module_name(path))
        if not unit:
            continue
        for line, module in _imports(path):
            target = _unit(module)
            if LAYERS[target] > LAYERS[unit]:
                rel = path.relative_to(PACKAGE.parent)
                wrong.append(f"{rel}:{line} ({unit}) imports {module} ({target})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from flowsentinel.models.zoo import x\n", ["flowsentinel.models.zoo"]),
        ("def f():\n    import flowsentinel.service.app\n", ["flowsentinel.service.app"]),
        ("from flowsentinel import cleaning\n", ["flowsentinel.cleaning"]),
        ("from ..models import zoo\n", ["flowsentinel.models"]),
        ("import numpy\n", []),
    ],
)
def test_import_reader(tmp_path: Path, source: str, expected: list[str], monkeypatch) -> None:
    """The reader itself finds absolute, relative and function-level imports."""
    pkg = tmp_path / "flowsentinel" / "capture"
    pkg.mkdir(parents=True)
    file = pkg / "x.py"
    file.write_text(source, encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "flowsentinel")
    assert [m for _, m in _imports(file)] == expected
