"""What a run hands back (an immutable :class:`RunResult`) and what it lets a caller see
while it runs (:class:`RunHooks`).

Each phase of :class:`pipeline.run.runner.Run` returns its own frozen part (the stages'
:class:`StageTotals`, the summaries' :class:`Summaries`); the result is assembled once,
when the run finishes, instead of one mutable record written from four places.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from pipeline.results.storage import Location
from pipeline.stages.scheduler import UnitFailure
from pipeline.stages.stage import StageOutcome

if TYPE_CHECKING:
    from pipeline.stages.attack_unit import AttackOutput
    from pipeline.stages.eval_unit import EvalOutput
    from pipeline.tracking.tracker import Tracker

Rows = tuple[dict[str, Any], ...]

#: Called once the run is summarised, before its MLflow runs close, with the run dir, the
#: tracker and the run's tags (the CLI builds the report there: the runner never draws).
Reporter = Callable[[Location, "Tracker", dict[str, str]], None]


@dataclass(frozen=True)
class RunHooks:
    """Everything a caller may observe of a run, in one place (each one optional).

    ``attack_unit`` and ``eval_unit`` run in the driver after each unit's shards and
    metrics are written (progress displays; the fault-injection tests kill actors from
    them); ``summarised`` runs once every summary is written, before MLflow closes.
    """

    attack_unit: Callable[[AttackOutput], None] | None = None
    eval_unit: Callable[[EvalOutput], None] | None = None
    summarised: Reporter | None = None


@dataclass(frozen=True)
class StageTotals:
    """What the stages did: units computed, time, throughput, failures. The attack and
    evaluation stages' own fields are what the closing block and reports read; every
    stage's outcome, those two included, is in ``stages``."""

    computed_units: int = 0  # the attack stage's (model-shards)
    attack_seconds: float = 0.0  # wall time of the attack stage (throughput)
    #: attack-stage images per second of actor time, per model (every attack of the run)
    attack_images_per_s: Mapping[str, float] = field(default_factory=dict)
    computed_eval_units: int = 0
    eval_seconds: float = 0.0  # wall time of the evaluation stage
    failed_units: tuple[UnitFailure, ...] = ()  # typed: kind, key, message
    requeued_units: int = 0  # units resubmitted after their actor died
    skipped_units: int = 0  # model-shards an earlier run completed
    skipped_files: int = 0  # shard files of every stage an earlier run completed
    stages: tuple[StageOutcome, ...] = ()  # one per stage that ran, in order

    @classmethod
    def of(cls, outcomes: list[StageOutcome]) -> StageTotals:
        """The totals of the stages that ran, each from its own outcome."""
        by_name = {o.name: o for o in outcomes}
        attack = by_name.get("attack", StageOutcome("attack"))
        evaluation = by_name.get("evaluation", StageOutcome("evaluation"))
        return cls(
            computed_units=attack.computed_units,
            attack_seconds=attack.seconds,
            attack_images_per_s=dict(attack.images_per_s),
            computed_eval_units=evaluation.computed_units,
            eval_seconds=evaluation.seconds,
            failed_units=tuple(f for o in outcomes for f in o.failed),
            requeued_units=sum(o.requeued for o in outcomes),
            skipped_units=attack.skipped,
            skipped_files=sum(o.done_files for o in outcomes),
            stages=tuple(outcomes),
        )


@dataclass(frozen=True)
class Summaries:
    """The rows the terminal's closing block prints (the tables are on disk)."""

    clean: Rows = ()
    attacks: Rows = ()
    findings: Rows = ()  # the paper's claims, tested
    table1: Rows = ()
    dense_warnings: tuple[str, ...] = ()  # critical-scale shortcut disagreement > 2%
    masking_warnings: tuple[str, ...] = ()  # the adaptive task's checks


@dataclass(frozen=True)
class RunResult:
    """A finished run: where it is, what it computed, what it found, how it ended.

    Assembled once by :meth:`assemble` from the phases' own frozen parts."""

    run_dir: Location
    n_images: int
    n_bad_rows: int
    computed_units: int
    skipped_units: int  # model-shards an earlier run completed
    skipped_files: int  # attack and evaluation shard files an earlier run completed
    failed_units: tuple[UnitFailure, ...] = ()  # typed: kind, key, message
    clean: Rows = ()
    attacks: Rows = ()
    tracking_uri: str = ""
    seconds: float = 0.0
    requeued_units: int = 0  # units resubmitted after their actor died
    attack_seconds: float = 0.0  # wall time of the attack stage (throughput)
    #: attack-stage images per second of actor time, per model (every attack of the run)
    attack_images_per_s: Mapping[str, float] = field(default_factory=dict)
    synced_files: int = 0  # files on disk that an earlier run had not logged to MLflow
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None  # the runs page the closing block links to
    computed_eval_units: int = 0
    eval_seconds: float = 0.0  # wall time of the evaluation stage
    findings: Rows = ()  # the paper's claims, tested
    table1: Rows = ()
    dense_warnings: tuple[str, ...] = ()  # shortcut disagreement > 2%
    masking_warnings: tuple[str, ...] = ()  # adaptive task's checks
    #: MLflow failed during the run (full disk, server down): results are on disk only
    mlflow_failed: bool = False
    log_file: str = ""  # where the libraries' log lines went (pipeline/run/library_logs.py)
    stages: tuple[StageOutcome, ...] = ()  # what each stage did, in the order they ran

    @classmethod
    def assemble(
        cls, opened: OpenedRun, stages: StageTotals, summaries: Summaries, mlflow_failed: bool
    ) -> RunResult:
        """The result of a run that went through every phase: each part's fields go to the
        result's fields of the same names (the parts share none, and the result has one for
        every field of each part: :func:`_fields_of` refuses anything else)."""
        merged: dict[str, Any] = {}
        for part in (opened, stages, summaries):
            values = _fields_of(part)
            if merged.keys() & values.keys():
                raise TypeError(f"fields {sorted(merged.keys() & values.keys())} given twice")
            merged |= values
        return cls(**merged, mlflow_failed=mlflow_failed)


def _fields_of(part: OpenedRun | StageTotals | Summaries) -> dict[str, Any]:
    """A part's fields by name, each one a field of :class:`RunResult`."""
    values = {f.name: getattr(part, f.name) for f in fields(part)}
    unknown = set(values) - {f.name for f in fields(RunResult)}
    if unknown:  # a programming error: a new field on a part needs its place in the result
        raise TypeError(f"{type(part).__name__} fields {sorted(unknown)} are not RunResult's")
    return values


@dataclass(frozen=True)
class OpenedRun:
    """What preparing a run established before any stage runs."""

    run_dir: Location
    n_images: int
    n_bad_rows: int
    tracking_uri: str
    synced_files: int
    mlflow_run_id: str | None
    mlflow_experiment_id: str | None
