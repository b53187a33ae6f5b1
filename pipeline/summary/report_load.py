"""Load everything the run report draws, once, from a run directory (polars).

The report must rebuild from the Parquet alone (``foveabench report RUN``), and
a run may stop anywhere: only clean/attack shards, or evaluation shards whose
``summary/`` tables were never aggregated. So each table is read from
``summary/`` when present, else aggregated in memory from the shards with the
same functions the pipeline uses, else left empty. The dashboards get the result
(:class:`~pipeline.summary.report_data.ReportData`) and read nothing themselves.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl

from pipeline.config.benchmark import BenchmarkConfig, EvalCfg
from pipeline.results.catalogue import BAD_ROWS, MANIFEST
from pipeline.summary import attacks as aggregate
from pipeline.summary import measures
from pipeline.summary import protocol as proto
from pipeline.summary.report_data import (
    DEFAULT_PERCEPTIBLE_LINF,
    ExampleImage,
    ExampleRow,
    ReportData,
)
from pipeline.summary.report_provenance import provenance
from pipeline.summary.run_info import run_config
from pipeline.summary.write import ADAPTIVE_TABLES, PROTOCOL_TABLES, protocol_tables
from tasks.protocol import ADAPTIVE

IMAGES = 2  # perceptibility grids per report: the pages are about numbers, these are for intuition


def summary_table(run_dir: Path, name: str) -> pl.DataFrame:
    """``summary/<name>.parquet``, or an empty frame when the run has none."""
    return _read(run_dir / "summary" / f"{name}.parquet")


def _read(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path) if path.is_file() else pl.DataFrame()


def _shards(run_dir: Path, sub: str) -> pl.DataFrame:
    found = aggregate.read_results(run_dir, sub)
    return pl.DataFrame() if found is None else found


def load_report_data(run_dir: Path, tags: Mapping[str, str] | None = None) -> ReportData:
    """The run's tables, config, provenance and example perturbations.

    ``tags``: the MLflow parent run's tags when the caller already has them (skips the
    tracking-store lookup, see :func:`~pipeline.summary.report_provenance.provenance`).
    """
    run_dir = Path(run_dir)
    config_text, config = run_config(run_dir)
    eval_cfg = config.eval if config else EvalCfg()
    recomputed: list[str] = []

    def summary(name: str, compute: Callable[[], pl.DataFrame]) -> pl.DataFrame:
        found = summary_table(run_dir, name)
        if found.height:
            return found
        computed = compute()
        if computed.height:
            recomputed.append(name)
        return computed

    manifest = _read(run_dir / MANIFEST)
    tables = {
        "clean": summary("clean", lambda: aggregate.clean_summary(run_dir)),
        "attacks": summary("attacks", lambda: aggregate.attack_summary(run_dir)),
        "measures": summary("measures", lambda: measures.measure_summary(run_dir)),
        "fooling": summary("fooling", lambda: measures.fooling_curves(run_dir)),
        "bounds": summary("bounds", lambda: measures.bounds_summary(run_dir)),
    }
    protocol = _protocol(run_dir, eval_cfg, recomputed)
    examples, failed = _examples(run_dir, manifest, config)
    return ReportData(
        run_name=run_dir.name,
        run_path=str(run_dir.resolve()),
        config_text=config_text,
        config=config,
        eval_cfg=eval_cfg,
        perceptible_linf=config.report.perceptible_linf if config else DEFAULT_PERCEPTIBLE_LINF,
        manifest=manifest,
        bad_rows=_read(run_dir / BAD_ROWS),
        optimality=summary_table(run_dir, "optimality"),
        attack_rows=_shards(run_dir, "attacks"),
        linearity_rows=proto.load_linearity(run_dir),
        protocol=protocol,
        recomputed=tuple(recomputed),
        provenance=provenance(run_dir, config, tags),
        examples=examples,
        examples_failed=failed,
        class_names=_class_names("top_pairs" in tables["attacks"].columns or bool(examples)),
        **tables,
    )


def _protocol(run_dir: Path, eval_cfg: EvalCfg, recomputed: list[str]) -> dict[str, pl.DataFrame]:
    """Protocol tables from ``summary/``; if any is missing, all are aggregated from ``evals/``."""
    found = {n: summary_table(run_dir, n) for n in PROTOCOL_TABLES}
    # a run without the adaptive task has no adaptive tables to miss, and one attack
    # per norm no best-reference table
    optional = {"table1_best"}
    if not (run_dir / "evals" / ADAPTIVE).is_dir():
        optional |= set(ADAPTIVE_TABLES)
    missing = [n for n, t in found.items() if t.is_empty() and n not in optional]
    if missing and (run_dir / "evals").is_dir():
        computed = protocol_tables(run_dir, eval_cfg)
        for name in [n for n, t in found.items() if t.is_empty()]:
            found[name] = computed[name]
            if found[name].height:
                recomputed.append(name)
    return found


def _examples(
    run_dir: Path, manifest: pl.DataFrame, config: BenchmarkConfig | None
) -> tuple[tuple[ExampleImage, ...], str]:
    """The images the perceptibility grids redraw, and why none could be loaded (a broken
    store or image fails the grids alone, as a note in the report, not the whole report)."""
    try:
        return _example_images(run_dir, manifest, config), ""
    except Exception:
        return (), traceback.format_exc(limit=3)


def _example_images(
    run_dir: Path, manifest: pl.DataFrame, config: BenchmarkConfig | None
) -> tuple[ExampleImage, ...]:
    from pipeline.summary.axes import is_baseline
    from pipeline.summary.examples import example, stored_perturbations

    store = stored_perturbations(run_dir)
    if store.is_empty() or manifest.is_empty():
        return ()
    store = store.filter(~pl.col("attack").map_elements(is_baseline, return_dtype=pl.Boolean))
    paths = dict(manifest.select("image_id", "path").iter_rows())
    labels = dict(manifest.select("image_id", "label").iter_rows())
    # the images with a perturbation from the most (model, attack) pairs, ties by id
    counts = store.group_by("image_id").len().sort(["len", "image_id"], descending=[True, False])
    images = [i for i in counts["image_id"].to_list() if i in paths and Path(paths[i]).is_file()]
    out = []
    for image_id in images[:IMAGES]:
        rows = store.filter(pl.col("image_id") == image_id).sort("attack", "model").to_dicts()
        found = []
        for row in rows:
            x, d, scale = example(row, paths[image_id], config)
            found.append(ExampleRow(str(row["model"]), str(row["attack"]), x, d, scale))
        label = labels.get(image_id)
        out.append(ExampleImage(image_id, None if label is None else int(label), tuple(found)))
    return tuple(out)


def _class_names(needed: bool) -> tuple[str, ...]:
    """ImageNet's class names (first spelling, timm's offline list) where the norm table
    names label changes or a grid names its image; none otherwise (timm stays unimported)."""
    if not needed:
        return ()
    from pipeline.data.classes import class_name, wnids

    return tuple(class_name(w).split(",")[0] for w in wnids())
