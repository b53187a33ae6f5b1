"""A stage that is one module, to show that adding one is: each network's top-1 guess for
every image, one table per shard (tests/test_stage.py runs it through a real run).

It is declared like the attack and evaluation stages (pipeline/stages/stage.py) and
registered when this module is imported: in the test's driver, and in every actor that
unpickles one of its units (which imports this module), so the actor finds its stage by
the unit's type as it finds the others.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import pyarrow as pa
import torch

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.results.partitions import CommitIndex
from pipeline.results.storage import Location
from pipeline.results.write import ResultWriter
from pipeline.stages.plan_attacks import shard_slices
from pipeline.stages.progress import ProgressTarget, UnitProgress
from pipeline.stages.registry import STAGES
from pipeline.stages.stage import Booking, Stage, StageContext, StagePlan
from pipeline.stages.worker import ModelWorker

TABLE = "guesses"  # a result folder of this stage alone (not in the run's catalogue)


@dataclass(frozen=True)
class GuessUnit:
    model: str
    shard: int
    image_ids: tuple[str, ...]
    paths: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.model}/guess/shard-{self.shard:05d}"

    @property
    def partition(self) -> str:
        return f"{TABLE}/model={self.model}"


@dataclass
class GuessOutput:
    unit: GuessUnit
    table: pa.Table | None  # image_id, model, pred_label; None once stripped
    rows: int
    seconds: float = 0.0
    load_seconds: float = 0.0  # a pooled actor loading the network first


class GuessStage(Stage[GuessUnit, GuessOutput]):
    name = "guess"
    unit_type = GuessUnit
    tables = (TABLE,)

    def __init__(self) -> None:
        self.landed: list[GuessOutput] = []  # what the driver's booking saw

    def plan(
        self, cfg: BenchmarkConfig, manifest: pa.Table, run_dir: Location
    ) -> StagePlan[GuessUnit]:
        commits = CommitIndex.load(run_dir)
        ids = manifest.column("image_id").to_pylist()
        paths = manifest.column("path").to_pylist()
        units, done = [], 0
        for model in (m.name for m in cfg.models):
            for shard, (lo, hi) in enumerate(shard_slices(len(ids), cfg.shard_size)):
                unit = GuessUnit(model, shard, tuple(ids[lo:hi]), tuple(paths[lo:hi]))
                if commits.done(unit.partition, shard, unit.image_ids):
                    done += 1
                else:
                    units.append(unit)
        resume = f"{done} guess shard files already complete" if done else ""
        return StagePlan(units, done, resume=resume)

    def compute(
        self, worker: ModelWorker, unit: GuessUnit, progress: ProgressTarget | None
    ) -> GuessOutput:
        start = time.perf_counter()
        x = worker.images.inputs(unit.paths, worker.model.cfg).to(worker.device)
        with torch.no_grad():
            guess = worker.model(x).argmax(dim=1).tolist()
        UnitProgress(progress, unit.model, 1).commit(len(unit.image_ids))
        table = pa.table(
            {
                "image_id": list(unit.image_ids),
                "model": [unit.model] * len(guess),
                "pred_label": pa.array(guess, pa.int64()),
            }
        )
        return GuessOutput(unit, table, table.num_rows, time.perf_counter() - start)

    def write(self, writer: ResultWriter, out: GuessOutput) -> None:
        assert out.table is not None
        writer.piece(out.unit.partition, out.unit.shard, out.table)
        writer.commit([out.unit.partition], out.unit.shard, out.unit.image_ids)

    def strip(self, out: GuessOutput) -> GuessOutput:
        return dataclasses.replace(out, table=None)

    def booking(self, ctx: StageContext, units: list[GuessUnit]) -> Booking[GuessOutput]:
        return _Landed(self.landed)


class _Landed(Booking[GuessOutput]):
    def __init__(self, landed: list[GuessOutput]) -> None:
        self.landed = landed

    def output(self, out: GuessOutput) -> None:
        self.landed.append(out)


GUESS = GuessStage()


def register() -> GuessStage:
    """Add the stage to the registry, after the run's own stages (once per process)."""
    if GUESS.name not in STAGES:
        STAGES.add(GUESS.name, GUESS)
    return GUESS


register()
