"""Provenance stamped on every run: git sha, package versions, dataset hash."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.results.catalogue import PROVENANCE
from pipeline.results.storage import Location, RunDir, location

PACKAGES = ("foveabench", "torch", "torchvision", "timm", "ray", "mlflow", "polars", "pyarrow")


def git_sha(start: Path | None = None) -> str:
    """Commit of the foveabench checkout (``unknown`` for a non-git install)."""
    where = start or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def dataset_hash(manifest: pa.Table) -> str:
    """Hash of what defines the benchmark's inputs: ids, labels and boxes."""
    h = hashlib.sha256()
    for col in ("image_id", "label", "boxes"):
        h.update(str(manifest.column(col).to_pylist()).encode())
    return h.hexdigest()[:16]


FILE = PROVENANCE
METADATA_KEY = b"foveabench.provenance"


def config_hash(config: dict[str, Any]) -> str:
    """Hash of the resolved config (the YAML shape, keys sorted)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_provenance(
    config: dict[str, Any], manifest: pa.Table, preprocess: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What produced a run's results (lm-evaluation-harness style): code, packages, inputs."""
    return {
        "git_sha": git_sha(),
        "versions": versions(),
        "config_hash": config_hash(config),
        "dataset_hash": dataset_hash(manifest),
        "n_images": manifest.num_rows,
        "preprocess": preprocess,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_run_provenance(run_dir: RunDir, prov: dict[str, Any]) -> Location:
    """``<run>/provenance.json``, written at run start (a resumed run writes its own)."""
    path = location(run_dir) / FILE
    path.write_text(json.dumps(prov, indent=2, sort_keys=True))
    return path


def read_run_provenance(run_dir: RunDir) -> dict[str, Any] | None:
    path = run_dir / FILE
    try:
        return dict(json.loads(path.read_text())) if path.is_file() else None
    except (OSError, ValueError):
        return None


def schema_metadata(prov: dict[str, Any]) -> dict[bytes, bytes]:
    """The same record for a Parquet file's schema metadata."""
    return {METADATA_KEY: json.dumps(prov, sort_keys=True).encode()}
