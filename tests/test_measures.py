"""Robustness measures (Balda) and Zhang's protocol on known answers."""

from __future__ import annotations

import pytest
import torch

from tasks import measures
from tests.linear import random_linear

pytestmark = pytest.mark.unit


def test_rho1_is_the_mean_relative_norm_over_successes() -> None:
    x = torch.full((3, 1, 2, 2), 100.0)
    r = torch.zeros_like(x)
    r[0, 0, 0, 0], r[1, 0, 0, 0], r[2, 0, 0, 0] = 10.0, 30.0, 99.0
    success = torch.tensor([True, True, False])
    assert measures.rho1(r, x, success, "linf") == pytest.approx(0.2)
    assert measures.rho1(r, x, success, "l2") == pytest.approx((10 + 30) / 2 / 200)


def test_rho2_on_a_binary_linear_model_is_the_exact_distance_in_logits() -> None:
    model, x = random_linear(2, seed=6)
    labels = model(x).argmax(1)
    d = measures.first_order_distance(model, x, labels, p="linf", scores="logits")
    w = model.weight[labels] - model.weight[1 - labels]
    margin = (x.flatten(1) * w).sum(1) + model.bias[labels] - model.bias[1 - labels]
    torch.testing.assert_close(d, margin / w.abs().sum(1))
    assert measures.rho2(d) == pytest.approx(float(d.mean()))
    assert bool((measures.first_order_distance(model, x, labels) > 0).all())


def test_fooling_ratio_and_the_99_percent_epsilon() -> None:
    norms = torch.tensor([1.0, 2.0, float("nan"), 4.0])
    ratio = measures.fooling_ratio(norms, torch.tensor([0.5, 1.0, 3.0, 10.0]))
    torch.testing.assert_close(ratio, torch.tensor([0.0, 0.25, 0.5, 0.75]))
    assert measures.eps_fooling(norms) == float("inf")  # one image is never fooled
    assert measures.eps_fooling(torch.arange(1.0, 201.0)) == 199.0  # 199/200 > 99%


def test_zhang_success_distortion_and_operating_characteristic() -> None:
    d = torch.tensor([1.0, 3.0, 2.0, 9.0])
    success = torch.tensor([True, True, True, False])
    stats = measures.success_distortion(d, success)
    assert stats.p_suc == 0.75 and stats.d_bar == pytest.approx(2.0)
    oc = measures.operating_characteristic(d, success, torch.tensor([0.0, 2.0, 3.0, 100.0]))
    torch.testing.assert_close(oc, torch.tensor([0.0, 0.5, 0.75, 0.75]))


def test_tv_ratio_prefers_a_perturbation_shaped_like_the_image() -> None:
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4:] = 200.0
    smooth = 0.05 * x
    noisy = (
        smooth.flatten().norm()
        * torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        / 8
    )
    assert float(measures.tv_ratio(smooth, x)) < float(measures.tv_ratio(noisy, x))
