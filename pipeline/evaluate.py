"""The evaluation stage's driver side: which (source, target, attack, shard) units remain.

Runs after the attack stage, over the perturbation store (never recomputing an
attack). ``norm_sweep`` covers every (source, target) pair: the transfer
matrices come from it. ``masks``, ``foveation`` and ``linearity`` are the
paper's self-model experiments and run on the diagonal only. A unit lists only
the tasks whose shard file is not complete yet, so reruns resume.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import EVAL_TASKS, BenchmarkConfig
from pipeline.evaluation import EvalOutput, EvalUnit
from pipeline.models import resolve_cfg
from pipeline.plan import shard_slices
from pipeline.results import eval_shard_path, is_complete, perturbation_shard_path, write_atomic
from pipeline.tracking import Tracker
from tasks.geometry import Box

SELF_ONLY = ("masks", "foveation", "linearity")
BASELINES = ("random",)  # the paper shows the random direction in the norm sweeps only


def eval_tasks(cfg: BenchmarkConfig) -> tuple[str, ...]:
    """Evaluation tasks the config asks for (``transfer`` implies ``norm_sweep``)."""
    wanted = set(cfg.tasks) | ({"norm_sweep"} if "transfer" in cfg.tasks else set())
    return tuple(t for t in EVAL_TASKS if t in wanted)


def _boxes(row: dict[str, object]) -> tuple[Box, ...]:
    raw = row["boxes"] or []
    assert isinstance(raw, list)
    return tuple((b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in raw)


def plan_eval_units(
    cfg: BenchmarkConfig, manifest: pa.Table, run_dir: Path
) -> tuple[list[EvalUnit], int]:
    """Missing evaluation units, and how many shard files were already complete."""
    tasks = eval_tasks(cfg)
    if not tasks:
        return [], 0
    rows = manifest.to_pylist()
    by_id = {r["image_id"]: r for r in rows}
    models = [m.name for m in cfg.models]
    source_cfgs = {m.name: resolve_cfg(m.name, m.preprocess) for m in cfg.models}
    units, done = [], 0
    for attack in (a.name for a in cfg.attacks):
        for source in models:
            for shard, _ in enumerate(shard_slices(len(rows), cfg.shard_size)):
                store = perturbation_shard_path(run_dir, source, attack, shard)
                if not store.is_file():
                    continue  # the attack stage failed for this shard; it is reported there
                ids = [
                    i
                    for i in pq.read_table(store, columns=["image_id"])
                    .column("image_id")
                    .to_pylist()
                    if i in by_id
                ]
                for target in models:
                    todo = []
                    for task in tasks:
                        if task in SELF_ONLY and (target != source or attack in BASELINES):
                            continue
                        if is_complete(
                            eval_shard_path(run_dir, task, source, target, attack, shard), ids
                        ):
                            done += 1
                        else:
                            todo.append(task)
                    if not todo:
                        continue
                    units.append(
                        EvalUnit(
                            source=source,
                            target=target,
                            attack=attack,
                            shard=shard,
                            image_ids=tuple(ids),
                            paths=tuple(by_id[i]["path"] for i in ids),
                            labels=tuple(by_id[i]["label"] for i in ids),
                            sizes=tuple((by_id[i]["width"], by_id[i]["height"]) for i in ids),
                            boxes=tuple(_boxes(by_id[i]) for i in ids),
                            perturbations=str(store.resolve()),
                            source_cfg=source_cfgs[source],
                            tasks=tuple(todo),
                        )
                    )
    return units, done


def write_eval_output(out: EvalOutput, run_dir: Path, tracker: Tracker) -> None:
    """MP-Object perturbations first, task shards last (a finished shard implies its store)."""
    u = out.unit
    if out.object_perturbations is not None:
        write_atomic(
            out.object_perturbations,
            perturbation_shard_path(run_dir, u.target, f"{u.attack}.object", u.shard),
        )
    for task, table in out.tables.items():
        path = eval_shard_path(run_dir, task, u.source, u.target, u.attack, u.shard)
        write_atomic(table, path)
        tracker.log_artifact(path, model=u.target)
