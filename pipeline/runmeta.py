"""What a run tells MLflow: tags, params and final metrics, computed from disk.

Kept apart from the runner so that ``foveabench sync`` can rebuild exactly what
a run would have logged, from the run directory alone, after an MLflow outage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from dashboards.aggregate import attack_summary, clean_summary
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


def write_summaries(run_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame, list[Path]]:
    """Aggregate the shards into ``summary/*.parquet``; return the tables and files."""
    clean = clean_summary(run_dir)
    attacks = attack_summary(run_dir)
    written = []
    for name, table in (("clean", clean), ("attacks", attacks)):
        if table.height:
            path = run_dir / "summary" / f"{name}.parquet"
            write_atomic(table.to_arrow(), path)
            written.append(path)
    return clean, attacks, written


def final_metrics(clean: pl.DataFrame, attacks: pl.DataFrame) -> MetricsByRun:
    """The per-model metrics of DESIGN.md (``clean_top5``, ``mp/<attack>/median_l1pp``...)."""
    out: MetricsByRun = {}
    for row in clean.to_dicts():
        metrics = {"clean_top1": row["top1"], "clean_top5": row["top5"], "images": row["images"]}
        out.setdefault(row["model"], {}).update(
            {k: float(v) for k, v in metrics.items() if v is not None}
        )
    for row in attacks.to_dicts():
        prefix = f"mp/{row['attack']}"
        metrics = {
            f"{prefix}/median_l1pp": row["l1pp_median"],
            f"{prefix}/median_linf": row["linf_median"],
            f"{prefix}/median_l2": row["l2_median"],
            f"{prefix}/success_rate": row["success_rate"],
        }
        out.setdefault(row["model"], {}).update(
            {k: float(v) for k, v in metrics.items() if v is not None}
        )
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
