"""The attack catalogue: what every attack is, without importing torch.

One :class:`AttackSpec` per registry name says which norm the attack
minimises, whether it is a baseline (a reference direction, not an attack),
its parameter dataclass and where its class lives (imported lazily). The
config parser, ``--help-attack``, the README table and the summaries read an
attack's metadata here; the attack classes read their name, norm and
parameters from their spec. Adding an attack: a module with its class, its
parameters in :mod:`tasks.attacks.params`, one entry below.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tasks.attacks import params as P
from tasks.registry import Registry, RegistryError
from tasks.typed import ParamError, checked_values, describe, known_keys

if TYPE_CHECKING:
    from tasks.attacks.base import Attack


class AttackParamError(ParamError):
    """Parameters an attack cannot take; the message names the attack, key, value and known keys."""


@dataclass(frozen=True)
class AttackSpec:
    """A registry entry: an attack's metadata, parameters and implementation."""

    name: str
    norm: str  # 'l1pp' | 'l2' | 'linf': the norm the attack minimises (with default params)
    baseline: bool  # a reference direction shown in norm sweeps (random), not an attack
    params: type[P.AttackParams]  # its frozen keyword-only parameter dataclass
    impl: str  # "module:Class", imported on first use
    summary: str = ""  # one line for --help-attack and the README
    #: one of the seed paper's own attacks (Luo et al.: BFGS and Sign): its findings form
    #: the primary tested family; every other attack's are exploratory
    paper: bool = False

    def norm_for(self, params: P.AttackParams) -> str:
        """The norm minimised with ``params`` (``gn*`` and ``deepfool`` choose it by a parameter)."""
        return params.minimised_norm() or self.norm

    def build_params(
        self, params: P.AttackParams | Mapping[str, Any] | None = None, **overrides: Any
    ) -> P.AttackParams:
        """This attack's validated parameters from a dataclass, a mapping (YAML) and overrides."""
        if isinstance(params, P.AttackParams):
            if not isinstance(params, self.params):
                raise AttackParamError(
                    f"attack {self.name!r} takes {self.params.__name__}, "
                    f"got {type(params).__name__}"
                )
            base: dict[str, Any] = {
                f.name: getattr(params, f.name) for f in dataclasses.fields(params)
            }
        else:
            base = dict(params or {})
        try:
            values = checked_values(self.params, {**base, **overrides}, noun="parameter")
            return self.params(**values)
        except ParamError as exc:
            raise AttackParamError(
                f"attack {self.name!r}: {exc} ({known_keys(self.params)})"
            ) from None

    def load(self) -> type[Attack[Any]]:
        """The attack class (imports torch)."""
        module, _, attr = self.impl.partition(":")
        cls: type[Attack[Any]] = getattr(importlib.import_module(module), attr)
        return cls

    def help_text(self) -> str:
        """What ``foveabench run --help-attack NAME`` prints."""
        role = "baseline direction" if self.baseline else "attack"
        lines = [f"{self.name}: {self.summary}", f"  {role}; minimises {self.norm}; {self.impl}"]
        rows = describe(self.params)
        if not rows:
            lines.append("  no parameters")
        width = max((len(r.name) for r in rows), default=0)
        value_width = max((len(repr(r.default)) for r in rows), default=0)
        for r in rows:
            bounds = f", {r.bounds}" if r.bounds else ""
            default = repr(r.default)
            lines.append(
                f"  {r.name:<{width}}  {default:<{value_width}}  {r.doc} ({r.type}{bounds})"
            )
        if rows:
            example = f"{rows[0].name}: {json.dumps(rows[0].default)}"
            lines.append(f"config: attacks: [{{{self.name}: {{{example}}}}}]")
        return "\n".join(lines)


ATTACK_SPECS: Registry[AttackSpec] = Registry("attack")


def attack_spec(name: str) -> AttackSpec:
    """The spec registered as ``name`` (unknown: RegistryError with "did you mean")."""
    return ATTACK_SPECS.get(name)


