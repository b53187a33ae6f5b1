"""``foveabench bench``: ours vs ART / Foolbox on one model and the same photos."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

DEFAULT_ROOT = "../shared/data/imagenet-sample"


def bench_command(args: argparse.Namespace) -> str:
    """The full command line of this bench (every setting explicit, for the docs)."""
    parts = ["foveabench", "bench", "--model", args.model, "--images", str(args.images)]
    parts += ["--batch", str(args.batch), "--attacks", args.attacks, "--rtol", f"{args.rtol:g}"]
    if args.peer_images is not None:
        parts += ["--peer-images", str(args.peer_images)]
    parts += ["--success-attacks", args.success_attacks]
    if args.success_defaults:
        parts += ["--success-defaults"]
    parts += ["--layout", args.layout]
    if args.layout != "sample":
        parts += ["--root", args.root]
    if args.out:
        parts += ["--out", args.out]
    return shlex.join(parts)


def cmd_eval_bench(args: argparse.Namespace) -> int:
    from pipeline.bench.evaluation import format_eval_text, run_eval_bench
    from pipeline.config.benchmark import EvalCfg

    parts = ["foveabench", "bench", "--eval", "--model", args.model, "--images", str(args.images)]
    parts += ["--batch", str(args.batch), "--attacks", args.attacks, "--search", args.search]
    parts += ["--cross-model", args.cross_model or "", "--layout", args.layout, "--root", args.root]
    report = run_eval_bench(
        model_name=args.model,
        cross_model=args.cross_model or None,
        attacks=[a.strip() for a in args.attacks.split(",") if a.strip()],
        n_images=args.images,
        batch=args.batch,
        settings=EvalCfg(search=args.search, dense_check=0),
        layout=args.layout,
        root=None if args.layout == "sample" else args.root,
        command=shlex.join(parts),
        log=lambda m: print(m, file=sys.stderr),
    )
    print(format_eval_text(report))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.eval:
        return cmd_eval_bench(args)
    from pipeline.bench import PAIRS, format_markdown, format_text, run_bench, write_section

    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    unknown = [a for a in attacks if a not in PAIRS]
    if unknown:
        print(
            f"bench: no peer pair for {unknown}; available: {','.join(PAIRS.names())}",
            file=sys.stderr,
        )
        return 2
    command = bench_command(args)
    report = run_bench(
        model_name=args.model,
        attacks=attacks,
        n_images=args.images,
        batch=args.batch,
        rtol=args.rtol,
        layout=args.layout,
        root=None if args.layout == "sample" else args.root,
        command=command.strip(),
        peer_images=args.peer_images,
        success_attacks=[a.strip() for a in args.success_attacks.split(",") if a.strip()],
        success_defaults=args.success_defaults,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(format_text(report))
    if args.out:
        write_section(Path(args.out), format_markdown(report))
        print(f"\nwrote the '## Attacks vs peers' section of {args.out}")
    skipped = [r for r in report.results if r.skipped]
    return 0 if not report.results or len(skipped) < len(report.results) else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time and norms of our attacks vs ART / Foolbox 2.4 / Foolbox 3 (needs the 'bench' extra)",
    )
    p.add_argument(
        "--model", default="efficientnet_lite0", help="the network attacked (a config model name)"
    )
    p.add_argument("--images", type=int, default=32, help="photos correct clean (top-1)")
    p.add_argument("--batch", type=int, default=32, help="images per attack call")
    p.add_argument("--attacks", default="sign,bfgs,deepfool,cw", help="comma-separated pairs")
    p.add_argument("--rtol", type=float, default=0.01, help="relative precision of our line search")
    p.add_argument("--peer-images", type=int, help="run every peer on only the first M images")
    p.add_argument(
        "--success-attacks",
        default="bfgs,sign,deepfool,cw,ddn",
        help="also run these (ours only) under top-5 and count verified successes ('' for none)",
    )
    p.add_argument(
        "--success-defaults",
        action="store_true",
        help="run the success attacks at their own defaults, not at the pairs' settings",
    )
    p.add_argument("--layout", default="ilsvrc", help="dataset layout of --root (or sample)")
    p.add_argument("--root", default=DEFAULT_ROOT, help=f"dataset root (default: {DEFAULT_ROOT})")
    p.add_argument("--out", help="markdown file whose '## Attacks vs peers' section to replace")
    p.add_argument(
        "--eval",
        action="store_true",
        help="the evaluation stage instead: image-forwards per condition and share of the forward "
        "ceiling (uses --model, --images, --batch, --attacks, --layout/--root)",
    )
    p.add_argument("--cross-model", default="efficientnet_lite1", help="--eval: the cross target")
    p.add_argument(
        "--search", default="bisect", choices=("scan", "bisect"), help="--eval: eval.search"
    )
    p.set_defaults(func=cmd_bench)
