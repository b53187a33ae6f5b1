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
    #: the partition's path below the folder, outermost first: ``{name}`` is a plain
    #: folder (the evaluation task), ``name`` a Hive key (``model=m``); () for no partitions
    keys: tuple[str, ...] = ()

    def partition(self, **values: str) -> str:
        """The partition folder of these key values, e.g. ``attacks/model=m/attack=a``."""
        if set(values) != {k.strip("{}") for k in self.keys}:
            raise ValueError(f"{self.name}: partition keys are {self.keys}, got {sorted(values)}")
        parts = [values[k[1:-1]] if k.startswith("{") else f"{k}={values[k]}" for k in self.keys]
        return "/".join((self.name, *parts))


_MODEL_ATTACK = ("model", "attack")
_EVAL = ("{task}", "source", "target", "attack")
RESULT_DIRS: tuple[ResultDir, ...] = (
    ResultDir("attacks", "attack", compacted=True, logged=True, reviewed=True, keys=_MODEL_ATTACK),
    ResultDir("clean", "attack", compacted=True, logged=True, reviewed=True, keys=("model",)),
    ResultDir("bounds", "attack", compacted=True, logged=True, reviewed=True, keys=("model",)),
    ResultDir(
        "perturbations", "attack", compacted=True, logged=False, reviewed=False, keys=_MODEL_ATTACK
    ),
    ResultDir("evals", "eval", compacted=True, logged=True, reviewed=True, keys=_EVAL),
    ResultDir(
        "object_perturbations",
        "eval",
        compacted=True,
        logged=False,
        reviewed=False,
        keys=_MODEL_ATTACK,
    ),
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


def result_dir(name: str) -> ResultDir:
    """The catalogue entry of result folder ``name``."""
    for d in RESULT_DIRS:
        if d.name == name:
            return d
    raise KeyError(f"no result folder {name!r} in the catalogue")


def partition_keys(partition: str) -> dict[str, str]:
    """The key values of a partition folder, parsed by its table's declared keys: the
    inverse of :meth:`ResultDir.partition`."""
    name, *parts = partition.strip("/").split("/")
    keys = result_dir(name).keys
    if len(parts) != len(keys):
        raise ValueError(f"{partition}: {name} partitions are {'/'.join(keys)}")
    values = {}
    for key, part in zip(keys, parts, strict=True):
        if key.startswith("{"):
            values[key[1:-1]] = part
        else:
            found, _, value = part.partition("=")
            if found != key:
                raise ValueError(f"{partition}: expected {key}=..., found {part!r}")
            values[key] = value
    return values


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
