"""Minimum perturbations of the foveated network itself: an attacker who knows the foveation.

Luo et al. measure a foveation against perturbations made for the unfoveated network
(MP) or for the object crop (MP-Object). An adaptive attacker differentiates through
the foveation instead: the composite "crop + resize, then the network, then the
condition's score combination" is attacked end to end, with the perturbation in the
full input frame (the same pixels and norm units as MP). Crops and resizes are linear
(``roi_align``), so the gradient through them is exact; every attack of the catalogue
runs unchanged, its queries going through a :class:`~tasks.views.View` (the attack
base passes ``view`` to its :class:`~tasks.context.QueryContext`).

Foveations that draw at random (3 random crops of the ten, a random resized crop) are
attacked with Expectation over Transformation: the attack's view averages the scores of
``draws`` draws per image (the expected score, as the paper averages softmax over
crops), and whether the result fools the random foveation is judged on *fresh* draws,
never on the ones the attack used: a random foveation misclassifies an image when its
expected top-k accuracy over fresh draws is below one half (it is wrong more often
than right; :func:`judge_fresh` reports the share and its binomial interval).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tasks import norms
from tasks.context import PIXEL_BOUNDS, Bounds
from tasks.criterion import TopK
from tasks.evaluation.conditions import ObjectView
from tasks.foveation import VIEWS, ViewInputs
from tasks.geometry import Window, clamp_box
from tasks.intervals import clopper_pearson
from tasks.linesearch import LineSearch, ScaleResult, search_scale
from tasks.mp_object import shift_perturbation
from tasks.protocol import CONDITIONS, MODERN_FOVEATION
from tasks.registry import Registry
from tasks.views import CropView, View, combine

#: One draw of a random foveation: ``(height, width, rng) -> the windows of that draw``.
Draw = Callable[[int, int, random.Random], list[Window]]
#: Random foveations with no condition of their own (the condition registry's random ones
#: draw through their own view builder: :func:`random_draw`).
RANDOM_FOVEATIONS: Registry[Draw] = Registry("random foveation")


def random_draw(name: str) -> Draw | None:
    """How to draw foveation ``name`` once, or None if it is not random. A condition that
    draws per image (``random_views``) draws through its own view builder, given a fresh
    image identity from ``rng`` each time, so its draws are exactly the condition's."""
    if name in RANDOM_FOVEATIONS:
        return RANDOM_FOVEATIONS.get(name)
    if name not in CONDITIONS or not CONDITIONS.get(name).random_views or name not in VIEWS:
        return None
    build = VIEWS.get(name)

    def draw(height: int, width: int, rng: random.Random) -> list[Window]:
        blank = torch.zeros(1, 3, height, width)
        return build(ViewInputs(blank, [[]], [f"draw-{rng.getrandbits(64):x}"]))[0]

    return draw


