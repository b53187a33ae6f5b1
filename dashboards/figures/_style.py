"""Shared look of every figure: Agg backend, sizes, labels with units, PNG bytes.

One place so that all figures read alike in the report and in MLflow's artifact
viewer (which shows PNGs at their pixel size): ~100 dpi keeps a report of a
few dozen figures under a few MB while staying legible.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on workers and CI; must precede pyplot

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure

from pipeline.summary.axes import is_baseline as _is_baseline
from tasks.protocol import CONDITIONS

DPI = 100
PANEL_W, PANEL_H = 4.2, 3.2  # inches per panel
#: One name per norm everywhere (README "Norms"): the axis says the unit beside it.
NORM_LABEL = {
    "l1pp": "l1pp: sum|e| / values (0..255 units)",
    "linf": "linf: max|e| (0..255 units)",
    "l2": "l2: sqrt(sum e²) (0..255 units)",
}
#: Labels are the protocol's own (tasks.protocol); colours follow declaration order, so
#: the same set-up looks the same in every figure.
_PALETTE = (
    "black", "tab:red", "tab:blue", "tab:green", "tab:orange", "tab:brown", "tab:purple",
    "tab:gray", "tab:cyan", "tab:olive", "tab:pink",
)  # fmt: skip
CONDITION_LABEL = {c.name: c.label for c in CONDITIONS.in_order()}
CONDITION_COLOR = {c.name: _PALETTE[k % len(_PALETTE)] for k, c in enumerate(CONDITIONS.in_order())}


def is_baseline(attack: str) -> bool:
    """A reference direction (random noise), not an attack: drawn dashed, left out of tables."""
    return _is_baseline(attack)


def short(model: str) -> str:
    """Compact model name for legends and tick labels (``efficientnet_lite0`` -> ``lite0``)."""
    name = model.split(":")[-1]
    return name.replace("efficientnet_", "")


def grid(n_panels: int, max_cols: int = 3) -> tuple[MplFigure, list[Axes]]:
    """A figure with ``n_panels`` axes on a near-square grid; unused axes are hidden."""
    cols = max(1, min(max_cols, n_panels))
    rows = max(1, math.ceil(n_panels / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(PANEL_W * cols, PANEL_H * rows), squeeze=False, dpi=DPI
    )
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def accuracy_axes(ax: Axes, norm: str, title: str, top_k: int | None = None) -> None:
    """Common labels of every accuracy-vs-norm panel."""
    crit = f"top-{top_k} accuracy" if top_k else "accuracy"
    ax.set_xlabel(NORM_LABEL.get(norm, norm))
    ax.set_ylabel(crit)
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def share_axes(ax: Axes, xlabel: str, ylabel: str, title: str) -> None:
    """Labels of a panel whose y axis is a share of images (0..1)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def legend_below(fig: MplFigure, axes: Iterable[Axes], ncol: int = 4) -> None:
    """One legend for the whole figure (deduplicated), under the panels."""
    handles, labels, seen = [], [], set()
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in seen:
                seen.add(label)
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(
            handles,
            labels,
            loc="lower center",
            ncol=min(ncol, len(labels)),
            fontsize=8,
            frameon=False,
            bbox_to_anchor=(0.5, 0.0),
        )
        rows = math.ceil(len(labels) / min(ncol, len(labels)))
        fig.tight_layout(rect=(0, min(0.35, 0.06 * rows + 0.02), 1, 1))
    else:
        fig.tight_layout()


def to_bytes(fig: MplFigure, fmt: str = "png") -> bytes:
    """Render and close (figures are never kept open: reports build many)."""
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"pil_kwargs": {"quality": 85}} if fmt == "jpg" else {}
    fig.savefig(buf, format=fmt, dpi=DPI, **kwargs)
    plt.close(fig)
    return buf.getvalue()


def empty_note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
