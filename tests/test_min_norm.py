"""FMN, ALMA, query budgets and the best iterate (issue 23, items 3 and 4).

* On :func:`tests.linear.decoy_linear` models (binary top-k boundary) FMN and
  ALMA reach the exact minimum perturbation, box included
  (:func:`tests.linear.decoy_box_minimum`).
* Every iterative attack returns the smallest adversarial point it ever queried:
  a recording wrapper sees every image the attack sends to the real network.
* ``budget`` stops an attack at exactly that many forward + backward passes per
  image, and a budget too small for one iteration is refused when parameters
  are read (before any model is loaded).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from pipeline.bench.peers import Unit01
from tasks import attacks, norms
from tasks.attacks import AttackParamError, attack_spec
from tasks.context import PIXEL_BOUNDS, QueryContext
from tasks.criterion import TopK
from tests.linear import decoy_box_minimum, decoy_linear
from tests.test_attacks_contract import images, small_net

pytestmark = pytest.mark.unit

#: (attack, params, norm compared, pixel box) with the top-k; all within 1% of the minimum.
CLOSED_FORM = [
    (name, params, norm, bounds, k)
    for name, params, norm, boxes in [
        ("fmn", {"norm": "l2"}, "l2", (None, PIXEL_BOUNDS)),
        ("fmn", {"norm": "linf"}, "linf", (None, PIXEL_BOUNDS)),
        ("fmn_linf", {}, "linf", (PIXEL_BOUNDS,)),  # its own entry: linf by default
        # Without a box the L1 minimum is one pixel; FMN needs ~1000 steps to isolate it
        # (0.45% then), so the test uses the box, where the minimum spreads over a few pixels.
        ("fmn", {"norm": "l1pp", "steps": 300}, "l1pp", (PIXEL_BOUNDS,)),
        ("alma", {"norm": "l2"}, "l2", (None, PIXEL_BOUNDS)),
    ]
    for bounds in boxes
    for k in (1, 5)
]


@pytest.mark.parametrize(("name", "params", "norm", "bounds", "k"), CLOSED_FORM)
def test_reaches_closed_form_minimum(
    name: str, params: dict[str, Any], norm: str, bounds: tuple[float, float] | None, k: int
) -> None:
    # n_far: ALMA's constraint normalises the margin by the top logits' spread (needs k + 2).
    model, x, labels = decoy_linear(k, n_far=5)
    expected = decoy_box_minimum(model, x, norm, bounds)
    result = attacks.create(name, criterion=TopK(k), bounds=bounds, **params)(model, x, labels)
    assert result.success.all()
    got = result.norms()[norm]
    assert (got >= expected * (1 - 1e-4)).all(), "below the true minimum: impossible"
    assert ((got - expected) / expected).max() <= 0.01, got / expected
    assert TopK(k).is_adversarial(model(x + result.perturbation), labels).all()


def test_alma_l1_matches_adv_lib_where_it_misses_the_minimum() -> None:
    """ALMA's L1 steps (RMSProp on sign(delta)) spread the perturbation over every pixel,
    where the L1 minimum of a linear model uses a few: ALMA's L1 ends ~3x above the
    minimum, adv_lib's own ``alma(distance='l1')`` as well (3.2x at 1000 steps, ours 3.1x).
    So the check is against the reference implementation, on the same steps."""
    advlib = pytest.importorskip("adv_lib.attacks", reason="adv_lib (bench extra) is absent")
    model, x, labels = decoy_linear(1, n_far=5)
    expected = decoy_box_minimum(model, x, "l1pp", PIXEL_BOUNDS)
    result = attacks.create("alma", criterion=TopK(1), norm="l1pp", steps=200)(model, x, labels)
    assert result.success.all()
    ours = result.norms()["l1pp"]
    assert (ours >= expected * (1 - 1e-4)).all()
    x01 = advlib.alma(Unit01(model), x / 255, labels, distance="l1", num_steps=200)
    theirs = norms.l1pp(x01 * 255 - x)
    assert ours.median() <= 1.05 * theirs.median(), (ours.median(), theirs.median())


def test_alma_l2_follows_adv_libs_alma_on_a_nonlinear_network() -> None:
    """The same algorithm as the reference, step for step: on a small nonlinear network,
    same images, labels and 100 steps, every image's best L2 is within 0.5% of adv_lib's
    (measured 0.1%). So a gap on a deep network (docs/benchmarks.md) is not the algorithm."""
    advlib = pytest.importorskip("adv_lib.attacks", reason="adv_lib (bench extra) is absent")
    model, x = small_net(), images(8)
    labels = model(x).argmax(1)
    ours = attacks.create("alma", criterion=TopK(1), steps=100)(model, x, labels)
    x01 = advlib.alma(Unit01(model), x / 255, labels, num_steps=100)
    assert ours.success.all() and (model(x01 * 255).argmax(1) != labels).all()
    theirs = (x01 * 255 - x).flatten(1).norm(dim=1)
    mine = ours.perturbation.flatten(1).norm(dim=1)
    assert ((mine - theirs).abs() / theirs).max() <= 0.005, mine / theirs


def test_box_closed_form_agrees_with_the_unboxed_one_where_the_box_is_far() -> None:
    """The bisection and knapsack closed forms against margin / ||w||_dual."""
    model, x, _ = decoy_linear(1)
    w = model.weight[0] - model.weight[1]
    margin = x.flatten(1) @ w + model.bias[0] - model.bias[1]
    for norm, dual in (("l2", w.norm()), ("linf", w.abs().sum())):
        far = decoy_box_minimum(model, x, norm, PIXEL_BOUNDS)
        torch.testing.assert_close(far, margin / dual, rtol=1e-5, atol=0)
    one_pixel = margin / w.abs().max() / w.numel()
    torch.testing.assert_close(decoy_box_minimum(model, x, "l1pp", None), one_pixel)
    # That pixel would leave [0, 255]: inside the box the L1 minimum is larger.
    assert (decoy_box_minimum(model, x, "l1pp", PIXEL_BOUNDS) > one_pixel * 1.01).all()


class Recorder(nn.Module):
    """The real network, recording every image it is asked about and its logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        self.seen.append((x.detach().clone(), logits.detach().clone()))
        return logits