@RANDOM_FOVEATIONS.register(MODERN_FOVEATION)
def random_resized_crop(
    height: int,
    width: int,
    rng: random.Random,
    area: tuple[float, float] = (0.25, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> list[Window]:
    """The modern fixation: one crop of a random share of the area (25-100%) and aspect
    (3/4-4/3), at a random place, mirrored half the time (torchvision's
    RandomResizedCrop with a larger minimum area, so the object mostly stays in view)."""
    share = rng.uniform(*area)
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    w = min(width, math.sqrt(share * width * height * aspect))
    h = min(height, math.sqrt(share * width * height / aspect))
    x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
    box = clamp_box((x0, y0, x0 + w, y0 + h), height, width)
    return [Window(box, flip=rng.random() < 0.5)]


def draw_views(
    draw: Draw, ids: list[str], size: tuple[int, int], seed: int, stream: str, n: int
) -> list[list[list[Window]]]:
    """Per image, ``n`` draws of a random foveation from its own generator: seeded by the
    run's seed, the image id and a stream name, so the attack's draws ("attack") and the
    judge's ("fresh") are independent, and a rerun draws the same."""
    h, w = size
    out = []
    for image_id in ids:
        rng = random.Random(f"{seed}:{image_id}:{stream}")
        out.append([draw(h, w, rng) for _ in range(n)])
    return out


def eot_view(draws: list[list[list[Window]]], size: tuple[int, int]) -> CropView:
    """The attack's composite for a random foveation: every crop of every draw of an image,
    softmax averaged (each draw has the same number of crops, so this is the mean over
    draws of each draw's own averaged score: Expectation over Transformation)."""
    return CropView.of([[w for d in image for w in d] for image in draws], size, "prob")


@dataclass(frozen=True)
class FreshJudgement:
    """Per image: the share of fresh draws the perturbed image fools, its 95% interval."""

    fooled: torch.Tensor  # (n,) share of fresh draws misclassified
    ci_low: torch.Tensor
    ci_high: torch.Tensor
    draws: int
    votes: torch.Tensor  # (n, classes): how many draws gave each top-1 class

    @property
    def success(self) -> torch.Tensor:
        """Fooled: the random foveation's expected top-k accuracy is below one half."""
        return self.fooled > 0.5


def judge_fresh(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    criterion: TopK,
    draws: Sequence[Sequence[Any]],
    batch: int = 64,
    view_of: Callable[[list[tuple[int, Any]]], View] | None = None,
) -> FreshJudgement:
    """Is each image of ``x`` (already perturbed) misclassified by the random foveation?
    Each fresh draw classifies on its own (its crops' softmax averaged), as the deployed
    foveation would on one look. ``view_of`` turns one batch of (image, draw) pairs (one
    per row) into a view (default: crop windows of ``x``)."""
    size = (int(x.shape[-2]), int(x.shape[-1]))
    make = view_of or (lambda part: CropView.of([d for _, d in part], size, "prob"))
    n_draws = len(draws[0]) if draws else 0
    flat = [(i, d) for i, image in enumerate(draws) for d in image]
    wrong = torch.zeros(len(draws))
    votes = torch.zeros(0)
    with torch.no_grad():
        for lo in range(0, len(flat), batch):
            part = flat[lo : lo + batch]
            rows = torch.tensor([i for i, _ in part])
            view = make(part)
            scores = view.logits(model, x[rows], torch.arange(len(part)))
            fooled = criterion.is_adversarial(scores, labels[rows].to(scores.device)).cpu()
            wrong.index_add_(0, rows, fooled.float())
            if votes.numel() == 0:
                votes = torch.zeros(len(draws), scores.shape[1])
            top1 = torch.nn.functional.one_hot(scores.argmax(dim=1).cpu(), scores.shape[1])
            votes.index_add_(0, rows, top1.float())
    share = wrong / max(n_draws, 1)
    lo_hi = [clopper_pearson(int(k), n_draws) for k in wrong.tolist()]
    return FreshJudgement(
        fooled=share,
        ci_low=torch.tensor([a for a, _ in lo_hi]),
        ci_high=torch.tensor([b for _, b in lo_hi]),
        draws=n_draws,
        votes=votes,
    )


@dataclass
class FreshDrawJudge:
    """A random foveation as :func:`tasks.linesearch.search_scale` sees it: an image is
    adversarial at ``x`` when most of its fresh draws misclassify ``x``
    (:attr:`FreshJudgement.success`). Its "logits" are the draws' top-1 votes, so the
    search's adversarial label is the one the foveation gives most often. ``looks``
    counts the judgements per image (each one costs every fresh draw's network inputs)."""

    judge: Callable[[torch.Tensor, torch.Tensor], FreshJudgement]  # (x of images idx, idx)
    looks: torch.Tensor
    bounds: Bounds | None = PIXEL_BOUNDS

    def affordable(self, idx: torch.Tensor, cost: int) -> torch.Tensor:
        return torch.ones(idx.shape[0], dtype=torch.bool, device=idx.device)

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.bounds is None else x.clamp(*self.bounds)

    def is_adversarial(
        self, x: torch.Tensor, idx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.arange(x.shape[0]) if idx is None else idx.cpu()
        self.looks[idx] += 1
        judged = self.judge(x, idx)
        return judged.success.to(x.device), judged.votes.to(x.device)


def fresh_critical_scale(
    judge: FreshDrawJudge, x: torch.Tensor, perturbation: torch.Tensor, rtol: float
) -> ScaleResult:
    """The smallest scale of an attack's perturbation (scale 1) that fools a random
    foveation by its own criterion, most fresh draws wrong. A minimum-norm attack on the
    EOT average stops where the *average* score is just fooled, which is where about half
    of the single draws are; this moves along the attack's perturbation to where more than
    half are, with the bracket-and-bisect of every critical scale of the protocol (a
    zero perturbation fails without a look)."""
    return search_scale(judge, x, perturbation, search=LineSearch(rtol=rtol, growth=1.25))


@dataclass(frozen=True)
class ObjectFrameView:
    """The MP-Object set-up's foveations as a view of the object crop: each view is its
    window's clean content plus the perturbation moved by the view's whole-pixel shift
    (zero where it leaves the box) and mirrored, as :mod:`tasks.mp_object` builds them;
    the views' softmax averaged. Moving and clipping are linear or piecewise linear, so
    the gradient reaches the perturbation exactly."""

    clean: torch.Tensor  # (n, C, H, W): the object crops, the frame the perturbation is in
    views: tuple[tuple[ObjectView, ...], ...]  # per image (batch row)

    @classmethod
    def of(cls, clean: torch.Tensor, views: Sequence[Sequence[ObjectView]]) -> ObjectFrameView:
        return cls(clean, tuple(tuple(v) for v in views))

    def select(self, rows: list[int]) -> ObjectFrameView:
        """The same view for a subset of the images (rows renumbered from 0)."""
        idx = torch.tensor(rows, device=self.clean.device)
        return ObjectFrameView(self.clean[idx], tuple(self.views[r] for r in rows))

    def logits(self, model: nn.Module, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        e = x - self.clean[rows.to(self.clean.device)]
        inputs, owner = [], []
        for k, r in enumerate(rows.tolist()):
            for v in self.views[r]:
                view = (v.content + shift_perturbation(e[k], v.shift)).clamp(*PIXEL_BOUNDS)
                inputs.append(view.flip(-1) if v.flip else view)
                owner.append(k)
        scores = model(torch.stack(inputs))
        return combine(scores, torch.tensor(owner, device=scores.device), len(rows))


def noise_of_norm(
    x: torch.Tensor, size: torch.Tensor, norm: str, generator: torch.Generator
) -> torch.Tensor:
    """Random noise per image with ``norm`` equal to ``size`` (0 where ``size`` is not finite):
    random signs for linf (every pixel at the bound: the strongest noise of that linf), a
    Gaussian direction otherwise, scaled to the size before the pixel range clips it."""
    if norm == "linf":
        d = torch.randint(0, 2, x.shape, generator=generator, device="cpu").float() * 2 - 1
    else:
        d = torch.randn(x.shape, generator=generator, device="cpu")
    d = d.to(x.device)
    unit = d / norms.norm(d, norm).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
    finite = torch.where(torch.isfinite(size), size, torch.zeros_like(size))
    return unit * finite.to(x.device).view(-1, *[1] * (x.dim() - 1))


def noise_fools(
    model: nn.Module,
    view: View,
    x: torch.Tensor,
    labels: torch.Tensor,
    criterion: TopK,
    size: torch.Tensor,
    norm: str,
    seed: int = 0,
) -> torch.Tensor:
    """Does random noise of each image's ``size`` (the adaptive perturbation's norm) fool
    the foveated network seen through ``view``? Carlini et al. (2019): noise should need
    far more than the attack; an image where it does not is a sign of gradient masking."""
    noise = noise_of_norm(x, size, norm, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        rows = torch.arange(x.shape[0], device=x.device)
        scores = view.logits(model, (x + noise).clamp(*PIXEL_BOUNDS), rows)
        fooled = criterion.is_adversarial(scores, labels.to(scores.device))
    return fooled.cpu() & torch.isfinite(size).cpu() & (size.cpu() > 0)


@dataclass(frozen=True)
class MaskingChecks:
    """Carlini et al. (2019)'s signs of gradient masking that apply here, as counts over the
    images an adaptive attack was run on (each should be 0; any other value is a warning):

    - ``unreached``: the adaptive attack, unbounded, did not fool the image at all;
    - ``weaker_than_transfer``: its critical norm exceeds that of the transferred
      perturbation (MP found on the unfoveated network, then foveated) by more than the
      search's precision: a white-box attack should never lose to a transfer;
    - ``noise_not_weaker``: random noise of the adaptive perturbation's norm fooled the
      foveated network as early (noise should need far more);
    - ``black_box_stronger``: another network's minimum perturbation, transferred through
      the same foveation (black box), fooled it at a smaller norm than the white-box attack,
      beyond the search's precision (None: no other network's was measured).
    """

    images: int
    unreached: int
    weaker_than_transfer: int
    noise_not_weaker: int
    black_box_stronger: int | None = None

    @property
    def clean(self) -> bool:
        counts = (self.unreached, self.weaker_than_transfer, self.noise_not_weaker)
        return counts == (0, 0, 0) and not self.black_box_stronger


def masking_checks(
    adaptive: torch.Tensor,
    success: torch.Tensor,
    transferred: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    rtol: float = 0.05,
    black_box: torch.Tensor | None = None,
) -> MaskingChecks:
    """Counts of :class:`MaskingChecks` from per-image critical norms (inf: never fooled):
    ``adaptive`` (and whether the attack succeeded), ``transferred``, ``noise`` and the
    smallest ``black_box`` transfer from other networks, on the same foveated network and
    the same norm. A transfer (the network's own MP, or another's) that fools an image the
    white-box attack never fooled counts as stronger."""
    adaptive = torch.where(success, adaptive, torch.full_like(adaptive, math.inf))
    weaker = 0 if transferred is None else int((adaptive > transferred / (1 - rtol)).sum())
    # an image never fooled counts as unreached only (inf noise is not 'as strong' there)
    noisy = 0 if noise is None else int(((noise <= adaptive) & adaptive.isfinite()).sum())
    stronger = None if black_box is None else int((adaptive > black_box / (1 - rtol)).sum())
    return MaskingChecks(int(adaptive.numel()), int((~success).sum()), weaker, noisy, stronger)
