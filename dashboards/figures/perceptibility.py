"""Perceptibility grids like the paper's appendix C (Fig. 14-19).

For a few images: one row per (network, attack), columns = the clean input,
the adversarial example at e* and at increasing norms of the same direction,
and e* magnified x10 around mid-grey. Rebuilt from the perturbation store
(``clip(x + s*d) - x``, docs/protocol.md) and the model's deterministic preprocessing,
so no attack is recomputed; the summary layer loads the images and directions
(``ReportData.examples``), this module only draws them. Saved as JPEG: these are photographs, and PNG
would make them the bulk of the report.
"""

from __future__ import annotations

import numpy as np
import torch

from dashboards.figures import _style as st
from dashboards.figures.base import Figure, norm_for, safe
from dashboards.figures.tables import class_label
from pipeline.summary.report_data import ExampleRow, ReportData
from tasks import norms as tnorms

STEPS = 4  # rescaled versions, spread over the attack's norm grid
MAGNIFY = 10.0
THUMB = 1.35  # inches per thumbnail


def _norm(e: torch.Tensor, norm: str) -> float:
    return float(tnorms.norm(e.unsqueeze(0), norm)[0])


def _to_image(x: torch.Tensor) -> np.ndarray:
    return x.clamp(0, 255).permute(1, 2, 0).numpy().astype(np.uint8)


def _row_images(data: ReportData, row: ExampleRow) -> list[tuple[np.ndarray, str]]:
    """Clean, e*, rescaled versions and the x10 magnification of one (image, model, attack)."""
    x, d, scale = row.x, row.d, row.scale
    norm = norm_for(row.attack)
    e_star = (x + scale * d).clamp(0, 255) - x
    out = [(_to_image(x), "clean")]
    out.append((_to_image(x + e_star), f"e*: {norm} = {_norm(e_star, norm):.3g}"))
    unit = _norm(d, norm) or 1.0
    grid = [v for v in data.eval_cfg.grid(norm) if v > 0]
    for v in grid[len(grid) // STEPS :: max(1, len(grid) // STEPS)][:STEPS]:
        e = (x + (v / unit) * d).clamp(0, 255) - x
        out.append((_to_image(x + e), f"{norm} = {v:g}"))
    out.append((_to_image(128.0 + MAGNIFY * e_star), f"e* ×{MAGNIFY:g}"))
    return out


def perceptibility_grids(data: ReportData) -> list[Figure]:
    if data.examples_failed:  # the builder's failure note, as when it read the store itself
        raise RuntimeError(
            f"the example perturbations could not be loaded:\n{data.examples_failed}"
        )
    out = []
    for image in data.examples:
        image_id = image.image_id
        grid = [(r, _row_images(data, r)) for r in image.rows]
        cols = max(len(g) for _, g in grid)
        fig, axes = st.plt.subplots(
            len(grid),
            cols,
            figsize=(THUMB * cols, THUMB * len(grid) + 0.3),
            squeeze=False,
            dpi=st.DPI,
        )
        for r, (row, cells) in enumerate(grid):
            for c, ax in enumerate(axes[r]):
                ax.axis("off")
                if c < len(cells):
                    ax.imshow(cells[c][0])
                    ax.set_title(cells[c][1], fontsize=7)
            axes[r][0].text(
                -0.08,
                0.5,
                f"{st.short(row.model)}\n{row.attack}",
                transform=axes[r][0].transAxes,
                ha="right",
                va="center",
                fontsize=8,
            )
        named = (
            f" ({class_label(image.label, data.class_names)})" if image.label is not None else ""
        )
        fig.suptitle(f"{image_id}{named}: adversarial examples at increasing norm", fontsize=10)
        # fixed margins: tight_layout over a grid of images costs seconds and gains nothing
        fig.subplots_adjust(
            left=0.09,
            right=0.995,
            bottom=0.01,
            top=1 - 0.45 / fig.get_figheight(),
            wspace=0.04,
            hspace=0.22,
        )
        out.append(
            Figure(
                name=f"perceptibility_{safe(image_id)}",
                section="Perceptibility",
                title=f"Perceptibility, {image_id}{named} (appendix C)",
                caption=(
                    "Each row is one network's minimum perturbation e* for this image: the "
                    "clean input, x + e*, the same direction rescaled to larger norms (0..255 "
                    "units, clipped to the valid range) and e* magnified ten times."
                ),
                data=st.to_bytes(fig, fmt="jpg"),
                fmt="jpg",
            )
        )
    return out