#: Every attack that iterates, with budgets small enough for 2 CPU cores.
ITERATIVE: dict[str, dict[str, Any]] = {
    "ddn": {"steps": 30},
    "fmn": {"steps": 30},
    "fmn-linf": {"steps": 30, "norm": "linf"},
    "fmn-l1": {"steps": 30, "norm": "l1pp"},
    "alma": {"steps": 60},
    "alma-l1": {"steps": 60, "norm": "l1pp"},
    "cw": {"max_iter": 30, "binary_steps": 3, "initial_const": 1.0},
    "bfgs": {"max_iter": 20, "polish": 10},
    "lbfgsb": {"max_iter": 20, "search_steps": 3, "c_init": 1.0},
    "deepfool": {"max_iter": 20},
    "pgd2": {},
    "ifgsm": {},
    "gn1_iter": {},
}


@pytest.mark.parametrize("key", list(ITERATIVE))
def test_proposes_the_best_adversarial_it_saw(key: str) -> None:
    """What an attack hands to the line search is the smallest adversarial point it
    queried (the line search can then only shrink it), never a later, larger one: one
    image at a time, so every query the recorder sees is that image's."""
    name = key.split("-")[0]
    net, x = small_net(), images(4)
    labels = net(x).argmax(1)
    criterion = TopK(1)
    fooled = 0
    for i in range(x.shape[0]):
        model = Recorder(net)
        attack = attacks.create(name, criterion=criterion, **ITERATIVE[key])
        xi, yi = x[i : i + 1], labels[i : i + 1]
        ctx = QueryContext.create(model, yi, criterion, PIXEL_BOUNDS)
        proposal = attack.propose(ctx, xi)
        sizes = torch.cat(
            [norms.norm(q - xi, attack.norm)[criterion.is_adversarial(z, yi.expand(len(z)))]
             for q, z in model.seen]
        )  # fmt: skip
        if sizes.numel() == 0:
            continue
        fooled += 1
        scale = proposal.init_scale if proposal.init_scale is not None else torch.ones(1)
        point = ctx.clip(xi + scale.view(-1, 1, 1, 1) * proposal.direction)
        assert criterion.is_adversarial(net(point), yi).all(), f"{key}: proposal not adversarial"
        got = norms.norm(point - xi, attack.norm)[0]
        assert got <= sizes.min() * (1 + 1e-5), f"{key}: proposed {got}, saw {sizes.min()}"
    assert fooled >= 1, f"{key} fooled none of 4 images: the check is not exercised"


