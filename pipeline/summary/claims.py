"""The claims a run tests, each with where the paper states it and the family it belongs to.

The *primary* family is what Luo et al. claim, tested once per (model, attack) for the
paper's own attacks (BFGS, Sign; ``paper`` on their attack spec), at one evaluation point
chosen before the evaluation (the point where the network's MP accuracy matches the
paper's Table 2, :mod:`pipeline.summary.points`), or at norm 0 once per model for the
clean gains. Holm's correction runs inside that family only. Everything else (other
attacks, the random baseline, further evaluation points, claims the paper does not make
as a test) is *exploratory*: reported with its p-value, never called "holds".

Claims are derived from the condition registry (:mod:`tasks.protocol`), so a new
foveation gets its claims without an edit here. Nothing here imports torch or polars:
the config names claims (``eval.primary``) and is checked before anything is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tasks.protocol import (
    CONDITIONS,
    EFFECT_COLUMNS,
    MODERN_FOVEATION,
    MP,
    OBJECT,
    base_of,
    effect_of,
    mp_foveations,
)
from tasks.registry import Registry

Kind = Literal["accuracy", "ratio", "difference", "adaptive"]
#: Where an accuracy claim is tested: the primary point (matched to the paper's Table 2),
#: every evaluation point of the run, or norm 0 (once per model: the clean accuracy).
At = Literal["points", "zero"]


@dataclass(frozen=True)
class Claim:
    name: str
    text: str
    kind: Kind
    left: str  # condition (accuracy, ratio) or linearity column (difference)
    right: str
    where: str  # where the paper says it
    primary: bool = True  # the paper claims it as stated; False: reported, exploratory
    cross: bool = False  # left is another source's perturbation on the same target
    at: At = "points"
    absolute: bool = False  # difference of absolute values


def claims() -> Registry[Claim]:
    """Every claim, derived from the condition registry as it is now (a foveation
    registered later, e.g. by a test, gets its claims too)."""
    found: Registry[Claim] = Registry("claim")

    def add(claim: Claim) -> None:
        found.add(claim.name, claim)

    add(Claim("cross_model", "another network's perturbation fools less than the network's own", "accuracy", MP, MP, "sec. 3, Fig. 2, 7", cross=True))  # fmt: skip
    for c in CONDITIONS.in_order():
        if c.reference is not None:
            label, ref = c.label, CONDITIONS.get(c.reference).label
            add(Claim(f"{c.name}_ratio", f"critical norm {label} / {ref} > 1", "ratio", c.name, c.reference, "sec. 4 results, Table 1"))  # fmt: skip
            # the same hypothesis as the ratio, at one norm: the ratio is its per-image test
            add(Claim(f"{c.name}_vs_{c.reference}", f"{label} accuracy > {ref} accuracy", "accuracy", c.name, c.reference, "Fig. 5, 13; Table 2", primary=False))  # fmt: skip
            if c.setup == MP:  # "the foveation slightly improves the accuracy" (no perturbation)
                add(Claim(f"{c.name}_clean_gain", f"{label} clean accuracy > {ref} clean accuracy", "accuracy", c.name, c.reference, "sec. 4 results, Table 2 (L1 = 0)", at="zero"))  # fmt: skip
        if c.small_gain_over is not None:
            other = CONDITIONS.get(c.small_gain_over).label
            add(Claim(f"{c.name}_vs_{c.small_gain_over}_ratio", f"critical norm {c.label} / {other} > 1 (the paper: only a small improvement; closeness is not a test)", "ratio", c.name, c.small_gain_over, "Table 1, sec. A.2", primary=False))  # fmt: skip
        if c.better_than is not None:
            other = CONDITIONS.get(c.better_than).label
            add(Claim(f"{c.name}_vs_{c.better_than}", f"{c.label} accuracy > {other} accuracy", "accuracy", c.name, c.better_than, "Fig. 3, 8; sec. 4 results"))  # fmt: skip
    # Not the paper's claim but the question a reader now asks of it (Athalye et al. 2018):
    # tested in the primary family when a run has the adaptive task
    objects = [c.name for c in CONDITIONS.in_order() if c.setup == OBJECT and c.views]
    for name in (*mp_foveations(), MODERN_FOVEATION, *objects):
        label = CONDITIONS.get(name).label if name in CONDITIONS else "Random Resized Crop"
        base = base_of(CONDITIONS.get(name).setup).label if name in CONDITIONS else "MP"
        add(Claim(f"{name}_adaptive_gain", f"critical norm {label} under its own adaptive attack / {base} > 1 (the gain survives an attacker who knows the foveation)", "adaptive", name, MP, "sec. 4's conclusion, against an adaptive attacker"))  # fmt: skip
    add(Claim("linearity_error", "error of f(e*) > error of the local linear interpolation", "difference", "err_alone", "err_interpolation", "sec. 3, Fig. 12"))  # fmt: skip
    for setup, prefix in EFFECT_COLUMNS.items():
        t = effect_of(setup)
        label = t.label if t is not None else setup
        add(Claim(f"fig6_{setup}", f"the foveation changes the perturbation's score more than the image's (T = {label})", "difference", f"{prefix}_perturbation", f"{prefix}_image", "sec. 4, Fig. 6", absolute=True))  # fmt: skip
    return found


def primary_claims(names: tuple[str, ...] | None = None) -> set[str]:
    """The primary family's claims: the paper's (``names`` narrows it; unknown names raise
    :class:`~tasks.registry.RegistryError` with "did you mean")."""
    known = claims()
    if names is None:
        return {c.name for c in known.in_order() if c.primary}
    return {known.get(n).name for n in names}
