"""Minimum-perturbation attacks as plain PyTorch.

>>> from tasks import attacks
>>> result = attacks.get("sign")()(model, x, labels)   # x in 0..255 pixel space
"""

from __future__ import annotations

from typing import Any

from tasks.attacks import (  # noqa: F401  (importing registers the attacks)
    bfgs,  # bfgs
    cw,  # cw
    ddn,  # ddn
    deepfool,  # deepfool
    gn,  # gn1, gn1_iter, gn2
    gradient,  # sign, fgv
    lbfgsb,  # lbfgsb
    noise,  # random
    pgd,  # pgd2, ifgsm
    smooth,  # qpgd2, scw
)
from tasks.attacks.base import Attack, AttackResult, Proposal
from tasks.attacks.registry import ATTACKS


def get(name: str) -> type[Attack]:
    """The attack class registered as ``name``."""
    return ATTACKS.get(name)


def create(name: str, **kwargs: Any) -> Attack:
    """An attack instance; ``kwargs`` go to :class:`Attack` (criterion, line_search, params)."""
    return ATTACKS.get(name)(**kwargs)


def sign(model: Any, x: Any, labels: Any, **kwargs: Any) -> AttackResult:
    """Notebook shortcut: ``tasks.attacks.sign(model, x, y)``."""
    return create("sign", **kwargs)(model, x, labels)


__all__ = ["ATTACKS", "Attack", "AttackResult", "Proposal", "create", "get", "sign"]