BUDGETED: dict[str, dict[str, Any]] = {
    "ddn": {"steps": 1000},
    "fmn": {"steps": 1000},
    "alma": {"steps": 1000},
    "cw": {"max_iter": 1000, "binary_steps": 9, "abort_early": False, "initial_const": 10.0},
}


@pytest.mark.parametrize("name", list(BUDGETED))
@pytest.mark.parametrize("budget", [3, 24, 61])
def test_budget_stops_at_the_exact_count(name: str, budget: int) -> None:
    """1 clean forward, then 2 passes a step until the cap less the line search's reserve
    (none at 3, a quarter at 24, the 11 forwards a search to rtol 1e-3 needs at 61); the
    line search may use what is left, never more; the best iterate is returned."""
    net, x = small_net(), images(6)
    labels = net(x).argmax(1)
    attack = attacks.create(name, criterion=TopK(1), budget=budget, **BUDGETED[name])
    reserve = attack.search_reserve(budget)
    assert reserve == {3: 0, 24: 6, 61: 11}[budget]
    result = attack(net, x, labels)
    spent = result.n_forward + result.n_backward
    assert (spent <= budget).all(), spent
    assert (result.n_backward == (budget - 1 - reserve) // 2).all()
    searched = result.n_forward - 1 - result.n_backward  # forwards after the last step
    if reserve:
        assert (searched[result.success] > 0).all(), "the reserve went unused"
    ok = result.success
    assert TopK(1).is_adversarial(net(x[ok] + result.perturbation[ok]), labels[ok]).all()
    if budget == 61:
        assert ok.any(), "30 steps fool some images of a small random net"


@pytest.mark.parametrize("name", list(BUDGETED))
def test_budget_below_one_step_is_refused_when_parameters_are_read(name: str) -> None:
    with pytest.raises(AttackParamError, match="budget = 2 is below the 3 passes"):
        attack_spec(name).build_params({"budget": 2})
    assert attack_spec(name).build_params({"budget": 3}).budget == 3  # type: ignore[attr-defined]


def test_budget_below_one_step_is_a_config_error() -> None:
    from pipeline.config.benchmark import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"attacks\[0\]: attack 'fmn': budget = 1 is below"):
        parse_config({"attacks": [{"fmn": {"budget": 1}}]}, "run.yaml")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("fmn", {"steps": 20}),
        ("fmn", {"steps": 20, "norm": "linf"}),
        ("fmn", {"steps": 20, "norm": "l1pp"}),
        ("alma", {"steps": 40}),
        ("alma", {"steps": 40, "norm": "l1pp"}),
    ],
)
def test_succeeds_on_real_photos(name: str, params: dict[str, Any], imagenet_sample: Any) -> None:
    from pipeline.bench.images import load_images
    from pipeline.models.networks import load_model

    model = load_model("efficientnet_lite0")
    photos = load_images(model, "sample", None, 2, model.cfg)
    attack = attacks.create(name, criterion=TopK(1), **params)
    result = attack(model, photos.x, photos.labels)
    assert result.success.all()
    adv = photos.x + result.perturbation
    assert adv.min() >= 0 and adv.max() <= 255
    assert TopK(1).is_adversarial(model(adv), photos.labels).all()
