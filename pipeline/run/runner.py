"""The driver of ``foveabench run``: manifest -> shards -> Ray actors -> Parquet -> MLflow.

Failures are part of the design (a 50k-image run takes hours): a shard held
by an actor that dies is requeued and computed once; an actor restarts up to
``ray.max_restarts`` times; an interrupted driver (Ctrl-C, SIGTERM from a
scheduler) kills its actors, leaves only complete shard files and marks the
MLflow run KILLED, and the next run resumes from the finished shards.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import polars as pl
import yaml

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.data.reuse import load_or_build as manifest_for_run
from pipeline.models.networks import resolve_cfg, resolve_spec
from pipeline.models.weights import checkpoint_provenance
from pipeline.ops.sync import sync_artifacts
from pipeline.results import provenance, rundir
from pipeline.results.catalogue import BAD_ROWS, CONFIG, PARENT_FILES
from pipeline.results.partitions import quarantine_damaged_pieces
from pipeline.results.storage import Location
from pipeline.run import interrupts
from pipeline.run.library_logs import library_logs_to, log_path
from pipeline.run.run_result import OpenedRun, Rows, RunHooks, RunResult, Summaries
from pipeline.run.runmeta import run_params, run_tags
from pipeline.stages.actors import check_placement
from pipeline.stages.execute import Stages, has_work, log
from pipeline.stages.plan_attacks import remove_stale_temp_files
from pipeline.stages.plan_evals import eval_tasks
from pipeline.summary.adaptive import gain_metrics, masking_warnings
from pipeline.summary.best_known import model_key, update_best_known
from pipeline.summary.metrics import final_metrics, finding_counts, transfer_metrics
from pipeline.summary.write import write_protocol_summaries, write_summaries
from pipeline.tracking.dataset import dataset_input
from pipeline.tracking.store import default_tracking_uri, local_mlflow_dir
from pipeline.tracking.tracker import Tracker

DENSE_WARNING = 0.02  # disagreement rate of the critical-scale shortcut that is reported loudly


def prepare_run_dir(cfg: BenchmarkConfig, run_name: str, fresh: bool) -> Location:
    """``<output_dir>/<run_name>``; ``fresh`` empties it only if foveabench created it."""
    return rundir.prepare(cfg.output_dir, run_name, fresh)


def run_benchmark(
    cfg: BenchmarkConfig,
    *,
    fresh: bool = False,
    run_name: str | None = None,
    extra_tags: dict[str, str] | None = None,
    reuse_run_by_name: bool = False,
    hooks: RunHooks | None = None,
) -> RunResult:
    """Run every missing work unit of ``cfg`` and summarise the whole run.

    ``reuse_run_by_name`` reopens an MLflow run of the same name (nightly runs);
    ``hooks`` (:class:`~pipeline.run.run_result.RunHooks`) see each unit land and the
    summarised run before its MLflow runs close.
    """
    return Run(
        cfg,
        run_name=run_name,
        fresh=fresh,
        extra_tags=extra_tags,
        reuse_run_by_name=reuse_run_by_name,
        hooks=hooks or RunHooks(),
    ).execute()


class Run:
    """One run of a config, in its phases: prepare (directory, manifest, plan, MLflow,
    provenance), execute the stages, summarise, finish with an outcome."""

    def __init__(
        self,
        cfg: BenchmarkConfig,
        *,
        run_name: str | None = None,
        fresh: bool = False,
        extra_tags: dict[str, str] | None = None,
        reuse_run_by_name: bool = False,
        hooks: RunHooks | None = None,
    ) -> None:
        self.cfg, self.name, self.fresh = cfg, run_name or cfg.name, fresh
        self.extra_tags, self.reuse_run_by_name = extra_tags, reuse_run_by_name
        self.hooks = hooks or RunHooks()

    def execute(self) -> RunResult:
        """Every phase, with the libraries' log lines sent to the run's log file."""
        start = time.perf_counter()
        run_dir = prepare_run_dir(self.cfg, self.name, self.fresh)
        with library_logs_to(log_path(run_dir)) as logs:
            result = self._execute_in(run_dir)
        return dataclasses.replace(result, log_file=str(logs), seconds=time.perf_counter() - start)

    def _execute_in(self, run_dir: Location) -> RunResult:
        opened = self._prepare(run_dir)
        tracker = self.tracker
        tracker.start_system_metrics()  # finish() stops it, whichever way the run ends
        try:
            with interrupts.graceful():
                stages = Stages(self.cfg, run_dir, tracker, self.prov, self.manifest, self.hooks)
                totals = stages.run()
                summaries = self._summarise(run_dir)
                if self.hooks.summarised is not None:
                    self.hooks.summarised(run_dir, tracker, self.tags)
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
        tracker.finish(success=not totals.failed_units)
        return RunResult.assemble(opened, totals, summaries, mlflow_failed=not tracker.available)

    def _prepare(self, run_dir: Location) -> OpenedRun:
        """Directory, manifest and whether there is work; then (only then) MLflow and
        provenance."""
        cfg = self.cfg
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
        self.manifest = manifest.table

        if has_work(cfg, manifest.table, run_dir):
            check_placement(cfg)  # unplaceable: one line before MLflow opens; no work: no Ray

        tracking_uri = cfg.mlflow.tracking_uri or default_tracking_uri(cfg.output_dir)
        artifacts = local_mlflow_dir(cfg.output_dir) / "mlartifacts"
        self.tracker = tracker = Tracker(
            tracking_uri, cfg.mlflow.experiment, run_dir, artifacts, cfg.mlflow.request_timeout_s
        )
        models = [m.name for m in cfg.models]
        self.tags = {**run_tags(cfg, manifest.table, self.extra_tags), "run_dir": str(run_dir)}
        tracker.start(
            self.name, self.tags, run_params(cfg), models, reuse_by_name=self.reuse_run_by_name
        )
        self.prov = prov = provenance.run_provenance(
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
        opened = OpenedRun(
            run_dir=run_dir,
            n_images=manifest.table.num_rows,
            n_bad_rows=manifest.bad_rows.num_rows,
            tracking_uri=tracking_uri,
            synced_files=synced,
            mlflow_run_id=tracker.run_id(),
            mlflow_experiment_id=tracker.experiment_id,
        )
        return opened

    def _summarise(self, run_dir: Location) -> Summaries:
        """Every summary table, best-known distances, and the protocol's when it ran."""
        clean, attacks = _summarise(run_dir, self.tracker)
        _best_known(self.cfg, run_dir, self.tracker, self.prov)
        if not eval_tasks(self.cfg):
            return Summaries(clean=clean, attacks=attacks)
        return dataclasses.replace(
            _summarise_protocol(self.cfg, run_dir, self.tracker), clean=clean, attacks=attacks
        )


