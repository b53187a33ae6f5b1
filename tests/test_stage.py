"""One Stage abstraction (pipeline/stages/stage.py): a stage added as one module is
planned, scheduled, booked and compacted by the real driver, computed and written by the
real actor (found by its unit's type), and resumed like the run's own stages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.config.benchmark import AttackRef, BenchmarkConfig, DatasetCfg, ModelRef
from pipeline.results.partitions import COMPACTED, read_partition
from pipeline.results.storage import Location
from pipeline.run.runner import run_benchmark
from pipeline.stages.registry import STAGES, active_stages, stage_of
from tests.tiny import TINY, TINY_INPUT


@pytest.fixture
def guess_stage() -> Iterator[object]:
    """tests/extra_stage.py's stage, registered for one test and removed after it."""
    from tests import extra_stage

    yield extra_stage.register()
    STAGES.remove(extra_stage.GUESS.name)


@pytest.mark.integration
def test_a_stage_added_as_one_module_runs_writes_compacts_and_resumes(
    guess_stage: object,
    local_ray: None,
    mlflow_store: Callable[[Path], str],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from tests.extra_stage import GUESS, TABLE, GuessUnit

    mlflow_store(tmp_path)
    cfg = BenchmarkConfig(
        name="extra-stage",
        dataset=DatasetCfg(layout="sample", limit=3),
        models=(ModelRef(TINY, TINY_INPUT),),
        attacks=(AttackRef("sign"),),
        tasks=("clean",),
        output_dir=str(tmp_path),
        shard_size=1,
    )
    assert [s.name for s in active_stages(cfg)] == ["attack", "guess"]
    first = run_benchmark(cfg)
    assert not first.failed_units and first.computed_units == 1  # 3 shards of 1, joined
    (outcome,) = [o for o in first.stages if o.name == "guess"]
    assert (outcome.computed_units, outcome.done_files) == (3, 0)
    # the driver booked each output as the actor stripped it (the table stayed in the actor)
    assert sorted(o.unit.shard for o in GUESS.landed) == [0, 1, 2]
    assert all(o.table is None and o.rows == 1 for o in GUESS.landed)

    run_dir = Location(tmp_path / "extra-stage")
    partition = f"{TABLE}/model={TINY}"
    assert (run_dir / partition / COMPACTED).is_file(), "the stage's table was not compacted"
    guesses = read_partition(run_dir, partition)
    clean = read_partition(run_dir, f"clean/model={TINY}")
    assert guesses is not None and clean is not None and guesses.num_rows == 3
    by_id = dict(zip(clean["image_id"].to_pylist(), clean["pred_label"].to_pylist(), strict=True))
    assert {r["image_id"]: r["pred_label"] for r in guesses.to_pylist()} == by_id, (
        "the actor's network guessed other labels than its clean rows say"
    )

    capfd.readouterr()
    GUESS.landed.clear()
    second = run_benchmark(cfg)
    (again,) = [o for o in second.stages if o.name == "guess"]
    assert (again.computed_units, again.done_files) == (0, 3) and not GUESS.landed
    err = capfd.readouterr().err
    assert "resume: 3 guess shard files already complete" in err
    assert "nothing to compute" in err

    STAGES.remove(GUESS.name)
    assert [s.name for s in active_stages(cfg)] == ["attack"]
    with pytest.raises(TypeError, match="no stage computes a GuessUnit"):
        stage_of(GuessUnit(TINY, 0, (), ()))
