"""Provenance stamped on every run: git sha, package versions, dataset hash."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
from pathlib import Path

import pyarrow as pa

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
