"""The paper's claims, tested on a run with paired exact tests and Holm inside the primary family.

Each claim (:mod:`pipeline.summary.claims`) is phrased so that ``left > right`` is
the paper's direction:

- accuracy claims (McNemar's exact test, on the attack's norm axis, over the images
  with a row in both conditions; cross-model pairs over the images both sources
  perturbed): at the run's evaluation points, or at norm 0 once per model;
- ratio claims (exact sign test): a critical norm after / before > 1, both sides found
  by the same refined search, a pair within the search's precision a tie, a censored
  side counted only where its floor decides the pair;
- difference claims (exact sign test): Fig. 12's ``f(e*)`` error exceeds the
  interpolation error; Fig. 6's foveation changes the perturbation's score more than
  the image's.

``family`` says which rows the paper's claims are (primary, Holm inside it) and which
are exploratory (never "holds"). A test that cannot reach ``p < alpha`` at its number
of informative pairs is "insufficient" and enters no family.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from pipeline.summary.adaptive import adaptive_pairs, gain_test
from pipeline.summary.axes import native_norm
from pipeline.summary.claims import Claim, claims, primary_claims
from pipeline.summary.points import Points, primary_point
from pipeline.summary.protocol import paired, ratio_pairs
from pipeline.summary.stats import (
    Test,
    difference_test,
    holm,
    mcnemar,
    ratio_test,
    tie_tolerance,
    verdict,
)
from tasks.attacks.specs import attack_spec
from tasks.protocol import MP

PRIMARY, EXPLORATORY = "primary", "exploratory"


def findings(
    crit: pl.DataFrame,
    lin: pl.DataFrame,
    points: Points,
    alpha: float,
    rtol: float = 0.0,
    primary: tuple[str, ...] | None = None,
    adaptive: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per claim x model x attack (x source for cross claims, x evaluation point for
    accuracy claims; clean gains once per model). ``rtol``: the refined search's precision,
    which makes two critical norms a tie; ``primary``: the claims of the primary family
    (default: the paper's)."""
    wanted = primary_claims(primary)
    registry = claims()
    rows: list[dict[str, object]] = []
    if not crit.is_empty():
        selfs = crit.filter(pl.col("source") == pl.col("target"))
        clean_done: set[str] = set()
        by_pair = sorted(selfs.group_by("source", "attack"), key=lambda g: _attack_order(g[0]))
        for (model, attack), group in by_pair:
            where = points.get(str(model), {}).get(str(attack), {})
            values = [float(v) for v in where.get("values", [])]  # type: ignore[attr-defined]
            first = str(model) not in clean_done
            clean_done.add(str(model))
            rows += _model_rows(
                registry.in_order(),
                crit,
                group,
                str(model),
                str(attack),
                values,
                primary_point(where),
                rtol,
                first,
            )
    if not lin.is_empty():
        for (model, attack), group in lin.group_by("source", "attack"):
            for claim in (c for c in registry.in_order() if c.kind == "difference"):
                left, right = group[claim.left].to_numpy(), group[claim.right].to_numpy()
                ok = ~(np.isnan(left.astype(float)) | np.isnan(right.astype(float)))
                left, right = left[ok].astype(float), right[ok].astype(float)
                if claim.absolute:
                    left, right = np.abs(left), np.abs(right)
                rows.append(_row(claim, str(model), str(model), str(attack), "", math.nan, difference_test(left, right), float(np.median(left)) if len(left) else math.nan, float(np.median(right)) if len(right) else math.nan))  # fmt: skip
    if adaptive is not None and not adaptive.is_empty():
        for (model, attack), _ in sorted(
            adaptive.group_by("source", "attack"), key=lambda g: str(g[0])
        ):
            for claim in (c for c in registry.in_order() if c.kind == "adaptive"):
                pairs = adaptive_pairs(adaptive, str(model), str(attack), claim.left)
                if pairs.height:
                    norm = native_norm(str(attack))
                    rows.append(_row(claim, str(model), str(model), str(attack), norm, math.nan, gain_test(pairs), math.nan, math.nan))  # fmt: skip
    if not rows:
        return pl.DataFrame()
    for r in rows:
        claim = registry.get(str(r["claim_id"]))
        paper = r["attack"] == "" or attack_spec(str(r["attack"])).paper
        at_point = claim.kind != "accuracy" or r.pop("_primary_point")
        r.pop("_primary_point", None)
        r["family"] = PRIMARY if claim.name in wanted and paper and at_point else EXPLORATORY
    for family in (PRIMARY, EXPLORATORY):
        tested = [
            i
            for i, r in enumerate(rows)
            if r["family"] == family and r["_test"].sufficient(alpha)  # type: ignore[attr-defined]
        ]
        adjusted = holm([float(rows[i]["p_value"]) for i in tested])  # type: ignore[arg-type]
        for i, p in zip(tested, adjusted, strict=True):
            rows[i]["p_adjusted"] = p
    for r in rows:
        r.setdefault("p_adjusted", 1.0)
        test: Test = r.pop("_test")  # type: ignore[assignment]
        found = verdict(test, float(r["p_adjusted"]), alpha)  # type: ignore[arg-type]
        if r["family"] == EXPLORATORY and found in ("holds", "reversed"):
            found = "inconclusive"  # exploratory: reported with its p, never signed
        r["verdict"] = found
    return pl.DataFrame(rows).sort("family", "claim", "model", "attack", "source", "value")


