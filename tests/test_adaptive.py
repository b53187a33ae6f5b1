"""Adaptive foveation (issue 22): the composite's gradient, its closed form on linear models,
EOT judged on fresh draws, and a gradient-masking check that fires when it should."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from tasks import attacks, norms
from tasks.adaptive import (
    RANDOM_FOVEATIONS,
    FreshDrawJudge,
    ObjectFrameView,
    draw_views,
    eot_view,
    fresh_critical_scale,
    judge_fresh,
    masking_checks,
    noise_fools,
    noise_of_norm,
    random_draw,
)
from tasks.context import QueryContext
from tasks.criterion import TopK
from tasks.evaluation.conditions import ObjectView
from tasks.geometry import Window, crop_resize
from tasks.linesearch import LineSearch, search_scale
from tasks.views import CropView
from tests.linear import Linear, random_linear

pytestmark = pytest.mark.unit


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(16, 5),
    ).double().eval()  # fmt: skip


def test_the_composites_gradient_matches_finite_differences() -> None:
    """Crop, resize, mirror and the softmax average of several crops are differentiated
    exactly: the gradient the attacks get equals central differences of the composite."""
    model = tiny_cnn()
    x = 255 * torch.rand(
        2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    windows = [
        [Window((1.0, 2.0, 13.0, 15.0)), Window((3.5, 0.0, 16.0, 11.5), flip=True)],
        [Window((0.0, 0.0, 10.0, 10.0))],
    ]
    crops = CropView.of(windows, (16, 16), "prob")
    labels = torch.tensor([1, 3])

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, y, reduction="none")

    # MP-Object's shifted views of the object crop: content moved by whole pixels, mirrored
    clean = x.clone()
    object_views = [
        [ObjectView(x[0] * 0.9, (2, -1)), ObjectView(x[0], (0, 0), flip=True)],
        [ObjectView(x[1], (-3, 2))],
    ]
    x = (
        x
        + 5 * torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ).clamp(1, 254)
    for view in (crops, ObjectFrameView.of(clean, object_views)):
        ctx = QueryContext.create(model, labels, TopK(1), bounds=None, view=view)
        _, grad, _ = ctx.value_and_grad(loss, x)
        g = torch.Generator().manual_seed(2)
        for _ in range(3):
            u = torch.randn(x.shape, dtype=torch.float64, generator=g)
            h = 1e-4
            plus = loss(view.logits(model, x + h * u, torch.arange(2)), labels)
            minus = loss(view.logits(model, x - h * u, torch.arange(2)), labels)
            numeric = (plus - minus) / (2 * h)
            analytic = (grad * u).flatten(1).sum(1)
            torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_on_a_linear_classifier_the_adaptive_minimum_through_a_fixed_crop_is_closed_form() -> None:
    """The crop T is a linear map, so the composite is linear: w . T(x + e) + b. Its minimum
    Linf perturbation in the full frame is margin / ||T^T w||_1; the sign attack through
    the view finds it, and it is never larger than MP transferred through the same crop."""
    model, x = random_linear(2, shape=(3, 12, 12), seed=7)
    labels = model(x).argmax(1)
    window = [Window((2.0, 1.0, 11.0, 10.0))]
    view = CropView.of([window] * x.shape[0], (12, 12))

    def composite_margin(z: torch.Tensor) -> torch.Tensor:
        logits = view.logits(model, z, torch.arange(z.shape[0]))
        return logits.gather(1, labels[:, None]).squeeze(1) - logits.gather(
            1, (1 - labels)[:, None]
        ).squeeze(1)

    z = x.clone().requires_grad_(True)
    margin = composite_margin(z)
    (w_eff,) = torch.autograd.grad(margin.sum(), z)  # T^T w, exactly (the map is linear)
    expected = margin.detach() / w_eff.flatten(1).abs().sum(1)
    sign = attacks.create("sign", criterion=TopK(1), bounds=None, line_search=LineSearch(rtol=1e-5))
    right = margin.detach() > 0  # right through the crop (the others are wrong clean there)
    assert int(right.sum()) >= 5
    adaptive = sign(model, x, labels, view=view)
    assert bool(adaptive.success.all()) and torch.equal(adaptive.clean_correct, right)
    linf = adaptive.perturbation.flatten(1).abs().amax(1)
    torch.testing.assert_close(linf[right], expected[right], rtol=1e-3, atol=0)
    # MP on the unfoveated network, then foveated: its critical scale through the crop
    mp = sign(model, x, labels)
    td, _ = crop_resize(mp.direction, [window] * x.shape[0], (12, 12))
    tx, _ = crop_resize(x, [window] * x.shape[0], (12, 12))
    w = model.weight[labels] - model.weight[1 - labels]
    m_t = (tx.flatten(1) * w).sum(1) + model.bias[labels] - model.bias[1 - labels]
    slope = -(td.flatten(1) * w).sum(1)
    transferred = torch.where(slope > 0, m_t / slope, torch.full_like(m_t, math.inf))
    # a white-box attack never loses to a transfer
    assert bool((linf[right] <= transferred[right] * (1 + 1e-3)).all())


class LeftHalf(nn.Module):
    """Scores 'fooled' (class 1) for any crop whose left edge column is dark: a network whose
    verdict on each draw is known from the draw alone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dark = (x[:, 0, :, 0].mean(1) < 100).double()
        return torch.stack([1 - dark, dark], dim=1)


