"""The package's own rules on imports: spec modules build on spec.py only, and no private name
crosses a module boundary (one way to do each thing, with a public name)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vision_synth"
MODULES = sorted(PACKAGE.rglob("*.py"))
SPEC_MODULES = [p for p in MODULES if p.name in ("spec.py", "policy.py", "detector_spec.py")]


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def test_the_rule_sees_the_modules():
    assert len(MODULES) > 40 and len(SPEC_MODULES) >= 5


@pytest.mark.parametrize("path", SPEC_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_spec_module_imports_the_dataset_config(path):
    assert all(module != "vision_synth.config" for module, _ in _imports(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_is_imported_from_another_module(path):
    private = [f"{module}.{name}" for module, names in _imports(path) if module.startswith("vision_synth")
               for name in names if name.startswith("_") and not name.startswith("__")]
    assert private == []
