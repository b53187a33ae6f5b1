"""The comparisons of ``foveabench bench``: one registry entry per (our attack, peer) pair.

Each :class:`Pair` is declared once, with everything the runner and the tables
need: our registry attack, the peer and how to call it, and the settings both
sides share, written once under our parameter names and renamed for the peer
(``max_iter`` is Foolbox's ``steps``). The norm both sides minimise is never
written here: it is the attack class's own ``norm``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pipeline.bench.peers import (
    adv_lib_attack,
    art_fgsm_minimal,
    foolbox3_minimization,
    foolbox24_lbfgs,
)
from tasks.attacks.specs import attack_spec
from tasks.registry import Registry


@dataclass(frozen=True)
class PairSettings:
    """What a peer may depend on besides the images: the bench's knobs and our result."""

    batch: int
    rtol: float
    ours_median: float  # our median norm on these images (sets ART's step: same precision)


#: Runs a peer on 0..255 images with its keyword arguments; returns 0..255 adversarials
#: (NaN rows: images the peer did not finish).
PeerRun = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, dict[str, Any], PairSettings], torch.Tensor
]


def _kw(d: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())


def _no_runtime(settings: PairSettings) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Pair:
    """One comparison: our attack and the peer that does the same job, on the same settings."""

    attack: str  # our registry name
    peer: str  # the peer as the tables name it
    run_peer: PeerRun
    peer_call: str  # the peer's attack as the notes write it
    shared: Mapping[str, Any] = field(default_factory=dict)  # both sides, under our names
    peer_names: Mapping[str, str] = field(default_factory=dict)  # our name -> the peer's keyword
    ours_only: Mapping[str, Any] = field(default_factory=dict)  # ours, no peer counterpart
    peer_only: Mapping[str, Any] = field(default_factory=dict)  # the peer's, no counterpart of ours
    peer_runtime: Callable[[PairSettings], dict[str, Any]] = _no_runtime  # set from the run
    peer_note: str = ""  # what the keywords do not say (a default the peer keeps, units)
    max_peer_images: int | None = None  # peers too slow for N images run on the first M
    max_images: int | None = None  # both sides, when even ours is too slow for N here

    @property
    def norm(self) -> str:
        """The norm both sides minimise: our attack class's own (0..255 units)."""
        spec = attack_spec(self.attack)
        return spec.norm_for(spec.build_params(self.params))

    @property
    def params(self) -> dict[str, Any]:
        """Our attack's parameters."""
        return {**self.shared, **self.ours_only}

    def peer_kwargs(self, settings: PairSettings) -> dict[str, Any]:
        """The peer's keyword arguments: the shared settings renamed, then its own."""
        renamed = {self.peer_names.get(k, k): v for k, v in self.shared.items()}
        return {**renamed, **self.peer_only, **self.peer_runtime(settings)}

    def describe_ours(self) -> str:
        return f"{self.attack}({_kw(self.params)})"

    def describe_peer(self, settings: PairSettings) -> str:
        note = f"; {self.peer_note}" if self.peer_note else ""
        return f"{self.peer_call}({_kw(self.peer_kwargs(settings))}){note}"


PAIRS: Registry[Pair] = Registry("bench pair")


# ----------------------------------------------------------------------------- peer runners


def _art_step(s: PairSettings) -> float:
    # ART's linear search has absolute precision eps_step; ours is relative
    # (rtol). They agree at our median norm.
    return max(s.rtol * s.ours_median, 1e-3)


def _art_runtime(s: PairSettings) -> dict[str, Any]:
    return {"eps_step": _art_step(s), "batch_size": s.batch}


def _run_art(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, kw: dict[str, Any], s: PairSettings
) -> torch.Tensor:
    return art_fgsm_minimal(model, x, y, **kw)


def _run_foolbox24(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, kw: dict[str, Any], s: PairSettings
) -> torch.Tensor:
    return foolbox24_lbfgs(model, x, y, **kw)


def _chunked(peer: Callable[..., torch.Tensor], attack: str) -> PeerRun:
    """A peer's batched attack function, run in chunks of the bench's batch size."""

    def run(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, kw: dict[str, Any], s: PairSettings
    ) -> torch.Tensor:
        chunks = [
            peer(model, x[i : i + s.batch], y[i : i + s.batch], attack=attack, **kw)
            for i in range(0, len(x), s.batch)
        ]
        return torch.cat(chunks)

    return run


def _foolbox3(attack: str) -> PeerRun:
    """A Foolbox 3 minimisation attack (``epsilons=None``)."""
    return _chunked(foolbox3_minimization, attack)


def _adv_lib(attack: str) -> PeerRun:
    """An adv_lib attack (the authors' reference code for DDN, FMN and ALMA)."""
    return _chunked(adv_lib_attack, attack)


# ----------------------------------------------------------------------------- the pairs


def _art_fgsm(loss: str, max_peer_images: int | None = None) -> Pair:
    """Our ``sign`` with ``loss`` against ART's minimal FGSM (its loss: cross-entropy)."""
    return Pair(
        attack="sign",
        peer="ART FastGradientMethod",
        run_peer=_run_art,
        peer_call="FastGradientMethod",
        ours_only={"loss": loss},
        peer_only={"eps": 16.0},  # the cap of ART's linear search
        peer_runtime=_art_runtime,
        peer_note="norm=inf, minimal=True; eps, eps_step in 0..255 units (ART sees them / 255)",
        max_peer_images=max_peer_images,
    )


