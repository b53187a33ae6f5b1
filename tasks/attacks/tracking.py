"""Best-adversarial tracking shared by the iterative attacks.

C&W, DDN, FMN, ALMA and L-BFGS visit many points; the one worth returning is
the smallest adversarial perturbation seen at *any* iterate (Carlini & Wagner,
sec. V; Rony et al., Alg. 1 keep "the best adversarial"), not the last one:
Foolbox 2's DDN returned the last, which can be larger. The tracker keeps,
per image of the attack's batch, that perturbation, its norm and its top-1
class; :meth:`BestAdversarial.proposal` hands it to the base's line search as
already adversarial at scale 1, so the search can only shrink it and an attack
stopped by its query budget still returns it without another pass.
"""

from __future__ import annotations

import torch

from tasks import norms
from tasks.attacks.base import Proposal


class BestAdversarial:
    """Smallest-norm adversarial perturbation seen so far, per image."""

    def __init__(self, like: torch.Tensor, norm: str = "l2") -> None:
        self.norm = norm
        self.delta = torch.zeros_like(like)
        self.size = torch.full((like.shape[0],), float("inf"), device=like.device)
        self.label = torch.full((like.shape[0],), -1, dtype=torch.long, device=like.device)

    @property
    def found(self) -> torch.Tensor:
        """Boolean per image: some adversarial perturbation has been seen."""
        return torch.isfinite(self.size)

    def update(
        self,
        idx: torch.Tensor,
        delta: torch.Tensor,
        adversarial: torch.Tensor,
        logits: torch.Tensor,
    ) -> torch.Tensor:
        """Offer ``delta`` (with the ``logits`` it gave) for images ``idx``; returns the
        mask of improvements."""
        size = norms.norm(delta, self.norm)
        better = adversarial & (size < self.size[idx])
        if better.any():
            rows = idx[better]
            self.delta[rows] = delta[better].to(self.delta.dtype)
            self.size[rows] = size[better]
            self.label[rows] = logits[better].argmax(dim=1)
        return better

    def proposal(
        self, fallback: torch.Tensor, info: dict[str, torch.Tensor] | None = None
    ) -> Proposal:
        """The best adversarial where one was seen (known adversarial at scale 1),
        ``fallback`` elsewhere (the line search then tries to scale it up)."""
        found = self.found
        direction = torch.where(found.view(-1, *[1] * (fallback.dim() - 1)), self.delta, fallback)
        return Proposal(
            direction=direction,
            init_scale=torch.ones(found.shape[0], device=found.device),
            info=info or {},
            adversarial=found.clone(),
            adv_label=self.label.clone(),
        )
