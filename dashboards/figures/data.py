"""Everything a report draws from, read once from a run directory (polars).

The report must rebuild from the Parquet alone (``foveabench report RUN``), and
a run may stop anywhere: only clean/attack shards, or evaluation shards whose
``summary/`` tables were never aggregated. So each table is read from
``summary/`` when present, else aggregated in memory from the shards with the
same functions the pipeline uses, else left empty, and every figure skips
itself when its table is empty.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from dashboards import aggregate, measures, protocol
from pipeline.config import BenchmarkConfig, EvalCfg, parse_config

PROTOCOL_TABLES = ("curves", "transfer", "table1", "table2", "linearity", "findings")


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

    def table(self, name: str) -> pl.DataFrame:
        return self.protocol.get(name, pl.DataFrame())

    @classmethod
    def load(cls, run_dir: Path) -> RunData:
        data = cls(run_dir=run_dir)
        cfg_path = run_dir / "config.yaml"
        if cfg_path.is_file():
            data.config_text = cfg_path.read_text()
            data.config = _parse(data.config_text, cfg_path)
        data.manifest = _read(run_dir / "manifest.parquet")
        data.bad_rows = _read(run_dir / "bad_rows.parquet")
        data.clean = data._summary("clean", lambda: aggregate.clean_summary(run_dir))
        data.attacks = data._summary("attacks", lambda: aggregate.attack_summary(run_dir))
        data.measures = data._summary("measures", lambda: measures.measure_summary(run_dir))
        data.fooling = data._summary("fooling", lambda: measures.fooling_curves(run_dir))
        data.bounds = data._summary("bounds", lambda: measures.bounds_summary(run_dir))
        data.attack_rows = _shards(run_dir, "attacks")
        data.linearity_rows = protocol.load_linearity(run_dir)
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
        """Protocol tables from ``summary/``; any missing one is aggregated from ``evals/``."""
        found = {n: _read(self.run_dir / "summary" / f"{n}.parquet") for n in PROTOCOL_TABLES}
        missing = [n for n, t in found.items() if t.is_empty()]
        if missing and (self.run_dir / "evals").is_dir():
            crit = protocol.load_critical(self.run_dir)
            lin = self.linearity_rows
            grids = self.eval_cfg
            curves = found["curves"]
            if curves.is_empty():
                curves = protocol.accuracy_curves(crit, grids.l1pp_grid, grids.linf_grid)
            compute = {
                "curves": lambda: curves,
                "transfer": lambda: protocol.transfer_matrices(crit, curves),
                "table1": lambda: protocol.table1(crit, n_boot=200),
                "table2": lambda: protocol.table2(curves),
                "linearity": lambda: protocol.linearity_summary(lin),
                "findings": lambda: protocol.findings_frame(protocol.findings(crit, lin, 200)),
            }
            for name in missing:
                found[name] = compute[name]()
                if found[name].height:
                    self.recomputed.append(name)
        self.protocol = found


def _parse(text: str, path: Path) -> BenchmarkConfig | None:
    """The run's config; a config this version cannot parse still shows as text."""
    try:
        return parse_config(yaml.safe_load(text) or {}, str(path))
    except Exception as exc:  # an old or hand-edited config must not stop the report
        warnings.warn(f"{path}: not parsed ({exc}); figures use default grids", stacklevel=2)
        return None
