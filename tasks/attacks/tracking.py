"""Best-adversarial tracking shared by the iterative attacks.

C&W, DDN and L-BFGS visit many points; the one worth returning is the
smallest adversarial perturbation seen at *any* iterate (Carlini & Wagner,
sec. V; Rony et al., Alg. 1 keep "the best adversarial"), not the last one.
The tracker keeps, per image of the attack's batch, that perturbation and
its norm; the base's line search then can only shrink it.
"""

from __future__ import annotations

import torch

from tasks import norms


class BestAdversarial:
    """Smallest-norm adversarial perturbation seen so far, per image."""

    def __init__(self, like: torch.Tensor, norm: str = "l2") -> None:
        self.norm = norm
        self.delta = torch.zeros_like(like)
        self.size = torch.full((like.shape[0],), float("inf"), device=like.device)

    @property
    def found(self) -> torch.Tensor:
        """Boolean per image: some adversarial perturbation has been seen."""
        return torch.isfinite(self.size)

    def update(
        self, idx: torch.Tensor, delta: torch.Tensor, adversarial: torch.Tensor
    ) -> torch.Tensor:
        """Offer ``delta`` for images ``idx``; returns the mask of improvements."""
        size = norms.norm(delta, self.norm)
        better = adversarial & (size < self.size[idx])
        if better.any():
            rows = idx[better]
            self.delta[rows] = delta[better].to(self.delta.dtype)
            self.size[rows] = size[better]
        return better
