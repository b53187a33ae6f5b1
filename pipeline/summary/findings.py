"""The paper's qualitative claims, tested on a run with paired exact tests and Holm.

Each claim is phrased so that ``left > right`` is the paper's direction:

- accuracy claims (McNemar's exact test at each evaluation point, on the
  attack's norm axis, over all images with a row in both conditions): a
  network's accuracy under another network's perturbation vs its own (Fig. 2,
  7); background- vs object-masked (Fig. 3, 8); every foveation vs its set-up's
  reference (Fig. 5, 13; also at norm 0, Table 2's clean gain); saliency crops
  vs 3 random crops;
- ratio claims (exact sign test): Table 1's critical norm after / before > 1;
- difference claims (exact sign test): Fig. 12's ``f(e*)`` error exceeds the
  interpolation error; Fig. 6's foveation changes the perturbation's score more
  than the image's.

Claims are derived from the condition registry, so a new foveation gets its
claims without an edit here. Holm-Bonferroni runs over every finding of the
run; "insufficient" means fewer than 10 images or 6 informative pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from pipeline.results import EFFECT_COLUMNS
from pipeline.summary.axes import native_norm
from pipeline.summary.points import Points
from pipeline.summary.protocol import paired
from pipeline.summary.stats import Test, difference_test, holm, mcnemar, ratio_test, verdict
from tasks.protocol import CONDITIONS, MP, effect_of, table1_ratios
from tasks.registry import Registry

Kind = Literal["accuracy", "ratio", "difference"]


@dataclass(frozen=True)
class Claim:
    name: str
    text: str
    kind: Kind
    left: str  # condition (accuracy, ratio) or linearity column (difference)
    right: str
    cross: bool = False  # left is another source's perturbation on the same target
    at_zero: bool = False  # also tested without perturbation (norm 0)
    absolute: bool = False  # difference of absolute values


CLAIMS: Registry[Claim] = Registry("claim")


def _declare() -> None:
    def add(claim: Claim) -> None:
        CLAIMS.add(claim.name, claim)

    add(Claim("cross_model", "another network's perturbation fools less than the network's own (Fig. 2, 7)", "accuracy", MP, MP, cross=True))  # fmt: skip
    for c in CONDITIONS.in_order():
        if c.reference is not None:
            label, ref = c.label, CONDITIONS.get(c.reference).label
            add(Claim(f"{c.name}_vs_{c.reference}", f"{label} accuracy > {ref} accuracy (Fig. 5, 13; Table 2)", "accuracy", c.name, c.reference, at_zero=True))  # fmt: skip
            add(Claim(f"{c.name}_ratio", f"critical norm {label} / {ref} > 1 (Table 1)", "ratio", c.name, c.reference))  # fmt: skip
        if c.better_than is not None:
            other = CONDITIONS.get(c.better_than).label
            add(Claim(f"{c.name}_vs_{c.better_than}", f"{c.label} accuracy > {other} accuracy (Fig. 3, 8; sec. 4)", "accuracy", c.name, c.better_than))  # fmt: skip
    add(Claim("linearity_error", "error of f(e*) > error of the local linear interpolation (Fig. 12)", "difference", "err_alone", "err_interpolation"))  # fmt: skip
    for setup, prefix in EFFECT_COLUMNS.items():
        t = effect_of(setup)
        label = t.label if t is not None else setup
        add(Claim(f"fig6_{setup}", f"the foveation changes the perturbation's score more than the image's (Fig. 6, T = {label})", "difference", f"{prefix}_perturbation", f"{prefix}_image", absolute=True))  # fmt: skip


_declare()
assert {r for r, _ in table1_ratios()} <= {c.left for c in CLAIMS.in_order()}


def findings(crit: pl.DataFrame, lin: pl.DataFrame, points: Points, alpha: float) -> pl.DataFrame:
    """One row per claim x model x attack x evaluation point (and x source for cross claims)."""
    rows: list[dict[str, object]] = []
    if not crit.is_empty():
        selfs = crit.filter(pl.col("source") == pl.col("target"))
        for (model, attack), group in selfs.group_by("source", "attack"):
            where = points.get(str(model), {}).get(str(attack), {})
            values = [float(v) for v in where.get("values", [])]  # type: ignore[attr-defined]
            rows += _model_rows(crit, group, str(model), str(attack), values)
    if not lin.is_empty():
        for (model, attack), group in lin.group_by("source", "attack"):
            for claim in (c for c in CLAIMS.in_order() if c.kind == "difference"):
                left, right = group[claim.left].to_numpy(), group[claim.right].to_numpy()
                ok = ~(np.isnan(left.astype(float)) | np.isnan(right.astype(float)))
                left, right = left[ok].astype(float), right[ok].astype(float)
                if claim.absolute:
                    left, right = np.abs(left), np.abs(right)
                rows.append(_row(claim, str(model), str(model), str(attack), "", math.nan, difference_test(left, right), float(np.median(left)) if len(left) else math.nan, float(np.median(right)) if len(right) else math.nan))  # fmt: skip
    if not rows:
        return pl.DataFrame()
    tested = [i for i, r in enumerate(rows) if r["n"]]
    adjusted = holm([float(rows[i]["p_value"]) for i in tested])  # type: ignore[arg-type]
    for i, p in zip(tested, adjusted, strict=True):
        rows[i]["p_adjusted"] = p
    for r in rows:
        r.setdefault("p_adjusted", 1.0)
        r["verdict"] = verdict(r.pop("_test"), float(r["p_adjusted"]), alpha)  # type: ignore[arg-type]
    return pl.DataFrame(rows).sort("claim", "model", "attack", "source", "value")


def _model_rows(
    crit: pl.DataFrame, selfs: pl.DataFrame, model: str, attack: str, values: list[float]
) -> list[dict[str, object]]:
    norm = native_norm(attack)
    col = f"crit_{norm}"
    out = []
    for claim in CLAIMS.in_order():
        if claim.kind == "ratio":
            pairs = paired(selfs, claim.left, claim.right, col).filter(
                pl.col("ok_a") & pl.col("ok_b") & pl.col("p_a") & pl.col("p_b") & (pl.col("b") > 0)
            )
            if pairs.height:
                test = ratio_test(pairs["a"].to_numpy(), pairs["b"].to_numpy())
                out.append(
                    _row(claim, model, model, attack, norm, math.nan, test, math.nan, math.nan)
                )
            continue
        if claim.kind != "accuracy":
            continue
        at = sorted({*values, 0.0}) if claim.at_zero else values
        if claim.cross:
            mine = crit.filter((pl.col("target") == model) & (pl.col("attack") == attack))
            for other in sorted(set(mine["source"].to_list()) - {model}):
                pairs = _join_sources(mine, other, model, col)
                out += _accuracy_rows(claim, model, other, attack, norm, at, pairs)
        else:
            pairs = paired(selfs, claim.left, claim.right, col)
            out += _accuracy_rows(claim, model, model, attack, norm, at, pairs)
    return out


def _accuracy_rows(
    claim: Claim,
    model: str,
    source: str,
    attack: str,
    norm: str,
    at: list[float],
    pairs: pl.DataFrame,
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    if pairs.is_empty():
        return out
    left, right = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    for v in at:
        ok_l, ok_r = left > v, right > v
        out.append(
            _row(
                claim,
                model,
                source,
                attack,
                norm,
                v,
                mcnemar(ok_l, ok_r),
                float(ok_l.mean()),
                float(ok_r.mean()),
            )
        )
    return out


def _join_sources(df: pl.DataFrame, other: str, model: str, col: str) -> pl.DataFrame:
    mp = df.filter(pl.col("condition") == MP)
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
        "test": {"accuracy": "mcnemar_exact", "ratio": "sign_exact", "difference": "sign_exact"}[
            claim.kind
        ],
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
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "p_value": test.p_value,
        "_test": test,
    }
