"""What a run hands back (an immutable :class:`RunResult`) and what it lets a caller see
while it runs (:class:`RunHooks`).

Each phase of :class:`pipeline.run.runner.Run` returns its own frozen part (the stages'
:class:`StageTotals`, the summaries' :class:`Summaries`); the result is assembled once,
when the run finishes, instead of one mutable record written from four places.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
    stage's outcome, those two included, is in ``outcomes``."""

    computed_units: int = 0  # the attack stage's (model-shards)
    attack_seconds: float = 0.0  # wall time of the attack stage (throughput)
    #: attack-stage images per second of actor time, per model (every attack of the run)
    attack_images_per_s: Mapping[str, float] = field(default_factory=dict)
    computed_eval_units: int = 0
    eval_seconds: float = 0.0  # wall time of the evaluation stage
    eval_skipped_files: int = 0  # evaluation shard files an earlier run completed
    failed_units: tuple[UnitFailure, ...] = ()  # typed: kind, key, message
    requeued_units: int = 0  # units resubmitted after their actor died
    skipped_units: int = 0  # model-shards an earlier run completed
    skipped_files: int = 0  # shard files of every stage an earlier run completed
    outcomes: tuple[StageOutcome, ...] = ()  # one per stage that ran, in order

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
            eval_skipped_files=evaluation.done_files,
            failed_units=tuple(f for o in outcomes for f in o.failed),
            requeued_units=sum(o.requeued for o in outcomes),
            skipped_units=attack.skipped,
            skipped_files=sum(o.done_files for o in outcomes),
            outcomes=tuple(outcomes),
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
        """The result of a run that went through every phase."""
        return cls(
            run_dir=opened.run_dir,
            n_images=opened.n_images,
            n_bad_rows=opened.n_bad_rows,
            skipped_units=stages.skipped_units,
            skipped_files=stages.skipped_files,
            tracking_uri=opened.tracking_uri,
            synced_files=opened.synced_files,
            mlflow_run_id=opened.mlflow_run_id,
            mlflow_experiment_id=opened.mlflow_experiment_id,
            computed_units=stages.computed_units,
            failed_units=stages.failed_units,
            requeued_units=stages.requeued_units,
            attack_seconds=stages.attack_seconds,
            attack_images_per_s=stages.attack_images_per_s,
            computed_eval_units=stages.computed_eval_units,
            eval_seconds=stages.eval_seconds,
            clean=summaries.clean,
            attacks=summaries.attacks,
            findings=summaries.findings,
            table1=summaries.table1,
            dense_warnings=summaries.dense_warnings,
            masking_warnings=summaries.masking_warnings,
            mlflow_failed=mlflow_failed,
            stages=stages.outcomes,
        )


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
