"""Figures of a benchmark run, one builder per result the paper shows.

``build_figures(data)`` runs every builder; a builder returns nothing when its
table is absent (a run without the protocol stage still gets a report), and a
builder that fails becomes a note in the report instead of taking it down.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from dashboards.figures.base import Figure
from dashboards.figures.curves import foveation_curves, mask_curves, transfer_curves
from dashboards.figures.linearity import (
    foveation_effect_cdf,
    linearity_error_cdf,
    linearity_examples,
)
from dashboards.figures.norms import fooling_ratio_curves, norm_distributions
from dashboards.figures.perceptibility import perceptibility_grids
from dashboards.figures.security import adaptive_gain_heatmaps, security_curves
from dashboards.figures.transfer import transfer_heatmaps
from pipeline.summary.report_data import ReportData

Builder = Callable[[ReportData], list[Figure]]

#: In report order: (builder, what it shows and what it needs, for the "not in this run" list).
BUILDERS: tuple[tuple[Builder, str], ...] = (
    (norm_distributions, "norm distributions: needs attack shards (task min_perturbation)"),
    (fooling_ratio_curves, "fooling ratio vs eps: needs attack shards (task min_perturbation)"),
    (perceptibility_grids, "perceptibility grids: needs the local perturbations/ store"),
    (transfer_curves, "accuracy vs norm, Fig. 2/7: needs summary/curves.parquet (norm_sweep)"),
    (transfer_heatmaps, "transfer heatmaps: needs summary/transfer.parquet (transfer)"),
    (mask_curves, "masked perturbations, Fig. 3/8: needs curves of task masks"),
    (foveation_curves, "foveations, Fig. 5/13: needs curves of task foveation"),
    (foveation_effect_cdf, "foveation effect, Fig. 6: needs evals/linearity with boxes"),
    (security_curves, "security curves: needs evals/adaptive (task adaptive)"),
    (adaptive_gain_heatmaps, "adaptive-gain heatmaps: needs evals/adaptive (task adaptive)"),
    (linearity_examples, "linearity examples, Fig. 4/9-11: needs evals/linearity (linearity)"),
    (linearity_error_cdf, "linear-hypothesis errors, Fig. 12: needs evals/linearity (linearity)"),
)


@dataclass
class FigureSet:
    figures: list[Figure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what each absent figure needs
    failed: list[str] = field(default_factory=list)  # builder: traceback tail


def build_figures(data: ReportData) -> FigureSet:
    out = FigureSet()
    for builder, needs in BUILDERS:
        try:
            made = builder(data)
        except Exception:  # one broken figure must not cost the whole report
            out.failed.append(f"{builder.__name__}: {traceback.format_exc(limit=3)}")
            continue
        if made:
            out.figures.extend(made)
        else:
            out.skipped.append(needs)
    return out


__all__ = ["BUILDERS", "Figure", "FigureSet", "ReportData", "build_figures"]
