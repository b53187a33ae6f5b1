"""Perturbation norms in 0..255 pixel units (DESIGN.md, "Norms").

``l1pp`` is Luo et al.'s "L1 norm per pixel": sum|e| / (H*W*C).
"""

from __future__ import annotations

import torch

NORMS = ("l1pp", "l2", "linf")


def flat(e: torch.Tensor) -> torch.Tensor:
    return e.reshape(e.shape[0], -1)


def l1pp(e: torch.Tensor) -> torch.Tensor:
    return flat(e).abs().mean(dim=1)


def l2(e: torch.Tensor) -> torch.Tensor:
    return flat(e).norm(p=2, dim=1)


def linf(e: torch.Tensor) -> torch.Tensor:
    return flat(e).abs().amax(dim=1)


def norm(e: torch.Tensor, name: str) -> torch.Tensor:
    """Per-image norm of a batch of perturbations by name."""
    if name == "l1pp":
        return l1pp(e)
    if name == "l2":
        return l2(e)
    if name == "linf":
        return linf(e)
    raise ValueError(f"unknown norm {name!r}; use one of {', '.join(NORMS)}")


def all_norms(e: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: norm(e, name) for name in NORMS}
