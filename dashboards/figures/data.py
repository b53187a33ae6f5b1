"""Everything a report draws from, read once from a run directory (polars).

The report must rebuild from the Parquet alone (``foveabench report RUN``), and
a run may stop anywhere: only clean/attack shards, or evaluation shards whose
``summary/`` tables were never aggregated. So each table is read from
``summary/`` when present, else aggregated in memory from the shards with the
same functions the pipeline uses, else left empty, and every figure skips
itself when its table is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.catalogue import BAD_ROWS, MANIFEST
from pipeline.config import BenchmarkConfig, EvalCfg
from pipeline.summary import attacks as aggregate
from pipeline.summary import measures
from pipeline.summary import protocol as proto
from pipeline.summary.run_info import run_config
from pipeline.summary.write import ADAPTIVE_TABLES, PROTOCOL_TABLES, protocol_tables
from tasks.protocol import ADAPTIVE


def _read(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path) if path.is_file() else pl.DataFrame()


def _shards(run_dir: Path, sub: str) -> pl.DataFrame:
    found = aggregate.scan(run_dir, sub)
    return pl.DataFrame() if found is None else found


@dataclass
class RunData:
    """The run's tables; an empty frame means "not produced by this run"."""

    run_dir: Path
    config_text: str = ""
    config: BenchmarkConfig | None = None
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
    protocol: dict[str, pl.DataFrame] = field(default_factory=dict)
    recomputed: list[str] = field(default_factory=list)  # tables aggregated here, not read

    @property
    def top_k(self) -> int | None:
        return self.config.top_k if self.config else None

    @property
    def eval_cfg(self) -> EvalCfg:
        return self.config.eval if self.config else EvalCfg()

    @property
    def point(self) -> float:
        """The reference norm of the tables (the config's first evaluation point, 5.3)."""
        return float(self.eval_cfg.points[0])

    def table(self, name: str) -> pl.DataFrame:
        return self.protocol.get(name, pl.DataFrame())

    @classmethod
    def load(cls, run_dir: Path) -> RunData:
        data = cls(run_dir=run_dir)
        data.config_text, data.config = run_config(run_dir)
        data.manifest = _read(run_dir / MANIFEST)
        data.optimality = _read(run_dir / "summary" / "optimality.parquet")
        data.bad_rows = _read(run_dir / BAD_ROWS)
        data.clean = data._summary("clean", lambda: aggregate.clean_summary(run_dir))
        data.attacks = data._summary("attacks", lambda: aggregate.attack_summary(run_dir))
        data.measures = data._summary("measures", lambda: measures.measure_summary(run_dir))
        data.fooling = data._summary("fooling", lambda: measures.fooling_curves(run_dir))
        data.bounds = data._summary("bounds", lambda: measures.bounds_summary(run_dir))
        data.attack_rows = _shards(run_dir, "attacks")
        data.linearity_rows = proto.load_linearity(run_dir)
        data._load_protocol()
        return data

    def _summary(self, name: str, compute: Any) -> pl.DataFrame:
        found = _read(self.run_dir / "summary" / f"{name}.parquet")
        if found.height:
            return found
        computed: pl.DataFrame = compute()
        if computed.height:
            self.recomputed.append(name)
        return computed

    def _load_protocol(self) -> None:
        """Protocol tables from ``summary/``; if any is missing, all are aggregated from ``evals/``."""
        found = {n: _read(self.run_dir / "summary" / f"{n}.parquet") for n in PROTOCOL_TABLES}
        # a run without the adaptive task has no adaptive tables to miss, and one attack
        # per norm no best-reference table
        optional = {"table1_best"}
        if not (self.run_dir / "evals" / ADAPTIVE).is_dir():
            optional |= set(ADAPTIVE_TABLES)
        missing = [n for n, t in found.items() if t.is_empty() and n not in optional]
        if missing and (self.run_dir / "evals").is_dir():
            computed = protocol_tables(self.run_dir, self.eval_cfg)
            for name in [n for n, t in found.items() if t.is_empty()]:
                found[name] = computed[name]
                if found[name].height:
                    self.recomputed.append(name)
        self.protocol = found
