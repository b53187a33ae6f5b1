"""The evaluation stage's settings (config key ``eval``): grids, foveations, searches, statistics."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from pipeline.config.error import ConfigError
from pipeline.summary.claims import primary_claims
from tasks.protocol import OBJECT, mp_foveations, object_foveations
from tasks.registry import RegistryError
from tasks.typed import param

_GRID_DOCS = "0..255 units of the perturbation actually added"
TRANSFER_RESOLUTIONS = ("target", "common")


@dataclass(frozen=True)
class EvalCfg:
    """The protocol's grids, foveations, tolerances and statistics (Luo et al.'s values).

    Every search runs on the grid of its attack's norm (the attack's ``norm``,
    e.g. BFGS: l1pp, Sign: linf) and stops at the grid's largest value; the
    curves of the ``mp`` condition (norm sweeps, transfer) are reported on
    every grid.
    """

    l1pp_grid: tuple[float, ...] = param(
        (0.0, 0.5, 1.0, 2.0, 3.0, 5.3, 7.5, 10.0, 15.0, 20.0, 30.0),
        "l1pp values the curves are read at and searches stop at the largest of",
    )
    l2_grid: tuple[float, ...] = param(
        (0.0, 25.0, 50.0, 100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0),
        "the same for l2",
    )
    linf_grid: tuple[float, ...] = param(
        (0.0, 0.5, 1.0, 2.0, 3.0, 5.3, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0),
        "the same for linf",
    )
    crops: tuple[str, ...] = field(
        default_factory=mp_foveations,
        metadata={"doc": "the MP foveations evaluated (default: all of them)"},
    )
    #: The MP-Object set-up's views are cost control too: ten crops of the object crop are
    #: ten network inputs per grid point, the most expensive condition of a shard.
    object_crops: tuple[str, ...] = field(
        default_factory=object_foveations,
        metadata={"doc": "the MP-Object foveations evaluated (default: all of them)"},
    )
    saliency: str = param("spectral_residual", "the saliency method of the saliency foveation")
    dense_check: int = param(
        2, "images per shard and condition also swept on the dense grids (0: none)"
    )
    alphas: tuple[float, ...] = param(
        (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0),
        "scales of the MP for the linearity task (Fig. 6)",
    )
    seed: int = param(0, "seed of every random choice of the evaluation")
    rtol: float = param(
        0.05, "precision of refined critical scales (Table 1, transfer medians), in (0, 1)"
    )
    #: ``bisect``: bisection over grid indices, ~4 rounds, exact on monotone rays (the
    #: dense sample, ``dense_check``, measures how often a ray is not, issue 10.5);
    #: ``scan``: every grid point below a reported crossing is checked too (the first
    #: crossing on the grid is never stepped over), at about twice the forwards.
    search: str = param("bisect", "bisect (about 4 rounds) or scan (every grid point, 2x forwards)")
    #: Evaluation points of the findings, on each attack's norm axis, fixed before any
    #: evaluation result exists (the paper's Table 2 point); ``median_point`` adds each
    #: model's grid point nearest its median attack-stage norm (attack stage only).
    points: tuple[float, ...] = param((5.3,), "norms the findings are tested at, on each axis")
    median_point: bool = param(True, "also each model's grid point nearest its median norm")
    #: Add each model's point where its MP accuracy (attack stage) matches the paper's
    #: Table 2 MP accuracy: the primary family's point (pipeline/summary/points.py).
    matched_point: bool = param(True, "also the point matching the paper's Table 2 accuracy")
    #: The ``adaptive`` task: draws of a random foveation averaged per gradient step
    #: (Expectation over Transformation), and fresh draws its success is judged on.
    eot_draws: int = param(20, "adaptive task: random foveation draws per gradient step (EOT)")
    fresh_draws: int = param(100, "adaptive task: fresh draws its success is judged on")
    #: The fresh-draw search's relative precision on the scale: the share it bisects on is
    #: a binomial estimate (100 draws: +-5%), so a finer scale than 1% buys nothing.
    fresh_rtol: float = param(0.01, "adaptive task: precision of the fresh-draw search", gt=0, lt=1)
    #: Which foveations the adaptive task attacks (cost control: the random ones with EOT
    #: cost most); None: every one of the run (eval.crops, the modern one, eval.object_crops).
    adaptive_foveations: tuple[str, ...] | None = param(
        None, "adaptive task: the foveations it attacks (null: every one of the run)"
    )
    #: Also compute Table 1 with each image's reference perturbation the run's best on each
    #: norm (``summary/table1_best.parquet``, pipeline/summary/best_reference.py): how much
    #: of a foveation's gain depends on how weak the paper's attack was.
    best_reference: bool = param(True, "also Table 1 on the run's best MP per image and norm")
    alpha: float = param(0.05, "family-wise error rate of the primary findings (Holm)")
    #: The claims of the primary family (claim ids, pipeline/summary/claims.py); None: the
    #: paper's. Every other finding is exploratory: reported, never "holds".
    primary: tuple[str, ...] | None = param(
        None, "claim ids of the primary family (null: the paper's claims)"
    )
    #: ``target``: a source perturbation is resized to the target's input and reported
    #: against the norm the target receives; ``common``: each pair is evaluated at the
    #: source's input size (the target network takes it), so nothing is resampled.
    transfer_resolution: str = param(
        "target", "target (resize to the target's input) or common (the source's size)"
    )
    batch_size: int | None = param(
        None, "network inputs per forward call (null: 4x the run's batch_size)"
    )
    #: On a GPU the forward batch doubles while a batch peaks under 40% of the device's
    #: memory, up to this many inputs (out of memory halves it and caps growth below).
    max_batch_size: int = param(4096, "the most inputs a GPU forward batch grows to")
    autocast: str | None = param(None, "bf16: evaluation forwards in bfloat16 (GPU), checked")

    def __post_init__(self) -> None:
        for key in (
            "l1pp_grid",
            "l2_grid",
            "linf_grid",
            "crops",
            "object_crops",
            "alphas",
            "points",
        ):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        for key in ("l1pp_grid", "l2_grid", "linf_grid"):
            grid = getattr(self, key)
            if not grid or any(b <= a for a, b in itertools.pairwise(grid)) or grid[0] < 0:
                raise ConfigError(f"eval.{key} must be ascending non-negative {_GRID_DOCS}: {grid}")
        if self.transfer_resolution not in TRANSFER_RESOLUTIONS:
            raise ConfigError(
                f"eval.transfer_resolution {self.transfer_resolution!r}: use one of "
                f"{', '.join(TRANSFER_RESOLUTIONS)}"
            )
        if self.search not in ("scan", "bisect"):
            raise ConfigError(f"eval.search {self.search!r}: use scan or bisect")
        if self.autocast not in (None, "bf16"):
            raise ConfigError(f"eval.autocast {self.autocast!r}: use bf16 or leave it out")
        if not 0 < self.rtol < 1 or not 0 < self.alpha < 1:
            raise ConfigError("eval.rtol and eval.alpha must be in (0, 1)")
        if self.eot_draws < 1 or self.fresh_draws < 1:
            raise ConfigError(
                f"eval.eot_draws = {self.eot_draws}, eval.fresh_draws = {self.fresh_draws}: "
                "a random foveation needs at least 1 draw per step and 1 fresh draw to be "
                "judged on (the defaults are 20 and 100)"
            )
        if any(not v > 0 for v in self.points):
            raise ConfigError(f"eval.points must be positive norms, got {list(self.points)}")
        if self.primary is not None:
            object.__setattr__(self, "primary", tuple(self.primary))
            try:
                primary_claims(self.primary)
            except RegistryError as exc:
                raise ConfigError(f"eval.primary: {exc}") from None

    def grid(self, norm: str) -> tuple[float, ...]:
        """The grid of a norm axis (l1pp, l2, linf)."""
        return tuple(getattr(self, f"{norm}_grid"))

    def evaluated_views(self, setup: str) -> tuple[str, ...]:
        """The foveations (views) of a set-up this run evaluates: eval.object_crops for
        MP-Object's, eval.crops for the MP set-up's."""
        return self.object_crops if setup == OBJECT else self.crops

    def grids(self) -> dict[str, tuple[float, ...]]:
        return {n: self.grid(n) for n in ("l1pp", "l2", "linf")}
