"""Relative error of FMN, ALMA and DDN against the exact minimum on linear models.

``python scripts/closed_form_errors.py`` prints one row per (attack, norm, box):
the largest and median ``measured / minimum - 1`` over 16 images of
:func:`tests.linear.decoy_linear` (top-1), the minimum from
:func:`tests.linear.decoy_box_minimum`. With adv_lib installed, its ALMA L1
on the same model is printed beside ours (both miss the L1 minimum, alike).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from pipeline.bench.peers import Unit01
from tasks import attacks, norms
from tasks.context import PIXEL_BOUNDS
from tasks.criterion import TopK
from tests.linear import decoy_box_minimum, decoy_linear

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("ddn", {}, "l2"),
    ("fmn", {"norm": "l2"}, "l2"),
    ("fmn", {"norm": "linf"}, "linf"),
    ("fmn", {"norm": "l1pp", "steps": 300}, "l1pp"),
    ("alma", {"norm": "l2"}, "l2"),
    ("alma", {"norm": "l1pp", "steps": 300}, "l1pp"),
]


def main() -> None:
    torch.set_num_threads(2)
    model, x, labels = decoy_linear(1, n_far=5)
    print("| attack | params | norm | box | max error | median error |")
    print("|---|---|---|---|---:|---:|")
    for name, params, norm in CASES:
        for bounds in (None, PIXEL_BOUNDS):
            expected = decoy_box_minimum(model, x, norm, bounds)
            result = attacks.create(name, criterion=TopK(1), bounds=bounds, **params)(
                model, x, labels
            )
            err = result.norms()[norm] / expected - 1
            box = "none" if bounds is None else "0..255"
            print(
                f"| {name} | {params} | {norm} | {box} | {100 * err.max():.3f}% "
                f"| {100 * err.median():.3f}% |"
            )
    if importlib.util.find_spec("adv_lib") is not None:
        from adv_lib.attacks import alma

        expected = decoy_box_minimum(model, x, "l1pp", PIXEL_BOUNDS)
        adv = alma(Unit01(model), x / 255, labels, distance="l1", num_steps=300) * 255
        err = norms.l1pp(adv - x) / expected - 1
        print(
            f"| adv_lib alma | distance='l1', num_steps=300 | l1pp | 0..255 | "
            f"{100 * err.max():.3f}% | {100 * err.median():.3f}% |"
        )


if __name__ == "__main__":
    main()
