"""What a run directory says about itself: its config and the provenance written at its start.

Read here so that the dashboards take a run's description from the summary
layer, never from the code that is installed at report time.
"""

from __future__ import annotations

import warnings
from typing import Any

import yaml

from pipeline.config.benchmark import BenchmarkConfig, parse_config
from pipeline.results.catalogue import CONFIG
from pipeline.results.provenance import read_run_provenance
from pipeline.results.storage import RunDir


def run_config(run_dir: RunDir) -> tuple[str, BenchmarkConfig | None]:
    """``config.yaml``'s text and, when this version can parse it, the config."""
    path = run_dir / CONFIG
    if not path.is_file():
        return "", None
    text = path.read_text()
    try:
        return text, parse_config(yaml.safe_load(text) or {}, str(path))
    except Exception as exc:  # an old or hand-edited config must not stop the report
        warnings.warn(f"{path}: not parsed ({exc}); figures use default grids", stacklevel=2)
        return text, None


def run_provenance(run_dir: RunDir) -> dict[str, Any] | None:
    """``provenance.json``: git sha, versions, config and dataset hashes, preprocessing."""
    return read_run_provenance(run_dir)
