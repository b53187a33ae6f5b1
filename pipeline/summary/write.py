"""``summary/*.parquet``: every aggregate of a run, written where the report and MLflow read it."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from pipeline.config.benchmark import EvalCfg
from pipeline.results.storage import Location, RunDir, location, write_table
from pipeline.summary import protocol as proto
from pipeline.summary.adaptive import adaptive_curves, adaptive_summary, load_adaptive
from pipeline.summary.attacks import attack_summary, clean_summary
from pipeline.summary.best_reference import table1_best
from pipeline.summary.findings import findings
from pipeline.summary.measures import bounds_summary, fooling_curves, measure_summary
from pipeline.summary.points import read_eval_points


@dataclass
class Summaries:
    """The per-run aggregates of the attack stage, as written to ``summary/``."""

    clean: pl.DataFrame
    attacks: pl.DataFrame
    measures: pl.DataFrame  # Balda's rho1 / rho2 / eps99 per (model, attack)
    fooling: pl.DataFrame  # fooling ratio vs eps
    bounds: pl.DataFrame  # Peck's bounds vs what the attacks found, per model
    written: list[Location] = field(default_factory=list)


def write_summaries(run_dir: RunDir) -> Summaries:
    """Aggregate the attack stage's shards into ``summary/*.parquet``."""
    out = Summaries(
        clean=clean_summary(run_dir),
        attacks=attack_summary(run_dir),
        measures=measure_summary(run_dir),
        fooling=fooling_curves(run_dir),
        bounds=bounds_summary(run_dir),
    )
    for name in ("clean", "attacks", "measures", "fooling", "bounds"):
        out.written += _write(run_dir, name, getattr(out, name))
    return out


#: The adaptive task's tables (empty, not missing, in a run without the task).
ADAPTIVE_TABLES = ("adaptive", "adaptive_curves")
PROTOCOL_TABLES = (
    "curves", "transfer", "table1", "table1_best", "table2", "linearity", "findings",
    "dense_check", "forwards", "adaptive", "adaptive_curves",
)  # fmt: skip


def protocol_tables(run_dir: RunDir, settings: EvalCfg) -> dict[str, pl.DataFrame]:
    """Every protocol table, aggregated from the evaluation shards (nothing written)."""
    crit = proto.load_critical(run_dir)
    lin = proto.load_linearity(run_dir)
    adaptive = load_adaptive(run_dir)
    points = read_eval_points(run_dir)
    grids = proto.curve_grids(settings.grids(), points)
    curves = proto.accuracy_curves(crit, grids)
    tables = {
        "curves": curves,
        "transfer": proto.transfer_matrices(crit, curves),
        "table1": proto.table1(crit, settings.rtol),
        "table1_best": table1_best(crit, settings.rtol)
        if settings.best_reference
        else pl.DataFrame(),
        "table2": proto.table2(curves, points),
        "linearity": proto.linearity_summary(lin),
        "findings": findings(
            crit, lin, points, settings.alpha, settings.rtol, settings.primary, adaptive
        ),
        "dense_check": proto.dense_check(crit),
        "forwards": proto.condition_forwards(crit),
        "adaptive": adaptive_summary(adaptive, crit, settings.rtol),
        "adaptive_curves": adaptive_curves(adaptive, grids),
    }
    assert tuple(tables) == PROTOCOL_TABLES
    return tables


def write_protocol_summaries(run_dir: RunDir, settings: EvalCfg) -> dict[str, pl.DataFrame]:
    """Every protocol table to ``summary/<name>.parquet``; returns them by name."""
    tables = protocol_tables(run_dir, settings)
    for name, table in tables.items():
        _write(run_dir, name, table)
    return tables


def _write(run_dir: RunDir, name: str, table: pl.DataFrame) -> list[Location]:
    if not table.height:
        return []
    path = location(run_dir) / "summary" / f"{name}.parquet"
    write_table(table.to_arrow(), path)
    return [path]
