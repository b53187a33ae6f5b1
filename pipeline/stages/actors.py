"""Ray for a run: join or start the cluster, then one actor per model (or per GPU share).

Every actor holds its network for both stages, so an actor that cannot be placed
would wait forever: the requests are planned against the nodes that exist and
reserved as one placement group before any actor starts (pipeline/stages/placement.py).
A model's actors start in their bundles the first time a stage has work for the model:
a resumed run that recomputes one model's shard starts that model's actors only (each
actor costs seconds of imports and a network's load before it computes anything).
Like xgboost_ray, the actor classes are plain and their ``ray.remote`` wrappers
get their resources and their bundle here, through ``.options``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.stages.model_pool import RemoteModelPool
from pipeline.stages.placement import Reservation, alive_nodes, plan_actors, reserve
from pipeline.stages.scheduler import ANY_MODEL
from pipeline.stages.worker import RemoteModelWorker, WorkerSpec


@dataclass
class ActorSet:
    """The run's reserved bundles and the actors started in them so far, by model (or one
    pool under ``ANY_MODEL``)."""

    reservation: Reservation
    bundles: dict[str, list[int]]  # model (or ANY_MODEL) -> the bundles of its actors
    create: Callable[[str, int], Any]  # (model or ANY_MODEL, bundle) -> a new actor
    by_model: dict[str, list[Any]] = field(default_factory=dict)

    def for_models(self, models: Iterable[str]) -> dict[str, list[Any]]:
        """The actors that serve ``models``, started in their bundles on first use (a pool
        serves every model: it starts whole)."""
        keys = [ANY_MODEL] if ANY_MODEL in self.bundles else list(dict.fromkeys(models))
        for key in keys:
            if key not in self.by_model:  # a model without bundles: its units fail, named
                bundles = self.bundles.get(key, [])
                self.by_model[key] = [self.create(key, b) for b in bundles]
                whose = "pooled" if key == ANY_MODEL else f"{key}'s"
                print(f"ray: started {len(bundles)} {whose} actor(s)", file=sys.stderr, flush=True)
        return {key: self.by_model[key] for key in keys}

    def stop(self) -> None:
        """Kill every actor, then hand their bundles back to the cluster."""
        for pool in self.by_model.values():
            for actor in pool:
                with contextlib.suppress(Exception):  # already gone
                    ray.kill(actor, no_restart=True)
        with contextlib.suppress(Exception):  # Ray already shut down
            self.reservation.release()


def check_placement(cfg: BenchmarkConfig) -> None:
    """Join or start Ray and plan the actors against its nodes: a run that cannot place
    them stops here, before any actor starts or an MLflow run opens (the runner asks only
    when the plan has work: a run with nothing to do never starts Ray)."""
    init_ray(cfg)
    plan_actors(cfg.ray, cfg.device, len(cfg.models), alive_nodes())


def reserve_actors(
    cfg: BenchmarkConfig, models: list[str], run_dir: str = "", prov: dict[str, Any] | None = None
) -> ActorSet:
    """Bundles for the actors of every model, or of one pool serving every model (key
    ``ANY_MODEL``), reserved as one placement group; the actors start in them on first use
    (:meth:`ActorSet.for_models`). With ``run_dir`` they write their own results there.

    Raises :class:`PlacementError` (exit 2) when they cannot all be placed, before any waits.
    """
    nodes = alive_nodes()
    plan = plan_actors(cfg.ray, cfg.device, len(models), nodes)
    reservation = reserve(plan, nodes, cfg.ray.placement_timeout_s)

    def options(bundle: int) -> dict[str, Any]:
        return {
            "num_cpus": plan.cpu,
            "num_gpus": plan.gpu,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                reservation.group, placement_group_bundle_index=bundle
            ),
            "max_restarts": cfg.ray.max_restarts,
            "max_task_retries": 0,  # the driver requeues (pipeline/stages/scheduler.py says why)
        }

    attack_params = {a.name: a.params for a in cfg.attacks}
    weights = (prov or {}).get("checkpoints", {})
    specs = {
        ref.name: WorkerSpec(
            model=ref.name,
            preprocess=ref.preprocess,
            attacks=attack_params,
            top_k=cfg.top_k,
            rtol=cfg.rtol,
            batch_size=cfg.batch_size,
            device=cfg.device,
            threads=max(1, math.floor(plan.cpu)),  # torch threads = the cores it was given
            eval=cfg.eval,
            run_dir=run_dir,
            provenance=prov or {},
            checkpoint=weights.get(ref.name, {}).get("uri"),
            checkpoint_sha256=weights.get(ref.name, {}).get("sha256"),
        )
        for ref in cfg.models
        if ref.name in models
    }
    names = list(specs)
    bundles: dict[str, list[int]] = {}
    for i in range(plan.n_actors):  # bundle i holds actor i; models take turns
        bundles.setdefault(ANY_MODEL if plan.pooled else names[i % len(names)], []).append(i)

    def create(key: str, bundle: int) -> Any:
        if key == ANY_MODEL:
            return RemoteModelPool.options(**options(bundle)).remote(specs, cfg.ray.model_memory_mb)
        return RemoteModelWorker.options(**options(bundle)).remote(specs[key])

    kind = "pooled actors, each serving every model" if plan.pooled else "model actors"
    print(reservation.summary(nodes, kind), file=sys.stderr, flush=True)
    return ActorSet(reservation, bundles, create)


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
