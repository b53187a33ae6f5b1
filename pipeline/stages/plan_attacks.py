"""Planning the attack stage: which (model, shard) units are still missing.

Shards are fixed slices of the manifest sorted by ``image_id`` (stable across
runs). A unit lists only the tasks whose shard has no commit record yet (for
the shard's current image ids), so a rerun recomputes nothing that finished.
Temporary files of a local writer that was killed mid-write (SIGKILL leaves no
chance to clean up) are removed at start.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.results.partitions import CommitIndex
from pipeline.results.storage import Location
from pipeline.results.tables import attack_partition, bounds_partition, clean_partition
from pipeline.stages.attack_unit import AttackUnit
from pipeline.stages.stage import StagePlan


def remove_stale_temp_files(run_dir: Location) -> int:
    """Delete ``.<name>.<uuid>.tmp`` files of interrupted local writes; return how many.
    (An object store never shows an interrupted upload.)"""
    if not run_dir.is_local:
        return 0
    removed = 0
    for tmp in run_dir.local_path.rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def shard_slices(n_rows: int, shard_size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + shard_size, n_rows)) for lo in range(0, n_rows, shard_size)]


def plan_attack_units(
    cfg: BenchmarkConfig, manifest: pa.Table, run_dir: Location
) -> StagePlan[AttackUnit]:
    """Missing units; ``skipped``: the (model, shard) pairs with nothing left to do."""
    commits = CommitIndex.load(run_dir)
    ids = manifest.column("image_id").to_pylist()
    paths = manifest.column("path").to_pylist()
    labels = manifest.column("label").to_pylist()
    slices = shard_slices(len(ids), cfg.shard_size)
    want_clean = "clean" in cfg.tasks
    want_bounds = "bounds" in cfg.tasks
    attacks = [a.name for a in cfg.attacks] if "min_perturbation" in cfg.tasks else []
    units: list[AttackUnit] = []
    skipped = skipped_files = 0
    for model in cfg.models:
        for shard, (lo, hi) in enumerate(slices):
            shard_ids = ids[lo:hi]
            clean = want_clean and not commits.done(clean_partition(model.name), shard, shard_ids)
            bounds = want_bounds and not commits.done(
                bounds_partition(model.name), shard, shard_ids
            )
            todo = tuple(
                a
                for a in attacks
                if not commits.done(attack_partition(model.name, a), shard, shard_ids)
            )
            skipped_files += (want_clean and not clean) + (want_bounds and not bounds)
            skipped_files += len(attacks) - len(todo)
            if not clean and not bounds and not todo:
                skipped += 1
                continue
            unit = AttackUnit(
                model=model.name,
                shard=shard,
                image_ids=tuple(shard_ids),
                paths=tuple(paths[lo:hi]),
                labels=tuple(labels[lo:hi]),
                attacks=todo,
                clean=clean,
                bounds=bounds,
            )
            units.append(
                _join(units.pop(), unit) if _joinable(units, unit, cfg.batch_size) else unit
            )
    resume = (
        f"{skipped_files} shard files already complete, not recomputed "
        f"({skipped} of {len(slices) * len(cfg.models)} model-shards fully done)"
    )
    return StagePlan(units, skipped_files, skipped, resume if skipped_files else "")


def _joinable(units: list[AttackUnit], unit: AttackUnit, batch: int) -> bool:
    """Join ``unit`` to the previous one while that one cannot fill a batch alone."""
    if not units:
        return False
    last = units[-1]
    same = (last.model, last.attacks, last.clean, last.bounds) == (
        unit.model, unit.attacks, unit.clean, unit.bounds,
    )  # fmt: skip
    follows = last.shard + max(1, len(last.sizes)) == unit.shard
    return same and follows and len(last.image_ids) < batch


def _join(a: AttackUnit, b: AttackUnit) -> AttackUnit:
    return dataclasses.replace(
        a,
        image_ids=a.image_ids + b.image_ids,
        paths=a.paths + b.paths,
        labels=a.labels + b.labels,
        sizes=(*(a.sizes or (len(a.image_ids),)), len(b.image_ids)),
    )
