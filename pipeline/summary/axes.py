"""Which norm axis an attack is evaluated on: the norm its objective minimises.

Read from the attack registry (one declaration per attack), as Luo et al.
evaluate BFGS with the L1 norm per pixel and Sign with Linf (sec. 3).
"""

from __future__ import annotations

from functools import cache


@cache
def native_norm(attack: str) -> str:
    from tasks.attacks import get

    return get(attack).norm
