"""The driver of ``foveabench run``: manifest -> shards -> Ray actors -> Parquet -> MLflow."""

from __future__ import annotations

import collections
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import yaml
from tqdm import tqdm

from dashboards.aggregate import attack_summary, clean_summary
from pipeline import provenance
from pipeline.config import BenchmarkConfig
from pipeline.data import build_manifest
from pipeline.models import resolve_cfg
from pipeline.plan import plan_units
from pipeline.results import (
    attack_shard_path,
    clean_shard_path,
    perturbation_shard_path,
    write_atomic,
)
from pipeline.tracking import Tracker, default_tracking_uri
from pipeline.worker import RemoteModelWorker, ShardOutput, WorkerSpec, WorkUnit

RESULT_DIRS = ("attacks", "clean", "perturbations", "evals", "summary", "report")


@dataclass
class RunSummary:
    run_dir: Path
    n_images: int
    n_bad_rows: int
    computed_units: int
    skipped_units: int
    skipped_files: int
    failed_units: list[str] = field(default_factory=list)
    clean: list[dict[str, Any]] = field(default_factory=list)
    attacks: list[dict[str, Any]] = field(default_factory=list)
    tracking_uri: str = ""
    seconds: float = 0.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare_run_dir(cfg: BenchmarkConfig, run_name: str, fresh: bool) -> Path:
    run_dir = Path(cfg.output_dir) / run_name
    if fresh and run_dir.exists():
        for name in (*RESULT_DIRS, "manifest.parquet", "bad_rows.parquet", "mlflow.json"):
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run_benchmark(
    cfg: BenchmarkConfig,
    *,
    fresh: bool = False,
    run_name: str | None = None,
    extra_tags: dict[str, str] | None = None,
    on_unit_done: Callable[[ShardOutput], None] | None = None,
) -> RunSummary:
    """Run every missing work unit of ``cfg`` and summarise the whole run."""
    start = time.perf_counter()
    run_name = run_name or cfg.name
    run_dir = prepare_run_dir(cfg, run_name, fresh)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.as_dict(), sort_keys=False))

    manifest = build_manifest(cfg.dataset.layout, cfg.dataset.root, cfg.dataset.limit)
    write_atomic(manifest.table, run_dir / "manifest.parquet")
    write_atomic(manifest.bad_rows, run_dir / "bad_rows.parquet")
    log(manifest.summary_line())
    if manifest.table.num_rows == 0:
        raise RuntimeError(
            f"no usable images in dataset {cfg.dataset.layout}:{cfg.dataset.root}; "
            f"see {run_dir / 'bad_rows.parquet'}"
        )

    plan = plan_units(cfg, manifest.table, run_dir)
    if plan.skipped_files:
        log(
            f"resume: {plan.skipped_files} shard files already complete, not recomputed "
            f"({plan.skipped} of {plan.n_shards * len(cfg.models)} model-shards fully done)"
        )

    output_dir = Path(cfg.output_dir)
    tracking_uri = cfg.mlflow.tracking_uri or default_tracking_uri(output_dir)
    tracker = Tracker(tracking_uri, cfg.mlflow.experiment, run_dir, output_dir / "mlartifacts")
    tags = {
        "config_name": cfg.name,
        "git_sha": provenance.git_sha(),
        "dataset": f"{cfg.dataset.layout}:{cfg.dataset.root or ''}",
        "dataset_hash": provenance.dataset_hash(manifest.table),
        "n_images": str(manifest.table.num_rows),
        **{f"version.{k}": v for k, v in provenance.versions().items()},
        **(extra_tags or {}),
    }
    params = {
        **{k: v for k, v in cfg.as_dict().items() if k not in ("models", "attacks")},
        "models": [m.name for m in cfg.models],
        "attacks": [a.name for a in cfg.attacks],
        **{f"preprocess.{m.name}": resolve_cfg(m.name, m.preprocess).as_dict() for m in cfg.models},
    }
    tracker.start(run_name, tags, params, [m.name for m in cfg.models])
    tracker.log_artifact(run_dir / "config.yaml")
    tracker.log_artifact(run_dir / "manifest.parquet")
    tracker.log_artifact(run_dir / "bad_rows.parquet")

    failed: list[str] = []
    if plan.units:
        failed = _execute(cfg, plan.units, run_dir, tracker, on_unit_done)
    else:
        log("nothing to compute: every shard of this run is already complete")

    summary = RunSummary(
        run_dir=run_dir,
        n_images=manifest.table.num_rows,
        n_bad_rows=manifest.bad_rows.num_rows,
        computed_units=len(plan.units) - len(failed),
        skipped_units=plan.skipped,
        skipped_files=plan.skipped_files,
        failed_units=failed,
        tracking_uri=tracking_uri,
    )
    _summarise(cfg, run_dir, tracker, summary)
    tracker.finish(success=not failed)
    summary.seconds = time.perf_counter() - start
    return summary


