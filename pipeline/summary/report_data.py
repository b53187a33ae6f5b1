"""What the run report draws, as plain values: the dashboards get this and read nothing.

Loaded by :mod:`pipeline.summary.report_load` (the run directory's Parquet, its config,
provenance and a few stored perturbations); an empty frame means "not produced by this
run", and every figure skips itself when its table is empty. This module reads no file
and imports nothing that does, so the dashboards may import it (tests/test_layering.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from pipeline.config.evaluation import EvalCfg

if TYPE_CHECKING:
    import torch

    from pipeline.config.benchmark import BenchmarkConfig

#: ``report.perceptible_linf``'s default (pipeline.config.benchmark.ReportCfg; tests/test_report.py
#: checks they agree), for a run whose config cannot be parsed.
DEFAULT_PERCEPTIBLE_LINF = 16.0


@dataclass(frozen=True)
class Provenance:
    """Who/what/where of a run; ``source`` says whether tags came from MLflow."""

    tags: Mapping[str, str] = field(default_factory=dict)
    source: str = "not recorded"
    tracking_uri: str = ""
    run_id: str = ""

    @property
    def git_sha(self) -> str:
        return self.tags.get("git_sha", "unknown")


@dataclass(frozen=True)
class ExampleRow:
    """One (network, attack) minimum perturbation of an image, in the network's frame."""

    model: str
    attack: str
    x: torch.Tensor  # the clean input, 0..255
    d: torch.Tensor  # the stored direction
    scale: float  # e* = clip(x + scale * d) - x


@dataclass(frozen=True)
class ExampleImage:
    """An image the perceptibility grids redraw, with every stored perturbation of it."""

    image_id: str
    label: int | None
    rows: tuple[ExampleRow, ...]


@dataclass(frozen=True)
class ReportData:
    """The run's tables and description, finished: the report only draws them."""

    run_name: str = ""
    run_path: str = ""  # the run directory, resolved
    config_text: str = ""
    config: BenchmarkConfig | None = None
    eval_cfg: EvalCfg = field(default_factory=EvalCfg)
    perceptible_linf: float = DEFAULT_PERCEPTIBLE_LINF
    manifest: pl.DataFrame = field(default_factory=pl.DataFrame)
    bad_rows: pl.DataFrame = field(default_factory=pl.DataFrame)
    clean: pl.DataFrame = field(default_factory=pl.DataFrame)
    attacks: pl.DataFrame = field(default_factory=pl.DataFrame)
    measures: pl.DataFrame = field(default_factory=pl.DataFrame)
    fooling: pl.DataFrame = field(default_factory=pl.DataFrame)
    bounds: pl.DataFrame = field(default_factory=pl.DataFrame)
    optimality: pl.DataFrame = field(default_factory=pl.DataFrame)  # AttackBench's, per attack
    attack_rows: pl.DataFrame = field(default_factory=pl.DataFrame)
    linearity_rows: pl.DataFrame = field(default_factory=pl.DataFrame)
    protocol: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    recomputed: tuple[str, ...] = ()  # tables aggregated from the shards, not read
    provenance: Provenance = field(default_factory=Provenance)
    examples: tuple[ExampleImage, ...] = ()  # for the perceptibility grids
    examples_failed: str = ""  # why the examples could not be loaded (the grids fail with it)
    class_names: tuple[str, ...] = ()  # ImageNet class index -> name (first spelling)

    @property
    def top_k(self) -> int | None:
        return self.config.top_k if self.config else None

    @property
    def point(self) -> float:
        """The reference norm of the tables (the config's first evaluation point, 5.3)."""
        return float(self.eval_cfg.points[0])

    def table(self, name: str) -> pl.DataFrame:
        return self.protocol.get(name, pl.DataFrame())
