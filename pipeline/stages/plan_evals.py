"""Planning the evaluation stage: which (source, target, attack, shard) units remain.

Runs after the attack stage, over the perturbation store (never recomputing an
attack). Which pairs a task runs on is read from the protocol's task registry
(``norm_sweep``: every (source, target) pair, the transfer matrices come from
it; ``masks``, ``foveation``, ``linearity``: the diagonal). A unit covers every
image of its shard, with or without the source's perturbation (the paper's
population), and lists only the tasks whose shard has no commit record yet, so
reruns resume.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.models.networks import resolve_cfg
from pipeline.results.partitions import CommitIndex
from pipeline.results.storage import Location
from pipeline.results.tables import attack_partition, eval_partition, perturbation_partition
from pipeline.stages.eval_unit import EvalUnit
from pipeline.stages.plan_attacks import shard_slices
from pipeline.stages.stage import StagePlan
from pipeline.summary.points import points_of, read_eval_points
from tasks.attacks.specs import attack_spec
from tasks.geometry import Box
from tasks.protocol import TASKS
from tasks.protocol import eval_tasks as protocol_eval_tasks


def eval_tasks(cfg: BenchmarkConfig) -> tuple[str, ...]:
    """Evaluation tasks with shards the config asks for (and those they imply)."""
    wanted = set(cfg.tasks)
    wanted |= {i for t in cfg.tasks for i in TASKS.get(t).implies}
    return tuple(t for t in protocol_eval_tasks() if t in wanted)


def _boxes(row: dict[str, object]) -> tuple[Box, ...]:
    raw = row["boxes"] or []
    assert isinstance(raw, list)
    return tuple((b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in raw)


def plan_eval_units(
    cfg: BenchmarkConfig, manifest: pa.Table, run_dir: Location
) -> StagePlan[EvalUnit]:
    """Missing evaluation units, and how many shard files were already complete."""
    tasks = eval_tasks(cfg)
    if not tasks:
        return StagePlan([])
    commits = CommitIndex.load(run_dir)
    points = read_eval_points(run_dir)  # fixed from the attack stage before planning
    rows = manifest.to_pylist()
    by_id = {r["image_id"]: r for r in rows}
    models = [m.name for m in cfg.models]
    source_cfgs = {m.name: resolve_cfg(m.name, m.preprocess) for m in cfg.models}
    units, done = [], 0
    for attack in (a.name for a in cfg.attacks):
        baseline = attack_spec(attack).baseline
        for source in models:
            for shard, (lo, hi) in enumerate(shard_slices(len(rows), cfg.shard_size)):
                ids = [r["image_id"] for r in rows[lo:hi]]
                store = perturbation_partition(source, attack)
                if not commits.done(store, shard, ids):
                    continue  # the attack stage failed for this shard; it is reported there
                for target in models:
                    todo = []
                    for task in tasks:
                        spec = TASKS.get(task)
                        if spec.pairs == "self" and target != source:
                            continue
                        if baseline and not spec.baseline_ok:
                            continue
                        partition = eval_partition(task, source, target, attack)
                        if commits.done(partition, shard, ids):
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
                            run_dir=str(run_dir),
                            perturbations=store,
                            target_attacks=_committed(
                                commits, attack_partition(target, attack), shard, ids
                            ),
                            source_cfg=source_cfgs[source],
                            tasks=tuple(todo),
                            points=points_of(points, target, attack),
                        )
                    )
    resume = f"{done} evaluation shard files already complete, not recomputed"
    return StagePlan(units, done, resume=resume if done else "")


def _committed(commits: CommitIndex, partition: str, shard: int, ids: list[str]) -> str:
    return partition if commits.done(partition, shard, ids) else ""
