"""``foveabench report RUN``: rebuild a run's HTML report from its Parquet.

RUN is a run directory, or an MLflow run id (parent or child run). For a run
id, the run directory is found from the run's ``run_dir`` tag, else from its
``output_dir`` param and run name; when neither exists on this machine (the
run was computed on a cluster), the run's artifacts (parent and per-model
child runs, logged under their run-directory paths) are downloaded and the
report is built from those.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config.error import excerpt
from pipeline.results.catalogue import MANIFEST, result_dirs
from pipeline.tracking.queries import reader
from pipeline.user_error import UserError

if TYPE_CHECKING:
    from pipeline.results.storage import Location

RUN_DIR_TAG = "run_dir"  # absolute run directory, when the runner sets it


class ReportError(UserError, RuntimeError):
    """RUN could not be resolved; the message says what was tried."""

    label = "report"


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def locate(
    ref: str, tracking_uri: str | None, download_dir: str | None
) -> tuple[Path | Location, dict[str, str] | None]:
    """(run directory, the parent run's tags or None) for a directory, a run's URI on an
    object store or an MLflow run id."""
    if "://" in ref:  # a run on an object store
        from pipeline.results.storage import Location

        loc = Location(ref)
        if not (loc / MANIFEST).is_file():
            raise ReportError(f"{ref}: no manifest.parquet there; pass <output_dir>/<run_name>")
        return loc, None
    path = Path(ref)
    if path.is_dir():
        if not _is_run_dir(path):
            raise ReportError(
                f"{path}: no manifest.parquet here; pass a run directory (results/<run_name>)"
            )
        return path, None
    from pipeline.tracking.queries import parent_of, run_name_tag
    from pipeline.tracking.store import default_tracking_uri

    if "/" in ref or ref.startswith("."):
        raise ReportError(f"{ref}: no such run directory")
    uri = tracking_uri or default_tracking_uri(Path("results"))
    try:  # never MlflowClient on a missing SQLite file: it would create an empty store
        client = reader(uri)
    except ConnectionError as exc:
        raise ReportError(f"{exc}; pass --tracking-uri or a run directory") from None
    try:
        run = parent_of(client, ref)
    except LookupError as exc:
        raise ReportError(
            f"{ref!r} is neither a directory nor a run in the MLflow store {uri} ({exc}); "
            "pass --tracking-uri or a run directory"
        ) from None
    tags = dict(run.data.tags)
    candidates = [tags.get(RUN_DIR_TAG)]
    name = run_name_tag(run)
    if "output_dir" in run.data.params and name is not None:
        candidates.append(str(Path(run.data.params["output_dir"]) / name))
    for candidate in candidates:
        if candidate and "://" in candidate:  # computed on a cluster, results on a store
            from pipeline.results.storage import Location

            if (Location(candidate) / MANIFEST).is_file():
                return Location(candidate), tags
        elif candidate and _is_run_dir(Path(candidate)):
            return Path(candidate), tags
    dest = Path(download_dir or f"report-{run.info.run_id[:12]}")
    _download(client, run, dest, uri)
    return dest, tags


def _download(client: Any, run: Any, dest: Path, uri: str) -> None:
    """Parent artifacts (config, manifest, summaries) plus each model's shards, into ``dest``."""
    from pipeline.tracking.queries import child_runs, download_run

    dest.mkdir(parents=True, exist_ok=True)
    for r in [run, *child_runs(client, run)]:
        print(f"report: downloading artifacts of run {r.info.run_id} to {dest}", file=sys.stderr)
        download_run(uri, r.info.run_id, dest)
    if not _is_run_dir(dest):
        raise ReportError(f"run {run.info.run_id}: no manifest.parquet among its artifacts")


@contextlib.contextmanager
def local_run_dir(run_dir: Location) -> Iterator[Path]:
    """The run as a local folder for the dashboards: the folder itself, or for a run on an
    object store a temporary copy of everything but the perturbation stores (figures and
    the page are drawn from tables; report/ is uploaded back by the caller). Links in a
    local report/ are removed first: the report never writes (or deletes) through them."""
    if run_dir.is_local:
        from pipeline.results.rundir import drop_links

        for link in drop_links(run_dir.local_path / "report"):
            print(
                f"report: removed the link {link}; the report is written in the run",
                file=sys.stderr,
            )
        yield run_dir.local_path
        return
    with tempfile.TemporaryDirectory(prefix="foveabench-report-") as tmp:
        local = Path(tmp) / run_dir.name
        for loc in run_dir.files():
            rel = loc.relative_to(run_dir)
            if rel.parts[0] in MIRROR_SKIP:
                continue
            (local / rel).parent.mkdir(parents=True, exist_ok=True)
            (local / rel).write_bytes(loc.read_bytes())
        yield local


MIRROR_SKIP = result_dirs(reviewed=False)


def _publish(page: Path, run_dir: Location) -> list[Location]:
    """Copy report/ next to the run's results when the run is not local; return the files."""
    folder = page.parent
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    from pipeline.results.storage import Location

    if run_dir.is_local:
        return [Location(p) for p in files]
    out = []
    for path in files:
        dest = run_dir / "report" / path.relative_to(folder).as_posix()
        dest.write_bytes(path.read_bytes())
        out.append(dest)
    return out


def build_report(run_dir: Path, *, tags: Mapping[str, str] | None = None) -> Path:
    """Build ``<run_dir>/report/index.html`` and ``report/figures/*``; return the page's path:
    the summary layer loads the run, the dashboards draw it, this writes it.

    ``tags``: the MLflow parent run's tags when the caller already has them
    (skips the tracking-store lookup).
    """
    from dashboards.report import render_report
    from pipeline.results.write_error import writing
    from pipeline.summary.report_load import load_report_data

    run_dir = Path(run_dir)
    html, figs = render_report(load_report_data(run_dir, tags))
    out = run_dir / "report"
    fig_dir = out / "figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)  # no stale figure from an earlier, larger run
    with writing(fig_dir):
        fig_dir.mkdir(parents=True)
    for fig in figs.figures:
        with writing(fig_dir / fig.filename):  # a full disk: one line naming the file
            (fig_dir / fig.filename).write_bytes(fig.data)
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    with writing(index):
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(index)
    return index


def report_and_log(run_dir: Location, tracker: Any, tags: dict[str, str]) -> None:
    """``report/index.html`` and its figures, logged to the parent run under ``report/``
    (the hook ``foveabench run`` and ``nightly`` hand to the runner)."""
    from dashboards.transfer_artifacts import transfer_matrix_artifacts
    from pipeline.stages.eval_progress import DEFAULT_POINTS
    from pipeline.summary.points import point_list, read_eval_points
    from pipeline.summary.report_load import summary_table

    with local_run_dir(run_dir) as local:
        page = build_report(local, tags=tags)
        report = page.resolve().relative_to(local.resolve()).as_posix()  # artifact path
        print(f"report: {page if run_dir.is_local else run_dir / 'report'}", file=sys.stderr)
        for loc in _publish(page, run_dir):
            tracker.log_artifact(loc)
        # each transfer matrix (attack x evaluation point) as a heatmap and a table
        points = point_list(read_eval_points(local)) or list(DEFAULT_POINTS)
        made, missing = transfer_matrix_artifacts(summary_table(local, "transfer"), points)
    for norm, value in missing:
        print(
            f"transfer matrices: no {norm}={value:g} on the eval grid; no matrix", file=sys.stderr
        )
    for matrix in made:
        tracker.log_bytes(matrix.png, f"{matrix.stem}.png")
        tracker.log_table(matrix.table, f"{matrix.stem}.json")
    describe_run(tracker, report, [f"{m.stem}.png" for m in made])


def describe_run(tracker: Any, report: str, heatmaps: list[str]) -> None:
    """The parent run's description: its headline metrics and links to ``report`` and the
    ``heatmaps`` (artifact paths), set once they are logged (pipeline.tracking.note)."""
    from pipeline.tracking.note import NOTE_TAG, run_note

    run_id, experiment_id = tracker.run_id(), tracker.experiment_id
    if run_id and experiment_id:
        note = run_note(tracker.latest_metrics(), experiment_id, run_id, report, heatmaps)
        tracker.set_tags({NOTE_TAG: note})


def cmd_report(args: argparse.Namespace) -> int:
    run_dir, tags = locate(args.run, args.tracking_uri, args.download_dir)
    import polars as pl
    import pyarrow as pa

    from pipeline.results.storage import Location

    start = time.perf_counter()
    where = Location(run_dir)
    with local_run_dir(where) as local:
        try:
            page = build_report(local, tags=tags)
        except (pl.exceptions.PolarsError, pa.ArrowException) as exc:  # a damaged table
            print(
                f"report: {run_dir}: a result table cannot be read ({type(exc).__name__}: "
                f"{excerpt(str(exc))}); restore the run's files, or rerun `foveabench run` "
                "with its config to recompute them",
                file=sys.stderr,
            )
            return 2
        size = sum(f.stat().st_size for f in page.parent.rglob("*") if f.is_file())
        published = _publish(page, where)
        print(
            f"report: {published[0].parent if not where.is_local else page} "
            f"({page.stat().st_size / 1e6:.2f} MB page, {size / 1e6:.2f} MB with "
            f"figure files, {time.perf_counter() - start:.1f} s)"
        )
    return 0


def register(subparsers: Any) -> None:
    report = subparsers.add_parser(
        "report",
        help="rebuild a run's report/index.html from its Parquet (run dir or MLflow run id)",
    )
    report.add_argument("run", help="run directory (results/<run_name>) or MLflow run id")
    report.add_argument(
        "--tracking-uri",
        help="MLflow store for a run id (default: MLFLOW_TRACKING_URI or results/mlflow.db)",
    )
    report.add_argument(
        "--download-dir", help="where to put a remote run's artifacts (default: ./report-<run id>)"
    )
    report.set_defaults(func=cmd_report)
