"""The import rules of design.md section 7, checked on every module's source (AST):

  models/    imports nothing of the project
  harness/   models/ only
  launch/    harness/ and models/; never analysis/
  analysis/  models/ at most; never harness/ or launch/ (it works on any results folder)
  pac/       the command's thin face over all four; nothing imports it
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT = ("models", "harness", "launch", "analysis", "pac", "benchmarks")
ALLOWED = {
    "models": set(),
    "harness": {"models"},
    "launch": {"harness", "models"},
    "analysis": {"models"},
    "pac": {"models", "harness", "launch", "analysis"},
}


def project_imports(source: str) -> set[str]:
    """Top-level project packages a module imports (anywhere in it, lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in PROJECT)
    return found


def violations(root: Path = REPO) -> list[str]:
    broken = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            bad = project_imports(path.read_text()) - allowed - {package}
            if bad:
                broken.append(f"{path.relative_to(root)} imports {', '.join(sorted(bad))}")
    return broken


def test_every_module_keeps_the_import_rules():
    assert violations() == []


@pytest.mark.parametrize("package, line, imported", [
    ("launch", "from pac.cli import main", "pac"),  # the break this test was written for
    ("analysis", "from harness.data import storage", "harness"),
    ("models", "import harness.train", "harness"),
    ("harness", "def f():\n    from launch import local\n", "launch"),  # lazy imports count too
])
def test_a_broken_rule_is_caught(tmp_path, package, line, imported):
    for name in ALLOWED:
        (tmp_path / name).mkdir()
    (tmp_path / package / "module.py").write_text(line + "\n")
    assert violations(tmp_path) == [f"{package}/module.py imports {imported}"]
