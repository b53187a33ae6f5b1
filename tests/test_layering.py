"""The layers import one way and modules stay small (issue 14's "must show", enforced).

tasks/ (plain PyTorch) <- pipeline/ (Ray, files, MLflow) <- the CLI, which alone
composes dashboards/. A module over ~400 lines is doing more than one job.
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
        if not p.name.startswith("cli") and "dashboards" in imported(p)
    ]
    assert offenders == [], "pipeline/ draws nothing; compose dashboards in pipeline/cli*.py"


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
    file name in nine; now pipeline/catalogue.py names them and everything else reads it
    (folder names double as task and column names, so only file names are checked)."""
    from pipeline.catalogue import PARENT_FILES, RUN_FILES

    spelled = [f'"{name}"' for name in (*RUN_FILES, *PARENT_FILES)]
    offenders = {
        f"{p.relative_to(ROOT)}: {s}"
        for p in [*modules("pipeline"), *modules("dashboards")]
        if p.name != "catalogue.py"
        for s in spelled
        if s in p.read_text()
    }
    assert offenders == set(), "name them through pipeline/catalogue.py"
