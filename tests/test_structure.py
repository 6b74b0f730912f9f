"""The structure of pipeline/, read with `ast`: no import cycles (every import, at module level or inside a
function), each subject kind a package that no shared module and no other kind imports, no kind named in the
shared modules, no private names across modules, modules, classes and functions short enough to read at a
glance; and conda's environment pinned as pyproject.toml pins it."""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "pipeline"
KINDS_DIR = PIPELINE / "kinds"
MODULES = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
           for p in sorted(PIPELINE.rglob("*.py"))}
KIND_NAMES = sorted(p.name for p in KINDS_DIR.iterdir() if (p / "__init__.py").is_file())


def kind_of_module(name: str) -> str | None:
    """The kind whose package holds this module (None: a shared module, the registry included)."""
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "kinds" else None


def imports(path: Path) -> set[str]:
    """The pipeline modules a file imports, as dotted names: `from pipeline.x.y import z` is pipeline.x.y.z when
    that is a module, else pipeline.x.y; `from pipeline import x` is pipeline.x; `import pipeline.x` is pipeline.x."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pipeline":
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pipeline."))
    return found & set(MODULES)


GRAPH = {name: imports(path) - {name} for name, path in MODULES.items()}


def test_pipeline_imports_have_no_cycles():
    done, cycles = set(), []

    def visit(module, path):
        if module in path:
            cycles.append(path[path.index(module):] + [module])
            return
        if module in done:
            return
        for dependency in sorted(GRAPH[module]):
            visit(dependency, path + [module])
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, [])
    assert cycles == []
    assert "pipeline.config" in GRAPH["pipeline.dag"] and "pipeline.registry" in GRAPH["pipeline.schema"]  # read


def test_each_kind_is_a_package_that_shared_modules_and_other_kinds_never_import():
    """Kinds stand above the shared modules: a shared module (the registry included, which finds the kinds at
    run time) imports no kind's package, and no kind imports another's."""
    assert {"language", "regression", "markov"} <= set(KIND_NAMES)
    wrong = [(module, dependency) for module, dependencies in GRAPH.items() for dependency in dependencies
             if kind_of_module(dependency) not in (None, kind_of_module(module))]
    assert wrong == []


def test_shared_modules_name_no_kind():
    """`grep` finds no kind's name in the shared modules: what they need of a kind, its KIND declares."""
    named = [(name, kind) for name, path in MODULES.items() if kind_of_module(name) is None
             for kind in KIND_NAMES if re.search(rf"\b{kind}\b", path.read_text(), re.IGNORECASE)]
    assert named == []


def test_every_module_and_script_imports():
    """Every module of pipeline/ and every script imports: a name moved to another module fails here, not in the
    one rule that happens to import it."""
    import importlib
    import importlib.util

    failed = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - the failure itself is the finding
            failed.append((name, repr(err)))
    for path in sorted((REPO / "scripts").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
        try:
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        except Exception as err:  # noqa: BLE001
            failed.append((path.name, repr(err)))
    assert failed == []


def test_no_private_names_cross_modules():
    """`from pipeline.x import _name` nowhere: what modules share is public."""
    private = [(name, alias.name) for name, path in MODULES.items() for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline")
               for alias in node.names if alias.name.startswith("_")]
    assert private == []


@pytest.mark.parametrize("node_type, limit", [(ast.FunctionDef, 50), (ast.ClassDef, 150)])
def test_every_function_and_class_is_short(node_type, limit):
    long = [(name, node.name, node.end_lineno - node.lineno + 1) for name, path in MODULES.items()
            for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, node_type)
            and node.end_lineno - node.lineno + 1 >= limit]
    assert long == []


def test_every_module_is_under_400_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


def test_environment_yml_pins_exactly_what_pyproject_pins():
    """conda's environment.yml copies pyproject.toml's pins (dependencies and the slurm and test extras) by hand:
    one drifting from the other fails here."""
    import yaml

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = {*project["dependencies"], *(p for extra in project["optional-dependencies"].values() for p in extra)}
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert set(pip) == pinned
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert tuple(map(int, python.split("=")[1].split("."))) >= (3, 10)  # pyproject's requires-python
