"""The run directory ``<output_dir>/<run name>``: checked first, deleted only if ours.

A run name is one safe path component (checked when the config is parsed and
again here, for runs named in code such as the nightly's). When foveabench
creates a run directory it writes :data:`MARKER` into it; ``--fresh`` deletes
the results of a directory that carries the marker and refuses any other, so a
mistyped name or ``output_dir`` can never make it delete someone else's files.
Symbolic links inside a run directory are unlinked, never followed.
The CLI imports this module before heavy imports; :func:`check` loads pyarrow's filesystems.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config.benchmark import ConfigError, run_name_problem
from pipeline.results.catalogue import RUN_FILES, result_dirs

if TYPE_CHECKING:
    from pipeline.results.storage import Location

MARKER = ".foveabench-run"
COMMITS = "_commits"  # shard commit records (pipeline.results.partitions)
QUARANTINE = "_quarantine"  # committed pieces found unreadable, kept for a look (partitions)
RESULT_DIRS = result_dirs()  # every result folder (pipeline/results/catalogue.py)
RESULT_FILES = RUN_FILES


class RunDirError(ConfigError):
    """The run directory cannot be used as asked; the message says why and what to do."""


def drop_links(folder: Path) -> list[Path]:
    """Unlink every symbolic link at or below ``folder`` (none is followed), so that what is
    written there next lands inside the run directory and never where a link points."""
    if folder.is_symlink():
        folder.unlink()
        return [folder]
    dropped = []
    for parent, dirs, files in os.walk(folder):  # os.walk never descends into links
        for name in (*dirs, *files):
            path = Path(parent) / name
            if path.is_symlink():
                path.unlink()
                dropped.append(path)
    return dropped


def drop_links_below(run_dir: Path, who: str) -> list[Path]:
    """Unlink every link inside ``run_dir`` at any depth (``attacks/model=m`` or
    ``logs/driver.log`` as well as ``summary/``), saying so on stderr, before ``who``
    (run, sync) writes there; the run directory itself may be a link the user made."""
    dropped = [p for entry in sorted(run_dir.iterdir()) for p in drop_links(entry)]
    for link in dropped:
        print(
            f"{who}: removed the link {link}; nothing in a run directory is written through a link",
            file=sys.stderr,
        )
    return dropped


def check(output_dir: str, run_name: str, fresh: bool) -> Location:
    """The run directory, after checking the name, that ``output_dir`` is a writable
    directory (it is created if missing) and that ``--fresh`` may delete it.
    On an object store the checks are the marker's: writability shows at the first write.
    Every refusal comes before pyarrow is imported (the CLI answers config errors fast)."""
    problem = run_name_problem(run_name)
    if problem:
        raise RunDirError(f"run name {run_name!r} {problem}")
    if "://" in output_dir:
        from pipeline.results.storage import Location

        remote = Location(output_dir) / run_name
        if not (remote / MARKER).is_file() and _results_in(remote):
            raise RunDirError(_not_ours(remote, fresh))
        return remote
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
    local = out / run_name
    if local.exists() and not local.is_dir():
        raise RunDirError(f"{local} exists and is not a directory; remove it or rename the run")
    if local.is_dir() and not marked(local) and any(local.iterdir()):
        raise RunDirError(_not_ours(local, fresh))
    from pipeline.results.storage import Location

    return Location(local)


def marked(local: Path) -> bool:
    """The marker is there, as a file of its own (a link to some file proves nothing)."""
    marker = local / MARKER
    return marker.is_file() and not marker.is_symlink()


def _not_ours(run_dir: object, fresh: bool) -> str:
    """Why a directory with results but no marker is refused, and the ways on."""
    if fresh:
        return (
            f"--fresh: {run_dir} was not created by foveabench (it has no {MARKER} file), so "
            "nothing in it is deleted; remove it yourself or choose another run name"
        )
    return (
        f"{run_dir} holds files but was not created by foveabench (it has no {MARKER} file), "
        "so nothing in it is overwritten; choose another run name or output_dir, or, if it "
        f"is a foveabench run from before run markers, create {run_dir}/{MARKER} to resume it"
    )


_RESULT_NAMES = (*RESULT_DIRS, COMMITS, QUARANTINE, *RESULT_FILES)


def _local_results(local: Path) -> list[str]:
    return [n for n in _RESULT_NAMES if (local / n).exists() or (local / n).is_symlink()]


def _results_in(run_dir: Location) -> list[str]:
    """Names of what ``--fresh`` would delete (links included, never followed)."""
    if run_dir.is_local:
        return _local_results(run_dir.local_path)
    return [n for n in _RESULT_NAMES if (run_dir / n).exists()]


def prepare(output_dir: str, run_name: str, fresh: bool) -> Location:
    """Create (or with ``fresh``, empty) the run directory; return it. Every link inside it,
    at any depth, is removed (a link, never what it points at) before anything is written,
    so shards, summaries, logs and the MLflow state land in the run directory."""
    run_dir = check(output_dir, run_name, fresh)
    if fresh:
        for name in _results_in(run_dir):
            _delete(run_dir / name)
    if run_dir.is_local and run_dir.local_path.is_dir():  # never write through a link
        drop_links_below(run_dir.local_path, "run")
    if not (run_dir / MARKER).is_file() and not _results_in(run_dir):
        (run_dir / MARKER).write_text(
            json.dumps(
                {"created_by": "foveabench", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            )
            + "\n"
        )
    return run_dir


def _delete(target: Location) -> None:
    if target.is_local:
        path = target.local_path
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path)
    elif target.is_file():
        target.delete()
    else:
        target.delete_tree()
