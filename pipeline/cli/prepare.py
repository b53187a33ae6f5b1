"""``foveabench prepare``: a dataset's manifest.parquet and bad_rows.parquet, without a run."""

from __future__ import annotations

import argparse
import sys

from pipeline.config.benchmark import ConfigError, load_config, parse_config
from pipeline.results.catalogue import BAD_ROWS, MANIFEST


def register(sub: argparse._SubParsersAction) -> None:
    prep = sub.add_parser(
        "prepare", help="build manifest.parquet and bad_rows.parquet for a dataset"
    )
    prep.add_argument("config", nargs="?", help="YAML config whose dataset section to use")
    prep.add_argument("--layout", default="sample", help="sample | ilsvrc | kaggle | imagefolder")
    prep.add_argument("--root", help="dataset root")
    prep.add_argument("--limit", type=count, help="the first N images (sorted by image_id)")
    prep.add_argument("--out", default=".", help="directory for the parquet files")
    prep.set_defaults(func=cmd_prepare)


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


def count(text: str) -> int:
    """argparse type of ``--limit``: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value
