"""Ray for a run: join or start the cluster, then one actor per model (or per GPU share).

Every actor holds its network for both stages; the requests are sized so all
of them can be placed at once (an actor that cannot be placed would wait forever).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from typing import Any

import ray

from pipeline.config import BenchmarkConfig
from pipeline.model_pool import RemoteModelPool
from pipeline.scheduler import ANY_MODEL
from pipeline.worker import RemoteModelWorker, WorkerSpec


def _cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0))


def actor_shares(
    n_actors: int, cpus_per_actor: float | None, gpus_per_actor: float, cluster: dict[str, float]
) -> tuple[float, float]:
    """CPU and GPU each actor asks for, so that every actor can be placed at once.

    All actors live through both stages (each holds its network), so an actor
    that cannot be placed would wait forever: with 3 models on 2 CPUs, or more
    models than GPUs, the requests shrink to fractional shares of what exists.
    """
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    if cpus_per_actor is None:  # an equal share: a one-model run on 2 cores uses both
        cpu = cpus / n_actors if cpus else 1.0
    else:
        cpu = min(cpus_per_actor, cpus / n_actors) if cpus else cpus_per_actor
    gpu = min(gpus_per_actor, gpus / n_actors) if gpus else 0.0
    return math.floor(cpu * 1e4) / 1e4, math.floor(gpu * 1e4) / 1e4  # round down: must fit


def start_actors(
    cfg: BenchmarkConfig, models: list[str], run_dir: str = "", prov: dict[str, Any] | None = None
) -> dict[str, list[Any]]:
    """Actors per model, or one pool serving every model (key ``ANY_MODEL``); with
    ``run_dir`` they write their own results there."""
    gpus = _cluster_gpus()
    cluster = {k: float(v) for k, v in ray.cluster_resources().items()}
    pooled = cfg.ray.pooled if cfg.ray.pooled is not None else gpus > 0
    if pooled:
        n_actors = cfg.ray.actors or (
            max(1, int(gpus // cfg.ray.gpus_per_actor)) if gpus else len(models)
        )
    elif cfg.ray.actors_per_model:
        n_actors = cfg.ray.actors_per_model * len(models)
    elif gpus:
        n_actors = max(1, int(gpus // cfg.ray.gpus_per_actor) // len(models)) * len(models)
    else:
        n_actors = len(models)
    cpu_share, per_gpu = actor_shares(
        n_actors, cfg.ray.cpus_per_actor, cfg.ray.gpus_per_actor, cluster
    )
    options = {
        "num_cpus": cpu_share,
        "num_gpus": per_gpu,
        "max_restarts": cfg.ray.max_restarts,
        "max_task_retries": 0,  # the driver requeues (pipeline/scheduler.py says why)
    }
    attack_params = {a.name: a.params for a in cfg.attacks}
    specs = {
        ref.name: WorkerSpec(
            model=ref.name,
            preprocess=ref.preprocess,
            attacks=attack_params,
            top_k=cfg.top_k,
            rtol=cfg.rtol,
            batch_size=cfg.batch_size,
            device=cfg.device,
            threads=max(1, math.floor(cpu_share)),  # torch threads = the cores it was given
            eval=cfg.eval,
            run_dir=run_dir,
            provenance=prov or {},
        )
        for ref in cfg.models
        if ref.name in models
    }
    actors: dict[str, list[Any]]
    if pooled:
        pool = RemoteModelPool.options(**options)
        actors = {ANY_MODEL: [pool.remote(specs, cfg.ray.model_memory_mb) for _ in range(n_actors)]}
    else:
        per_model = n_actors // len(specs)
        actors = {
            name: [RemoteModelWorker.options(**options).remote(spec) for _ in range(per_model)]
            for name, spec in specs.items()
        }
    where = f"{per_gpu} GPU each" if per_gpu else f"CPU, {cpu_share} core(s) each"
    kind = "pooled actors, each serving every model" if pooled else "model actors"
    print(f"ray: {n_actors} {kind} ({where})", file=sys.stderr, flush=True)
    return actors


def init_ray(cfg: BenchmarkConfig) -> None:
    """Connect to Ray once there is work for it. A Ray that is already initialised (a
    notebook's, a test session's) is used as it is; otherwise the configured cluster, or
    a new local one."""
    if ray.is_initialized():
        return
    if cfg.ray.address or os.environ.get("RAY_ADDRESS"):
        # A configured cluster, or the one a Ray job runs in (RAY_ADDRESS is set there).
        ray.init(address=cfg.ray.address, logging_level=logging.WARNING)
        print("ray: connected to the cluster", file=sys.stderr, flush=True)
    else:  # "local": never attach to some other `ray start` cluster on this machine
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
        print("ray: started a local instance", file=sys.stderr, flush=True)