def _summarise_protocol(cfg: BenchmarkConfig, run_dir: Location, tracker: Tracker) -> Summaries:
    """Protocol tables to summary/, transfer metrics to the parent run; the findings.

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
    dense = tables["dense_check"]
    loud = dense.filter(pl.col("mismatch_rate") > DENSE_WARNING) if dense.height else dense
    dense_warnings = tuple(
        f"{r['condition']} {r['source']}->{r['target']} {r['attack']}: "
        f"{r['n_mismatch']}/{r['n_checked']} sampled images disagree with the dense grid "
        "(their critical scale may be off; eval.search: scan checks every grid point "
        "below a crossing at about 2x the forwards, eval.dense_check samples more images)"
        for r in loud.to_dicts()
    )
    for line in dense_warnings:
        log(f"WARNING: critical-scale shortcut: {line}")
    if dense_warnings:
        tracker.set_tags({"dense_check_warning": "; ".join(dense_warnings)[:5000]})
    masking = tuple(masking_warnings(tables["adaptive"]))
    for line in masking:  # gradient masking shows as an adaptive attack weaker than it must be
        log(f"WARNING: {line}")
    if masking:
        tracker.set_tags({"gradient_masking_warning": "; ".join(masking)[:5000]})
    return Summaries(
        findings=tuple(tables["findings"].to_dicts()),
        table1=tuple(tables["table1"].to_dicts()),
        dense_warnings=dense_warnings,
        masking_warnings=masking,
    )


def _summarise(run_dir: Location, tracker: Tracker) -> tuple[Rows, Rows]:
    """The attack stage's summary tables, logged; their clean and attack rows."""
    tables = write_summaries(run_dir)
    for path in tables.written:
        tracker.log_artifact(path)
    for row in tables.bounds.to_dicts():
        if row.get("first_error"):
            log(f"bounds: {row['first_error']}")
        if row.get("violations"):
            log(f"bounds: {row['model']}: {row['violations']} perturbation(s) below the bound")
    for model, metrics in final_metrics(tables).items():
        tracker.log_metrics_once(metrics, model=model)
    return tuple(tables.clean.to_dicts()), tuple(tables.attacks.to_dicts())


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
