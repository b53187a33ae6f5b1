"""``foveabench``: the command line (the README's commands are its contract).

Nothing heavy is imported at module level (torch, Ray, MLflow, polars,
pyarrow): ``--help`` and every config error answer in well under 2 s, and a
command imports what it needs only once its config has been checked.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

from pipeline.config.benchmark import BenchmarkConfig, ConfigError, load_config, parse_config
from pipeline.config.overrides import SHORT_FORMS, Override, parse_set, short_forms
from pipeline.results.catalogue import BAD_ROWS, MANIFEST

if TYPE_CHECKING:
    from pipeline.run.run_result import RunResult


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


def cmd_prepare(args: argparse.Namespace) -> int:
    from pipeline.data import build_manifest
    from pipeline.results.storage import Location, write_table

    if args.config:
        dataset = load_config(args.config).dataset
    else:
        raw = {"layout": args.layout, "root": args.root, "limit": args.limit}
        dataset = parse_config({"dataset": raw}, "command line").dataset
    out = Location(args.out)
    if out.is_local and out.local_path.exists() and not out.local_path.is_dir():
        raise ConfigError(
            f"prepare --out {args.out}: exists and is not a directory; pass a directory "
            "for manifest.parquet and bad_rows.parquet"
        )
    manifest = build_manifest(dataset.layout, dataset.root, dataset.limit, dataset.limits())
    try:
        write_table(manifest.table, out / MANIFEST)
        write_table(manifest.bad_rows, out / BAD_ROWS)
    except OSError as exc:  # a parent that is a file, no permission, a full disk
        raise ConfigError(
            f"prepare --out {args.out}: cannot write there ({exc}); pass a writable directory"
        ) from None
    print(manifest.summary_line(), file=sys.stderr)
    print(f"wrote {out / 'manifest.parquet'} ({manifest.table.num_rows} rows)")
    return 0


#: Modules that add subcommands: each defines ``register(subparsers)``.
#: A new command is a new module plus one line here.
COMMAND_MODULES: tuple[str, ...] = (
    "pipeline.cli.bench",
    "pipeline.cli.ops",
    "pipeline.cli.report",
    "pipeline.cli.listing",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="foveabench",
        description="Minimum adversarial perturbations, foveation and transfer of ImageNet networks.",
    )
    parser.add_argument(
        "--version", action=VersionAction, help="print foveabench's version and commit, then exit"
    )
    sub = parser.add_subparsers(dest="command", required=True)

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

    prep = sub.add_parser(
        "prepare", help="build manifest.parquet and bad_rows.parquet for a dataset"
    )
    prep.add_argument("config", nargs="?", help="YAML config whose dataset section to use")
    prep.add_argument("--layout", default="sample", help="sample | ilsvrc | kaggle | imagefolder")
    prep.add_argument("--root", help="dataset root")
    prep.add_argument("--limit", type=count, help="the first N images (sorted by image_id)")
    prep.add_argument("--out", default=".", help="directory for the parquet files")
    prep.set_defaults(func=cmd_prepare)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


class VersionAction(argparse.Action):
    """``--version``: the installed version and, in a checkout, the commit (looked up only
    when asked, so other commands never pay for it)."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        import importlib.metadata
        import platform
        import subprocess
        from pathlib import Path

        try:
            version = importlib.metadata.version("foveabench")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        try:
            sha = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=Path(__file__).parent,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            sha = ""
        commit = f", commit {sha}" if sha else ""
        print(f"foveabench {version}{commit} (python {platform.python_version()})")
        parser.exit()


def count(text: str) -> int:
    """argparse type of ``--limit``: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tasks.registry import RegistryError

    try:
        return int(args.func(args))
    except ConfigError as exc:  # includes the dataset's ManifestError and RunDirError
        print(f"{exc.label}: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:  # e.g. --help-attack with an unknown name
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder: one line naming the file
        from pipeline.results.write_error import failure_line

        line = failure_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted: finished shards are kept; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
