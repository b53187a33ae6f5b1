"""``foveabench``: the command line (the README's commands are its contract): the parser,
``--version`` and the exit codes; each command is a module of this package (``run``,
``prepare``, ``report``, ``list``, ``bench``, ``submit``/``nightly``/``sync``).

Nothing heavy is imported at module level (torch, Ray, MLflow, polars,
pyarrow): ``--help`` and every config error answer in well under 2 s, and a
command imports what it needs only once its config has been checked.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pipeline.user_error import UserError

#: Modules that add subcommands: each defines ``register(subparsers)``.
#: A new command is a new module plus one line here.
COMMAND_MODULES: tuple[str, ...] = (
    "pipeline.cli.run",
    "pipeline.cli.prepare",
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tasks.registry import RegistryError

    try:
        return int(args.func(args))
    except UserError as exc:  # every error a user can fix (a config, a dataset, an address...)
        print(f"{exc.label}: {exc}", file=sys.stderr)
        return exc.exit_code
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
