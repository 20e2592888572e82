"""The bench scripts still fit the code they measure: every name they import from dlx or db exists.

A bench runs only by hand (`make bench`), so an API change that breaks one would otherwise go unseen
until someone measures (bench_memory imported a `create_run` that had moved to the store).
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def project_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of each `from dlx... import name` / `from db... import name` in a script, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("dlx", "db"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] in ("dlx", "db")]
    return found


@pytest.mark.parametrize("script", sorted(BENCH.glob("bench_*.py")), ids=lambda p: p.name)
def test_every_name_a_bench_imports_from_the_project_exists(script: Path):
    imports = project_imports(script)
    assert imports, f"{script.name} measures nothing of dlx?"
    missing = []
    for module, name in imports:
        loaded = importlib.import_module(module)
        if name and not hasattr(loaded, name):
            try:
                importlib.import_module(f"{module}.{name}")  # a submodule
            except ModuleNotFoundError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{script.name} imports names that do not exist: {missing}"
