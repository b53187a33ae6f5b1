"""The run's result is assembled from its phases' parts by field name
(pipeline/run/run_result.py): nothing is copied by hand, so nothing can be dropped."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from pipeline.results.storage import Location
from pipeline.run.run_result import OpenedRun, RunResult, StageTotals, Summaries
from pipeline.stages.scheduler import UnitFailure
from pipeline.stages.stage import StageOutcome

pytestmark = pytest.mark.unit

#: Set by the run itself, not by a phase's part.
SET_BY_THE_RUN = {"mlflow_failed", "seconds", "log_file"}


def parts() -> tuple[OpenedRun, StageTotals, Summaries]:
    """Every field of each part set to a value no default has."""
    opened = OpenedRun(Location(Path("/runs/r")), 7, 2, "sqlite:///x.db", 3, "run-1", "exp-1")
    failure = UnitFailure("lost", "m/shard-00001", "actor died")
    outcome = StageOutcome("attack", seconds=9.0, computed_units=4, failed=(failure,))
    stages = StageTotals(
        computed_units=4,
        attack_seconds=9.0,
        attack_images_per_s={"m": 1.5},
        computed_eval_units=6,
        eval_seconds=11.0,
        failed_units=(failure,),
        requeued_units=1,
        skipped_units=5,
        skipped_files=8,
        stages=(outcome,),
    )
    row = ({"model": "m"},)
    summaries = Summaries(row, row, row, row, ("dense",), ("masking",))
    return opened, stages, summaries


def test_every_field_of_every_part_reaches_the_result_and_only_the_run_sets_the_rest() -> None:
    opened, stages, summaries = parts()
    result = RunResult.assemble(opened, stages, summaries, mlflow_failed=True)
    supplied = set()
    for part in (opened, stages, summaries):
        for f in fields(part):
            assert getattr(result, f.name) == getattr(part, f.name), f.name
            supplied.add(f.name)
    assert {f.name for f in fields(RunResult)} - supplied == SET_BY_THE_RUN
    assert result.mlflow_failed


@dataclass(frozen=True)
class WiderSummaries(Summaries):
    """A part that grew a field the result was not given."""

    new_count: int = 1


def test_a_part_with_a_field_the_result_lacks_is_refused() -> None:
    opened, stages, _ = parts()
    with pytest.raises(TypeError, match="new_count"):
        RunResult.assemble(opened, stages, WiderSummaries(), mlflow_failed=False)