# FGSM's loss, as ART uses it: the same direction definition. ART's linear search
# costs (hardest image's Linf / eps_step) forwards of the whole batch, thousands at
# our precision, so it gets the first 4 images.
PAIRS.add("sign", _art_fgsm("ce", max_peer_images=4))
# Luo et al.'s loss (our default) against ART's cross-entropy.
PAIRS.add("sign-score", _art_fgsm("score"))

#: Foolbox 2.4's L-BFGS takes many minutes per ImageNet image on a CPU; past this
#: budget the unfinished image's time is reported as a lower bound.
LBFGS_BUDGET_S = 240.0

PAIRS.add(
    "bfgs",
    Pair(
        attack="bfgs",
        peer="Foolbox 2.4 LBFGSAttack",
        run_peer=_run_foolbox24,
        peer_call="v1.attacks.LBFGSAttack",
        peer_only={"distance": "MAE", "maxiter": 150, "epsilon": 1e-5, "budget_s": LBFGS_BUDGET_S},
        peer_note="criterion=Misclassification(), per image, budget_s of wall time in all",
        max_peer_images=2,
        max_images=16,
    ),
)
PAIRS.add(
    "deepfool",
    Pair(
        attack="deepfool",
        peer="Foolbox 3 L2DeepFoolAttack",
        run_peer=_foolbox3("L2DeepFoolAttack"),
        peer_call="L2DeepFoolAttack",
        shared={"candidates": 10, "overshoot": 0.02, "max_iter": 50},
        peer_names={"max_iter": "steps"},
        ours_only={"norm": "l2"},
        peer_note="loss=logits (Foolbox's default)",
        max_peer_images=16,
    ),
)
PAIRS.add(
    "cw",
    Pair(
        attack="cw",
        peer="Foolbox 3 L2CarliniWagnerAttack",
        run_peer=_foolbox3("L2CarliniWagnerAttack"),
        peer_call="L2CarliniWagnerAttack",
        shared={
            "binary_steps": 5,
            "max_iter": 100,
            "lr": 0.01,
            "initial_const": 1e-3,
            "kappa": 0.0,
        },
        peer_names={
            "binary_steps": "binary_search_steps",
            "max_iter": "steps",
            "lr": "stepsize",
            "kappa": "confidence",
        },
        peer_note="abort_early=True (Foolbox's default)",
        max_images=4,
    ),
)

# adv_lib: Rony's and Pintor's reference implementations. Same steps on both sides and
# the same query budget: adv_lib spends 2 passes a step; ours gets ``budget = 2 * steps``
# in all (its clean pass and line search included, so one step fewer).
ADV_LIB_STEPS = 100


def _adv_lib_pair(attack: str, call: str, **fields: Any) -> Pair:
    return Pair(
        attack=attack,
        peer=f"adv_lib {call}",
        run_peer=_adv_lib(call),
        peer_call=call,
        ours_only={"budget": 2 * ADV_LIB_STEPS, **fields.pop("ours_only", {})},
        **fields,
    )


def _ddn_pair(loss: str, note: str) -> Pair:
    return _adv_lib_pair(
        "ddn",
        "ddn",
        shared={"steps": ADV_LIB_STEPS, "gamma": 0.05, "init_norm": 1.0},
        ours_only={"loss": loss},
        peer_names={"gamma": "γ"},
        peer_only={"levels": None},
        peer_note=f"cross-entropy loss ({note}); levels=None: no quantisation",
    )


PAIRS.add("ddn", _ddn_pair("margin", "ours: the top-k margin, its default"))
PAIRS.add("ddn-ce", _ddn_pair("ce", "ours too: the paper's loss"))
PAIRS.add(
    "fmn",
    _adv_lib_pair(
        "fmn",
        "fmn",
        shared={
            "steps": ADV_LIB_STEPS,
            "alpha_init": 1.0,
            "alpha_final": 0.01,
            "gamma_init": 0.05,
            "gamma_final": 0.001,
        },
        peer_names={
            "alpha_init": "α_init",
            "alpha_final": "α_final",
            "gamma_init": "γ_init",
            "gamma_final": "γ_final",
        },
        ours_only={"norm": "l2"},
        peer_only={"norm": 2},
    ),
)
PAIRS.add(
    "alma",
    _adv_lib_pair(
        "alma",
        "alma",
        shared={
            "steps": ADV_LIB_STEPS,
            "lr_init": 0.1,
            "lr_reduction": 0.01,
            "mu_init": 1.0,
            "rho_init": 1.0,
            "check_steps": 10,
            "tau": 0.95,
            "rho_growth": 1.2,
            "alpha": 0.9,
        },
        peer_names={
            "steps": "num_steps",
            "mu_init": "μ_init",
            "rho_init": "ρ_init",
            "tau": "τ",
            "rho_growth": "γ",
            "alpha": "α",
        },
        ours_only={"norm": "l2"},
        peer_only={"distance": "l2"},
        peer_note="penalty P2 (its default); the paper's 1000 steps are a GPU budget",
    ),
)
