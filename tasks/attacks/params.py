"""Every attack's parameters: one frozen, keyword-only dataclass per parameter set.

Defaults are written once, here (``foveabench run --help-attack NAME`` and the
README's attack table print them); the config parser builds these when it
reads a YAML file, so a misspelled key fails on the driver before anything
heavy starts. Attacks that share an optimiser share its parameter set (``cw``
and ``scw``; ``pgd2``, ``ifgsm`` and ``qpgd2``). No torch in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from tasks.typed import ParamError, Params, param

#: Losses whose gradient gives ``sign``/``fgv`` their direction (see :mod:`tasks.attacks.losses`).
LossName = Literal["score", "prob", "ce"]


@dataclass(frozen=True, kw_only=True)
class AttackParams(Params):
    """Base of every attack's parameters."""

    def minimised_norm(self) -> str | None:
        """The norm these settings make the attack minimise, when a parameter chooses it."""
        return None


@dataclass(frozen=True, kw_only=True)
class GradientParams(AttackParams):
    """One-gradient attacks (``sign``, ``fgv``)."""

    loss: LossName = param("ce", "loss whose gradient is the direction ('score': true logit)")


@dataclass(frozen=True, kw_only=True)
class NoiseParams(AttackParams):
    """The random baseline."""

    seed: int = param(0, "seed of the uniform noise generator")


