"""Attack-stage throughput with 1, 2, 4... actors on the same shards (docs/benchmarks.md).

    python -m pipeline.bench.scaling configs/imagenet-sample.yaml --actors 1 2 4

Each count runs the config fresh (one model, its first attack) on a local Ray
with ``ray.cpus_per_actor`` = cores / max(actors), so every count fits at once
and each actor uses one thread. Two rates are reported: end to end (actor start
and network loading included, what a user waits for) and steady state (from
the first shard landing to the last, the rate that matters for 50k images).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import tempfile
import time
from pathlib import Path

import ray

from pipeline.config.benchmark import RayCfg, load_config
from pipeline.run.run_result import RunHooks
from pipeline.run.runner import run_benchmark
from pipeline.stages.attack_unit import AttackOutput


def measure(
    config: str, actors: int, cpus_per_actor: float, limit: int | None, shard_size: int
) -> dict[str, float]:
    base = load_config(config)
    with tempfile.TemporaryDirectory(prefix="scaling") as out:
        cfg = dataclasses.replace(
            base,
            name=f"scaling-{actors}",
            models=base.models[:1],
            attacks=base.attacks[:1],
            tasks=("min_perturbation",),
            output_dir=out,
            shard_size=shard_size,
            dataset=dataclasses.replace(base.dataset, limit=limit or base.dataset.limit),
            mlflow=dataclasses.replace(base.mlflow, tracking_uri=f"sqlite:///{Path(out) / 'm.db'}"),
            ray=RayCfg(actors_per_model=actors, cpus_per_actor=cpus_per_actor, max_restarts=0),
        )
        landed: list[tuple[float, int]] = []

        def on_done(o: AttackOutput) -> None:
            landed.append((time.perf_counter(), len(o.unit.image_ids)))

        summary = run_benchmark(cfg, hooks=RunHooks(attack_unit=on_done))
    steady_images = sum(n for _, n in landed[1:])
    steady_s = landed[-1][0] - landed[0][0] if len(landed) > 1 else float("nan")
    return {
        "actors": actors,
        "images": summary.n_images,
        "stage_s": summary.attack_seconds,
        "end_to_end": summary.n_images / summary.attack_seconds,
        "steady": steady_images / steady_s if steady_s else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--limit", type=int)
    parser.add_argument(
        "--shard-size", type=int, default=5, help="small shards: every actor gets many"
    )
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    cpus_per_actor = cores / max(args.actors)
    ray.init(
        address="local", num_cpus=cores, include_dashboard=False, logging_level=logging.WARNING
    )
    rows = [
        measure(args.config, n, cpus_per_actor, args.limit, args.shard_size) for n in args.actors
    ]
    ray.shutdown()
    one = rows[0]
    print(
        f"\n{cores} cores, ray.cpus_per_actor={cpus_per_actor:g}, {one['images']:.0f} images, "
        f"shard_size {args.shard_size}\n"
    )
    print("| actors | stage s | img/s end to end | img/s steady | speed-up (steady) | efficiency |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        speedup = r["steady"] / one["steady"] * one["actors"]
        print(
            f"| {r['actors']} | {r['stage_s']:.1f} | {r['end_to_end']:.2f} | {r['steady']:.2f} "
            f"| {speedup:.2f}x | {speedup / r['actors']:.0%} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
