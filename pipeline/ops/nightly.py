"""``foveabench nightly CONFIG``: the scheduled benchmark and its regression check.

The run is named ``nightly-<UTC date>-<short git sha>``: the same night on the
same commit resolves to the same run directory and (by name, in MLflow) the
same run, so a retried cron job resumes instead of starting a second run. The
baseline is the per-metric median of the last N successful (FINISHED) nightly
runs of the same config, found by tags in MLflow; the current run is never
part of its own baseline. Exit codes are for schedulers: 0 no regression,
3 regression, 1 the run or MLflow failed.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.results import provenance
from pipeline.tracking.queries import child_runs, parent_runs, reader, run_metrics

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

    from pipeline.run.run_result import Reporter
from pipeline.ops.regression import (
    Report,
    Thresholds,
    compare,
    median_baseline,
    page_of,
    summary_lines,
)
from pipeline.summary.nightly_data import NightlyPage, RunRef

#: Draws the regression page (dashboards.nightly, handed over by the CLI).
PageRenderer = Callable[[NightlyPage], str]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REGRESSION = 3
NIGHTLY_TAG = "nightly"


@dataclass
class NightlyResult:
    report: Report | None
    exit_code: int
    lines: list[str]


def nightly_run_name(date: dt.date, sha: str) -> str:
    return f"nightly-{date.isoformat()}-{sha[:7]}"


def utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def run_ref(client: MlflowClient, run: Run) -> RunRef:
    tags = run.data.tags
    return RunRef(
        run_id=run.info.run_id,
        name=run.info.run_name or run.info.run_id,
        experiment_id=run.info.experiment_id,
        run_dir=tags.get("run_dir", ""),
        git_sha=tags.get("git_sha", ""),
        start_time_ms=run.info.start_time,
        children=tuple(sorted(c.info.run_id for c in child_runs(client, run))),
    )


def baseline_runs(
    client: MlflowClient, experiment_id: str, config_name: str, exclude: str, n: int
) -> list[RunRef]:
    """The last ``n`` FINISHED nightly parent runs of this config, newest first."""
    filter_string = (
        f"tags.{NIGHTLY_TAG} = 'true' and tags.config_name = '{config_name}' "
        "and attributes.status = 'FINISHED'"
    )
    runs = parent_runs(
        client,
        experiment_id,
        filter_string,
        max_results=max(50, 4 * n),
        order_by=["attributes.start_time DESC"],
    )
    return [run_ref(client, r) for r in runs if r.info.run_id != exclude][:n]


def write_regression(report: Report, page: str, directory: Path) -> tuple[Path, Path]:
    """``regression.json`` (for machines) and ``regression.html`` (for people)."""
    directory.mkdir(parents=True, exist_ok=True)
    js = directory / "regression.json"
    index = directory / "regression.html"
    js.write_text(json.dumps(report.as_dict(), indent=2, default=str))
    index.write_text(page, encoding="utf-8")
    return js, index


def run_nightly(
    cfg: BenchmarkConfig,
    *,
    baseline_n: int = 7,
    thresholds: Thresholds,
    date: dt.date | None = None,
    report_run: Reporter | None = None,
    render_page: PageRenderer,
) -> NightlyResult:
    """Run (or resume) tonight's benchmark, then compare it with the baseline.

    ``report_run`` builds the run's report and ``render_page`` draws the regression page
    (both from the CLI: pipeline/ never draws).
    """
    from pipeline.run.run_result import RunHooks
    from pipeline.run.runner import run_benchmark

    sha = provenance.git_sha()
    name = nightly_run_name(date or utc_today(), sha)
    summary = run_benchmark(
        cfg,
        run_name=name,
        extra_tags={NIGHTLY_TAG: "true", "nightly_date": (date or utc_today()).isoformat()},
        reuse_run_by_name=True,
        hooks=RunHooks(summarised=report_run),
    )
    if summary.mlflow_run_id is None:
        return NightlyResult(
            None,
            EXIT_FAILED,
            [
                f"nightly {name}: MLflow at {summary.tracking_uri} was unreachable, so there is "
                f"no baseline to compare with; results are in {summary.run_dir}. Once MLflow is "
                f"back: `foveabench sync {summary.run_dir}`, then rerun this command."
            ],
        )
    client = reader(summary.tracking_uri)
    run_id = summary.mlflow_run_id
    current = run_ref(client, client.get_run(run_id))
    base = baseline_runs(client, current.experiment_id, cfg.name, run_id, baseline_n)
    report = Report(
        name, run_id, cfg.name, base, current=current, tracking_uri=summary.tracking_uri
    )
    baseline = median_baseline([run_metrics(client, b.run_id) for b in base])
    # a first night compares with nothing: every checked metric is "new", tonight's value kept
    report.rows = compare(run_metrics(client, run_id), baseline, thresholds)
    with tempfile.TemporaryDirectory() as tmp:  # the run may live on an object store
        local = Path(tmp) / "nightly"
        written = write_regression(report, render_page(page_of(report)), local)
        for path in written:
            client.log_artifact(run_id, str(path), "nightly")
            (summary.run_dir / "nightly" / path.name).write_bytes(path.read_bytes())
    paths = [summary.run_dir / "nightly" / p.name for p in written]
    client.set_tag(run_id, "nightly_verdict", report.verdict)
    lines = summary_lines(report)
    lines.append(f"report: {paths[1]} (also logged to MLflow run {run_id})")
    if summary.failed_units:
        lines.append(f"FAILED: {len(summary.failed_units)} model-shard(s) failed")
        return NightlyResult(report, EXIT_FAILED, lines)
    code = EXIT_REGRESSION if report.verdict == "regression" else EXIT_OK
    return NightlyResult(report, code, lines)