def test_eot_success_is_judged_on_fresh_draws_with_its_interval() -> None:
    """An image whose left 8 columns are dark: a crop starting there is fooled. 70 of 100
    fresh draws start in them: the share is 0.7, the random foveation is fooled (its
    expected accuracy is below one half), and the interval covers it."""
    x = torch.full((1, 3, 16, 16), 200.0, dtype=torch.float64)
    x[..., :8] = 20.0
    left, right = [Window((0.0, 0.0, 12.0, 12.0))], [Window((8.0, 0.0, 16.0, 8.0))]
    draws = [[left] * 70 + [right] * 30]
    judged = judge_fresh(LeftHalf(), x, torch.tensor([0]), TopK(1), draws, batch=16)
    assert float(judged.fooled[0]) == pytest.approx(0.7) and bool(judged.success[0])
    assert float(judged.ci_low[0]) < 0.7 < float(judged.ci_high[0]) and judged.draws == 100
    draws = [[left] * 40 + [right] * 60]
    assert not bool(judge_fresh(LeftHalf(), x, torch.tensor([0]), TopK(1), draws).success[0])


def test_the_fresh_search_finds_the_scale_where_most_draws_are_fooled_in_closed_form() -> None:
    """A linear network that reads a view's mean brightness (class 0 while it is above 100),
    on images brighter to the right, seen through random resized crops; p darkens every
    pixel by 1. Crop, resize and the network are linear, so draw d's margin is affine in
    the scale: it is fooled beyond t_d = m_d(0) / (m_d(0) - m_d(1)). With 21 draws, "most
    draws fooled" first holds at the 11th smallest t_d: the search must land there within
    its precision, strictly between the easiest and the hardest draw's."""
    size, n = (12, 12), 21
    weight = torch.zeros(2, 3 * 12 * 12)
    weight[0, : 12 * 12] = 1 / (12 * 12)  # class 0: the mean of channel 0
    model = Linear(weight, torch.tensor([-100.0, 0.0]))
    x = (110 + torch.linspace(0, 80, 12)).expand(2, 3, 12, 12).clone()
    x[1] = x[1].flip(-1)  # the second image brighter to the left
    labels = torch.zeros(2, dtype=torch.long)
    draws = draw_views(
        RANDOM_FOVEATIONS.get("random_resized_crop"), ["a", "b"], size, 0, "fresh", n
    )
    p = -torch.ones_like(x)

    def margins(xa: torch.Tensor, i: int) -> torch.Tensor:
        scores = CropView.of(list(draws[i]), size).logits(
            model, xa[i : i + 1].expand(n, -1, -1, -1), torch.arange(n)
        )
        return scores[:, 0] - scores[:, 1]

    judge = FreshDrawJudge(
        lambda xa, idx: judge_fresh(model, xa, labels[idx], TopK(1), [draws[i] for i in idx]),
        torch.zeros(2),
    )
    found = fresh_critical_scale(judge, x, p, rtol=1e-4)
    assert bool(found.success.all()) and bool((judge.looks > 0).all())
    for i in range(2):
        m0, m1 = margins(x, i), margins(x + p, i)
        assert bool((m0 > 0).all()) and torch.allclose(m0 - m1, torch.ones(n), atol=1e-3)
        t = (m0 / (m0 - m1)).sort().values
        assert float(found.scale[i]) == pytest.approx(float(t[n // 2]), rel=2e-4)
        assert float(t[0]) < float(found.scale[i]) < float(t[-1])


def test_random_draws_are_per_image_seeded_and_the_judge_never_sees_the_attacks() -> None:
    draw = RANDOM_FOVEATIONS.get("random_resized_crop")
    attack = draw_views(draw, ["a", "b"], (64, 64), seed=0, stream="attack", n=20)
    again = draw_views(draw, ["a", "b"], (64, 64), seed=0, stream="attack", n=20)
    fresh = draw_views(draw, ["a", "b"], (64, 64), seed=0, stream="fresh", n=100)
    assert attack == again and attack[0] != attack[1]
    assert not {w for d in attack[0] for w in d} & {w for d in fresh[0] for w in d}
    for d in fresh[0]:
        (w,) = d
        x0, y0, x1, y1 = w.box
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        assert (x1 - x0) * (y1 - y0) >= 0.2 * 64 * 64  # at least a quarter of the area, ~
    three = random_draw("three_crop")
    assert three is not None and random_draw("object_crop") is None
    a, b = three(64, 64, random.Random(0)), three(64, 64, random.Random(1))
    assert len(a) == 3 and a != b  # the condition's own builder, drawn anew
    view = eot_view(attack, (64, 64))
    assert all(len(w) == 20 for w in view.windows)  # every draw's crop, averaged


class Quantized(nn.Module):
    """A network behind a hard threshold of its input: gradients are zero almost everywhere
    (gradient masking on purpose)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner((x / 64).round() * 64)


def test_the_masking_check_fires_on_a_network_that_masks_its_gradient() -> None:
    model, x = random_linear(2, shape=(3, 8, 8), seed=3)
    labels = model(x).argmax(1)
    sign = attacks.create("sign", criterion=TopK(1))
    honest = sign(model, x, labels)
    linf = honest.perturbation.flatten(1).abs().amax(1)
    assert masking_checks(linf, honest.success).clean
    masked = sign(Quantized(model), x, labels)
    crit = masked.perturbation.flatten(1).abs().amax(1)
    checks = masking_checks(crit, masked.success, transferred=linf)
    assert not checks.clean and checks.unreached + checks.weaker_than_transfer > 0


def test_the_black_box_check_fires_when_another_networks_perturbation_beats_a_masked_one() -> None:
    """Another network (a linear one close to the target) finds its own minimum
    perturbation; searched along on the target (the black box: no gradient of the target),
    it never beats the white-box attack on the honest target, and it beats the masked
    white-box attack on the same target behind a hard input threshold."""
    model, x = random_linear(2, shape=(3, 8, 8), seed=3)
    labels = model(x).argmax(1)
    g = torch.Generator().manual_seed(7)
    other = Linear(model.weight + 0.2 * model.weight.std() * torch.randn(model.weight.shape, generator=g), model.bias)  # fmt: skip
    sign = attacks.create("sign", criterion=TopK(1))
    theirs = sign(other, x, labels).perturbation

    def black_box(target: nn.Module) -> torch.Tensor:
        ctx = QueryContext.create(target, labels, TopK(1))
        found = search_scale(ctx, x, theirs, search=LineSearch(rtol=1e-3))
        at = found.scale.nan_to_num(math.inf).view(-1, 1, 1, 1)
        linf = (theirs * at.clamp_max(1e6)).flatten(1).abs().amax(1)
        return torch.where(found.success, linf, torch.full_like(linf, math.inf))

    honest = sign(model, x, labels)
    linf = honest.perturbation.flatten(1).abs().amax(1)
    assert masking_checks(linf, honest.success, black_box=black_box(model)).black_box_stronger == 0
    masked = sign(Quantized(model), x, labels)
    crit = masked.perturbation.flatten(1).abs().amax(1)
    checks = masking_checks(crit, masked.success, black_box=black_box(Quantized(model)))
    assert checks.black_box_stronger is not None and checks.black_box_stronger > 0
    assert not checks.clean and masking_checks(crit, masked.success).black_box_stronger is None


def test_noise_of_the_attacks_norm_is_far_weaker_on_an_honest_network() -> None:
    """Carlini et al.'s noise check: on a linear network noise at the minimum perturbation's
    norm fools nothing, while noise big enough fools every image (the check can fire)."""
    model, x = random_linear(4, shape=(3, 16, 16), seed=5)
    x = x[:4]
    labels = model(x).argmax(1)
    view = CropView.of([[Window((0.0, 0.0, 16.0, 16.0))]] * 4, (16, 16))
    for name, norm in (("sign", "linf"), ("ddn", "l2")):
        found = attacks.create(name, criterion=TopK(1))(model, x, labels)
        assert bool(found.success.all())
        size = norms.norm(found.perturbation, norm)
        assert not noise_fools(model, view, x, labels, TopK(1), size, norm).any(), name
    unreached = torch.full((4,), math.inf)
    assert not noise_fools(model, view, x, labels, TopK(1), unreached, "l2").any()
    noise = noise_of_norm(x, torch.tensor([1.0, 2.0, 3.0, math.inf]), "l2", torch.Generator())
    assert norms.l2(noise).tolist() == pytest.approx([1.0, 2.0, 3.0, 0.0], rel=1e-5)

    # A network that reads one pixel: noise of the attack's norm puts that pixel past the
    # boundary whenever its sign is right, so the check fires on about half the images.
    weight = torch.zeros(2, 3 * 16 * 16)
    weight[0, 0] = 0.05
    one_pixel = Linear(weight, torch.tensor([-0.05 * 128, 0.0]))
    x = 64 + 128 * torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    x[:, 0, 0, 0] = torch.linspace(140, 190, 16)  # class 0 (pixel above 128) for all
    labels = one_pixel(x).argmax(1)
    assert bool((labels == 0).all())
    view = CropView.of([[Window((0.0, 0.0, 16.0, 16.0))]] * 16, (16, 16))
    found = attacks.create("sign", criterion=TopK(1))(one_pixel, x, labels)
    size = norms.linf(found.perturbation)
    fools = noise_fools(one_pixel, view, x, labels, TopK(1), size, "linf", seed=3)
    assert 0 < int(fools.sum()) < 16, "noise as strong as the attack: the check fires"
    checks = masking_checks(size, found.success, noise=torch.where(fools, size, math.inf))
    assert checks.noise_not_weaker == int(fools.sum())
    never = masking_checks(torch.full((2,), math.inf), torch.zeros(2, dtype=torch.bool),
                           noise=torch.full((2,), math.inf))  # fmt: skip
    assert (never.unreached, never.noise_not_weaker) == (2, 0), "unreached is not noise"
