"""Which norm axis an attack is evaluated on: the norm its objective minimises.

Read from the torch-free attack catalogue (:mod:`tasks.attacks.specs`, one
declaration per attack), as Luo et al. evaluate BFGS with the L1 norm per
pixel and Sign with Linf (sec. 3). The axis is the catalogue's norm for the
attack's name; the config refuses evaluation tasks for parameters that would
make the attack minimise another norm (:func:`pipeline.config.benchmark.parse_config`).
"""

from __future__ import annotations

from tasks.attacks.specs import attack_spec


def native_norm(attack: str) -> str:
    """The norm axis of ``attack`` (l1pp, l2 or linf)."""
    return attack_spec(attack).norm


def is_baseline(attack: str) -> bool:
    """A reference direction (random noise), shown in the norm sweeps only."""
    return attack_spec(attack).baseline
