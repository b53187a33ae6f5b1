"""Which norm axis an attack is evaluated on: the norm its objective minimises.

Read from the attack registry (one declaration per attack), as Luo et al.
evaluate BFGS with the L1 norm per pixel and Sign with Linf (sec. 3).
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def attack_spec(attack: str) -> Any:
    """The attack's registry entry (``.norm``, ``.baseline``)."""
    from tasks.attacks import get

    return get(attack)


def native_norm(attack: str) -> str:
    return str(attack_spec(attack).norm)
