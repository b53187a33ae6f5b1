"""``foveabench run [CONFIG]``, and the config options every command that runs a config
shares (``--set``, ``--models``... written into the YAML before it is checked).

Nothing heavy is imported at module level: a config error answers before torch loads.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from pipeline.config.benchmark import BenchmarkConfig, load_config
from pipeline.config.overrides import SHORT_FORMS, Override, parse_set, short_forms

if TYPE_CHECKING:
    from pipeline.run.run_result import RunResult


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a benchmark (default: the embedded demo config)")
    run.add_argument(
        "config",
        nargs="?",
        help="YAML config (default: the demo shipped with foveabench: two networks, the "
        "sign attack, real photos, on CPU)",
    )
    run.add_argument("--fresh", action="store_true", help="discard finished shards and start over")
    add_config_options(run)
    run.add_argument(
        "--help-attack",
        metavar="NAME",
        help="print attack NAME's parameters and their defaults, then exit",
    )
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    if args.help_attack:
        return help_attack(args.help_attack)
    cfg = checked_config(args, fresh=args.fresh)
    from pipeline.cli.report import report_and_log
    from pipeline.cli.summary import print_summary
    from pipeline.run.run_result import RunHooks
    from pipeline.run.runner import run_benchmark

    summary = run_benchmark(cfg, fresh=args.fresh, hooks=RunHooks(summarised=report_and_log))
    print_summary(summary)
    return run_exit_code(summary)


def run_exit_code(summary: RunResult) -> int:
    """1 when a unit failed or MLflow could not be written (a full disk, a server down):
    a scheduler must not take a run whose mirror is missing for a complete one."""
    if summary.mlflow_failed:
        print(
            f"MLflow at {summary.tracking_uri} could not be written; the results on disk are "
            f"kept: once it works again run `foveabench sync {summary.run_dir}`",
            file=sys.stderr,
        )
    return 1 if summary.failed_units or summary.mlflow_failed else 0


def help_attack(name: str) -> int:
    """``foveabench run --help-attack NAME``: the attack's parameters and defaults."""
    from tasks.attacks.specs import attack_spec

    print(attack_spec(name).help_text())
    return 0


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """The options that change the config on the command line; they are written into the
    YAML before it is checked, so they meet the file's checks and messages."""
    group = parser.add_argument_group("config overrides (checked like the same keys in the YAML)")
    group.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config key, dotted for sections (eval.rtol=0.01, criterion.top_k=1); "
        "the value is read as YAML (models=[a, b]); repeatable",
    )
    group.add_argument(
        "--models", metavar="A,B", help="the models to run, comma-separated (replaces models)"
    )
    group.add_argument(
        "--attacks", metavar="A,B", help="the attacks to run, comma-separated (replaces attacks)"
    )
    group.add_argument(
        "--tasks", metavar="A,B", help="the tasks to run, comma-separated (replaces tasks)"
    )
    group.add_argument("--device", help="auto, cpu, cuda, cuda:<n> or mps (replaces device)")
    group.add_argument("--limit", metavar="N", help="use the first N images (dataset.limit)")
    group.add_argument("--output-dir", metavar="DIR", help="where run directories go (output_dir)")


def config_overrides(args: argparse.Namespace) -> list[Override]:
    """The command line's overrides, short forms first, then each ``--set`` in order."""
    short = short_forms({key: getattr(args, key, None) for key in SHORT_FORMS})
    return short + [parse_set(text) for text in getattr(args, "set", None) or []]


def checked_config(args: argparse.Namespace, *, fresh: bool = False) -> BenchmarkConfig:
    """The config with command-line overrides, its paths checked, then its models resolved
    and their weights found (pipeline/models/weights.py).

    Everything but the model checks is standard library; the model checks import
    torch (needed next anyway) and still run before any manifest, Ray or MLflow.
    """
    from pipeline.run.preflight import check_models, check_paths, check_ray_address

    source = str(args.config or "configs/demo.yaml")
    cfg = load_config(args.config, config_overrides(args))
    check_paths(cfg, source, fresh=fresh)
    check_ray_address(cfg, source)
    check_models(cfg, source)
    from pipeline.models.weights import check_weights  # torch, as check_models already imported

    check_weights(cfg, source)
    return cfg
