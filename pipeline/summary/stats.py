"""Paired exact tests for the findings, and Holm's correction across a run.

- Accuracy differences on the same images: McNemar's exact test (a binomial
  test on the discordant pairs), with the effect (difference of accuracies)
  and a 95% interval that inverts the same test (Clopper-Pearson on the
  discordant share, scaled by the share of discordant images).
- Paired ratios of critical norms (right-censored: inf = never fooled) and
  paired errors: the exact sign test (censoring only orders a pair, which is
  all a sign test needs; ties are dropped), with the median ratio / median
  difference and its distribution-free 95% interval from order statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
MIN_IMAGES = 10
MIN_DISCORDANT = 6


@dataclass(frozen=True)
class Test:
    """One paired test: size, informative pairs, effect with 95% interval, p."""

    n: int
    n_discordant: int  # McNemar: discordant pairs; sign test: untied pairs
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    direction: int  # +1: the pairs favour left > right (or ratio > 1), -1: the opposite, 0: tie

    @property
    def sufficient(self) -> bool:
        return self.n >= MIN_IMAGES and self.n_discordant >= MIN_DISCORDANT


def binomial_p(k: int, n: int) -> float:
    """Two-sided exact binomial test of p = 1/2: twice the smaller tail, at most 1."""
    if n == 0:
        return 1.0
    tail = min(stats.binom.cdf(k, n, 0.5), stats.binom.sf(k - 1, n, 0.5))
    return float(min(1.0, 2 * tail))


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact interval of a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    a = (1 - confidence) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def mcnemar(left: np.ndarray, right: np.ndarray) -> Test:
    """``left`` vs ``right`` correctness (bool) on the same images; effect = left - right."""
    left, right = np.asarray(left, bool), np.asarray(right, bool)
    n = len(left)
    b = int((left & ~right).sum())  # left right, right wrong
    c = int((~left & right).sum())
    d = b + c
    if n == 0:
        return Test(0, 0, math.nan, math.nan, math.nan, 1.0, 0)
    lo, hi = clopper_pearson(b, d)
    share = d / n
    effect = (b - c) / n
    ci = (share * (2 * lo - 1), share * (2 * hi - 1))
    return Test(n, d, effect, *ci, binomial_p(b, d), int(np.sign(b - c)))


def sign_test(diff_sign: np.ndarray) -> tuple[int, int, float, int]:
    """(positives, untied, p, direction) of the exact sign test on paired differences."""
    s = np.sign(np.asarray(diff_sign, float))
    pos, neg = int((s > 0).sum()), int((s < 0).sum())
    return pos, pos + neg, binomial_p(pos, pos + neg), int(np.sign(pos - neg))


def median_interval(
    values: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """Median and its distribution-free interval from order statistics (inf allowed)."""
    v = np.sort(np.asarray(values, float))
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan
    median = (
        float(np.median(v)) if np.isfinite(v[(n - 1) // 2 : n // 2 + 1]).all() else float(v[n // 2])
    )
    a = (1 - confidence) / 2
    lo_k = int(stats.binom.ppf(a, n, 0.5))  # order statistics around the median
    hi_k = n - lo_k - 1
    lo_k = max(0, min(lo_k, n - 1))
    hi_k = max(0, min(hi_k, n - 1))
    return median, float(v[lo_k]), float(v[hi_k])


def ratio_test(after: np.ndarray, before: np.ndarray) -> Test:
    """Sign test of ``after > before`` on paired critical norms (inf: censored, never fooled).

    Effect: the median ratio after / before (a censored numerator gives inf, so a
    median above the censoring share is reported as inf).
    """
    after, before = np.asarray(after, float), np.asarray(before, float)
    keep = before > 0
    after, before = after[keep], before[keep]
    sign = np.where(
        np.isinf(after) & np.isinf(before), 0.0, np.where(np.isinf(after), 1.0, after - before)
    )
    sign = np.where(np.isinf(before) & np.isfinite(after), -1.0, sign)
    _, untied, p, direction = sign_test(sign)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isinf(after) & np.isinf(before), 1.0, after / before)
    median, lo, hi = median_interval(ratio)
    return Test(len(after), untied, median, lo, hi, p, direction)


def difference_test(left: np.ndarray, right: np.ndarray) -> Test:
    """Sign test of ``left > right`` on paired values; effect: median difference."""
    diff = np.asarray(left, float) - np.asarray(right, float)
    diff = diff[np.isfinite(diff)]
    _, untied, p, direction = sign_test(diff)
    median, lo, hi = median_interval(diff)
    return Test(len(diff), untied, median, lo, hi, p, direction)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def verdict(test: Test, p_adjusted: float, alpha: float) -> str:
    """holds | reversed | inconclusive | insufficient (too few images or informative pairs).

    A claim is always phrased so that ``left > right`` (or ratio > 1) is the
    paper's direction.
    """
    if not test.sufficient:
        return "insufficient"
    if p_adjusted >= alpha or test.direction == 0:
        return "inconclusive"
    return "holds" if test.direction > 0 else "reversed"
