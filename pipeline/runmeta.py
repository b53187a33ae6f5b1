"""What a run tells MLflow: tags, params and final metrics, computed from disk.

Kept apart from the runner so that ``foveabench sync`` can rebuild exactly what
a run would have logged, from the run directory alone, after an MLflow outage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from dashboards.aggregate import attack_summary, clean_summary
from dashboards.measures import bounds_summary, fooling_curves, measure_summary
from pipeline import provenance
from pipeline.config import BenchmarkConfig
from pipeline.models import resolve_cfg
from pipeline.results import write_atomic

#: Metrics keyed by model (child run); ``None`` is the parent run.
MetricsByRun = dict[str | None, dict[str, float]]


def run_tags(
    cfg: BenchmarkConfig, manifest: pa.Table, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Provenance tags of the parent run (and of every child run)."""
    return {
        "config_name": cfg.name,
        "git_sha": provenance.git_sha(),
        "dataset": f"{cfg.dataset.layout}:{cfg.dataset.root or ''}",
        "dataset_hash": provenance.dataset_hash(manifest),
        "n_images": str(manifest.num_rows),
        **{f"version.{k}": v for k, v in provenance.versions().items()},
        **(extra or {}),
    }


def run_params(cfg: BenchmarkConfig) -> dict[str, Any]:
    return {
        **{k: v for k, v in cfg.as_dict().items() if k not in ("models", "attacks")},
        "models": [m.name for m in cfg.models],
        "attacks": [a.name for a in cfg.attacks],
        **{f"preprocess.{m.name}": resolve_cfg(m.name, m.preprocess).as_dict() for m in cfg.models},
    }


@dataclass
class Summaries:
    """The per-run aggregates of the attack stage, as written to ``summary/``."""

    clean: pl.DataFrame
    attacks: pl.DataFrame
    measures: pl.DataFrame  # Balda's rho1 / rho2 / eps99 per (model, attack)
    fooling: pl.DataFrame  # fooling ratio vs eps
    bounds: pl.DataFrame  # Peck's bounds vs what the attacks found, per model
    written: list[Path] = field(default_factory=list)


def write_summaries(run_dir: Path) -> Summaries:
    """Aggregate the shards into ``summary/*.parquet``; return the tables and files."""
    out = Summaries(
        clean=clean_summary(run_dir),
        attacks=attack_summary(run_dir),
        measures=measure_summary(run_dir),
        fooling=fooling_curves(run_dir),
        bounds=bounds_summary(run_dir),
    )
    for name in ("clean", "attacks", "measures", "fooling", "bounds"):
        table = getattr(out, name)
        if table.height:
            path = run_dir / "summary" / f"{name}.parquet"
            write_atomic(table.to_arrow(), path)
            out.written.append(path)
    return out


def _add(out: MetricsByRun, model: str, metrics: dict[str, Any]) -> None:
    """Finite numbers only: MLflow would store a null or an infinity as NaN."""
    out.setdefault(model, {}).update(
        {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
    )


def final_metrics(s: Summaries) -> MetricsByRun:
    """The per-model metrics of DESIGN.md (``clean_top5``, ``mp/<attack>/median_l1pp``...),
    Balda's measures (``measures/<attack>/rho1_linf``, ``measures/rho2_linf``...) and
    Peck's bounds (``bounds/median_l2``, ``bounds/violations``)."""
    out: MetricsByRun = {}
    for row in s.clean.to_dicts():
        metrics = {"clean_top1": row["top1"], "clean_top5": row["top5"], "images": row["images"]}
        _add(out, row["model"], metrics)
    for row in s.attacks.to_dicts():
        prefix = f"mp/{row['attack']}"
        metrics = {
            f"{prefix}/median_l1pp": row["l1pp_median"],
            f"{prefix}/median_linf": row["linf_median"],
            f"{prefix}/median_l2": row["l2_median"],
            f"{prefix}/success_rate": row["success_rate"],
        }
        _add(out, row["model"], metrics)
    for row in s.measures.to_dicts():
        keys = [k for k in row if k.startswith(("rho1_", "eps99_"))]
        _add(out, row["model"], {f"measures/{row['attack']}/{k}": row[k] for k in keys})
        _add(out, row["model"], {f"measures/{k}": row[k] for k in row if k.startswith("rho2_")})
    for row in s.bounds.to_dicts():
        metrics = {
            "bounds/median_l2": row.get("bound_l2_median"),
            "bounds/bounded": row.get("bounded"),
            "bounds/violations": row.get("violations"),
            "bounds/median_gap": row.get("gap_median"),
        }
        _add(out, row["model"], metrics)
    return out


def transfer_metrics(transfer: pl.DataFrame) -> dict[str, float]:
    """Transfer matrices as parent-run metrics (DESIGN.md, "MLflow").

    ``transfer/<attack>/<source>/<target>/acc_at_<norm>_<value>`` for every grid
    norm, and ``.../median_crit_<norm>`` for the median critical norm.
    """
    out: dict[str, float] = {}
    for row in transfer.to_dicts():
        prefix = f"transfer/{row['attack']}/{row['source']}/{row['target']}"
        out[f"{prefix}/acc_at_{row['norm']}_{row['value']:g}"] = float(row["accuracy"])
        for norm in ("l1pp", "linf"):
            median = row.get(f"median_crit_{norm}")
            if median is not None and median == median and median != float("inf"):
                out[f"{prefix}/median_crit_{norm}"] = float(median)
    return out
