"""Every optimisation attack finds the closed-form minimum on linear models.

:func:`tests.linear.decoy_linear` builds models whose top-k boundary is a
binary one (k decoy classes share one weight row), so the minimum L2 and
Linf perturbations are ``margin / ||w_y - w_d||_2`` and ``/ ||.||_1``, for
top-1 and top-5, without a box and with the [0, 255] box far away.

``bfgs`` is compared in L2 on models with ``w_d = -w_y``: Luo's hinge is the
true score, whose gradient is ``w_y``, so its direction is the L2-optimal
one only there; the L1 penalty (eta = 1e-6) barely tilts it. The sparse
L1 minimum (one pixel) is not what a smooth optimiser followed by a line
search on the scale can produce, and not what the paper measures.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tasks import attacks
from tasks.context import PIXEL_BOUNDS
from tasks.criterion import TopK
from tests.linear import decoy_linear, decoy_minimum

pytestmark = pytest.mark.unit

CASES = [
    # (attack, params, norm compared, w_d = -w_y, relative tolerance)
    ("deepfool", {"norm": "l2"}, "l2", False, 0.01),
    ("deepfool", {"norm": "linf"}, "linf", False, 0.01),
    ("bfgs", {}, "l2", True, 0.05),
    ("cw", {"max_iter": 100}, "l2", False, 0.05),
    ("ddn", {}, "l2", False, 0.05),
    ("ddn", {"loss": "ce"}, "l2", False, 0.05),
]


@pytest.mark.parametrize("bounds", [None, PIXEL_BOUNDS], ids=["no_box", "far_box"])
@pytest.mark.parametrize("k", [1, 5], ids=["top1", "top5"])
@pytest.mark.parametrize(
    ("name", "params", "norm", "opposite", "rtol"),
    CASES,
    ids=[f"{c[0]}-{c[2]}-{c[1].get('loss', 'default')}" for c in CASES],
)
def test_attack_hits_closed_form_minimum(
    name: str,
    params: dict[str, Any],
    norm: str,
    opposite: bool,
    rtol: float,
    k: int,
    bounds: tuple[float, float] | None,
) -> None:
    model, x, labels = decoy_linear(k, n_far=0 if k == 1 else 5, tied=-1.0 if opposite else None)
    expected = decoy_minimum(model, x, norm)
    attack = attacks.create(name, criterion=TopK(k), bounds=bounds, **params)
    result = attack(model, x, labels)

    assert result.success.all()
    got = result.norms()[norm]
    assert (got >= expected * (1 - 1e-5)).all(), "below the true minimum: impossible"
    assert ((got - expected) / expected).max() <= rtol
    assert TopK(k).is_adversarial(model(x + result.perturbation), labels).all()


@pytest.mark.parametrize("max_iter", [1, 100])
def test_bfgs_fallback_is_the_one_iteration_perturbation(max_iter: int) -> None:
    """Luo et al. sec. B: where L-BFGS stops short, the 1-iteration iterate is scaled up.

    With ``w_d = 0.3 w_y`` the margin falls slower than the true score, so the
    first step (the score's first-order guess) stops short of the boundary:
    one iteration never reaches it, the next (a doubled step) does.
    """
    model, x, labels = decoy_linear(1, tied=0.3)
    expected = decoy_minimum(model, x, "l2")
    result = attacks.create("bfgs", criterion=TopK(1), max_iter=max_iter)(model, x, labels)
    assert result.success.all()
    assert (result.info["fallback"] == float(max_iter == 1)).all()
    torch.testing.assert_close(result.norms()["l2"], expected, rtol=0.01, atol=0)
