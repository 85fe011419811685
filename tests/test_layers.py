"""The layering of DESIGN.md and docs/architecture.md, checked on the source.

Every import statement of every module counts (function bodies and ``TYPE_CHECKING`` blocks included):
relative imports are resolved against the importing package and ``from mlci import x`` names the module
``mlci.x`` when there is one. The layers, top to bottom:

    cli -> ops -> serve -> ml -> core        adapters -> core     errors: everyone
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlci"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if level > 1:
        base = base[:-(level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of_source(source: str, importer: str = "mlci.x", is_package: bool = False) -> set[str]:
    """Full names of every module imported anywhere in ``source``, relative imports resolved."""
    known = all_modules()
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve_relative(importer, is_package, node.level, node.module) if node.level else node.module
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                # `from mlci.ops import jenkins` imports a module; `from mlci.x import name` a name in mlci.x
                names.add(candidate if candidate in known else base)
    return names


def imports_of(path: Path) -> set[str]:
    return imports_of_source(path.read_text(), module_name(path), path.name == "__init__.py")


def layer_of(name: str) -> str:
    """The layer of an mlci module: ``cli``, ``ops``, ``serve``, ``ml``, ``adapters``, ``core``, ``errors``
    or ``root`` (``mlci`` itself and ``mlci.__main__``); ``external`` for anything else."""
    parts = name.split(".")
    if parts[0] != "mlci":
        return "external"
    if len(parts) == 1 or parts[1] == "__main__":
        return "root"
    return parts[1]


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


# Which mlci layers each layer may import (its own layer always allowed).
MAY_IMPORT = {
    "cli": {"ops", "core", "errors", "root"},  # serve and ml are reached through ops; adapters never
    "ops": {"serve", "ml", "adapters", "core", "errors", "root"},  # ops may use serve's settings and runner
    "serve": {"ml", "adapters", "core", "errors"},
    "ml": {"core", "errors"},
    "adapters": {"core", "errors"},
    "core": {"errors"},
    "errors": set(),
}
# The outside libraries of the lower layers (the upper layers may use any installed library).
THIRD_PARTY = {
    "core": {"yaml"},
    "errors": set(),
    "ml": {"numpy", "pyarrow", "pandas", "scipy", "sklearn"},
}


def layered_paths():
    return [path for layer in MAY_IMPORT for path in (modules(layer) if layer != "errors" else [PACKAGE / "errors.py"])]


@pytest.mark.parametrize("path", layered_paths(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_imports_only_the_layers_below_it(path):
    layer = layer_of(module_name(path))
    for name in imports_of(path):
        target = layer_of(name)
        if target == "external":
            top = name.split(".")[0]
            if layer in THIRD_PARTY:
                assert top in STDLIB or top in THIRD_PARTY[layer], f"mlci/{path.relative_to(PACKAGE)} imports {name}"
            continue
        assert target == layer or target in MAY_IMPORT[layer], \
            f"mlci/{path.relative_to(PACKAGE)} ({layer}) imports {name} ({target})"


@pytest.mark.parametrize("layer", ["core", "adapters", "ml", "ops", "serve"])
def test_nothing_below_cli_imports_click(layer):
    for path in modules(layer):
        bad = {n for n in imports_of(path) if n.split(".")[0] == "click"}
        assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {sorted(bad)}"


def import_graph() -> dict[str, set[str]]:
    known = all_modules()
    return {name: {target for target in imports_of(path) if target in known and target != name}
            for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_anywhere_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles_and_only_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}) == ["b", "b2", "b"]


def test_relative_and_from_package_imports_are_resolved():
    source = ("from . import settings\nfrom .model import X\nfrom ..core import config\nfrom mlci import errors\n"
              "from mlci.ops import jenkins\nfrom mlci import __version__\n")
    found = imports_of_source(source, "mlci.serve.app")
    assert found == {"mlci.serve.settings", "mlci.serve.model", "mlci.core.config", "mlci.errors",
                     "mlci.ops.jenkins", "mlci"}
    assert imports_of_source("from .values import x\n", "mlci.ml.tabular",
                             is_package=True) == {"mlci.ml.tabular.values"}
    assert layer_of("mlci.ops.jenkins") == "ops" and layer_of("mlci") == "root"


def test_a_serve_module_importing_ops_is_refused():
    """The rule itself can fail: an edge from serve to ops, written relatively, is found and refused."""
    found = imports_of_source("from ..ops.model import registry\n", "mlci.serve.app")
    assert {layer_of(name) for name in found} == {"ops"}
    assert "ops" not in MAY_IMPORT["serve"]


@pytest.mark.parametrize("client, home", [("jenkins", "adapters/jenkins_client.py"),
                                          ("docker", "adapters/docker_client.py"),
                                          ("jinja2", "ops/reporting/render.py")])
def test_each_client_library_has_one_home(client, home):
    users = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                   if any(n.split(".")[0] == client for n in imports_of(p)))
    assert users == [home]


def test_every_package_is_listed_for_the_wheel():
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(PACKAGE.parent).parts) for init in PACKAGE.rglob("__init__.py")}
    assert listed == found | {"mlci.templates"}


# Modules that talk to the outside world: only adapters/ may import them (DESIGN.md: adapters own every
# external call, each with a timeout). The model server's own HTTP stack (starlette, uvicorn) is serve's.
EXTERNAL_CALLS = {"subprocess", "urllib.request", "http.client", "requests", "httpx", "docker", "jenkins",
                  "mlflow"}


@pytest.mark.parametrize("layer", ["cli", "core", "ml", "ops", "serve"])
def test_external_calls_live_in_adapters(layer):
    for path in modules(layer):
        bad = {n for n in imports_of(path) if n in EXTERNAL_CALLS or n.split(".")[0] in EXTERNAL_CALLS - {"urllib"}}
        assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {sorted(bad)}: call it through mlci/adapters"