def _summarise(cfg: BenchmarkConfig, run_dir: Path, tracker: Tracker, summary: RunSummary) -> None:
    clean = clean_summary(run_dir)
    attacks = attack_summary(run_dir)
    summary_dir = run_dir / "summary"
    for name, table in (("clean", clean), ("attacks", attacks)):
        if table.height:
            path = summary_dir / f"{name}.parquet"
            write_atomic(table.to_arrow(), path)
            tracker.log_artifact(path)
    summary.clean = clean.to_dicts()
    summary.attacks = attacks.to_dicts()
    for row in summary.clean:
        metrics = {"clean_top1": row["top1"], "clean_top5": row["top5"], "images": row["images"]}
        tracker.log_metrics(metrics, step=0, model=row["model"])
    for row in summary.attacks:
        prefix = f"mp/{row['attack']}"
        metrics = {
            f"{prefix}/median_l1pp": row["l1pp_median"],
            f"{prefix}/median_linf": row["linf_median"],
            f"{prefix}/median_l2": row["l2_median"],
            f"{prefix}/success_rate": row["success_rate"],
        }
        tracker.log_metrics(
            {k: v for k, v in metrics.items() if v is not None}, step=0, model=row["model"]
        )


class _RunningStats:
    """Running metrics streamed to MLflow while shards land."""

    def __init__(self) -> None:
        self.images: collections.Counter[str] = collections.Counter()
        self.top5: dict[str, list[bool]] = collections.defaultdict(list)
        self.l1pp: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        self.steps: collections.Counter[str] = collections.Counter()

    def update(self, out: ShardOutput) -> tuple[str, dict[str, float], int]:
        model = out.unit.model
        self.steps[model] += 1
        if out.clean is not None:
            self.images[model] += out.clean.num_rows
            self.top5[model].extend(
                v for v in out.clean.column("top5_correct").to_pylist() if v is not None
            )
        metrics: dict[str, float] = {"images_done": float(self.images[model])}
        if self.top5[model]:
            metrics["running/clean_top5"] = sum(self.top5[model]) / len(self.top5[model])
        for attack, (rows, _) in out.attacks.items():
            values = self.l1pp[(model, attack)]
            values.extend(v for v in rows.column("l1pp").to_pylist() if v is not None)
            if values:
                metrics[f"running/mp/{attack}/median_l1pp"] = sorted(values)[len(values) // 2]
        return model, metrics, self.steps[model]


def _write_unit(out: ShardOutput, run_dir: Path, tracker: Tracker) -> None:
    """Perturbations first, attack rows last: an attack shard implies its store."""
    unit = out.unit
    for attack, (rows, perts) in out.attacks.items():
        write_atomic(perts, perturbation_shard_path(run_dir, unit.model, attack, unit.shard))
        path = attack_shard_path(run_dir, unit.model, attack, unit.shard)
        write_atomic(rows, path)
        tracker.log_artifact(path, model=unit.model)
    if out.clean is not None:
        path = clean_shard_path(run_dir, unit.model, unit.shard)
        write_atomic(out.clean, path)
        tracker.log_artifact(path, model=unit.model)


def _cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0))


