"""Batched per-image search for the smallest scale of a direction that fools.

Luo et al. (sec. B) minimise the norm of a perturbation by a line search on
its scale. For every image independently we bracket (grow or shrink the scale
by ``growth`` until the criterion flips) and then bisect geometrically until
``hi - lo <= rtol * hi``. ``hi`` is always a scale that was *observed* to be
adversarial, so the returned perturbation is adversarial by construction.
Images leave the active set as soon as their search is done, so the batch
that goes through the network shrinks.

The adversarial image at scale ``s`` is ``clip(x + s * d)``; the search never
goes beyond the scale at which clipping saturates every pixel the direction
touches, because the image no longer changes past it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from tasks import norms
from tasks.context import Bounds


@dataclass(frozen=True)
class LineSearch:
    """Bracket-then-bisect settings; ``rtol`` is the stated relative precision."""

    rtol: float = 1e-3
    growth: float = 2.0
    max_steps: int = 64
    min_scale: float = 1e-6

    def shrink_passes(self) -> int:
        """Forwards a search needs from an adversarial scale: one step of ``growth``
        down that is not adversarial, then the geometric bisection down to ``rtol``."""
        return 1 + math.ceil(math.log2(math.log(self.growth) / math.log1p(self.rtol)))

    def __post_init__(self) -> None:
        if not 0 < self.rtol < 1:
            raise ValueError(f"rtol must be in (0, 1), got {self.rtol}")
        if self.growth <= 1:
            raise ValueError(f"growth must be > 1, got {self.growth}")


class Judge(Protocol):
    """What the search asks of whoever says "adversarial": a :class:`~tasks.context.QueryContext`
    (one query of the model) or a random foveation judged on its fresh draws
    (:class:`tasks.adaptive.FreshDrawJudge`)."""

    bounds: Bounds | None

    def affordable(self, idx: torch.Tensor, cost: int) -> torch.Tensor: ...

    def clip(self, x: torch.Tensor) -> torch.Tensor: ...

    def is_adversarial(
        self, x: torch.Tensor, idx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class ScaleResult:
    """Per image: smallest adversarial scale found (nan if none) and its top-1 label."""

    scale: torch.Tensor
    success: torch.Tensor
    adv_label: torch.Tensor


def saturation_scale(x: torch.Tensor, d: torch.Tensor, ctx: Judge) -> torch.Tensor:
    """Scale past which ``clip(x + s d)`` stops changing (inf without bounds)."""
    return norms.saturation_scale(x, d, ctx.bounds)


def search_scale(
    ctx: Judge,
    x: torch.Tensor,
    direction: torch.Tensor,
    init_scale: torch.Tensor | None = None,
    search: LineSearch | None = None,
    known: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> ScaleResult:
    """Smallest ``s`` with ``clip(x + s * direction)`` adversarial, per image.

    ``known``: (mask, top-1 class) of images already seen adversarial at
    ``init_scale``; they start bracketed from above and that point is not
    queried again. With a query budget on ``ctx``, an image stops when it has
    no pass left, keeping the smallest adversarial scale observed so far.
    """
    search = search or LineSearch()
    n, device = x.shape[0], x.device
    s_max = saturation_scale(x, direction, ctx)
    flat_zero = direction.reshape(n, -1).abs().amax(dim=1) == 0
    s = torch.ones(n, device=device) if init_scale is None else init_scale.clone().to(device)
    s = torch.where(torch.isfinite(s) & (s > 0), s, torch.ones_like(s))
    s = torch.minimum(s, s_max)
    lo = torch.zeros(n, device=device)
    hi = torch.full((n,), float("inf"), device=device)
    adv_label = torch.full((n,), -1, dtype=torch.long, device=device)
    failed = flat_zero.clone()
    done = failed.clone()
    if known is not None:
        seen = known[0].to(device) & ~flat_zero
        hi = torch.where(seen, s, hi)
        adv_label = torch.where(seen, known[1].to(device), adv_label)
        s = torch.where(seen, s / search.growth, s)

    for _ in range(search.max_steps):
        active = (~done).nonzero().squeeze(1)
        broke = ~ctx.affordable(active, 1)
        if broke.any():  # over budget: keep the bracket it has
            out = active[broke]
            done[out] = True
            failed[out] |= torch.isinf(hi[out])
            active = active[~broke]
        if active.numel() == 0:
            break
        xa = ctx.clip(x[active] + s[active].view(-1, *[1] * (x.dim() - 1)) * direction[active])
        adv, logits = ctx.is_adversarial(xa, active)
        sa = s[active]
        hi[active] = torch.where(adv, sa, hi[active])
        lo[active] = torch.where(adv, lo[active], sa)
        adv_label[active] = torch.where(adv, logits.argmax(dim=1), adv_label[active])

        a_lo, a_hi, a_smax = lo[active], hi[active], s_max[active]
        unbracketed_up = torch.isinf(a_hi)
        unbracketed_down = (a_lo == 0) & ~unbracketed_up
        at_ceiling = unbracketed_up & (a_lo >= a_smax)
        at_floor = unbracketed_down & (a_hi <= search.min_scale)
        converged = ~unbracketed_up & ~unbracketed_down & (a_hi - a_lo <= search.rtol * a_hi)
        failed[active] |= at_ceiling
        done[active] |= at_ceiling | at_floor | converged

        nxt = torch.where(
            unbracketed_up,
            torch.minimum(a_lo * search.growth, a_smax),
            torch.where(unbracketed_down, a_hi / search.growth, (a_lo * a_hi).sqrt()),
        )
        s[active] = nxt

    success = ~failed & torch.isfinite(hi)
    scale = torch.where(success, hi, torch.full_like(hi, float("nan")))
    return ScaleResult(scale=scale, success=success, adv_label=adv_label)