@dataclass(frozen=True, kw_only=True)
class QueryBudgetParams(AttackParams):
    """An iterative attack with an optional cap on forward + backward passes per image.

    The cap counts every pass the attack makes for an image: the clean pass, the
    iterations and the final line search. An attack that reaches it stops that
    image and returns the best adversarial iterate it saw (AttackBench's rule).
    The iterations stop short of the cap by what the line search needs to bring that
    iterate down to the boundary (at most a quarter of the cap,
    :meth:`~tasks.attacks.base.Attack.search_reserve`): an iterate well inside the
    adversarial region is worth more scaled down than a few more steps.
    """

    #: Passes per image of one iteration (one forward and one backward).
    step_passes: ClassVar[int] = 2

    budget: int | None = param(
        None, "forward + backward passes per image, all included (null: no cap)", ge=1
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        need = 1 + self.step_passes  # the clean pass and one iteration
        if self.budget is not None and self.budget < need:
            raise ParamError(
                f"budget = {self.budget} is below the {need} passes one iteration needs "
                f"(1 clean forward + {self.step_passes} per step)"
            )


@dataclass(frozen=True, kw_only=True)
class BFGSParams(AttackParams):
    """Luo et al.'s L1-penalised hinge with projected L-BFGS."""

    eta: float = param(1e-6, "weight of ||e||_1 in the objective (the paper's value)", ge=0)
    max_iter: int = param(100, "L-BFGS iterations", ge=1)
    history: int = param(10, "L-BFGS memory (curvature pairs kept)", ge=1)
    score: Literal["logit", "prob"] = param("logit", "score the hinge decreases")
    polish: int = param(
        0, "evaluations past the first adversarial point (0: stop there, as the paper)", ge=0
    )


@dataclass(frozen=True, kw_only=True)
class LBFGSBParams(AttackParams):
    """Tabacof & Valle's random-target L-BFGS-B with a search on C."""

    c_init: float = param(1e-2, "first value of C, the weight of the cross-entropy", gt=0)
    c_growth: float = param(10.0, "factor C grows by until the target is reached", gt=1)
    search_steps: int = param(8, "L-BFGS solves in the search on C", ge=1)
    max_iter: int = param(150, "L-BFGS iterations per solve (the paper's)", ge=1)
    history: int = param(15, "L-BFGS corrections kept (the paper's)", ge=1)
    seed: int = param(0, "seed of the random targets")


@dataclass(frozen=True, kw_only=True)
class CWParams(QueryBudgetParams):
    """Carlini & Wagner's L2 optimisation (shared by ``cw`` and ``scw``)."""

    binary_steps: int = param(9, "binary-search steps on the constant c (the paper's)", ge=1)
    max_iter: int = param(1000, "Adam iterations per value of c", ge=1)
    lr: float = param(1e-2, "Adam learning rate", gt=0)
    initial_const: float = param(1e-3, "first value of c", gt=0)
    kappa: float = param(0.0, "confidence margin of the hinge", ge=0)
    abort_early: bool = param(True, "stop a value of c once the loss stalls")


@dataclass(frozen=True, kw_only=True)
class DDNParams(QueryBudgetParams):
    """Rony et al.'s Decoupled Direction and Norm (values from the paper)."""

    steps: int = param(100, "iterations", ge=1)
    gamma: float = param(0.05, "factor the norm shrinks or grows by per step", gt=0, lt=1)
    init_norm: float = param(1.0, "first norm, in units of 255", gt=0)
    alpha: float = param(1.0, "first step size, cosine-annealed to alpha / 100", gt=0)
    loss: Literal["margin", "ce"] = param(
        "margin", "direction: the top-k margin, or the paper's cross-entropy ('ce')"
    )


@dataclass(frozen=True, kw_only=True)
class FMNParams(QueryBudgetParams):
    """Pintor et al.'s Fast Minimum-Norm attack (defaults of the authors' code)."""

    norm: Literal["l1pp", "l2", "linf"] = param("l2", "norm minimised (l1pp: the L1 ball)")
    steps: int = param(100, "iterations", ge=1)
    alpha_init: float = param(1.0, "first step size, in units of 255", gt=0)
    alpha_final: float = param(0.01, "last step size (cosine annealing), units of 255", gt=0)
    gamma_init: float = param(0.05, "first factor the ball radius shrinks or grows by", gt=0, lt=1)
    gamma_final: float = param(0.001, "last such factor (cosine annealing)", gt=0, lt=1)

    def minimised_norm(self) -> str | None:
        return self.norm


@dataclass(frozen=True, kw_only=True)
class FMNLinfParams(FMNParams):
    """FMN on the linf ball: its own catalogue entry, so the evaluation stage reads it on
    the linf axis (an attack's axis is its entry's; ``fmn: {norm: linf}`` is refused there)."""

    norm: Literal["l1pp", "l2", "linf"] = param("linf", "norm minimised (l1pp: the L1 ball)")


@dataclass(frozen=True, kw_only=True)
class ALMAParams(QueryBudgetParams):
    """Rony et al.'s Augmented Lagrangian attack (defaults of the authors' code)."""

    norm: Literal["l1pp", "l2"] = param("l2", "distance minimised (l1pp: the L1 norm)")
    steps: int = param(1000, "iterations (one forward and one backward each)", ge=1)
    lr_init: float = param(0.1, "first RMSProp learning rate, in units of 255", gt=0)
    lr_reduction: float = param(0.01, "final learning rate / first, after the first success", gt=0)
    mu_init: float = param(1.0, "first Lagrange multiplier", gt=0)
    rho_init: float = param(1.0, "first penalty parameter", gt=0)
    check_steps: int = param(10, "iterations between checks of the constraint's progress", ge=1)
    tau: float = param(0.95, "progress the constraint must make per check", gt=0, lt=1)
    rho_growth: float = param(1.2, "factor the penalty grows by without progress", gt=1)
    alpha: float = param(0.9, "moving-average weight (multiplier, RMSProp, momentum)", gt=0, lt=1)
    logit_tolerance: float = param(1e-4, "added to the logit difference (no ties on the boundary)")

    def minimised_norm(self) -> str | None:
        return self.norm


@dataclass(frozen=True, kw_only=True)
class DeepFoolParams(AttackParams):
    """Moosavi-Dezfooli et al.'s DeepFool."""

    norm: Literal["l2", "linf"] = param("l2", "norm of the linearised minimal step")
    candidates: int = param(10, "highest other classes tried per step (at least top_k)", ge=1)
    overshoot: float = param(0.02, "relative overshoot of the accumulated step (the paper's)", ge=0)
    max_iter: int = param(50, "iterations (the paper's)", ge=1)

    def minimised_norm(self) -> str | None:
        return self.norm


@dataclass(frozen=True, kw_only=True)
class BudgetParams(AttackParams):
    """Fixed-budget iterations turned minimum-perturbation by a per-image budget."""

    steps: int = param(10, "iterations at one budget", ge=1)
    max_doublings: int = param(3, "times the budget doubles while the attack fails", ge=0)


@dataclass(frozen=True, kw_only=True)
class IterativeParams(BudgetParams):
    """PGD2 and I-FGSM (Zhang et al. sec. 5.1)."""

    rel_step: float = param(0.25, "step size as a fraction of the budget", gt=0)


@dataclass(frozen=True, kw_only=True)
class GNParams(AttackParams):
    """Balda et al.'s GNII (Algorithms 1 and 2)."""

    p: Literal["linf", "l2"] = param("linf", "norm of the constraint (the paper's experiments)")

    def minimised_norm(self) -> str | None:
        return self.p


@dataclass(frozen=True, kw_only=True)
class GNIterParams(BudgetParams, GNParams):
    """Balda et al.'s Algorithm 1-n: ``steps`` GNII steps of budget ``eps / steps``."""


@dataclass(frozen=True, kw_only=True)
class SmoothingCfg(AttackParams):
    """Zhang et al.'s image-guided Laplacian smoothing (their ImageNet settings)."""

    alpha: float = param(
        0.997, "smoothing strength alpha of L_a = (I - a Wn) / (1 - a)", ge=0, lt=1
    )
    neighbours: Literal[4, 8] = param(8, "pixel neighbours in the graph")
    kernel: Literal["laplacian", "gaussian"] = param("laplacian", "feature kernel on the colours")
    sigma: float = param(0.1, "feature kernel scale, colours in [0, 1]", gt=0)
    cg_iters: int = param(
        200, "CG iterations per solve: the cap when tol > 0, the exact count when tol = 0", ge=1
    )
    tol: float = param(
        1e-3,
        "stop CG at this relative residual, warm-started from the last solve (0: the paper's "
        "fixed cg_iters from zero)",
        ge=0,
    )
    adjoint_tol: float | None = param(
        None,
        "relative residual of the backward (adjoint) solve when tol > 0 (null: tol)",
        ge=0,
    )


@dataclass(frozen=True, kw_only=True)
class SmoothPGDParams(SmoothingCfg, IterativeParams):
    """qPGD2: PGD2 with the gradient smoothed every step."""


@dataclass(frozen=True, kw_only=True)
class SmoothCWParams(SmoothingCfg, CWParams):
    """sC&W: C&W on the smoothed latent variable.

    Defaults differ from ``cw``'s (docs/benchmarks.md): from c = 1e-3 the first
    binary steps (x10 each) cannot fool top-5 with a smooth perturbation and each
    costs up to ``max_iter`` steps of two CG solves, so c starts at 1 and the search
    has 5 steps of at most 50 iterations.
    """

    binary_steps: int = param(5, "binary-search steps on the constant c", ge=1)
    max_iter: int = param(50, "Adam iterations per value of c", ge=1)
    initial_const: float = param(1.0, "first value of c", gt=0)


__all__ = [
    "ALMAParams",
    "AttackParams",
    "BFGSParams",
    "BudgetParams",
    "CWParams",
    "DDNParams",
    "DeepFoolParams",
    "FMNParams",
    "GNIterParams",
    "GNParams",
    "GradientParams",
    "IterativeParams",
    "LBFGSBParams",
    "LossName",
    "NoiseParams",
    "ParamError",
    "QueryBudgetParams",
    "SmoothCWParams",
    "SmoothPGDParams",
    "SmoothingCfg",
]
