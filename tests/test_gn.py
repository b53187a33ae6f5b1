"""Balda et al.'s GNII attacks: Proposition 2's closed form and minimum scales on linear models."""

from __future__ import annotations

import pytest
import torch

from tasks import attacks
from tasks.attacks.gn import gnii_direction
from tasks.criterion import TopK
from tests.linear import binary_linf_minimum, random_linear

pytestmark = pytest.mark.unit


def test_proposition_2_direction_is_the_unit_norm_minimiser() -> None:
    g = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    eta_inf = gnii_direction(g, "linf")
    assert bool((eta_inf == -g.sign()).all())
    eta_2 = gnii_direction(g, "l2")
    torch.testing.assert_close(eta_2.flatten(1).norm(dim=1), torch.ones(4))
    # <eta, g> reaches -||g||_q, the dual-norm lower bound of the proof.
    torch.testing.assert_close((eta_inf * g).flatten(1).sum(1), -g.flatten(1).abs().sum(1))
    torch.testing.assert_close((eta_2 * g).flatten(1).sum(1), -g.flatten(1).norm(dim=1))


@pytest.mark.parametrize("name", ["gn1", "gn1_iter", "gn2"])
def test_binary_linear_model_minimum_linf_is_the_closed_form(name: str) -> None:
    model, x = random_linear(2, seed=4)
    labels = model(x).argmax(1)
    result = attacks.create(name, criterion=TopK(1), bounds=None)(model, x, labels)
    assert bool(result.success.all())
    expected = binary_linf_minimum(model, x, labels)
    torch.testing.assert_close(result.norms()["linf"], expected, rtol=2e-3, atol=1e-4)


def test_gn1_l2_matches_the_l2_closed_form() -> None:
    model, x = random_linear(2, seed=5)
    labels = model(x).argmax(1)
    result = attacks.create("gn1", criterion=TopK(1), bounds=None, p="l2")(model, x, labels)
    w = model.weight[labels] - model.weight[1 - labels]
    margin = (x.flatten(1) * w).sum(1) + model.bias[labels] - model.bias[1 - labels]
    torch.testing.assert_close(result.norms()["l2"], margin / w.norm(dim=1), rtol=2e-3, atol=1e-4)
