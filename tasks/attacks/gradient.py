"""One-gradient attacks: a direction from a single backward pass, then the line search.

``sign`` is Goodfellow et al.'s fast gradient sign as used by Luo et al.
(sec. B); ``fgv`` uses the raw gradient (the "fast gradient value" method).
The first guess of the scale is the first-order estimate of where the margin
crosses zero, which saves most of the bracketing.
"""

from __future__ import annotations

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.losses import LOSSES
from tasks.attacks.params import GradientParams
from tasks.context import QueryContext


class GradientAttack(Attack[GradientParams]):
    """Direction = a function of the loss gradient at the clean image."""

    def shape(self, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        loss_fn = LOSSES[self.params.loss]
        _, grad, logits = ctx.value_and_grad(loss_fn, x)
        direction = -self.shape(grad)  # every loss here is to be decreased
        margin = ctx.criterion.margin(logits, ctx.label())
        # Margin gradient is unknown here; the loss slope along d is a fair proxy.
        slope = (grad * direction).flatten(1).sum(1).abs().clamp_min(1e-12)
        init = (margin.clamp_min(1e-3) / slope).clamp(1e-4, 1e4)
        logit_loss = self.params.loss == "score"
        return Proposal(direction=direction, init_scale=init if logit_loss else None)


class SignAttack(GradientAttack):
    """Sign of the loss gradient; scale = Linf norm in pixel units."""

    def shape(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()


class GradientValueAttack(GradientAttack):
    """Raw loss gradient, normalised to unit L2 norm so scale = L2 in pixel units."""

    def shape(self, grad: torch.Tensor) -> torch.Tensor:
        n = grad.flatten(1).norm(dim=1).clamp_min(1e-30)
        return grad / n.view(-1, *[1] * (grad.dim() - 1))
