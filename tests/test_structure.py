"""The structure of pipeline/, read with `ast`: no import cycles (every import, at module level or inside a
function), no private names across modules, and every function short enough to read at a glance; and conda's
environment pinned as pyproject.toml pins it."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "pipeline"


def imports(path: Path) -> set[str]:
    """The pipeline modules a file imports (`from pipeline.x import`, `import pipeline.x`, `from pipeline import x`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "pipeline":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("pipeline."))
    return found


def test_pipeline_imports_have_no_cycles():
    graph = {p.stem: imports(p) & {q.stem for q in PIPELINE.glob("*.py")} for p in PIPELINE.glob("*.py")}
    done, cycles = set(), []

    def visit(module, path):
        if module in path:
            cycles.append(path[path.index(module):] + [module])
            return
        if module in done:
            return
        for dependency in sorted(graph[module]):
            visit(dependency, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert cycles == []
    assert {"config", "data", "hub"} <= set(graph) and "data" not in graph["config"]  # the graph was read


def test_no_private_names_cross_modules():
    """`from pipeline.x import _name` nowhere: what modules share is public."""
    private = [(p.name, alias.name) for p in PIPELINE.glob("*.py") for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline")
               for alias in node.names if alias.name.startswith("_")]
    assert private == []


def test_every_function_is_under_50_lines():
    long = [(p.name, node.name, node.end_lineno - node.lineno + 1) for p in PIPELINE.glob("*.py")
            for node in ast.walk(ast.parse(p.read_text())) if isinstance(node, ast.FunctionDef)
            and node.end_lineno - node.lineno + 1 >= 50]
    assert long == []


def test_environment_yml_pins_exactly_what_pyproject_pins():
    """conda's environment.yml copies pyproject.toml's pins (dependencies and the slurm and test extras) by hand:
    one drifting from the other fails here."""
    import pytest
    import yaml

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = {*project["dependencies"], *(p for extra in project["optional-dependencies"].values() for p in extra)}
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert set(pip) - {"-e ."} == pinned
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert tuple(map(int, python.split("=")[1].split("."))) >= (3, 10)  # pyproject's requires-python
