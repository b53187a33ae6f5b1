"""The layers import one way and modules stay small (issue 14's "must show", enforced).

tasks/ (plain PyTorch) <- pipeline/ (Ray, files, MLflow) <- the CLI, which alone
composes dashboards/. dashboards/ only draws: the summary layer hands it finished data
(issue 25.5). A module over ~400 lines is doing more than one job.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 420


def imported(path: Path) -> set[str]:
    """Top-level package names a module imports (anywhere in it, lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_only_the_cli_imports_dashboards() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in modules("pipeline")
        if p.relative_to(ROOT).parts[:2] != ("pipeline", "cli") and "dashboards" in imported(p)
    ]
    assert offenders == [], "pipeline/ draws nothing; compose dashboards in pipeline/cli/"


#: The only pipeline modules the dashboards may import: plain values and pure functions
#: that read no file and reach no network (checked below like the dashboards themselves).
PLAIN_FOR_DASHBOARDS = frozenset(
    {
        "pipeline.summary.report_data",  # what the run report draws
        "pipeline.summary.nightly_data",  # what the regression page draws
        "pipeline.summary.axes",
        "pipeline.summary.stats",
        "pipeline.summary.claims",
        "pipeline.config.evaluation",
        "pipeline.config.error",
        "pipeline.user_error",  # the base class of config_error's error
    }
)
#: Libraries that read files or reach a network; the dashboards and their plain modules
#: import none of them.
IO_LIBRARIES = frozenset({"mlflow", "urllib", "http", "requests", "socket", "pyarrow", "ray"})
#: Calls that open, read, list or write files (``open(``, polars readers, ``Path.read_*``...).
FILE_CALLS = frozenset(
    {"open", "read_parquet", "scan_parquet", "read_csv", "read_json", "read_ipc", "load"}
    | {"read_text", "read_bytes", "write_text", "write_bytes", "mkdir", "rmtree", "unlink"}
    | {"is_file", "is_dir", "exists", "glob", "rglob", "iterdir", "stat"}
)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node outside ``if TYPE_CHECKING:`` blocks (annotations import nothing)."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return [n for n in ast.walk(tree) if id(n) not in hidden]


def full_imports(path: Path) -> set[str]:
    """Dotted names a module imports at run time (``from a.b import c``: ``a.b.c`` when that
    is a module of ours, else ``a.b``)."""
    names: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                is_module = (ROOT / sub.replace(".", "/")).with_suffix(".py").is_file()
                names.add(sub if is_module else node.module)
    return names


def file_calls(path: Path) -> list[str]:
    """``line: name`` of every call that touches files (FILE_CALLS) in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name in FILE_CALLS:
            found.append(f"{node.lineno}: {name}(")
    return found


def _io_offenders(paths: list[Path]) -> dict[str, list[str]]:
    offenders: dict[str, list[str]] = {}
    for p in paths:
        bad = sorted(
            name
            for name in full_imports(p)
            if name.split(".")[0] in IO_LIBRARIES
            or (name.split(".")[0] == "pipeline" and name not in PLAIN_FOR_DASHBOARDS)
        )
        bad += file_calls(p)
        if bad:
            offenders[str(p.relative_to(ROOT))] = bad
    return offenders


def test_dashboards_only_draw() -> None:
    """Issue 25.5: dashboards/ gets its data finished from the summary layer; it imports no
    MLflow, network or Parquet reader, no pipeline module that touches files, and opens,
    reads or writes no file (the CLI writes what it draws)."""
    offenders = _io_offenders(modules("dashboards"))
    assert offenders == {}, (
        "load in pipeline/summary (e.g. report_load.py) and hand the dashboards plain data"
    )


def test_the_plain_modules_the_dashboards_import_are_plain() -> None:
    paths = [ROOT / (m.replace(".", "/") + ".py") for m in sorted(PLAIN_FOR_DASHBOARDS)]
    assert _io_offenders(paths) == {}, "a module the dashboards import must read nothing"


def test_only_the_tracking_package_imports_mlflow() -> None:
    """Issue 25.4: one MLflow gateway. Everything else reaches a store through
    pipeline/tracking/ (its queries, its Tracker); annotations may name MLflow's types."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in [*modules("pipeline"), *modules("dashboards")]
        if "tracking" not in p.relative_to(ROOT).parts[:2]
        and any(name.split(".")[0] == "mlflow" for name in full_imports(p))
    ]
    assert offenders == [], "look runs up with pipeline.tracking.queries"


def test_tasks_stay_plain_pytorch() -> None:
    banned = {"ray", "mlflow", "pyarrow", "polars", "pipeline", "dashboards"}
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported(p) & banned)
        for p in modules("tasks")
        if imported(p) & banned
    }
    assert offenders == {}


def test_no_module_over_about_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for package in ("pipeline", "tasks", "dashboards")
        for p in modules(package)
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, "split these by job"


def test_nothing_cites_a_design_file_outside_the_repository() -> None:
    """Users never see the team's design notes: code and docs cite README and docs/."""
    outside = ("DESIGN" + ".md", "STYLE" + ".md")
    files = [*ROOT.glob("*.md"), *ROOT.glob("docs/*.md"), *ROOT.glob("configs/**/*.yaml")]
    for package in ("pipeline", "tasks", "dashboards", "tests", "scripts"):
        files += modules(package)
    citing = [str(p.relative_to(ROOT)) for p in files if any(n in p.read_text() for n in outside)]
    assert not citing, f"cite README or docs/ instead: {citing}"


def test_the_run_directorys_names_are_spelled_only_in_the_catalogue() -> None:
    """Issue 25: result folders and run files were listed in five modules, the manifest's
    file name in nine; now pipeline/results/catalogue.py names them and everything else reads it
    (folder names double as task and column names, so only file names are checked)."""
    from pipeline.results.catalogue import PARENT_FILES, RUN_FILES

    spelled = [f'"{name}"' for name in (*RUN_FILES, *PARENT_FILES)]
    offenders = {
        f"{p.relative_to(ROOT)}: {s}"
        for p in [*modules("pipeline"), *modules("dashboards")]
        if p.name != "catalogue.py"
        for s in spelled
        if s in p.read_text()
    }
    assert offenders == set(), "name them through pipeline/results/catalogue.py"