def _start_actors(cfg: BenchmarkConfig, models: list[str]) -> dict[str, list[Any]]:
    gpus = _cluster_gpus()
    per_gpu = cfg.ray.gpus_per_actor if gpus else 0
    if cfg.ray.actors_per_model:
        n_per_model = cfg.ray.actors_per_model
    elif gpus:
        n_per_model = max(1, int(gpus // cfg.ray.gpus_per_actor) // len(models))
    else:
        n_per_model = 1
    actors: dict[str, list[Any]] = {}
    attack_params = {a.name: a.params for a in cfg.attacks}
    for ref in cfg.models:
        if ref.name not in models:
            continue
        spec = WorkerSpec(
            model=ref.name,
            preprocess=ref.preprocess,
            attacks=attack_params,
            top_k=cfg.top_k,
            rtol=cfg.rtol,
            batch_size=cfg.batch_size,
            device=cfg.device,
            threads=max(1, int(cfg.ray.cpus_per_actor)),
        )
        options = {
            "num_cpus": cfg.ray.cpus_per_actor,
            "num_gpus": per_gpu,
            "max_restarts": cfg.ray.max_restarts,
            "max_task_retries": 0,  # the driver requeues; a retry here could double-count
        }
        actors[ref.name] = [
            RemoteModelWorker.options(**options).remote(spec) for _ in range(n_per_model)
        ]
    where = f"{per_gpu} GPU each" if per_gpu else f"CPU, {cfg.ray.cpus_per_actor} core(s) each"
    log(f"ray: {sum(map(len, actors.values()))} model actors ({where})")
    return actors


def _init_ray(cfg: BenchmarkConfig) -> None:
    if ray.is_initialized():
        return
    if cfg.ray.address:
        ray.init(address=cfg.ray.address, logging_level=logging.WARNING)
    else:
        ray.init(include_dashboard=False, logging_level=logging.WARNING)


def _execute(
    cfg: BenchmarkConfig,
    units: list[WorkUnit],
    run_dir: Path,
    tracker: Tracker,
    on_unit_done: Callable[[ShardOutput], None] | None,
) -> list[str]:
    """Keep every actor busy with its model's queue; requeue work of dead actors."""
    _init_ray(cfg)
    queues: dict[str, collections.deque[WorkUnit]] = collections.defaultdict(collections.deque)
    for unit in units:
        queues[unit.model].append(unit)
    actors = _start_actors(cfg, list(queues))
    in_flight: dict[Any, tuple[Any, WorkUnit]] = {}
    attempts: collections.Counter[tuple[str, int]] = collections.Counter()
    failed: list[str] = []
    stats = _RunningStats()
    max_attempts = cfg.ray.max_restarts + 1

    def submit(actor: Any, model: str) -> None:
        if queues[model]:
            unit = queues[model].popleft()
            in_flight[actor.process.remote(unit)] = (actor, unit)

    for model, pool in actors.items():
        for actor in pool:
            for _ in range(2):  # one running, one queued on the actor: no idle gap
                submit(actor, model)

    with tqdm(total=len(units), desc="shards", unit="shard", file=sys.stderr) as bar:
        while in_flight:
            done, _ = ray.wait(list(in_flight), num_returns=1)
            ref = done[0]
            actor, unit = in_flight.pop(ref)
            try:
                out: ShardOutput = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
                key = (unit.model, unit.shard)
                attempts[key] += 1
                if attempts[key] < max_attempts:
                    log(
                        f"actor for {unit.model} died on shard {unit.shard} ({type(exc).__name__}); requeued"
                    )
                    queues[unit.model].appendleft(unit)
                else:
                    failed.append(
                        f"{unit.model}/shard-{unit.shard:05d}: actor died {attempts[key]} times"
                    )
                    bar.update(1)
                submit(actor, unit.model)
                continue
            except ray.exceptions.RayTaskError as exc:
                failed.append(f"{unit.model}/shard-{unit.shard:05d}: {exc}")
                bar.update(1)
                submit(actor, unit.model)
                continue
            submit(actor, unit.model)
            _write_unit(out, run_dir, tracker)
            model, metrics, step = stats.update(out)
            tracker.log_metrics(metrics, step=step, model=model)
            if on_unit_done:
                on_unit_done(out)
            bar.update(1)
    for pool in actors.values():
        for actor in pool:
            ray.kill(actor)
    return failed
