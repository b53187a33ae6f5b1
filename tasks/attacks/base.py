"""Attack base classes: the base owns the bookkeeping, an attack owns one idea.

As in Foolbox 3's ``MinimizationAttack``, :meth:`Attack.__call__` handles the
pixel bounds and clipping, the top-k criterion, the clean pass, the final
per-image line search on the scale of whatever the attack proposes, query
counts and timing. A concrete attack implements :meth:`Attack.propose`: for
each image a direction or perturbation ``d`` (and optionally a first guess of
the scale). The minimum perturbation is then ``clip(x + s* d) - x`` with ``s*``
the smallest adversarial scale; for optimisation attacks (bfgs, cw, ddn, ...)
whose ``d`` is already adversarial at ``s = 1``, the search can only shrink it,
which is exactly Luo et al.'s "line search of the norm" after L-BFGS.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar, cast

import torch
from torch import nn

from tasks import norms
from tasks.attacks.params import AttackParams
from tasks.attacks.specs import AttackSpec, spec_for_class
from tasks.context import PIXEL_BOUNDS, Bounds, QueryContext
from tasks.criterion import TopK
from tasks.linesearch import LineSearch, search_scale
from tasks.views import View


@dataclass
class Proposal:
    """What an attack hands to the line search, per image of the active batch.

    ``adversarial`` marks images whose ``clip(x + init_scale * direction)`` the
    attack already saw fool the model (top-1 class ``adv_label``): the search
    starts there with an adversarial upper bracket, so it can only shrink it and
    spends no pass to re-check it (an attack at its query budget has none left).
    """

    direction: torch.Tensor
    init_scale: torch.Tensor | None = None
    info: dict[str, torch.Tensor] = field(default_factory=dict)
    adversarial: torch.Tensor | None = None
    adv_label: torch.Tensor | None = None


@dataclass
class AttackResult:
    """Per-image outcome of a minimum-perturbation attack (all tensors length B)."""

    perturbation: torch.Tensor  # clip(x + scale * direction) - x; zeros where it failed
    direction: torch.Tensor  # the proposed direction the scale applies to
    success: torch.Tensor
    scale: torch.Tensor  # nan where it failed; 0 for images misclassified clean
    adv_label: torch.Tensor  # top-1 class of the adversarial image (-1 if failed)
    clean_correct: torch.Tensor
    clean_label: torch.Tensor  # top-1 class of the clean image
    n_forward: torch.Tensor
    n_backward: torch.Tensor
    seconds: torch.Tensor  # batch wall time shared equally by its images
    info: dict[str, torch.Tensor] = field(default_factory=dict)

    def norms(self) -> dict[str, torch.Tensor]:
        """l1pp, l2, linf of the perturbation (nan where the attack failed)."""
        nan = torch.full_like(self.scale, float("nan"))
        return {
            k: torch.where(self.success, v, nan)
            for k, v in norms.all_norms(self.perturbation).items()
        }


P = TypeVar("P", bound=AttackParams)


class Attack(ABC, Generic[P]):
    """Minimum-perturbation attack in pixel space under a top-k criterion.

    Its name, norm and parameter dataclass ``P`` come from its entry in
    :mod:`tasks.attacks.specs`; ``params`` is that dataclass (or a mapping of
    it), ``overrides`` replace single fields: ``DDNAttack(steps=50)``.
    """

    params: P
    #: The norm the attack's own objective minimises, with these parameters.
    norm: str
    #: Applied to every proposed direction before the final line search (the pipeline sets
    #: its storage codec's round trip, so the scale found is the stored direction's).
    quantize: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __init__(
        self,
        criterion: TopK | None = None,
        bounds: Bounds | None = PIXEL_BOUNDS,
        line_search: LineSearch | None = None,
        params: P | Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        self.criterion = criterion or TopK()
        self.bounds = bounds
        self.line_search = line_search or LineSearch()
        self.spec: AttackSpec = spec_for_class(type(self))
        self.params = cast(P, self.spec.build_params(params, **overrides))
        self.norm = self.spec.norm_for(self.params)

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        """Direction or perturbation for the images ``x`` of ``ctx``.

        Only images correctly classified clean are passed in. Use ``ctx`` for
        every model query (``ctx.subset`` to shrink the active set) so the
        query counts stay exact.
        """

    def search_reserve(self, budget: int | None) -> int:
        """Passes of a budget the iterations leave to the final line search: what it needs
        to shrink an adversarial iterate to ``rtol``, at most a quarter of the budget, and
        never the clean pass and first iteration the budget was checked to afford."""
        if budget is None:
            return 0
        one_step = 1 + int(getattr(self.params, "step_passes", 2))
        return max(0, min(self.line_search.shrink_passes(), budget // 4, budget - one_step))

    def __call__(
        self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, view: View | None = None
    ) -> AttackResult:
        """The minimum perturbation of each image of ``x`` (pixel space, the model's input).

        ``view``: how the network sees an image (a foveation's crops, resized and their
        scores combined): the attack then minimises the perturbation of the composite
        network, end to end, in ``x``'s frame (:mod:`tasks.adaptive`); the counts are
        queries of the composite (one per image, whatever its number of crops).
        """
        start = time.perf_counter()
        x = x.detach()
        labels = labels.to(x.device)
        budget = getattr(self.params, "budget", None)
        ctx = QueryContext.create(
            model, labels, self.criterion, self.bounds, view=view, budget=budget
        )
        n = x.shape[0]
        clean_adv, clean_logits = ctx.is_adversarial(x)
        clean_label = clean_logits.argmax(dim=1)

        direction = torch.zeros_like(x)
        scale = torch.zeros(n, device=x.device)
        success = clean_adv.clone()
        adv_label = torch.where(clean_adv, clean_label, torch.full_like(clean_label, -1))
        info: dict[str, torch.Tensor] = {}

        todo = (~clean_adv).nonzero().squeeze(1)
        if todo.numel() > 0:
            xt, sub = x[todo], ctx.subset(todo)
            reserve = self.search_reserve(budget)
            iterate = sub if budget is None else replace(sub, budget=budget - reserve)
            proposal = self.propose(iterate, xt)
            known = None
            if self.quantize is not None:  # the stored direction is not the one that fooled
                proposal.direction = self.quantize(proposal.direction)
            elif proposal.adversarial is not None and proposal.adv_label is not None:
                known = (proposal.adversarial, proposal.adv_label)
            found = search_scale(
                sub, xt, proposal.direction, proposal.init_scale, self.line_search, known
            )
            direction[todo] = proposal.direction
            scale[todo] = found.scale
            success[todo] = found.success
            adv_label[todo] = found.adv_label
            for key, value in proposal.info.items():
                full = torch.full((n,), float("nan"), dtype=torch.float32, device=x.device)
                full[todo] = value.float()
                info[key] = full

        safe_scale = torch.nan_to_num(scale, nan=0.0).view(-1, *[1] * (x.dim() - 1))
        perturbation = ctx.clip(x + safe_scale * direction) - x
        seconds = (time.perf_counter() - start) / max(n, 1)
        return AttackResult(
            perturbation=perturbation,
            direction=direction,
            success=success,
            scale=scale,
            adv_label=adv_label,
            clean_correct=~clean_adv,
            clean_label=clean_label,
            n_forward=ctx.counts.forward.clone(),
            n_backward=ctx.counts.backward.clone(),
            seconds=torch.full((n,), seconds),
            info=info,
        )