def _attack_order(key: tuple[object, ...]) -> tuple[bool, str, str]:
    """The paper's attacks first, so that the once-per-model clean claims use one of them."""
    model, attack = str(key[0]), str(key[1])
    return (not attack_spec(attack).paper, model, attack)


def _model_rows(
    every: list[Claim],
    crit: pl.DataFrame,
    selfs: pl.DataFrame,
    model: str,
    attack: str,
    values: list[float],
    primary_value: float | None,
    rtol: float,
    with_clean: bool,
) -> list[dict[str, object]]:
    norm = native_norm(attack)
    col = f"crit_{norm}"
    out = []
    for claim in every:
        if claim.kind == "ratio":
            pairs = ratio_pairs(selfs, claim.left, claim.right, norm)
            if pairs.height:
                test = ratio_test(
                    pairs["a"].to_numpy(),
                    pairs["b"].to_numpy(),
                    tie_tolerance(rtol),
                    pairs["floor_a"].to_numpy(),
                    pairs["floor_b"].to_numpy(),
                )
                out.append(
                    _row(claim, model, model, attack, norm, math.nan, test, math.nan, math.nan)
                )
            continue
        if claim.kind != "accuracy":
            continue
        if claim.at == "zero":
            if with_clean:  # attack-independent: once per model, with the attack left blank
                pairs = paired(selfs, claim.left, claim.right, col)
                out += _accuracy_rows(claim, model, model, "", "", [0.0], pairs, 0.0)
            continue
        if claim.cross:
            mine = crit.filter((pl.col("target") == model) & (pl.col("attack") == attack))
            for other in sorted(set(mine["source"].to_list()) - {model}):
                pairs = _join_sources(mine, other, model, col)
                out += _accuracy_rows(
                    claim, model, other, attack, norm, values, pairs, primary_value
                )
        else:
            pairs = paired(selfs, claim.left, claim.right, col)
            out += _accuracy_rows(claim, model, model, attack, norm, values, pairs, primary_value)
    return out


def _accuracy_rows(
    claim: Claim,
    model: str,
    source: str,
    attack: str,
    norm: str,
    at: list[float],
    pairs: pl.DataFrame,
    primary_value: float | None,
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    if pairs.is_empty():
        return out
    left, right = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    for v in at:
        ok_l, ok_r = left > v, right > v
        row = _row(claim, model, source, attack, norm, v, mcnemar(ok_l, ok_r), float(ok_l.mean()), float(ok_r.mean()))  # fmt: skip
        row["_primary_point"] = primary_value is not None and v == primary_value
        out.append(row)
    return out


def _join_sources(df: pl.DataFrame, other: str, model: str, col: str) -> pl.DataFrame:
    """Another source's perturbation against the target's own, on the images *both*
    perturbed (an image a source never perturbed says nothing about transfer)."""
    mp = df.filter((pl.col("condition") == MP) & pl.col("has_perturbation"))
    left = mp.filter(pl.col("source") == other).select("image_id", pl.col(col).alias("a"))
    right = mp.filter(pl.col("source") == model).select("image_id", pl.col(col).alias("b"))
    return left.join(right, on="image_id")


def _row(
    claim: Claim,
    model: str,
    source: str,
    attack: str,
    norm: str,
    value: float,
    test: Test,
    left: float,
    right: float,
) -> dict[str, object]:
    return {
        "claim": claim.text,
        "claim_id": claim.name,
        "test": "mcnemar_exact" if claim.kind == "accuracy" else "sign_exact",
        "model": model,
        "source": source,
        "attack": attack,
        "norm": norm,
        "value": value,
        "left": left,
        "right": right,
        "n": test.n,
        "n_discordant": test.n_discordant,
        "effect": test.effect,
        # a median that censored ratios decide: ``effect`` is then its lower bound
        "effect_lower_bound": test.effect_high is not None and test.effect_high != test.effect,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "p_value": test.p_value,
        "_test": test,
    }