def spec_for_class(cls: type) -> AttackSpec:
    """The spec whose ``impl`` is ``cls`` or, for a subclass without its own, its nearest base."""
    by_impl = {spec.impl: spec for spec in map(ATTACK_SPECS.get, ATTACK_SPECS.names())}
    for klass in cls.__mro__:
        spec = by_impl.get(f"{klass.__module__}:{klass.__qualname__}")
        if spec is not None:
            return spec
    raise RegistryError(
        f"{cls.__qualname__} is not the impl of any attack; add an AttackSpec for it to "
        "tasks/attacks/specs.py (or ATTACK_SPECS.add)"
    )


def markdown_table() -> str:
    """The README's attack table (``python -m tasks.attacks`` prints it;
    tests/test_attack_specs.py keeps the README equal to it)."""
    out = ["| attack | minimises | parameters (defaults) | what |", "|---|---|---|---|"]
    for spec in map(ATTACK_SPECS.get, ATTACK_SPECS.names()):
        fields = ", ".join(f"`{r.name}={r.default!r}`" for r in describe(spec.params))
        what = f"{spec.summary} (baseline)" if spec.baseline else spec.summary
        out.append(f"| `{spec.name}` | {spec.norm} | {fields or '-'} | {what} |")
    return "\n".join(out)


def _add(
    name: str,
    norm: str,
    params: type[P.AttackParams],
    impl: str,
    summary: str,
    baseline: bool = False,
    paper: bool = False,
) -> None:
    """One entry; ``impl`` is ``module:Class`` inside :mod:`tasks.attacks`."""
    spec = AttackSpec(name, norm, baseline, params, f"tasks.attacks.{impl}", summary, paper)
    ATTACK_SPECS.add(name, spec)


_add(
    "bfgs", "l1pp", P.BFGSParams, "bfgs:BFGSAttack", "Luo et al.'s L1-penalised L-BFGS", paper=True
)
_add("lbfgsb", "l2", P.LBFGSBParams, "lbfgsb:LBFGSBAttack", "Tabacof & Valle's L-BFGS-B")
_add(
    "sign",
    "linf",
    P.GradientParams,
    "gradient:SignAttack",
    "gradient sign + line search",
    paper=True,
)
_add("fgv", "l2", P.GradientParams, "gradient:GradientValueAttack", "raw gradient + line search")
_add("deepfool", "l2", P.DeepFoolParams, "deepfool:DeepFoolAttack", "DeepFool, top-k")
_add("cw", "l2", P.CWParams, "cw:CarliniWagnerL2", "Carlini & Wagner L2")
_add("ddn", "l2", P.DDNParams, "ddn:DDNAttack", "Decoupled Direction and Norm")
_add("fmn", "l2", P.FMNParams, "fmn:FMNAttack", "Pintor et al.'s Fast Minimum-Norm")
_add("fmn_linf", "linf", P.FMNLinfParams, "fmn:FMNLinf", "Fast Minimum-Norm on the linf ball")
_add("alma", "l2", P.ALMAParams, "alma:ALMAAttack", "Rony et al.'s Augmented Lagrangian")
_add("random", "linf", P.NoiseParams, "noise:RandomNoiseAttack", "uniform noise", baseline=True)
_add("gn1", "linf", P.GNParams, "gn:GN1", "Balda et al.'s GNII, Algorithm 1")
_add("gn2", "linf", P.GNParams, "gn:GN2", "Balda et al.'s GNII, Algorithm 2")
_add("gn1_iter", "linf", P.GNIterParams, "gn:GN1Iterative", "Balda et al.'s Algorithm 1-n")
_add("pgd2", "l2", P.IterativeParams, "pgd:PGD2", "L2 PGD at a per-image budget")
_add("ifgsm", "linf", P.IterativeParams, "pgd:IFGSM", "iterative FGSM at a per-image budget")
_add("qpgd2", "l2", P.SmoothPGDParams, "smooth:QuickSmoothPGD2", "Zhang et al.'s smooth qPGD2")
_add("scw", "l2", P.SmoothCWParams, "smooth:SmoothCarliniWagner", "Zhang et al.'s smooth C&W")
