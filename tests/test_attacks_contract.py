"""Every registered attack keeps the result contract on a small nonlinear net.

Parametrized over ``ATTACK_SPECS.names()`` (as timm's tests over ``list_models``):
a reported success is adversarial when recomputed with the model and lies in
the pixel box; query counts are positive for attacked images; failures have
nan scale and a zero perturbation; images misclassified clean have scale 0.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from tasks import attacks
from tasks.attacks import ATTACK_SPECS
from tasks.criterion import TopK

pytestmark = pytest.mark.unit

#: Small budgets so every attack runs in about a second on 2 CPU cores.
FAST: dict[str, dict[str, Any]] = {
    "bfgs": {"max_iter": 20},
    "lbfgsb": {"max_iter": 20, "search_steps": 3, "c_init": 1.0},
    "cw": {"max_iter": 50, "binary_steps": 3, "initial_const": 1.0},
    # (and a smoothing a 16x16 image survives: alpha 0.997 leaves it almost constant)
    "scw": {"max_iter": 50, "binary_steps": 3, "initial_const": 1.0, "alpha": 0.5, "cg_iters": 10},
    "ddn": {"steps": 20},
    "fmn": {"steps": 20},
    "fmn_linf": {"steps": 20},
    "alma": {"steps": 50},
    "deepfool": {"max_iter": 20},
}


def small_net(seed: int = 0, n_classes: int = 10) -> nn.Module:
    """A seeded conv net on 3x16x16 pixel-space inputs (normalisation inside)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.Tanh(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, n_classes),
    )

    class PixelNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net((x - 127.5) / 64.0) * 4.0

    return PixelNet().eval()


class Constant(nn.Module):
    """Logits that ignore the image: no attack can succeed (and none may crash)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linspace(1.0, 0.0, 10).expand(x.shape[0], 10) + 0.0 * x.flatten(1)[:, :1]


def images(n: int = 8, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 255 * torch.rand(n, 3, 16, 16, generator=g)


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("name", ATTACK_SPECS.names())
def test_result_contract(name: str, k: int) -> None:
    model, x = small_net(), images()
    clean = model(x)
    labels = clean.argmax(1)
    labels[:2] = clean.argsort(1)[:2, 0]  # the lowest class: misclassified clean
    criterion = TopK(k)
    result = attacks.create(name, criterion=criterion, **FAST.get(name, {}))(model, x, labels)

    assert not result.clean_correct[:2].any() and result.clean_correct[2:].all()
    assert (result.scale[:2] == 0).all() and result.success[:2].all()
    attacked = result.clean_correct
    assert (result.n_forward[attacked] > 0).all()
    assert (result.n_backward[attacked] > 0).all() or name == "random"

    adv = x + result.perturbation
    assert adv.min() >= 0 and adv.max() <= 255
    ok = result.success & attacked
    assert ok.any() or name == "random", f"{name} fooled no image of a small random net"
    assert criterion.is_adversarial(model(adv[ok]), labels[ok]).all()

    failed = ~result.success
    assert torch.isnan(result.scale[failed]).all()
    assert (result.perturbation[failed] == 0).all()
    assert (result.scale[ok] > 0).all()


@pytest.mark.parametrize("name", ATTACK_SPECS.names())
def test_unbeatable_model_fails_cleanly(name: str) -> None:
    """Zero gradients and a flat score: every image fails, with nan scale, no crash."""
    x = images(4)
    labels = torch.zeros(4, dtype=torch.long)
    result = attacks.create(name, criterion=TopK(1), **FAST.get(name, {}))(Constant(), x, labels)
    assert not result.success.any()
    assert torch.isnan(result.scale).all()
    assert (result.perturbation == 0).all()
    assert (result.n_forward > 0).all()


def test_deepfool_counts_one_backward_per_candidate() -> None:
    """One forward and ``candidates`` backwards per Jacobian (QueryContext.jacobian)."""
    from tests.linear import decoy_linear

    model, x, labels = decoy_linear(5, n_far=5)
    result = attacks.create("deepfool", criterion=TopK(5), candidates=7)(model, x, labels)
    assert result.success.all()
    assert (result.n_backward == 7).all()  # linear: one iteration reaches the boundary
