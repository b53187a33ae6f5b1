"""What a run directory holds, named once: each result folder, the stage that writes it,
whether its pieces are compacted, mirrored to MLflow and copied for the report; and the
run's own files.

Why one place: the list of result tables was spelled in five modules (what ``--fresh``
deletes, what each stage compacts, what MLflow mirrors, what the report copies, what the
parent run logs), and the manifest's file name in nine. Everything that lists them reads
this module (no heavy imports: the CLI loads it before torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Stage = Literal["attack", "eval", "run"]


@dataclass(frozen=True)
class ResultDir:
    """One folder of a run's results."""

    name: str
    stage: Stage  # written by the attack stage, the evaluation stage, or the run itself
    compacted: bool  # shard pieces folded into one data.parquet per partition
    logged: bool  # mirrored to MLflow as artifacts (perturbation stores are not: too large)
    reviewed: bool  # copied with a report built from an object store


RESULT_DIRS: tuple[ResultDir, ...] = (
    ResultDir("attacks", "attack", compacted=True, logged=True, reviewed=True),
    ResultDir("clean", "attack", compacted=True, logged=True, reviewed=True),
    ResultDir("bounds", "attack", compacted=True, logged=True, reviewed=True),
    ResultDir("perturbations", "attack", compacted=True, logged=False, reviewed=False),
    ResultDir("evals", "eval", compacted=True, logged=True, reviewed=True),
    ResultDir("object_perturbations", "eval", compacted=True, logged=False, reviewed=False),
    ResultDir("summary", "run", compacted=False, logged=True, reviewed=True),
    ResultDir("report", "run", compacted=False, logged=True, reviewed=False),
    ResultDir("logs", "run", compacted=False, logged=False, reviewed=True),
)

CONFIG = "config.yaml"
MANIFEST = "manifest.parquet"
BAD_ROWS = "bad_rows.parquet"
MANIFEST_FINGERPRINT = "manifest.fingerprint"  # what the manifest was built from (data.reuse)
MLFLOW_STATE = "mlflow.json"  # the run's MLflow ids (pipeline.tracking.session)
EVAL_POINTS = "eval_points.json"  # the findings' evaluation points (pipeline.summary.points)
PROVENANCE = "provenance.json"  # the run's provenance (pipeline.results.provenance)
#: The run's own files (besides config.yaml, which every run rewrites).
RUN_FILES = (MANIFEST, BAD_ROWS, MANIFEST_FINGERPRINT, MLFLOW_STATE, EVAL_POINTS, PROVENANCE)
#: The run's inputs, logged to the MLflow parent run every time.
PARENT_FILES = (CONFIG, MANIFEST, BAD_ROWS)


def result_dirs(
    stage: Stage | None = None,
    *,
    compacted: bool | None = None,
    logged: bool | None = None,
    reviewed: bool | None = None,
) -> tuple[str, ...]:
    """Names of the result folders that match every given property, in catalogue order."""
    return tuple(
        d.name
        for d in RESULT_DIRS
        if (stage is None or d.stage == stage)
        and (compacted is None or d.compacted == compacted)
        and (logged is None or d.logged == logged)
        and (reviewed is None or d.reviewed == reviewed)
    )
