"""The package's structure: one namespace, layers with downward imports only."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [ROOT / "pipeline", ROOT / "reid", ROOT / "eval", ROOT / "__init__.py"]


def _modules() -> list[Path]:
    out: list[Path] = []
    for p in PRODUCT:
        out.extend([p] if p.is_file() else sorted(p.rglob("*.py")))
    return out


def test_layering_contract_holds():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("lint-imports (import-linter, the dev extra) is not installed")
    done = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 kept, 0 broken" in done.stdout


def test_no_samtrack_import_inside_a_function():
    """An import of our own code inside a function is how cycles hide; there must be none."""
    hidden = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                names = ([a.name for a in inner.names] if isinstance(inner, ast.Import) else
                         [inner.module or ""] if isinstance(inner, ast.ImportFrom) else [])
                if any(n == "samtrack" or n.startswith("samtrack.") for n in names):
                    hidden.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert hidden == []


def test_one_namespace_and_no_old_top_level_names():
    import samtrack

    assert Path(samtrack.__file__).resolve().parent == ROOT
    for old in ("pipeline", "reid"):
        done = subprocess.run([sys.executable, "-c", f"import {old}"], cwd="/",
                              capture_output=True, text=True, check=False)
        assert done.returncode != 0, f"'{old}' must not be importable as a top-level name"
