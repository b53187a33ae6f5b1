"""The default (warm-started, tolerance-stopped) smoothing solve gives the exact solve's attack.

On real photos, at a small size and budget so that it takes seconds: success,
L2 norms and the smoothness measure (TV ratio) of ``qpgd2`` and ``scw`` with the
default solver equal those with a converged solve, within the line search's
precision.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from tasks import attacks
from tasks.attacks.params import SmoothingCfg
from tasks.criterion import TopK
from tasks.linesearch import LineSearch
from tasks.measures import tv_ratio

pytestmark = pytest.mark.integration

#: A converged solve, forward and backward: a relative residual 100 times below the default's.
EXACT = {"tol": SmoothingCfg().tol / 100, "adjoint_tol": None, "cg_iters": 2000}
RTOL = 1e-3  # the line search's relative precision (tasks.linesearch.LineSearch)

BUDGETS: dict[str, dict[str, Any]] = {
    "qpgd2": {"steps": 5, "max_doublings": 2},
    "scw": {"binary_steps": 2, "max_iter": 10},
}


@pytest.fixture
def photos(imagenet_sample: Path) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    from pipeline.data import build_manifest
    from pipeline.models.images import load_batch
    from pipeline.models.networks import load_model

    model = load_model("efficientnet_lite0")
    cfg = dataclasses.replace(model.cfg, input_size=(48, 48))
    paths = build_manifest("ilsvrc", imagenet_sample).table.column("path").to_pylist()[:2]
    x = load_batch(paths, cfg)
    with torch.no_grad():
        labels = model(x).argmax(1)  # correct clean by construction at this size
    return model, x, labels


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_default_solver_gives_the_exact_solvers_attack(
    name: str, photos: tuple[torch.nn.Module, torch.Tensor, torch.Tensor]
) -> None:
    assert SmoothingCfg().tol > 0, "the default solve stops at a tolerance, warm-started"
    model, x, labels = photos
    search = LineSearch(rtol=RTOL)
    runs = {
        solver: attacks.create(
            name, criterion=TopK(1), line_search=search, **BUDGETS[name], **settings
        )(model, x, labels)
        for solver, settings in (("default", {}), ("exact", EXACT))
    }
    fast, exact = runs["default"], runs["exact"]
    assert bool(exact.success.all()) and bool((fast.success == exact.success).all())
    l2_fast, l2_exact = fast.norms()["l2"], exact.norms()["l2"]
    assert abs(float(l2_fast.median() / l2_exact.median()) - 1) <= 2 * RTOL
    assert float(((l2_fast - l2_exact).abs() / l2_exact).max()) <= 5 * RTOL
    tv_fast, tv_exact = tv_ratio(fast.perturbation, x), tv_ratio(exact.perturbation, x)
    assert float(((tv_fast - tv_exact).abs() / tv_exact).max()) <= 5 * RTOL
