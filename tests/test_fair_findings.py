"""Findings that cannot sign a null (issue 21): both sides of a ratio searched alike, honest
censoring, intervals that cover, and the paper's claims as the tested family.

Every test here runs the project's own search (:mod:`tasks.scan`, the evaluation engine)
and statistics (:mod:`pipeline.summary`); the planted nulls use linear models whose
crossings are known, so a verdict can only come from the procedure itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.models.networks import resolve_cfg
from pipeline.stages.eval_rows import RowSink
from pipeline.stages.eval_unit import EvalUnit
from pipeline.summary.claims import claims, primary_claims
from pipeline.summary.findings import findings
from pipeline.summary.points import matched_point
from pipeline.summary.protocol import table1
from pipeline.summary.stats import censored_median, median_interval, ratio_test, tie_tolerance
from tasks.criterion import TopK
from tasks.evaluation.build import BatchData, build_conditions
from tasks.evaluation.engine import Grids, densify, evaluate
from tasks.probing import ScoreQueue
from tasks.protocol import CONDITIONS
from tests.linear import binary_critical_scale, random_linear
from tests.planted import identity_foveation
from tests.test_protocol_summary import frame, rows

pytestmark = pytest.mark.unit

LINF_GRID = (0.0, 0.5, 1.0, 2.0, 3.0, 5.3, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0)


@pytest.mark.parametrize("n", [12, 20, 40, 100])
def test_the_medians_interval_covers_at_its_stated_rate(n: int) -> None:
    """Issue 21.2: the order-statistic interval was one order statistic too narrow
    (coverage 0.85 at n = 12); simulated through the project's own interval code."""
    rng = np.random.default_rng(n)
    reps, covered = 5000, 0
    for _ in range(reps):
        values = rng.lognormal(0.0, 1.0, n)  # true median 1
        _, lo, hi = median_interval(values)
        covered += int(lo <= 1.0 <= hi)
    assert covered / reps >= 0.95, covered / reps


def test_a_median_among_censored_ratios_is_a_lower_bound_never_inf() -> None:
    """The issue's example: denominators 0.05 x5 and 1 x7, true numerators 10 x5 and 31 x7,
    the 31s censored where the search stopped (30): the true median ratio is 31."""
    before = np.array([0.05] * 5 + [1.0] * 7)
    after = np.array([10.0] * 5 + [math.inf] * 7)
    floor = np.array([math.nan] * 5 + [30.0] * 7)
    test = ratio_test(after, before, after_floor=floor)
    assert test.effect == pytest.approx(30.0) and math.isinf(test.effect_high or 0.0)
    assert test.effect <= 31.0  # a lower bound of the true median, not inf, not [200, inf]
    m = censored_median(np.array([200.0] * 5 + [30.0] * 7), np.array([200.0] * 5 + [math.inf] * 7))
    assert not m.exact and m.ci_low <= 31.0


def test_pairs_within_the_searchs_precision_are_ties() -> None:
    tie = tie_tolerance(0.05)
    before = np.ones(20)
    test = ratio_test(before * 1.04, before, tie)  # 4% apart: what two 5% searches can give
    assert test.n_discordant == 0 and test.p_value == 1.0
    assert ratio_test(before * 1.2, before, tie).n_discordant == 20


@pytest.fixture
def identity() -> Iterator[str]:
    with identity_foveation() as name:
        yield name


def linear_run(
    n: int, seed: int, conditions: list[str], attack_error: float = 1e-3
) -> pl.DataFrame:
    """``n`` images of a random binary linear model, attacked along the loss-gradient sign
    (its scale known to the attack stage's 0.1%), evaluated by the real engine and written
    as the pipeline writes rows."""
    model, _ = random_linear(2, shape=(3, 8, 8), seed=seed)
    g = torch.Generator().manual_seed(seed)
    x = 64 + 128 * torch.rand(n, 3, 8, 8, generator=g)
    labels = model(x).argmax(1)
    w = (model.weight[labels] - model.weight[1 - labels]).view_as(x)
    d = -w.sign()
    exact = binary_critical_scale(model, x, d, labels)
    scale = exact * (1 + attack_error * torch.rand(n, generator=g))  # the attack's own scale
    ids = [f"img{i:03d}" for i in range(n)]
    data = BatchData(
        x=x,
        ids=ids,
        labels=labels,
        direction=d,
        has_direction=torch.isfinite(exact),
        scale=scale,
        boxes=[[] for _ in range(n)],
        self_pair=True,
    )
    specs = [CONDITIONS.get(c) for c in conditions]
    built = build_conditions(data, specs)
    grids = Grids({"linf": LINF_GRID, "l1pp": LINF_GRID, "l2": LINF_GRID}, rtol=0.05)
    results = evaluate(ScoreQueue(model, 64), built, TopK(1), grids, "linf", lambda c: ())
    unit = EvalUnit(
        source="m", target="m", attack="sign", shard=0, image_ids=tuple(ids),
        paths=tuple(ids), labels=tuple(int(v) for v in labels), sizes=((8, 8),) * n,
        boxes=((),) * n, run_dir="", perturbations="", target_attacks="",
        source_cfg=resolve_cfg("efficientnet_lite0"), tasks=("norm_sweep", "foveation"),
    )  # fmt: skip
    sink = RowSink(unit, specs)
    for cond, result in zip(built, results, strict=True):
        sink.conditions(list(range(n)), data, cond, result, 0.0)
    tables, _ = sink.tables()
    frames = [pl.from_arrow(t) for t in tables.values() if t.num_rows]
    return pl.concat(frames, how="diagonal_relaxed")  # type: ignore[arg-type]


