"""The driver of ``foveabench run``: manifest -> shards -> Ray actors -> Parquet -> MLflow.

Failures are part of the design (a 50k-image run takes hours): a shard held
by an actor that dies is requeued and computed once; an actor restarts up to
``ray.max_restarts`` times; an interrupted driver (Ctrl-C, SIGTERM from a
scheduler) kills its actors, leaves only complete shard files and marks the
MLflow run KILLED, and the next run resumes from the finished shards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import yaml

from pipeline import interrupts, provenance, rundir
from pipeline.actors import check_placement
from pipeline.attack_unit import AttackOutput
from pipeline.catalogue import BAD_ROWS, CONFIG, PARENT_FILES
from pipeline.config import BenchmarkConfig
from pipeline.data.reuse import load_or_build as manifest_for_run
from pipeline.eval_unit import EvalOutput
from pipeline.library_logs import library_logs_to, log_path
from pipeline.models import resolve_cfg, resolve_spec
from pipeline.partitions import quarantine_damaged_pieces
from pipeline.plan_attacks import plan_attack_units, remove_stale_temp_files
from pipeline.plan_evals import eval_tasks, plan_eval_units
from pipeline.runmeta import run_params, run_tags
from pipeline.scheduler import UnitFailure
from pipeline.stages import Stages, log
from pipeline.storage import Location
from pipeline.summary.adaptive import gain_metrics, masking_warnings
from pipeline.summary.best_known import model_key, update_best_known
from pipeline.summary.metrics import final_metrics, finding_counts, transfer_metrics
from pipeline.summary.write import write_protocol_summaries, write_summaries
from pipeline.sync import sync_artifacts
from pipeline.tracking.dataset import dataset_input
from pipeline.tracking.store import default_tracking_uri, local_mlflow_dir
from pipeline.tracking.tracker import Tracker
from pipeline.weights import checkpoint_provenance

#: Called once the run is summarised, before its MLflow runs close (the CLI builds the
#: report there: the runner itself never draws).
Reporter = Callable[[Location, "Tracker", dict[str, str]], None]
DENSE_WARNING = 0.02  # disagreement rate of the critical-scale shortcut that is reported loudly


@dataclass
class RunSummary:
    run_dir: Location
    n_images: int
    n_bad_rows: int
    computed_units: int
    skipped_units: int
    skipped_files: int
    failed_units: list[UnitFailure] = field(default_factory=list)  # typed: kind, key, message
    clean: list[dict[str, Any]] = field(default_factory=list)
    attacks: list[dict[str, Any]] = field(default_factory=list)
    tracking_uri: str = ""
    seconds: float = 0.0
    requeued_units: int = 0  # units resubmitted after their actor died
    attack_seconds: float = 0.0  # wall time of the attack stage (throughput)
    #: attack-stage images per second of actor time, per model (every attack of the run)
    attack_images_per_s: dict[str, float] = field(default_factory=dict)
    synced_files: int = 0  # files on disk that an earlier run had not logged to MLflow
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None  # the runs page the closing block links to
    computed_eval_units: int = 0
    eval_seconds: float = 0.0  # wall time of the evaluation stage
    findings: list[dict[str, Any]] = field(default_factory=list)  # the paper's claims, tested
    table1: list[dict[str, Any]] = field(default_factory=list)
    dense_warnings: list[str] = field(default_factory=list)  # shortcut disagreement > 2%
    masking_warnings: list[str] = field(default_factory=list)  # adaptive task's checks
    #: MLflow failed during the run (full disk, server down): results are on disk only
    mlflow_failed: bool = False
    log_file: str = ""  # where the libraries' log lines went (pipeline/library_logs.py)


def prepare_run_dir(cfg: BenchmarkConfig, run_name: str, fresh: bool) -> Location:
    """``<output_dir>/<run_name>``; ``fresh`` empties it only if foveabench created it."""
    return rundir.prepare(cfg.output_dir, run_name, fresh)


def run_benchmark(
    cfg: BenchmarkConfig,
    *,
    fresh: bool = False,
    run_name: str | None = None,
    extra_tags: dict[str, str] | None = None,
    on_unit_done: Callable[[AttackOutput], None] | None = None,
    reuse_run_by_name: bool = False,
    report: Reporter | None = None,
    on_eval_unit_done: Callable[[EvalOutput], None] | None = None,
) -> RunSummary:
    """Run every missing work unit of ``cfg`` and summarise the whole run.

    ``on_unit_done`` is called in the driver after each shard is written (progress
    hooks, and the fault-injection tests kill actors from it).
    ``reuse_run_by_name`` reopens an MLflow run of the same name (nightly runs).
    ``report`` is called with the run dir, the tracker and the run's tags once
    everything is summarised.
    ``on_eval_unit_done``: the same for each evaluation unit, once its shards and
    progress metrics are logged.
    """
    start = time.perf_counter()
    run_name = run_name or cfg.name
    run_dir = prepare_run_dir(cfg, run_name, fresh)
    with library_logs_to(log_path(run_dir)) as logs:
        summary = _run_in(
            cfg, run_dir, run_name, extra_tags, on_unit_done, reuse_run_by_name, report,
            on_eval_unit_done,
        )  # fmt: skip
    summary.log_file = str(logs)
    summary.seconds = time.perf_counter() - start
    return summary


def _run_in(
    cfg: BenchmarkConfig,
    run_dir: Location,
    run_name: str,
    extra_tags: dict[str, str] | None,
    on_unit_done: Callable[[AttackOutput], None] | None,
    reuse_run_by_name: bool,
    report: Reporter | None,
    on_eval_unit_done: Callable[[EvalOutput], None] | None,
) -> RunSummary:
    """The run once its directory is ready: manifest, plan, MLflow, both stages, summaries."""
    removed = remove_stale_temp_files(run_dir)
    if removed:
        log(f"removed {removed} partial file(s) left by an interrupted run")
    for line in quarantine_damaged_pieces(run_dir):
        log(f"resume: {line}")
    (run_dir / CONFIG).write_text(yaml.safe_dump(cfg.as_dict(), sort_keys=False))

    ds = cfg.dataset
    manifest, reused = manifest_for_run(run_dir, ds.layout, ds.root, ds.limit, ds.limits())
    if manifest.table.num_rows == 0:
        from pipeline.data.layouts import ManifestError

        raise ManifestError(  # the CLI prints it as its one line, exit code 2
            manifest.nothing_usable(f"{ds.layout}:{ds.root}", ds.limit, run_dir / BAD_ROWS)
        )
    log(manifest.summary_line() + (" (reused: the dataset is unchanged)" if reused else ""))

    plan = plan_attack_units(cfg, manifest.table, run_dir)
    if plan.units or (eval_tasks(cfg) and plan_eval_units(cfg, manifest.table, run_dir)[0]):
        check_placement(cfg)  # unplaceable: one line before MLflow opens; no work: no Ray
    if plan.skipped_files:
        log(
            f"resume: {plan.skipped_files} shard files already complete, not recomputed "
            f"({plan.skipped} of {plan.n_shards * len(cfg.models)} model-shards fully done)"
        )

    tracking_uri = cfg.mlflow.tracking_uri or default_tracking_uri(cfg.output_dir)
    artifacts = local_mlflow_dir(cfg.output_dir) / "mlartifacts"
    tracker = Tracker(
        tracking_uri, cfg.mlflow.experiment, run_dir, artifacts, cfg.mlflow.request_timeout_s
    )
    models = [m.name for m in cfg.models]
    tags = {**run_tags(cfg, manifest.table, extra_tags), "run_dir": str(run_dir)}
    tracker.start(
        run_name,
        tags,
        run_params(cfg),
        models,
        reuse_by_name=reuse_run_by_name,
    )
    prov = provenance.run_provenance(
        cfg.as_dict(),
        manifest.table,
        {m.name: resolve_cfg(m.name, m.preprocess).as_dict() for m in cfg.models},
    )
    weights = checkpoint_provenance(cfg)
    if weights:  # the files' hashes; the actors refuse a file that differs
        prov["checkpoints"] = weights
    provenance.write_run_provenance(run_dir, prov)
    for name in (*PARENT_FILES, provenance.FILE):
        tracker.log_artifact(run_dir / name)  # this run's inputs, logged every time
    tracker.log_dataset(
        dataset_input(ds.layout, ds.root, manifest.table, manifest.bad_rows.num_rows)
    )
    # Shards and summaries that an earlier run wrote while MLflow was down.
    synced = sync_artifacts(tracker, run_dir, models)
    if synced:
        log(f"mlflow: logged {synced} file(s) that earlier runs could not log")

    summary = RunSummary(
        run_dir=run_dir,
        n_images=manifest.table.num_rows,
        n_bad_rows=manifest.bad_rows.num_rows,
        computed_units=0,
        skipped_units=plan.skipped,
        skipped_files=plan.skipped_files,
        tracking_uri=tracking_uri,
        synced_files=synced,
        mlflow_run_id=tracker.run_id(),
        mlflow_experiment_id=tracker.experiment_id,
    )
    tracker.start_system_metrics()  # finish() stops it, whichever way the run ends
    try:
        with interrupts.graceful():
            stages = Stages(
                cfg, run_dir, tracker, prov, manifest.table, summary, on_unit_done,
                on_eval_unit_done,
            )  # fmt: skip
            stages.run(plan.units)
            _summarise(run_dir, tracker, summary)
            _best_known(cfg, run_dir, tracker, prov)
            if eval_tasks(cfg):
                _summarise_protocol(cfg, run_dir, tracker, summary)
            if report is not None:
                report(run_dir, tracker, tags)
    except (KeyboardInterrupt, SystemExit):
        tracker.finish(status="KILLED")
        log(
            "interrupted: actors stopped, MLflow run marked KILLED; complete shards are "
            "kept, rerun the same command to resume"
        )
        raise
    except BaseException:
        tracker.finish(success=False)
        raise
    tracker.finish(success=not summary.failed_units)
    summary.mlflow_failed = not tracker.available
    return summary


def _summarise_protocol(
    cfg: BenchmarkConfig, run_dir: Location, tracker: Tracker, summary: RunSummary
) -> None:
    """Protocol tables to summary/, transfer metrics to the parent run, findings to the summary.

    A condition whose critical-scale shortcut disagrees with the dense grid on
    more than 2% of its sampled images is reported loudly: a warning here and
    the MLflow tag ``dense_check_warning``.
    """
    tables = write_protocol_summaries(run_dir, cfg.eval)
    for name, table in tables.items():
        if table.height:
            tracker.log_artifact(run_dir / "summary" / f"{name}.parquet")
    tracker.log_metrics_once(transfer_metrics(tables["transfer"]))
    tracker.log_metrics_once(gain_metrics(tables["adaptive"]))
    tracker.log_metrics_once(finding_counts(tables["findings"]))
    summary.findings = tables["findings"].to_dicts()
    summary.table1 = tables["table1"].to_dicts()
    dense = tables["dense_check"]
    if dense.height:
        loud = dense.filter(pl.col("mismatch_rate") > DENSE_WARNING)
        summary.dense_warnings = [
            f"{r['condition']} {r['source']}->{r['target']} {r['attack']}: "
            f"{r['n_mismatch']}/{r['n_checked']} sampled images disagree with the dense grid "
            "(their critical scale may be off; eval.search: scan checks every grid point "
            "below a crossing at about 2x the forwards, eval.dense_check samples more images)"
            for r in loud.to_dicts()
        ]
        for line in summary.dense_warnings:
            log(f"WARNING: critical-scale shortcut: {line}")
        if summary.dense_warnings:
            tracker.set_tags({"dense_check_warning": "; ".join(summary.dense_warnings)[:5000]})
    masking = masking_warnings(tables["adaptive"])
    for line in masking:  # gradient masking shows as an adaptive attack weaker than it must be
        log(f"WARNING: {line}")
    if masking:
        summary.masking_warnings = masking
        tracker.set_tags({"gradient_masking_warning": "; ".join(masking)[:5000]})


def _summarise(run_dir: Location, tracker: Tracker, summary: RunSummary) -> None:
    tables = write_summaries(run_dir)
    for path in tables.written:
        tracker.log_artifact(path)
    summary.clean = tables.clean.to_dicts()
    summary.attacks = tables.attacks.to_dicts()
    for row in tables.bounds.to_dicts():
        if row.get("first_error"):
            log(f"bounds: {row['first_error']}")
        if row.get("violations"):
            log(f"bounds: {row['model']}: {row['violations']} perturbation(s) below the bound")
    for model, metrics in final_metrics(tables).items():
        tracker.log_metrics_once(metrics, model=model)


def _best_known(
    cfg: BenchmarkConfig, run_dir: Location, tracker: Tracker, prov: dict[str, Any]
) -> None:
    """Best-known distances (merged with the config's store) and each attack's optimality:
    summary/best_known.parquet, summary/optimality.parquet, ``optimality/...`` metrics."""
    keys = {
        m.name: model_key(_weights_source(m.name, prov), prov["preprocess"][m.name])
        for m in cfg.models
    }
    _, table = update_best_known(run_dir, cfg.name, keys, cfg.best_known)
    for name in ("best_known", "optimality"):
        path = run_dir / "summary" / f"{name}.parquet"
        if path.is_file():
            tracker.log_artifact(path)
    tracker.log_metrics_once(
        {
            f"optimality/{r['attack']}/{r['model']}/{r['norm']}": float(r["optimality"])
            for r in table.to_dicts()
            if r["optimality"] == r["optimality"]  # nan: no best-known area to gain
        }
    )


def _weights_source(model: str, prov: dict[str, Any]) -> str:
    """Where ``model``'s weights come from: a checkpoint is known by its hash, not its path."""
    weights = prov.get("checkpoints", {}).get(model)
    return f"checkpoint:sha256:{weights['sha256']}" if weights else resolve_spec(model).source
