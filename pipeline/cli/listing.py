"""``foveabench list [models|attacks|tasks|layouts]``: what a config can name.

Read from the registries the config is checked against: the torch-free name registries
of :mod:`pipeline.config.names` (tests/test_hostile_config.py keeps them equal to the model and
layout registries), the attack catalogue and the task registry. Nothing is written by
hand here, so a new attack or layout is listed the moment it is registered, and the
command answers without importing torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

KINDS = ("models", "attacks", "tasks", "layouts")


def _rows(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns, two spaces apart (the last column is free text)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]
            for r in rows]  # fmt: skip


def models() -> list[str]:
    from pipeline.config.names import MODEL_NAMES, MODEL_PREFIXES

    rows = [(name, f"weights: {MODEL_NAMES.get(name)}") for name in MODEL_NAMES.names()]
    rows += [(f"{prefix}:<name>", what) for prefix, what in MODEL_PREFIXES.items()]
    note = "a timm: or torchvision: entry can load local weights: {timm:<name>: {checkpoint: PATH}}"
    return ["models", *_rows(rows), f"  ({note})"]


def attacks() -> list[str]:
    from tasks.attacks.specs import ATTACK_SPECS

    specs = [ATTACK_SPECS.get(n) for n in ATTACK_SPECS.names()]
    rows = [(s.name, s.norm, s.summary + (" (baseline)" if s.baseline else "")) for s in specs]
    return ["attacks (minimised norm; `foveabench run --help-attack NAME` for parameters)",
            *_rows(rows)]  # fmt: skip


def tasks() -> list[str]:
    from tasks.protocol import TASKS

    rows = [(t.name, f"{t.stage} stage", t.doc) for t in TASKS.in_order()]
    return ["tasks", *_rows(rows)]


def layouts() -> list[str]:
    from pipeline.config.names import LAYOUT_NAMES

    rows = [(name, LAYOUT_NAMES.get(name)) for name in LAYOUT_NAMES.names()]
    return ["dataset layouts (dataset.layout)", *_rows(rows)]


LISTERS: dict[str, Callable[[], list[str]]] = {
    "models": models,
    "attacks": attacks,
    "tasks": tasks,
    "layouts": layouts,
}


def cmd_list(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(KINDS)
    print("\n\n".join("\n".join(LISTERS[kind]()) for kind in kinds))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "list", help="list the models, attacks, tasks and dataset layouts a config can name"
    )
    p.add_argument("kind", nargs="?", choices=KINDS, help="list only these (default: all four)")
    p.set_defaults(func=cmd_list)