def test_an_identity_foveation_gives_ratio_one_and_signs_nothing(identity: str) -> None:
    """Issue 21.1: the reference reused the attack's scale (0.1%) while the foveation was
    searched to 5%, so a foveation doing nothing came out ~1.024x on every image and
    "held". Both sides now go through the same search: every ratio is 1 within the
    search's precision, every pair a tie, nothing holds."""
    crit = linear_run(40, seed=3, conditions=["mp", identity])
    t1 = table1(crit, rtol=0.05).filter(pl.col("ratio") == f"{identity} / mp")
    (row,) = t1.to_dicts()
    assert row["n"] >= 30 and abs(math.log(row["median"])) <= tie_tolerance(0.05)
    points = {"m": {"sign": {"norm": "linf", "values": [5.3], "primary": 5.3}}}
    f = findings(crit, pl.DataFrame(), points, alpha=0.05, rtol=0.05)
    ratio = f.filter(pl.col("claim_id") == f"{identity}_ratio").to_dicts()[0]
    assert ratio["family"] == "primary" and ratio["n_discordant"] == 0
    assert not (f["verdict"] == "holds").any()


def test_under_a_planted_null_through_the_search_at_most_5_percent_of_runs_hold() -> None:
    """Issue 21.1: 400 simulated runs in which the foveated critical norm is drawn from the
    same distribution as the reference's (independently, per image), both found by the
    project's grid search and refined to rtol; the verdicts come from its own tests."""
    grid = torch.tensor(LINF_GRID[1:], dtype=torch.float64)
    rng = np.random.default_rng(0)
    runs, n, signed = 400, 20, 0
    from tasks.scan import GridScan

    def searched(crossings: np.ndarray, guess: np.ndarray) -> list[float]:
        scan = GridScan(
            grid.expand(n, -1),
            guess=(grid[None] <= torch.tensor(guess)[:, None]).sum(1).clamp_min(1),
            refine=True,
            rtol=0.05,
            ceiling=torch.full((n,), 200.0),
        )
        slopes = rng.uniform(0.2, 5.0, n)  # rays of different steepness: the secant differs
        while not scan.done:
            asked = scan.pending()
            m = [float(slopes[i] * (crossings[i] - s)) for i, s in asked]
            scan.record([(i, s, v <= 0) for (i, s), v in zip(asked, m, strict=True)], m)
        return scan.result().scale.tolist()

    for _ in range(runs):
        ref = rng.lognormal(math.log(8.0), 0.8, n)
        fov = rng.lognormal(math.log(8.0), 0.8, n)  # the same distribution: no effect
        attack = ref * (1 + 1e-3 * rng.random(n))
        crit = frame(
            rows("m", "m", "mp", searched(ref, attack)),
            rows("m", "m", "object_crop", searched(fov, attack)),
        )
        points = {"m": {"sign": {"norm": "linf", "values": [5.3], "primary": 5.3}}}
        f = findings(crit, pl.DataFrame(), points, alpha=0.05, rtol=0.05)
        signed += int((f["verdict"] == "holds").any())
    assert signed / runs <= 0.05, signed / runs


#: Critical norms that put every pair of every perturbation claim in the paper's direction
#: at the evaluation point 3.0 (every foveation: 100).
AGREEING = {
    "mp": 1.0,
    "mp_object": 1.0,
    "object_mask": 2.0,
    "background_mask": 4.0,
    "three_crop": 2.5,
}


def every_primary_claim_agreeing(n: int, models: tuple[str, ...]) -> pl.DataFrame:
    """A protocol-sized run (every condition, every model, both paper attacks) in which
    every pair of every primary perturbation claim agrees with the paper."""
    parts = []
    for attack in ("bfgs", "sign"):
        for m in models:
            mine = [
                rows(m, m, c.name, [AGREEING.get(c.name, 100.0)] * n) for c in CONDITIONS.in_order()
            ]
            # another network's perturbation fools this one later than its own
            mine += [rows(other, m, "mp", [100.0] * n) for other in models if other != m]
            parts += [[{**r, "attack": attack} for r in part] for part in mine]
    return frame(*parts)


