"""What a run tells MLflow as metrics, computed from the summary tables.

Kept in the summary layer so that ``foveabench sync`` can rebuild exactly what
a run would have logged, from the run directory alone, after an MLflow outage.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from pipeline.summary.axes import native_norm as attack_norm
from pipeline.summary.write import Summaries

#: Metrics keyed by model (child run); ``None`` is the parent run.
MetricsByRun = dict[str | None, dict[str, float]]


def _add(out: MetricsByRun, model: str | None, metrics: dict[str, Any]) -> None:
    """Finite numbers only: MLflow would store a null or an infinity as NaN."""
    out.setdefault(model, {}).update(
        {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
    )


def final_metrics(s: Summaries) -> MetricsByRun:
    """The per-model metrics of the README's MLflow section (``clean_top5``, ``mp/<attack>/median_l1pp``...),
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
    _add(out, None, headline_metrics(s))
    return out


def headline_metrics(s: Summaries) -> dict[str, float]:
    """The numbers a reader looks for first, on the parent run (MLflow shows a parent's
    metrics in the runs table; the per-model details stay in the child runs):
    ``headline/clean_top5/<model>`` and ``headline/median_<norm>/<attack>/<model>``, the
    median minimum perturbation on the norm the attack minimises."""
    out: dict[str, Any] = {}
    for row in s.clean.to_dicts():
        out[f"headline/clean_top5/{row['model']}"] = row["top5"]
    for row in s.attacks.to_dicts():
        norm = attack_norm(row["attack"])
        out[f"headline/median_{norm}/{row['attack']}/{row['model']}"] = row.get(f"{norm}_median")
    return out


def finding_counts(findings: pl.DataFrame) -> dict[str, float]:
    """``findings/<family>/<verdict>``: how many tested claims reached each verdict."""
    if findings.is_empty():
        return {}
    counts = findings.group_by("family", "verdict").len()
    return {f"findings/{r['family']}/{r['verdict']}": float(r["len"]) for r in counts.to_dicts()}


def transfer_metrics(transfer: pl.DataFrame) -> dict[str, float]:
    """Transfer matrices as parent-run metrics (README, MLflow).

    ``transfer/<attack>/<source>/<target>/acc_at_<norm>_<value>`` for every grid
    norm, keyed by the norm the *target receives*; ``.../median_crit_<norm>`` the
    median received critical norm and ``.../median_src_<norm>`` the same
    perturbations' norm in the source's frame.
    """
    out: dict[str, float] = {}
    for row in transfer.to_dicts():
        prefix = f"transfer/{row['attack']}/{row['source']}/{row['target']}"
        if row["accuracy"] is not None:  # None: the source perturbed no image (no metric)
            out[f"{prefix}/acc_at_{row['norm']}_{row['value']:g}"] = float(row["accuracy"])
        for kind in ("crit", "src"):
            for norm in ("l1pp", "l2", "linf"):
                median = row.get(f"median_{kind}_{norm}")
                if median is not None and math.isfinite(median):
                    out[f"{prefix}/median_{kind}_{norm}"] = float(median)
    return out
