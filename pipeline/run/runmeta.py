"""What a run tells MLflow about itself: provenance tags and parameters.

Kept apart from the runner so that ``foveabench sync`` can rebuild exactly what
a run would have logged, from the run directory alone, after an MLflow outage
(its metrics come from :mod:`pipeline.summary.metrics`).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.models.networks import resolve_cfg
from pipeline.results import provenance


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
