"""Pooled actors on real Ray: 4 CPU actors serve 3 real networks, every actor kept busy.

With one actor per model, 4 actors and 3 models cannot all work (and the slowest
model sets the pace); pooled actors load any network on demand and the scheduler
sends each the model with the most measured work left.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.config.benchmark import AttackRef, BenchmarkConfig, DatasetCfg, ModelRef, RayCfg
from pipeline.run.run_result import RunHooks
from pipeline.run.runner import run_benchmark
from pipeline.stages.attack_unit import AttackOutput
from pipeline.stages.model_pool import ModelPool
from pipeline.stages.worker import WorkerSpec
from pipeline.summary.attacks import read_results

MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@pytest.mark.unit
def test_the_pool_loads_on_first_use_and_evicts_the_least_recently_used() -> None:
    specs = {m: WorkerSpec(model=m, preprocess={}, attacks={}) for m in MODELS}
    pool = ModelPool(specs, memory_mb=30)  # lite0 is ~19 MB, lite1 ~21 MB: one fits
    pool.worker(MODELS[0])
    pool.worker(MODELS[0])
    assert dict(pool.loads) == {MODELS[0]: 1}, "a loaded network is reused"
    pool.worker(MODELS[1])
    assert list(pool.loaded) == [MODELS[1]], "over the budget the older network goes"
    roomy = ModelPool(specs, memory_mb=1024)
    for m in (*MODELS, MODELS[0]):
        roomy.worker(m)
    assert list(roomy.loaded) == [MODELS[1], MODELS[2], MODELS[0]] and roomy.loads[MODELS[0]] == 1


@pytest.mark.integration
def test_four_pooled_actors_on_three_models_are_each_busy_most_of_the_stage(
    local_ray: None, mlflow_store: Callable[[Path], str], tmp_path: Path, imagenet_sample: Path
) -> None:
    mlflow_store(tmp_path)
    cfg = BenchmarkConfig(
        name="pool",
        dataset=DatasetCfg(layout="ilsvrc", root=str(imagenet_sample), limit=12),
        models=tuple(ModelRef(m) for m in MODELS),
        attacks=(AttackRef("sign"),),
        output_dir=str(tmp_path),
        shard_size=1,
        batch_size=1,
        rtol=0.05,  # sign's line search in a few steps: the claim is the actors' share, not L-inf
        ray=RayCfg(pooled=True, actors=4, cpus_per_actor=0.5),
    )
    spans: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
    served: dict[int, set[str]] = collections.defaultdict(set)

    def record(out: AttackOutput) -> None:
        end = time.monotonic()  # the driver hears of it at once (results are small)
        spans[out.pid].append((end - out.seconds - out.load_seconds, end))
        served[out.pid].add(out.unit.model)

    summary = run_benchmark(cfg, hooks=RunHooks(attack_unit=record))
    assert not summary.failed_units and summary.computed_units == 36
    attacks = read_results(tmp_path / "pool", "attacks")
    assert attacks is not None and attacks.height == 36 and set(attacks["model"]) == set(MODELS)
    assert len(spans) == 4, f"{len(spans)} actors worked"
    start = min(s for work in spans.values() for s, _ in work)
    end = max(e for work in spans.values() for _, e in work)
    busy = {pid: sum(e - s for s, e in work) / (end - start) for pid, work in spans.items()}
    print(f"stage {end - start:.1f} s, busy share per actor: {sorted(busy.values())}")
    # "Most of the stage": each actor computes at least 60% of it. The share left is the
    # per-unit round trip (write, report, next unit) and the stage's tail; on the quiet
    # 2-core CI machine it ranged 0.79-0.98 per actor, 0.76 under load (0.8 failed CI once).
    # A pool that serialised its models or starved an actor would give 0.25-0.5.
    assert all(b >= 0.6 for b in busy.values()), f"busy share per actor: {busy}"
    assert sum(len(m) > 1 for m in served.values()) >= 1, "no actor served two models"
