"""Faults of issue 13, reproduced for real: MLflow runs a crash left RUNNING, and the
running metrics of a resumed run (real SQLite store, real Ray; the resume's network is the
tiny one of tests/tiny.py on photos labelled with its own guesses: the claim is about
metrics that survive a resume, not about weights).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.config.benchmark import AttackRef, BenchmarkConfig, DatasetCfg, ModelRef
from pipeline.results import rundir
from pipeline.results.storage import Location
from pipeline.run.run_result import RunHooks
from pipeline.run.runner import run_benchmark
from pipeline.stages.attack_unit import AttackOutput
from pipeline.summary.attacks import read_results
from pipeline.tracking.tracker import Tracker
from tests.tiny import TINY, TINY_INPUT, planted_ilsvrc

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["efficientnet_lite0", "efficientnet_lite1"]

#: Opens the runs of a run dir as the runner does, then dies as a crash would (SIGKILL:
#: no finally, no atexit, no chance to close the runs).
CRASH = """
import os, signal, sys
from pathlib import Path
from pipeline.tracking.tracker import Tracker
uri, run_dir = sys.argv[1], Path(sys.argv[2])
models = [m for m in sys.argv[3].split(",") if m]
tracker = Tracker(uri, "foveabench", run_dir, run_dir.parent / "mlartifacts")
tags = {"run_dir": str(run_dir.resolve()), "config_name": "crash"}
tracker.start(run_dir.name, tags, {}, models)
print(tracker.parent_id, *(tracker.children[m] for m in models), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def crash(uri: str, run_dir: Location, models: list[str]) -> list[str]:
    """Run ids (parent first) that a killed driver left open."""
    done = subprocess.run(
        [sys.executable, "-c", CRASH, uri, str(run_dir), ",".join(models)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == -9, done.stderr[-2000:]
    return done.stdout.split()


def start(uri: str, run_dir: Location, models: list[str]) -> Tracker:
    tracker = Tracker(uri, "foveabench", run_dir, run_dir.local_path.parent / "mlartifacts")
    tracker.start(run_dir.name, {"run_dir": str(run_dir)}, {}, models)
    return tracker


@pytest.mark.integration
def test_runs_left_running_by_a_crash_are_resumed_or_failed(
    mlflow_store: Callable[[Path], str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    uri = mlflow_store(out)
    run_dir = rundir.prepare(str(out), "orphan", fresh=False)
    other = rundir.prepare(str(out), "other", fresh=False)
    client = MlflowClient(tracking_uri=uri)

    def status(run_id: str) -> str:
        return str(client.get_run(run_id).info.status)

    parent, lite0, lite1 = crash(uri, run_dir, MODELS)
    (elsewhere,) = crash(uri, other, [])
    assert {status(r) for r in (parent, lite0, lite1, elsewhere)} == {"RUNNING"}

    # The same run dir starts again with one model: its runs are reopened (mlflow.json
    # names them); the dropped model's run is an orphan.
    tracker = start(uri, run_dir, MODELS[:1])
    assert tracker.parent_id == parent and tracker.children["efficientnet_lite0"] == lite0
    assert status(lite1) == "FAILED" and status(parent) == "RUNNING"
    err = capfd.readouterr().err
    assert f"mlflow: run {lite1}" in err and "left RUNNING" in err and "marked FAILED" in err
    tracker.finish()

    # Crash again, then start over with --fresh: mlflow.json is gone, new runs are made,
    # and every run of the crashed start is closed.
    parent, lite0 = crash(uri, run_dir, MODELS[:1])
    # (a reopened child keeps the status it had: FINISHED here, RUNNING if never closed)
    left_running = [r for r in (parent, lite0) if status(r) == "RUNNING"]
    assert parent in left_running
    run_dir = rundir.prepare(str(out), "orphan", fresh=True)
    tracker = start(uri, run_dir, MODELS[:1])
    assert tracker.parent_id != parent
    assert [status(r) for r in left_running] == ["FAILED"] * len(left_running)
    assert capfd.readouterr().err.count("marked FAILED") == len(left_running)
    assert status(elsewhere) == "RUNNING", "a run of another run dir was touched"
    tracker.finish()


# -- resume: running metrics seeded from the shards on disk ----------------------------------


class _Stop(KeyboardInterrupt):
    """Ctrl-C right after the first shard landed."""


@pytest.mark.integration
def test_resumed_running_metrics_are_those_of_the_whole_run(
    local_ray: None, mlflow_store: Callable[[Path], str], tmp_path: Path, imagenet_sample: Path
) -> None:
    mlflow_store(tmp_path)
    # right clean on the first four photos only: shards of 2/2, 2/2 and 0/2, so the running
    # top-5 of any two shards (a resume that forgot the first) differs from the whole run's
    photos = planted_ilsvrc(imagenet_sample, tmp_path / "photos", 6, missed=2)
    cfg = BenchmarkConfig(
        name="resume",
        dataset=DatasetCfg(layout="ilsvrc", root=str(photos)),
        models=(ModelRef(TINY, TINY_INPUT),),
        attacks=(AttackRef("sign"),),
        output_dir=str(tmp_path),
        shard_size=2,
        batch_size=2,
    )

    def stop(out: AttackOutput) -> None:
        raise _Stop

    with pytest.raises(_Stop):
        run_benchmark(cfg, hooks=RunHooks(attack_unit=stop))
    summary = run_benchmark(dataclasses.replace(cfg))
    assert summary.computed_units == 2 and not summary.failed_units, "not a resume"

    run_dir = tmp_path / "resume"
    child = json.loads((run_dir / "mlflow.json").read_text())["children"][TINY]
    client = MlflowClient(tracking_uri=summary.tracking_uri)

    def history(key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(child, key))

    images = history("images_done")
    steps = [s for s, _ in images]
    assert steps == sorted(set(steps)) and len(steps) == 3, f"steps {steps}"
    assert [v for _, v in images] == [2.0, 4.0, 6.0]

    def column(table: str, name: str) -> list[object]:
        rows = read_results(run_dir, table)
        assert rows is not None, table
        return rows[name].to_list()

    clean = column("clean", "top5_correct")
    assert len(clean) == 6 and sum(clean) == 4, clean
    assert history("running/clean_top5")[-1][1] == pytest.approx(sum(clean) / len(clean))
    # the final metric's population: fooled images among those correct clean
    kept = zip(*(column("attacks", c) for c in ("l1pp", "success", "clean_correct")), strict=True)
    l1pp = [v for v, fooled, correct in kept if fooled and correct and v is not None]
    median = statistics.median(l1pp)
    assert history("running/mp/sign/median_l1pp")[-1][1] == pytest.approx(median)
