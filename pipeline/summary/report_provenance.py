"""Where a run's report says the run came from: its provenance.json, else MLflow's tags.

Never recomputed at report time: the installed code may not be the code that made the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.results.catalogue import MLFLOW_STATE, PROVENANCE
from pipeline.summary.report_data import Provenance
from pipeline.summary.run_info import run_provenance
from pipeline.tracking.queries import run_tags


def mlflow_state(run_dir: Path) -> dict[str, object]:
    """The run's MLflow ids as the tracker left them (empty when unreadable)."""
    path = run_dir / MLFLOW_STATE
    try:
        return dict(json.loads(path.read_text())) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def provenance(
    run_dir: Path, config: BenchmarkConfig | None, tags: Mapping[str, str] | None = None
) -> Provenance:
    """From ``provenance.json`` (written at run start); without it from ``tags`` or, when
    the caller has none, the MLflow parent run's tags; else "not recorded"."""
    state = mlflow_state(run_dir)
    uri, run_id = str(state.get("tracking_uri", "")), str(state.get("parent") or "")
    named = (
        {
            "dataset": f"{config.dataset.layout}:{config.dataset.root or ''}",
            "config_name": config.name,
        }
        if config
        else {}
    )
    recorded = run_provenance(run_dir)
    if recorded is not None:  # written at run start: the code and inputs that made the results
        found = {
            "git_sha": str(recorded.get("git_sha", "unknown")),
            "config_hash": str(recorded.get("config_hash", "")),
            "dataset_hash": str(recorded.get("dataset_hash", "")),
            "n_images": str(recorded.get("n_images", "")),
            **{f"version.{k}": str(v) for k, v in dict(recorded.get("versions", {})).items()},
            **{k: v for k, v in (tags or {}).items() if k in ("config_name", "dataset")},
        }
        source = f"{run_dir / PROVENANCE} (written at run start)"
        return Provenance({**named, **found}, source, uri, run_id)
    logged = dict(tags) if tags is not None else run_tags(uri, run_id)
    if logged:
        kept = {
            k: v for k, v in logged.items() if not k.startswith("mlflow.") or k == "mlflow.runName"
        }
        source = f"MLflow run {run_id or '(given)'} at {uri or '(given)'}"
        return Provenance(kept, source, uri, run_id)
    source = "not recorded (no provenance.json in the run dir, MLflow tags unavailable)"
    return Provenance(named, source, uri, run_id)