def test_twelve_agreeing_images_sign_every_primary_claim_of_a_protocol_sized_family() -> None:
    """Issue 21.5: the primary family is the paper's claims, once per (model, attack), no
    duplicates; with every pair agreeing, 12 images are enough to sign each of them."""
    n, models = 12, ("a", "b", "c")
    crit = every_primary_claim_agreeing(n, models)
    points = {
        m: {a: {"norm": "linf" if a == "sign" else "l1pp", "values": [3.0], "primary": 3.0}
            for a in ("bfgs", "sign")}
        for m in models
    }  # fmt: skip
    lin = pl.DataFrame(
        [
            {"source": m, "attack": a, "err_alone": 5.0, "err_interpolation": 1.0,
             "fov_object_perturbation": 5.0, "fov_object_image": 1.0,
             "fov_one_crop_perturbation": 5.0, "fov_one_crop_image": 1.0}
            for m in models for a in ("bfgs", "sign") for _ in range(n)
        ]
    )  # fmt: skip
    f = findings(crit, lin, points, alpha=0.05, rtol=0.05)
    primary = f.filter(pl.col("family") == "primary")
    keys = primary.select("claim_id", "model", "source", "attack", "value")
    assert keys.height == keys.unique().height  # no claim tested twice
    # every primary claim that is about the perturbation (not clean accuracy) holds
    perturbed = primary.filter(~pl.col("claim_id").str.ends_with("_clean_gain"))
    assert perturbed.height >= 70 and set(perturbed["verdict"]) == {"holds"}, perturbed.filter(
        pl.col("verdict") != "holds"
    ).select("claim_id", "verdict", "n_discordant", "p_adjusted")
    clean = f.filter(pl.col("claim_id").str.ends_with("_clean_gain"))
    assert clean.height == len(models) * 4 and set(clean["attack"]) == {""}  # once per model
    assert not (f.filter(pl.col("family") == "exploratory")["verdict"] == "holds").any()


def test_the_primary_family_is_the_papers_claims_and_a_config_can_narrow_it() -> None:
    everything = {c.name for c in claims().in_order()}
    assert primary_claims() < everything  # accuracy forms of the ratios are exploratory
    assert {"object_crop_ratio", "background_mask_vs_object_mask", "cross_model"} <= (
        primary_claims()
    )
    assert all(c.where for c in claims().in_order())  # each says where the paper says it
    assert primary_claims(("object_crop_ratio",)) == {"object_crop_ratio"}


def test_the_matched_point_is_where_mp_accuracy_falls_to_the_papers() -> None:
    """Issue 21.6: from the attack stage only. 10 images: 1 wrong clean, 1 never fooled,
    8 fooled at norms 1..8; accuracy 0.3 needs at most 2 fooled images above v."""
    attacks = pl.DataFrame(
        {
            "clean_correct": [False, True] + [True] * 8,
            "success": [False, False] + [True] * 8,
            "linf": [None, None] + [float(v) for v in range(1, 9)],
            "error": [None] * 10,
        }
    )
    v = matched_point(attacks, "linf", 0.3)
    assert v is not None and 6.0 < v < 7.0  # 7 and 8 stay right: 1 + 2 = 3 of 10
    acc = (1 + sum(1 for s in range(1, 9) if s > v)) / 10
    assert acc == pytest.approx(0.3)
    assert matched_point(attacks, "linf", 0.05) is None  # the never-fooled image stays right


class PocketRay(torch.nn.Module):
    """Two classes scored on the mean pixel value m: label 0 wins except inside pockets
    (``m`` in one of ``(lo, hi)`` intervals) and from ``far`` on."""

    def __init__(self, pockets: list[tuple[float, float]], far: float) -> None:
        super().__init__()
        self.pockets, self.far = pockets, far

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(1)
        fooled = m >= self.far
        for lo, hi in self.pockets:
            fooled |= (m > lo) & (m < hi)
        right = torch.where(fooled, -1.0, 1.0)
        return torch.stack([right, -right], dim=1)


