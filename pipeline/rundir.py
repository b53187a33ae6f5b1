"""The run directory ``<output_dir>/<run name>``: checked first, deleted only if ours.

A run name is one safe path component (checked when the config is parsed and
again here, for runs named in code such as the nightly's). When foveabench
creates a run directory it writes :data:`MARKER` into it; ``--fresh`` deletes
the results of a directory that carries the marker and refuses any other, so a
mistyped name or ``output_dir`` can never make it delete someone else's files.
Symbolic links inside a run directory are unlinked, never followed.
Standard library only: the CLI runs :func:`check` before heavy imports.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.config import ConfigError, run_name_problem

MARKER = ".foveabench-run"
RESULT_DIRS = (
    "attacks", "clean", "bounds", "perturbations", "object_perturbations", "evals", "summary",
    "report",
)  # fmt: skip
PROVENANCE_FILE = "provenance.json"  # the run's provenance (pipeline.provenance)
EVAL_POINTS_FILE = "eval_points.json"  # the findings' evaluation points (pipeline.summary.points)
RESULT_FILES = (
    "manifest.parquet", "bad_rows.parquet", "mlflow.json", EVAL_POINTS_FILE, PROVENANCE_FILE,
)  # fmt: skip


class RunDirError(ConfigError):
    """The run directory cannot be used as asked; the message says why and what to do."""


def _is_uri(output_dir: str) -> bool:
    return "://" in output_dir


def check(output_dir: str, run_name: str, fresh: bool) -> Path:
    """The run directory, after checking the name, that ``output_dir`` is a writable
    directory (it is created if missing) and that ``--fresh`` may delete it."""
    problem = run_name_problem(run_name)
    if problem:
        raise RunDirError(f"run name {run_name!r} {problem}")
    run_dir = Path(output_dir) / run_name
    if _is_uri(output_dir):
        return run_dir
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise RunDirError(
            f"output_dir = {output_dir!r}: not a writable directory ({exc.strerror or exc}); "
            "set output_dir (or --output-dir) to a directory you can write"
        ) from None
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} exists and is not a directory; remove it or rename the run")
    if fresh and run_dir.is_dir() and not (run_dir / MARKER).is_file() and _results_in(run_dir):
        raise RunDirError(
            f"--fresh: {run_dir} was not created by foveabench (it has no {MARKER} file), so "
            "nothing in it is deleted; remove it yourself or choose another run name"
        )
    return run_dir


def _results_in(run_dir: Path) -> list[Path]:
    """What ``--fresh`` would delete (links included, never followed)."""
    names = (*RESULT_DIRS, *RESULT_FILES)
    return [run_dir / n for n in names if (run_dir / n).exists() or (run_dir / n).is_symlink()]


def prepare(output_dir: str, run_name: str, fresh: bool) -> Path:
    """Create (or with ``fresh``, empty) the run directory; return it."""
    run_dir = check(output_dir, run_name, fresh)
    if fresh and run_dir.is_dir():
        for target in _results_in(run_dir):
            if target.is_symlink() or not target.is_dir():
                target.unlink()
            else:
                shutil.rmtree(target)
    if not run_dir.is_dir():
        run_dir.mkdir(parents=True)
        (run_dir / MARKER).write_text(
            json.dumps(
                {"created_by": "foveabench", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            )
            + "\n"
        )
    return run_dir
