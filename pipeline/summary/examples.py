"""Example perturbations for figures: stored directions with their clean inputs.

The report's perceptibility grids redraw a few minimum perturbations; reading
the store and the images belongs here (the summary layer), so the dashboards
only draw tensors.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import torch

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.models.images import load_input
from pipeline.models.networks import resolve_cfg
from pipeline.results.codec import Encoded, decode
from pipeline.results.storage import RunDir
from pipeline.summary.attacks import read_results


def stored_perturbations(run_dir: RunDir) -> pl.DataFrame:
    """The attack stage's store (the MP set-up), rows with a finite scale."""
    df = read_results(run_dir, "perturbations")
    return pl.DataFrame() if df is None else df.filter(pl.col("scale").is_finite())


def example(
    row: dict[str, Any], path: str, config: BenchmarkConfig | None
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(clean input, stored direction, scale) of one store row, in its model's frame."""
    model = str(row["model"])
    overrides = (
        next((m.preprocess for m in config.models if m.name == model), None) if config else None
    )
    x = load_input(path, resolve_cfg(model, overrides))
    shape = tuple(int(s) for s in row["shape"])
    d = decode(Encoded(str(row["codec"]), shape, float(row["norm"]), bytes(row["data"])))
    return x, d, float(row["scale"])
