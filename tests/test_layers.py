"""The layering of DESIGN.md, checked on the source: each layer imports only the ones below it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlci"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def imports_of(path: Path) -> set[str]:
    """Top-level names of every module imported anywhere in ``path`` (function bodies included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("path", modules("core"), ids=lambda p: p.name)
def test_core_is_pure(path):
    for name in imports_of(path):
        top = name.split(".")[0]
        allowed = top in STDLIB or top == "yaml" or name.startswith(("mlci.core", "mlci.errors"))
        assert allowed, f"mlci/core/{path.name} imports {name}"


@pytest.mark.parametrize("path", modules("ml"), ids=lambda p: p.name)
def test_ml_sits_below_ops_and_serve(path):
    """The shared ML layer (schema rules, Arrow helpers) may use core, errors, NumPy and pyarrow only."""
    for name in imports_of(path):
        top = name.split(".")[0]
        allowed = top in STDLIB or top in ("numpy", "pyarrow") \
            or name.startswith(("mlci.core", "mlci.errors", "mlci.ml"))
        assert allowed, f"mlci/ml/{path.name} imports {name}"


def test_ml_layer_exists():
    assert modules("ml"), "mlci/ml holds the schema-rule compiler"


@pytest.mark.parametrize("layer", ["core", "adapters", "ml", "ops", "serve"])
def test_nothing_below_cli_imports_cli_or_click(layer):
    for path in modules(layer):
        bad = {n for n in imports_of(path) if n.startswith("mlci.cli") or n.split(".")[0] == "click"}
        assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {sorted(bad)}"


@pytest.mark.parametrize("client, home", [("jenkins", "adapters/jenkins_client.py"),
                                          ("docker", "adapters/docker_client.py"),
                                          ("jinja2", "ops/render.py")])
def test_each_client_library_has_one_home(client, home):
    users = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                   if any(n.split(".")[0] == client for n in imports_of(p)))
    assert users == [home]


def test_cli_never_touches_adapters():
    for path in modules("cli"):
        bad = {n for n in imports_of(path) if n.startswith("mlci.adapters")}
        assert not bad, f"mlci/cli/{path.name} imports {sorted(bad)}"


def test_every_package_is_listed_for_the_wheel():
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(PACKAGE.parent).parts) for init in PACKAGE.rglob("__init__.py")}
    assert listed == found | {"mlci.templates"}
