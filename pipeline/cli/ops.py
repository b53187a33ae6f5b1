"""Operations subcommands: ``submit`` (Ray job), ``nightly`` (scheduled run), ``sync`` (MLflow)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from pipeline.config.benchmark import load_config


def register(subparsers: Any) -> None:
    from pipeline.cli.run import add_config_options

    submit = subparsers.add_parser(
        "submit", help="run a benchmark as a job on a Ray cluster (Ray Jobs API)"
    )
    submit.add_argument("config", help="YAML benchmark config")
    submit.add_argument(
        "--address", required=True, help="Ray dashboard/job server, e.g. http://127.0.0.1:8265"
    )
    submit.add_argument("--no-wait", action="store_true", help="print the job id and return")
    submit.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds the job server may take to answer before submit stops (default 30)",
    )
    submit.add_argument(
        "--install-deps",
        action="store_true",
        help="have Ray pip-install the pinned requirements per job (default: use the "
        "cluster's environment, as set up by ray_cluster.yaml)",
    )
    add_config_options(submit)
    submit.set_defaults(func=cmd_submit)

    nightly = subparsers.add_parser(
        "nightly", help="run tonight's benchmark and compare it with recent nights"
    )
    nightly.add_argument("config", help="YAML benchmark config")
    nightly.add_argument(
        "--baseline-runs", type=int, default=7, help="median of the last N successful nightlies"
    )
    nightly.add_argument("--thresholds", help="YAML thresholds (default: built-in)")
    nightly.add_argument(
        "--date", type=dt.date.fromisoformat, help="UTC date of the run (default: today; backfills)"
    )
    add_config_options(nightly)
    nightly.set_defaults(func=cmd_nightly)

    sync = subparsers.add_parser(
        "sync", help="log to MLflow whatever a run dir holds that MLflow lacks"
    )
    sync.add_argument("run_dir", help="<output_dir>/<run_name>")
    sync.set_defaults(func=cmd_sync)


def _config(args: argparse.Namespace) -> Any:
    """Submit: the config as parsed (its paths are the cluster's, not this machine's)."""
    from pipeline.cli.run import config_overrides

    return load_config(args.config, config_overrides(args))


def cmd_submit(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from pipeline.ops import submit as sub

    submission = sub.build_submission(cfg, install_deps=args.install_deps)
    client = sub.connect(args.address, args.connect_timeout)
    sid, what = sub.submit(client, submission)
    print(f"job {sid}: {what}", file=sys.stderr)
    if args.no_wait:
        print(sid)
        return 0
    status = sub.follow(client, sid, args.address)
    print(f"job {sid}: {status}", file=sys.stderr)
    return 0 if status == "SUCCEEDED" else 1


def cmd_nightly(args: argparse.Namespace) -> int:
    from pipeline.cli.run import checked_config
    from pipeline.ops.regression import load_thresholds

    cfg = checked_config(args)
    thresholds = load_thresholds(args.thresholds)
    from dashboards.nightly import render_regression_page
    from pipeline.cli.report import report_and_log
    from pipeline.ops.nightly import run_nightly

    result = run_nightly(
        cfg,
        baseline_n=args.baseline_runs,
        thresholds=thresholds,
        date=args.date,
        report_run=report_and_log,
        render_page=render_regression_page,
    )
    print("\n".join(result.lines))
    return result.exit_code


def cmd_sync(args: argparse.Namespace) -> int:
    from pipeline.ops.sync import sync_run

    report = sync_run(args.run_dir)
    state = "complete" if report.complete else "incomplete (rerun `foveabench run` to finish it)"
    print(
        f"synced {report.run_dir} -> {report.tracking_uri} run {report.run_id}: "
        f"{report.logged_files} file(s) and {report.logged_metrics} metric(s) logged; "
        f"run {state}"
    )
    return 0
