"""Progress inside a unit (pipeline/stages/progress.py): reported per batch, counted once, shown
in the driver's running metrics while the unit still runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.config.benchmark import AttackRef, BenchmarkConfig, DatasetCfg, ModelRef
from pipeline.data import build_manifest
from pipeline.run.runner import run_benchmark
from pipeline.stages.attack_stage import ATTACK
from pipeline.stages.attack_unit import AttackUnit
from pipeline.stages.progress import Partial, ProgressBoard, ProgressTarget, ProgressWatch
from pipeline.stages.running_stats import RunningStats
from pipeline.stages.worker import ModelWorker, WorkerSpec
from pipeline.summary.attacks import read_results
from tasks.attacks.specs import attack_spec
from tests.tiny import TINY, TINY_INPUT, planted_ilsvrc

MODEL = "efficientnet_lite0"


class RecordingBoard(ProgressBoard):
    """The real board, also keeping every report in order (the driver keeps only the last)."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[tuple[int, Partial]] = []

    def report(self, token: int, partial: Partial) -> None:
        super().report(token, partial)
        self.history.append((token, partial))


@pytest.mark.integration
def test_a_worker_reports_each_batch_once_and_the_tasks_within_it() -> None:
    table = build_manifest("sample", None, 3).table
    unit = AttackUnit(
        model=MODEL,
        shard=0,
        image_ids=tuple(table.column("image_id").to_pylist()),
        paths=tuple(table.column("path").to_pylist()),
        labels=tuple(table.column("label").to_pylist()),
        attacks=("sign",),
        clean=True,
    )
    spec = WorkerSpec(MODEL, {}, {"sign": attack_spec("sign").build_params()}, batch_size=2)
    board = RecordingBoard()
    out = ATTACK.compute(ModelWorker(spec), unit, ProgressTarget(board, 7))

    assert {token for token, _ in board.history} == {7}
    shown = [p.images for _, p in board.history]
    assert shown == sorted(shown), "progress never goes back within an attempt"
    # batches of 2 and 1 images, 2 tasks each (clean, sign): half a batch after clean
    assert shown == [1.0, 2.0, 2.0, 2.5, 3.0, 3.0]
    last = board.history[-1][1]
    assert (last.complete, last.running, last.clean_rows) == (3, 0.0, 3)
    assert out.clean is not None
    assert list(last.top5) == out.clean.column("top5_correct").to_pylist()
    rows = out.attacks["sign"][0].column("l1pp").to_pylist()
    assert list(last.l1pp["sign"]) == [v for v in rows if v is not None]
    assert board.take() == {7: last}, "the driver takes only the newest report"


@pytest.mark.unit
def test_the_watch_drops_a_dead_attempt_and_never_counts_a_unit_twice() -> None:
    class Unit:
        model, key, image_ids = "m", "m/shard-0", ("a", "b", "c", "d")

    board, shown, previews = ProgressBoard(), [], []
    watch = ProgressWatch(
        board, shown.append, lambda u: len(u.image_ids), lambda m, ps: previews.append(ps), 0.0
    )
    (first,) = watch.start(Unit())
    first.send(Partial("m", complete=2, clean_rows=2, top5=(True, False)))
    watch.tick()
    assert shown[-1] == 2.0 and previews[-1][0].complete == 2
    watch.end(Unit(), settled=False)  # its actor died: the unit is requeued
    first.send(Partial("m", complete=3))  # a late report of the dead attempt
    (second,) = watch.start(Unit())
    second.send(Partial("m", complete=1, running=0.5))
    watch.tick()
    assert shown[-1] == 1.5, "the dead attempt's reports count for nothing"
    watch.end(Unit(), settled=True)
    assert shown[-1] == 4.0

    stats = RunningStats()
    metrics, step = stats.preview(
        "m", [Partial("m", 2, 0.0, 2, (True, False), {"sign": (3.0, 1.0)})]
    )
    assert metrics == {
        "images_done": 2.0,
        "running/clean_top5": 0.5,
        "running/mp/sign/median_l1pp": 2.0,  # of an even count: the middle two's mean
    }
    assert step == 1 and stats.images["m"] == 0, "a preview stores nothing"


@pytest.mark.unit
def test_the_next_stage_never_shows_the_last_stages_late_report() -> None:
    """Both stages report to one board: the attack stage's last report can land after its
    final take. The evaluation stage's first attempt must not read it as its own (its bar
    showed the whole stage done before any condition had run)."""

    class Unit:
        model, key, image_ids = "m", "m/shard-0", ("a", "b", "c", "d")

    board = ProgressBoard()
    attack_bar: list[float] = []
    attacks = ProgressWatch(board, attack_bar.append, lambda u: len(u.image_ids), None, 0.0)
    (attempt,) = attacks.start(Unit())
    attacks.end(Unit(), settled=True)
    attempt.send(Partial("m", complete=4))  # lands after the stage's last take
    eval_bar: list[float] = []
    evals = ProgressWatch(board, eval_bar.append, lambda u: len(u.image_ids), None, 0.0)
    evals.start(Unit())
    evals.tick()
    assert not eval_bar or eval_bar[-1] == 0.0, eval_bar


@pytest.mark.integration
def test_a_run_in_one_unit_shows_its_progress_in_images(
    local_ray: None,
    mlflow_store: Callable[[Path], str],
    tmp_path: Path,
    imagenet_sample: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """One shard of three photos, one image per batch, through Ray: the bar counts images,
    not the one unit. (When the partial reports land is a matter of timing; what each
    report holds and how the driver counts them is pinned by the tests above.) The tiny
    network on labels it gets right (tests/tiny.py): every photo is attacked, as with a
    pretrained one, at a fraction of the cost; the weights are not what is tested here."""
    mlflow_store(tmp_path)
    photos = planted_ilsvrc(imagenet_sample, tmp_path / "photos", 3)
    cfg = BenchmarkConfig(
        name="progress",
        dataset=DatasetCfg(layout="ilsvrc", root=str(photos)),
        models=(ModelRef(TINY, TINY_INPUT),),
        attacks=(AttackRef("bfgs"),),
        tasks=("clean", "min_perturbation"),
        output_dir=str(tmp_path),
        shard_size=3,
        batch_size=1,
    )
    summary = run_benchmark(cfg)
    assert not summary.failed_units and summary.computed_units == 1
    attacked = read_results(tmp_path / "progress", "attacks")
    assert attacked is not None and attacked["clean_correct"].to_list() == [True] * 3
    client = MlflowClient(summary.tracking_uri)
    parent = client.get_run(summary.mlflow_run_id or "")
    (child,) = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    done = [m.value for m in client.get_metric_history(child.info.run_id, "images_done")]
    assert done[-1] == 3.0 and done == sorted(done)
    err = capfd.readouterr().err
    assert "3.0/3 [" in err and "img/s" in err, err[-2000:]  # not "1/1 shard"
