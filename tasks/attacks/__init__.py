"""Minimum-perturbation attacks as plain PyTorch.

>>> from tasks import attacks
>>> result = attacks.get("sign")()(model, x, labels)   # x in 0..255 pixel space
>>> result = attacks.sign(model, x, labels)            # the same, shorter
>>> attacks.create("ddn", steps=50)                     # parameters checked by DDNParams

The catalogue (:mod:`tasks.attacks.specs`) and the parameter dataclasses
(:mod:`tasks.attacks.params`) import no torch, so the config parser can check
names and parameters in milliseconds; an attack's module (and torch) is
imported when the attack is first used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tasks.attacks.params import AttackParams
from tasks.attacks.specs import ATTACK_SPECS, AttackParamError, AttackSpec, attack_spec

if TYPE_CHECKING:
    from tasks.attacks.base import Attack, AttackResult, Proposal

_FROM_BASE = ("Attack", "AttackResult", "Proposal")


def get(name: str) -> type[Attack[Any]]:
    """The attack class registered as ``name``."""
    return attack_spec(name).load()


def create(
    name: str,
    *,
    params: AttackParams | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Attack[Any]:
    """An attack instance: ``kwargs`` are the :class:`Attack` arguments (criterion,
    bounds, line_search) and parameter overrides, e.g. ``create("cw", max_iter=50)``."""
    return get(name)(params=params, **kwargs)


def sign(model: Any, x: Any, labels: Any, **kwargs: Any) -> AttackResult:
    """Notebook shortcut: ``tasks.attacks.sign(model, x, y)``."""
    return create("sign", **kwargs)(model, x, labels)


def __getattr__(name: str) -> Any:
    """``Attack``, ``AttackResult``, ``Proposal`` on first use (they import torch)."""
    if name in _FROM_BASE:
        from tasks.attacks import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ATTACK_SPECS",
    "Attack",
    "AttackParamError",
    "AttackParams",
    "AttackResult",
    "AttackSpec",
    "Proposal",
    "attack_spec",
    "create",
    "get",
    "sign",
]
