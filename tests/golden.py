"""The golden run: one small run of the real pipeline, made once per session and read by
every test that only checks a run's outputs (docs/testing.md, "The golden run").

Real Ray actors (the session's Ray), real weights, the sample photos, Parquet shards,
MLflow on the session's ``mlflow server`` and the report. Every task runs, so every
table a test reads exists: two pretrained networks for the attacks and the protocol, and
the untrained AlexNet (seeded random weights) because Peck's bounds apply only to a
sequential network. Tests that rerun a run (resume, a forgotten shard, ``--fresh``)
work on a copy (:meth:`Golden.copy`), never on the golden run itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config.benchmark import (
    AttackRef,
    BenchmarkConfig,
    DatasetCfg,
    EvalCfg,
    MlflowCfg,
    ModelRef,
)
from pipeline.run.run_result import RunHooks, RunResult
from pipeline.stages.eval_progress import metric_prefix
from pipeline.stages.eval_unit import EvalOutput
from pipeline.tracking.tracker import STATE_FILE
from tasks.protocol import TASKS

LITE0, LITE1, ALEX = "efficientnet_lite0", "efficientnet_lite1", "untrained:alexnet"
MODELS = (LITE0, LITE1, ALEX)
ATTACK = "sign"
IMAGES = 2  # sample photos
SHARD_SIZE = 1  # two shards: two evaluation steps per pair, and a shard to forget
EXPERIMENT = "golden"
#: The running accuracy the driver-side hook reads while the run is RUNNING.
WATCHED = "acc_at_linf_5.3"


def golden_config(output_dir: Path, tracking_uri: str) -> BenchmarkConfig:
    """Every task, with short grids, one foveation per set-up, three linearity steps and one EOT
    draw (the slowest piece sets the session's time): the science of each task is checked
    on its own elsewhere (test_evaluation, test_adaptive, test_mp_object ...).

    The adaptive task attacks the MP set-up's foveations only (the ones its black-box
    cross pairs go through too): through MP-Object's ten and one crops it cost two thirds
    of the task on the EfficientNets, no test reads those rows here, and
    test_adaptive_pipeline runs the task through every foveation, MP-Object's included."""
    return BenchmarkConfig(
        name="golden",
        dataset=DatasetCfg(layout="sample", limit=IMAGES),
        models=tuple(ModelRef(m) for m in MODELS),
        attacks=(AttackRef(ATTACK),),
        tasks=tuple(TASKS.names()),
        output_dir=str(output_dir),
        mlflow=MlflowCfg(tracking_uri=tracking_uri, experiment=EXPERIMENT),
        shard_size=SHARD_SIZE,
        batch_size=1,  # one image per batch: a shard is a unit of work of its own
        rtol=0.05,  # the attacks' line searches: a few steps, not ten
        eval=EvalCfg(
            rtol=0.1,
            l1pp_grid=(0.0, 1.0, 5.3, 30.0),
            l2_grid=(0.0, 100.0, 1000.0, 3000.0),
            # sign's own axis: its dense sample (dense_check, 4 points a step, every image
            # here) is most of each condition's forwards, so 4 steps, not 6
            linf_grid=(0.0, 1.0, 5.3, 30.0, 100.0),
            crops=("object_crop",),
            # MP-Object's base and one view: its ten crops were half of each self pair's
            # evaluation (10 inputs a grid point); test_evaluation covers every condition
            object_crops=("one_crop_object",),
            alphas=(0.0, 1.0, 2.0),
            dense_check=1,
            eot_draws=1,
            fresh_draws=2,
            adaptive_foveations=("object_crop", "random_resized_crop"),
        ),
    )


@dataclass
class Golden:
    """The golden run and what was seen while it ran."""

    cfg: BenchmarkConfig
    summary: RunResult
    #: One entry per evaluation unit, read from the MLflow server by a driver-side hook
    #: after the unit's metrics were logged, before the run ended: the parent's status,
    #: the unit's pair and shard, and the steps of the pair's running accuracy so far.
    seen: list[dict[str, Any]] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.summary.run_dir.local_path

    @property
    def tracking_uri(self) -> str:
        return self.summary.tracking_uri

    @property
    def n_shards(self) -> int:
        return -(-IMAGES // SHARD_SIZE)

    def copy(self, dest: Path, place_store: Callable[[Path], str]) -> BenchmarkConfig:
        """The run dir copied to ``dest/<name>`` with a store of its own at ``dest``: the
        returned config reruns the copy without touching the golden run or its MLflow runs
        (``mlflow.json`` is dropped: the copy's first start makes its own runs there)."""
        shutil.copytree(self.run_dir, dest / self.run_dir.name, symlinks=True)
        (dest / self.run_dir.name / STATE_FILE).unlink()
        place_store(dest)
        return dataclasses.replace(
            self.cfg, output_dir=str(dest), mlflow=MlflowCfg(experiment=EXPERIMENT)
        )

    @contextlib.contextmanager
    def preserved(self, folder: str) -> Iterator[Path]:
        """For a command that rewrites ``folder`` of the run dir in place (``foveabench
        report RUN_ID`` finds it through the run's tag): the golden files are put back."""
        path = self.run_dir / folder
        saved = path.with_name(f"{folder}-golden")
        shutil.copytree(path, saved)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            saved.rename(path)

    @contextlib.contextmanager
    def moved_away(self) -> Iterator[None]:
        """The run dir is not on this machine for the duration (a run computed elsewhere);
        it is put back afterwards whatever happens."""
        away = self.run_dir.with_name(f"{self.run_dir.name}-moved-away")
        self.run_dir.rename(away)
        try:
            yield
        finally:
            away.rename(self.run_dir)


def make_golden(output_dir: Path, tracking_uri: str) -> Golden:
    """Run the golden config (on the session's Ray: the caller started it) with the report,
    as ``foveabench run`` composes them."""
    from mlflow.tracking import MlflowClient

    from pipeline.cli.report import report_and_log
    from pipeline.run.runner import run_benchmark

    cfg = golden_config(output_dir, tracking_uri)
    client = MlflowClient(tracking_uri)
    # made before foveabench marked its experiments: the run must mark it as model training
    existing = client.create_experiment(EXPERIMENT)
    client.set_experiment_tag(existing, "mlflow.experimentKind", "genai_development")
    seen: list[dict[str, Any]] = []
    state = Path(output_dir) / cfg.name / STATE_FILE

    def read_while_running(out: EvalOutput) -> None:
        """In the driver, after the unit's metrics were logged, before the run ends."""
        ids = json.loads(state.read_text())
        unit = out.unit
        key = f"{metric_prefix(unit.attack, unit.source, unit.target)}/{WATCHED}"
        history = client.get_metric_history(ids["children"][unit.target], key)
        seen.append(
            {
                "status": client.get_run(ids["parent"]).info.status,
                "pair": (unit.source, unit.target),
                "shard": unit.shard,
                "steps": sorted(m.step for m in history),
            }
        )

    saved = os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL")
    os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "1"  # samples in a short run
    try:
        summary = run_benchmark(
            cfg, hooks=RunHooks(eval_unit=read_while_running, summarised=report_and_log)
        )
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL")
        else:
            os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = saved
    return Golden(cfg, summary, seen)
