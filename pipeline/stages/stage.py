"""What a stage of a run is: how it plans its units, computes one on an actor, which tables
it writes, and what the driver does with each output and with progress inside units.

Why one abstraction: the attack and evaluation stages were two families of modules that
did the same things in different code (two planners with two return types, two write
methods, two strip functions, two hand-written stage methods in the driver). Now a stage
is one :class:`Stage` declaration in a module of its own, listed in
:mod:`pipeline.stages.registry`; the driver (:class:`pipeline.stages.execute.Stages`) runs
every active stage the same way (before, plan, schedule, book, compact) and the actor
(:meth:`pipeline.stages.worker.ModelWorker.run_unit`) runs any stage's unit the same way
(compute, write, strip).
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import pyarrow as pa

    from pipeline.config.benchmark import BenchmarkConfig
    from pipeline.results.storage import Location
    from pipeline.results.write import ResultWriter
    from pipeline.run.run_result import RunHooks
    from pipeline.stages.progress import Partial, ProgressTarget
    from pipeline.stages.scheduler import UnitFailure
    from pipeline.stages.worker import ModelWorker
    from pipeline.tracking.tracker import Tracker

U = TypeVar("U")  # a stage's unit: ``model`` (the actor that runs it), ``key``, ``image_ids``
#: what computing a unit returns: ``seconds`` (the actor's time: the scheduler's measure of
#: a model's work) and a settable ``load_seconds`` (a pooled actor loading the network)
Out = TypeVar("Out")


def log(message: str) -> None:
    """The driver's own lines (progress, resume, warnings) go to stderr, unbuffered."""
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class StagePlan(Generic[U]):
    """The units a stage still has to compute, and what an earlier run already did."""

    units: list[U]
    done_files: int = 0  # shard files an earlier run completed (not recomputed)
    skipped: int = 0  # units an earlier run completed entirely (model-shards, attack stage)
    resume: str = ""  # the line logged when ``done_files`` were found ("": say nothing)


@dataclass(frozen=True)
class StageContext:
    """What a stage's driver side works with: the run and where its metrics go."""

    cfg: BenchmarkConfig
    run_dir: Location
    manifest: pa.Table
    tracker: Tracker
    hooks: RunHooks


@dataclass(frozen=True)
class StageOutcome:
    """What one stage did in this session."""

    name: str
    seconds: float = 0.0  # wall time of the stage's units (0 when it had none)
    computed_units: int = 0
    done_files: int = 0  # shard files an earlier run completed
    skipped: int = 0  # units an earlier run completed entirely
    failed: tuple[UnitFailure, ...] = ()
    requeued: int = 0  # units resubmitted after their actor died
    #: images per second of actor time, per model (the stages that measure it)
    images_per_s: Mapping[str, float] = field(default_factory=dict)


class Booking(Generic[Out]):
    """The driver's side of one stage's session: each output as it comes back, and the
    running batches of unfinished units (progress inside units). This base books nothing."""

    def output(self, out: Out) -> None:
        """One unit's output landed (its shards are written and committed)."""

    def partial(self, model: str, running: list[Partial]) -> None:
        """New complete batches of ``model``'s running units (what they did so far)."""

    def images_per_s(self) -> dict[str, float]:
        """Throughput per model measured from the outputs ({}: not measured)."""
        return {}


class Stage(ABC, Generic[U, Out]):
    """One stage of a run. Driver side: :meth:`active`, :meth:`before`, :meth:`plan`,
    :meth:`booking`; actor side: :meth:`compute`, :meth:`write`, :meth:`strip`."""

    #: the progress bar's text and the stage's name in the registry and in log lines
    name: str
    #: the type of the stage's units: the actor finds the stage of a unit by it
    unit_type: type[U]
    #: the result folders the stage writes and compacts after it (pipeline/results/catalogue.py)
    tables: tuple[str, ...] = ()

    def active(self, cfg: BenchmarkConfig) -> bool:
        """Whether ``cfg`` asks for this stage at all (an inactive one is not even compacted)."""
        return True

    def before(self, ctx: StageContext) -> None:
        """Runs on the driver once the stages before this one are done, before planning."""

    @abstractmethod
    def plan(self, cfg: BenchmarkConfig, manifest: pa.Table, run_dir: Location) -> StagePlan[U]:
        """The units still missing (those whose shards have no commit record)."""

    @abstractmethod
    def compute(self, worker: ModelWorker, unit: U, progress: ProgressTarget | None) -> Out:
        """One unit on the actor's network; finished batches are reported to ``progress``."""

    @abstractmethod
    def write(self, writer: ResultWriter, out: Out) -> None:
        """Every piece of the output, then the shards' commit records (in the actor)."""

    def strip(self, out: Out) -> Out:
        """What goes back to the driver (without bytes it never needs)."""
        return out

    def booking(self, ctx: StageContext, units: list[U]) -> Booking[Out]:
        """The driver's side of this session's ``units``."""
        return Booking()


def unit_images(unit: Any) -> int:
    """A unit's number of images (the progress bar counts images)."""
    return len(unit.image_ids)
