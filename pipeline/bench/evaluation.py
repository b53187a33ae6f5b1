"""``foveabench bench --eval``: what the evaluation stage costs per condition, and how close
its forward passes run to the network's own pace.

On N photos (every one: the paper's population) it runs the attack as the
attack stage does (direction quantised to the store's codec), stores the
directions, and evaluates one self unit (every evaluation task) and one cross
unit on a second model, in-process. It reports image-forwards per image and
per (image, view) for each condition, forward calls, and the images/s the
network achieved in the stage against its measured forward ceiling at the
same batch size (warm, fastest of 3).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import torch

from pipeline.bench.ceiling import measure_ceiling
from pipeline.bench.machine import describe
from pipeline.config.benchmark import EvalCfg
from pipeline.data import build_manifest
from pipeline.models.image_cache import ImageCache
from pipeline.models.networks import load_model
from pipeline.results.codec import record, roundtrip
from pipeline.results.partitions import write_committed
from pipeline.results.tables import PERTURBATION_SCHEMA, perturbation_partition, table_from_rows
from pipeline.stages.eval_unit import EvalOutput, EvalUnit
from pipeline.stages.eval_worker import Evaluator
from pipeline.summary.protocol import condition_forwards
from tasks import attacks as attack_registry
from tasks.criterion import TopK
from tasks.linesearch import LineSearch
from tasks.protocol import ADAPTIVE, MP, eval_tasks


@dataclass
class EvalBench:
    machine: str
    command: str
    n_images: int
    rows: pl.DataFrame  # attack, pair, condition, views, per_image, per_view
    units: list[dict[str, object]] = field(default_factory=list)  # one per evaluated unit


def _unit(
    rows: list[dict],
    source: str,
    target: str,
    attack: str,
    run_dir: Path,
    tasks: tuple[str, ...],
    source_cfg: object,
) -> EvalUnit:
    return EvalUnit(
        source=source, target=target, attack=attack, shard=0,
        image_ids=tuple(r["image_id"] for r in rows), paths=tuple(r["path"] for r in rows),
        labels=tuple(r["label"] for r in rows), sizes=tuple((r["width"], r["height"]) for r in rows),
        boxes=tuple(tuple((b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in r["boxes"]) for r in rows),
        run_dir=str(run_dir), perturbations=perturbation_partition(source, attack), target_attacks="", source_cfg=source_cfg, tasks=tasks,  # type: ignore[arg-type]
    )  # fmt: skip


def run_eval_bench(
    *,
    model_name: str,
    cross_model: str | None,
    attacks: list[str],
    n_images: int,
    batch: int,
    settings: EvalCfg,
    layout: str,
    root: str | None,
    command: str,
    log: Callable[[str], None],
    device: str = "cpu",
) -> EvalBench:
    rows = build_manifest(layout, root, n_images).table.to_pylist()
    model = load_model(model_name, device=device)
    cache = ImageCache()
    x = cache.inputs([r["path"] for r in rows], model.cfg).to(device)
    y = torch.tensor([r["label"] for r in rows], device=device)
    criterion = TopK(5)
    frames, units = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for attack in attacks:
            made = attack_registry.create(
                attack, criterion=criterion, line_search=LineSearch(rtol=1e-3)
            )
            made.quantize = roundtrip
            result = made(model, x, y)
            ok = (result.success & result.clean_correct).tolist()
            perts = [record(r["image_id"], model_name, attack, MP, float(result.scale[i]), result.direction[i]) for i, r in enumerate(rows) if ok[i]]  # fmt: skip
            store = Path(tmp)
            partition = perturbation_partition(model_name, attack)
            write_committed(store, partition, 0, table_from_rows(perts, PERTURBATION_SCHEMA))
            # the paper's protocol; the adaptive task is an attack stage of its own
            pairs = [(model_name, tuple(t for t in eval_tasks() if t != ADAPTIVE))]
            if cross_model:
                pairs.append((cross_model, ("norm_sweep",)))
            for target, tasks in pairs:
                net = model if target == model_name else load_model(target, device=device)
                ev = Evaluator(net, criterion, settings, {attack: made}.__getitem__, cache, batch)
                log(f"bench --eval: {attack} {model_name} -> {target} on {len(rows)} photos")
                start = time.perf_counter()
                out = ev.evaluate(_unit(rows, model_name, target, attack, store, tasks, model.cfg))
                seconds = time.perf_counter() - start
                units.append(_unit_row(out, seconds, net, ev.forward_batch, x))
                frames += [
                    pl.from_arrow(t) for t in out.tables.values() if "condition" in t.column_names
                ]
    crit = pl.concat([f for f in frames if isinstance(f, pl.DataFrame)], how="diagonal_relaxed")
    crit = crit.filter(pl.col("error").is_null())
    return EvalBench(
        describe(model.shift.device), command, len(rows), condition_forwards(crit), units
    )


def _unit_row(
    out: EvalOutput, seconds: float, net: torch.nn.Module, forward_batch: int, x: torch.Tensor
) -> dict[str, object]:
    ceiling = measure_ceiling(
        net, x, min(forward_batch, max(1, out.image_forwards // max(1, out.forward_calls)))
    )
    achieved = out.image_forwards / seconds if seconds else float("nan")
    return {
        "pair": f"{out.unit.source} -> {out.unit.target}",
        "attack": out.unit.attack,
        "seconds": seconds,
        "forward_calls": out.forward_calls,
        "image_forwards": out.image_forwards,
        "images_per_s": achieved,
        "ceiling_per_s": ceiling.forward_per_s,
        "share_of_ceiling": achieved / ceiling.forward_per_s,
    }


def format_eval_text(b: EvalBench) -> str:
    lines = [f"machine: {b.machine}", f"command: {b.command}", f"photos: {b.n_images}", ""]
    lines.append("image-forwards per condition (views asked twice are sent once)")
    lines.append(
        f"  {'attack':<8} {'pair':<6} {'condition':<18} {'views':>6} {'per image':>10} {'per view':>9}"
    )
    for r in b.rows.to_dicts():
        pair = "self" if r["self_pair"] else "cross"
        lines.append(
            f"  {r['attack']:<8} {pair:<6} {r['condition']:<18} {r['views']:>6.1f} {r['per_image']:>10.1f} {r['per_view']:>9.1f}"
        )
    lines.append("")
    lines.append(
        "units: network pace inside the evaluation vs its forward ceiling at the same batch"
    )
    for u in b.units:
        lines.append(
            f"  {u['attack']:<8} {u['pair']:<44} {u['seconds']:>7.1f} s  {u['forward_calls']:>5} calls  "
            f"{u['image_forwards']:>6} inputs  {u['images_per_s']:>7.1f}/s of {u['ceiling_per_s']:>7.1f}/s "
            f"= {u['share_of_ceiling']:.0%}"
        )
    return "\n".join(lines)
