"""Catch MLflow up with a run directory after an outage (``foveabench sync RUN_DIR``).

Results land on disk first; MLflow is a mirror. When the tracking server was
down for part of a run, the files on disk are the truth: this module compares
them with what MLflow lists (``list_artifacts``) and logs only what is missing,
and logs final metrics only where the latest logged value differs. Running it
twice logs nothing the second time. ``run_benchmark`` calls
:func:`sync_artifacts` at start, so the next run heals the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config.benchmark import parse_config
from pipeline.config.yaml_file import parse_yaml
from pipeline.results.catalogue import BAD_ROWS, CONFIG, MANIFEST, PARENT_FILES
from pipeline.results.compaction import LOGGED, mlflow_model
from pipeline.results.partitions import COMPACTED
from pipeline.results.rundir import drop_links_below, marked
from pipeline.results.storage import Location, RunDir, location, read_table
from pipeline.run.runmeta import run_params, run_tags
from pipeline.stages.execute import has_work
from pipeline.summary.metrics import final_metrics
from pipeline.summary.write import write_summaries
from pipeline.tracking.dataset import dataset_input
from pipeline.tracking.store import default_tracking_uri, local_mlflow_dir
from pipeline.tracking.tracker import Tracker
from pipeline.user_error import UserError

#: Parent-run files, relative to the run dir (summaries are globbed).


class SyncError(UserError, RuntimeError):
    """The run dir cannot be synced; the message says why and what to do."""

    label = "sync error"
    exit_code = 1


@dataclass
class SyncReport:
    run_dir: Location
    tracking_uri: str
    run_id: str | None
    logged_files: int
    logged_metrics: int
    complete: bool


def expected_artifacts(run_dir: RunDir, models: list[str]) -> dict[str | None, list[Location]]:
    """Every file MLflow should hold, by run: ``None`` = parent (inputs, summaries and
    report/), else the model's child (its compacted attack, clean and bounds tables, and
    the evaluations it ran)."""
    root = location(run_dir)
    report = [f for f in (root / "report").files() if not f.name.startswith(".")]
    out: dict[str | None, list[Location]] = {
        None: [root / f for f in PARENT_FILES if (root / f).is_file()]
        + (root / "summary").files("*.parquet")
        + report  # the page and its figures: a run that could not log them is not complete
    }
    for model in models:
        out[model] = []
    for table in LOGGED:
        for loc in (root / table).files(f"*/{COMPACTED}"):
            model = mlflow_model(loc.relative_to(root).parent.as_posix())
            if model in out:
                out[model].append(loc)
    return out


def sync_artifacts(tracker: Tracker, run_dir: RunDir, models: list[str]) -> int:
    """Log result files that MLflow does not list yet; return how many were logged."""
    root = location(run_dir)
    logged = 0
    for model, files in expected_artifacts(root, models).items():
        if not files or not tracker.available:
            continue
        tops = {f.relative_to(root).parts[0] for f in files}
        directories = {None if (root / top).is_file() else top for top in tops}
        have: set[str] = set()
        for directory in sorted(directories, key=str):
            found = tracker.logged_artifacts(model, directory)
            if found is None:
                return logged
            have |= found
        for path in files:
            if path.relative_to(root).as_posix() not in have:
                tracker.log_artifact(path, model=model)
                logged += tracker.available
    return logged


def sync_run(where: RunDir | str) -> SyncReport:
    """Bring MLflow up to date with ``run_dir`` (artifacts, final metrics, status)."""
    run_dir = location(where)
    config_path = run_dir / CONFIG
    manifest_path = run_dir / MANIFEST
    if not config_path.is_file() or not manifest_path.is_file():
        raise SyncError(
            f"{run_dir}: not a foveabench run directory (config.yaml and manifest.parquet "
            "are written at the start of every run); pass <output_dir>/<run_name>"
        )
    if run_dir.is_local and marked(run_dir.local_path):  # writes summaries, mlflow.json
        drop_links_below(run_dir.local_path, "sync")  # never through a link
    # a damaged config.yaml is one config error (exit 2), never a YAML traceback
    cfg = parse_config(parse_yaml(config_path.read_text(), str(config_path)), str(config_path))
    manifest = read_table(manifest_path)
    output_dir = str(run_dir.parent)
    tracking_uri = cfg.mlflow.tracking_uri or default_tracking_uri(output_dir)
    artifacts = local_mlflow_dir(output_dir) / "mlartifacts"
    tracker = Tracker(
        tracking_uri, cfg.mlflow.experiment, run_dir, artifacts, cfg.mlflow.request_timeout_s
    )
    models = [m.name for m in cfg.models]
    tracker.start(run_dir.name, run_tags(cfg, manifest), run_params(cfg), models)
    if not tracker.available:
        raise SyncError(
            f"MLflow at {tracking_uri} is still unreachable; nothing was logged. Start the "
            f"tracking server (or fix mlflow.tracking_uri in {config_path}) and run "
            f"`foveabench sync {run_dir}` again"
        )
    bad = run_dir / BAD_ROWS
    n_bad = read_table(bad, ["image_id"]).num_rows if bad.is_file() else 0
    tracker.log_dataset(dataset_input(cfg.dataset.layout, cfg.dataset.root, manifest, n_bad))
    complete = not has_work(cfg, manifest, run_dir)  # every active stage, evaluation too
    tables = write_summaries(run_dir)
    n_files = sync_artifacts(tracker, run_dir, models)
    n_metrics = sum(
        tracker.log_metrics_once(metrics, model=model)
        for model, metrics in final_metrics(tables).items()
    )
    tracker.finish(success=complete)
    return SyncReport(run_dir, tracking_uri, tracker.run_id(), n_files, n_metrics, complete)