@pytest.mark.parametrize("search", ["scan", "bisect"])
def test_every_grid_point_below_the_attacks_scale_is_checked_and_the_dense_grid_is_4x(
    search: str,
) -> None:
    """Issue 21.7: a ray fooled at 1.0, correct again, fooled from 8 on, whose attack stage
    kept 8: the base condition asks every grid point below 8 (both search modes) and flags
    the line search; a pocket between two grid points (2.2-2.6) is found only by the dense
    sample, whose searched axis is 4x denser than the search grid."""
    x = torch.full((2, 1, 4, 4), 100.0)
    d = torch.ones_like(x)
    model = PocketRay([(100.9, 101.1), (102.2, 102.6)], far=108.0)
    labels = torch.zeros(2, dtype=torch.long)
    data = BatchData(
        x=x, ids=["a", "b"], labels=labels, direction=d, has_direction=torch.ones(2, dtype=torch.bool),
        scale=torch.tensor([8.0, 8.0]), boxes=[[], []], self_pair=True, dense=1,
    )  # fmt: skip
    (mp,) = build_conditions(data, [CONDITIONS.get("mp")])
    grid = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0)
    grids = Grids({"linf": grid, "l1pp": grid, "l2": grid}, rtol=0.05, search=search)
    (found,) = evaluate(ScoreQueue(model, 16), [mp], TopK(1), grids, "linf", lambda c: ("linf",))
    assert found.line_search_earlier == [True, True]  # the grid point 1.0 fools: missed
    assert found.dense_earlier[1] is None  # the sample is image 0 only
    if search == "bisect":  # bisection stepped over the pocket at 1.0; the dense grid did not
        assert found.dense_earlier[0] is True
    else:  # scan found the pocket; the dense grid sees the ray recover above it
        assert float(found.crit["linf"][0]) <= 1.0
    assert found.dense_mismatch[0] is not None and found.dense_mismatch[0] > 0
    dense = densify(tuple(v for v in grid if v > 0))
    assert len(dense) == 4 * (len(grid) - 1) and set(grid[1:]) <= set(dense)
    assert any(2.2 < v < 2.6 for v in dense) and not any(2.2 < v < 2.6 for v in grid)


@pytest.mark.parametrize(
    ("eval_cfg", "message"),
    [
        ({"points": [500.0]}, "beyond eval.linf_grid"),
        ({"primary": ["objet_crop_ratio"]}, "did you mean 'object_crop_ratio'"),
        ({"points": [0.0]}, "positive norms"),
    ],
)
def test_a_statistic_the_run_cannot_give_is_a_config_error(
    eval_cfg: dict[str, object], message: str
) -> None:
    """An evaluation point outside every grid it would be read on, or a claim that does not
    exist, fails when the config is read, before any work (as every config error)."""
    from pipeline.config.benchmark import parse_config
    from pipeline.config.error import ConfigError

    raw = {"tasks": ["clean", "min_perturbation", "foveation"], "eval": eval_cfg}
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, "cfg.yaml")


def test_transfer_accuracy_is_over_the_images_the_source_perturbed() -> None:
    """Issue 21.4: an image the source never perturbed (inf: "never fooled") says nothing
    about transfer; it lifted cross-model accuracy at every norm. The final matrices and
    the running MLflow metrics count the perturbed images only, the all-image accuracy
    beside them; the medians also leave out images the target gets wrong clean."""
    from pipeline.results.tables import CRITICAL_SCHEMA, table_from_rows
    from pipeline.stages.eval_progress import EvalProgress
    from pipeline.summary.protocol import accuracy_curves, transfer_matrices

    crits = [
        1.0,
        2.0,
        math.inf,
        0.0,
    ]  # img2: never perturbed by the source; img3: target wrong clean
    perturbed = [True, True, False, True]
    crit = frame(rows("a", "b", "mp", crits, perturbed), rows("a", "a", "mp", [1.0, 1.0, 1.0, 1.0]))
    curves = accuracy_curves(crit, {"linf": (0.0, 1.5), "l1pp": (0.0,), "l2": (0.0,)})
    t = transfer_matrices(crit, curves).filter(
        (pl.col("target") == "b") & (pl.col("norm") == "linf")
    )
    at = {r["value"]: r for r in t.to_dicts()}
    assert at[1.5]["accuracy"] == pytest.approx(1 / 3) and at[1.5]["n"] == 3  # img1 of 0, 1, 3
    assert at[1.5]["accuracy_all_images"] == pytest.approx(2 / 4)  # the paper's, beside it
    assert at[1.5]["median_crit_linf"] == pytest.approx(1.5) and at[1.5]["n_median"] == 2
    table = table_from_rows(
        [{**r, "critical_scale": r["crit_linf"]} for r in rows("a", "b", "mp", crits, perturbed)],
        CRITICAL_SCHEMA,
    )
    (step,) = EvalProgress([("linf", 1.5)]).update([table])
    assert step.metrics["eval/sign/a/b/acc_at_linf_1.5"] == pytest.approx(1 / 3)
    assert step.metrics["eval/sign/a/b/images_done"] == 4.0
