"""Paired exact tests for the findings, and Holm's correction across a run.

- Accuracy differences on the same images: McNemar's exact test (a binomial
  test on the discordant pairs), with the effect (difference of accuracies)
  and a 95% interval that inverts the same test (Clopper-Pearson on the
  discordant share, scaled by the share of discordant images).
- Paired ratios of critical norms (right-censored: inf = never fooled, above the
  largest norm tried) and paired errors: the exact sign test (a pair counts
  only when its ratio is known to be beyond the search's precision on one side;
  ties are dropped), with the median ratio / median difference and its
  distribution-free 95% interval from order statistics. A median that censored
  ratios decide is reported as a bound, never as a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from tasks.intervals import CONFIDENCE, clopper_pearson

MIN_IMAGES = 10


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
    effect_high: float | None = None  # a censored median: it lies in [effect, effect_high]

    def sufficient(self, alpha: float) -> bool:
        """Can this test reach ``p < alpha`` at all? With ``d`` informative pairs the
        smallest exact p is ``2 * 0.5**d`` (every pair one way): 6 pairs at 0.05. A test
        that cannot is "insufficient" and stays out of the tested family."""
        return self.n >= MIN_IMAGES and binomial_p(self.n_discordant, self.n_discordant) < alpha


def binomial_p(k: int, n: int) -> float:
    """Two-sided exact binomial test of p = 1/2: twice the smaller tail, at most 1."""
    if n == 0:
        return 1.0
    tail = min(stats.binom.cdf(k, n, 0.5), stats.binom.sf(k - 1, n, 0.5))
    return float(min(1.0, 2 * tail))


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


def order_statistic_index(n: int, confidence: float = CONFIDENCE) -> int:
    """0-based index ``j`` of the order statistic that bounds the median's interval from below.

    ``[v_(j), v_(n-1-j)]`` covers the median with probability ``1 - 2 P(B <= j)``,
    ``B ~ Bin(n, 1/2)``: ``j`` is the largest index keeping that at ``confidence``
    or more; -1 when even ``[min, max]`` does not (n <= 5 at 95%).
    """
    a = (1 - confidence) / 2
    j = int(stats.binom.ppf(a, n, 0.5))  # smallest j with P(B <= j) >= a
    while j >= 0 and stats.binom.cdf(j, n, 0.5) > a:
        j -= 1
    return j


@dataclass(frozen=True)
class Median:
    """A sample median with its distribution-free interval, for values some of which are
    only bounded (censored): ``low``/``high`` are the median with every bounded value at
    its lower / upper end, so ``low < high`` means the median is only known to lie
    between them (``high`` inf: a lower bound)."""

    low: float
    high: float
    ci_low: float
    ci_high: float

    @property
    def exact(self) -> bool:
        return self.low == self.high or (math.isnan(self.low) and math.isnan(self.high))


def censored_median(low: np.ndarray, high: np.ndarray, confidence: float = CONFIDENCE) -> Median:
    """Median of values known to lie in ``[low_i, high_i]`` (equal: exact; ``high_i`` inf:
    right-censored at ``low_i``), and its order-statistic interval: the interval's lower
    end is taken from the lower ends, its upper end from the upper ends, so it covers
    whatever the censored values are."""
    lo, hi = np.sort(np.asarray(low, float)), np.sort(np.asarray(high, float))
    n = len(lo)
    if n == 0:
        return Median(math.nan, math.nan, math.nan, math.nan)
    j = order_statistic_index(n, confidence)
    ci = (-math.inf, math.inf) if j < 0 else (float(lo[j]), float(hi[n - 1 - j]))
    return Median(_median(lo), _median(hi), *ci)


def _median(sorted_values: np.ndarray) -> float:
    n = len(sorted_values)
    middle = sorted_values[(n - 1) // 2 : n // 2 + 1]
    return float(middle.mean()) if np.isfinite(middle).all() else float(middle[-1])


def median_interval(
    values: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """Median and its distribution-free interval from order statistics (inf allowed)."""
    v = np.asarray(values, float)
    m = censored_median(v, v, confidence)
    return m.low, m.ci_low, m.ci_high


def tie_tolerance(rtol: float) -> float:
    """|log ratio| below which two critical norms found by the same refined search are a tie.

    Each reported crossing is an observed adversarial point within ``rtol`` of an
    observed correct one, so it lies in ``[c, c / (1 - rtol))`` for the true crossing
    ``c``; two equal crossings can therefore differ by up to that factor.
    """
    return -math.log1p(-rtol) if rtol > 0 else 0.0


def ratio_bounds(
    after: np.ndarray,
    before: np.ndarray,
    after_floor: np.ndarray | None = None,
    before_floor: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the interval the ratio after / before is known to lie in.

    An inf critical norm is right-censored: the true one is above its floor (the
    largest norm the search tried; 0 when unknown), so a censored numerator makes the
    ratio a lower bound and a censored denominator an upper bound.
    """
    a, b = np.asarray(after, float), np.asarray(before, float)
    fa = np.zeros_like(a) if after_floor is None else np.nan_to_num(np.asarray(after_floor, float))
    fb = (
        np.zeros_like(b) if before_floor is None else np.nan_to_num(np.asarray(before_floor, float))
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(np.isinf(a), fa, a) / np.where(np.isinf(b), np.inf, b)
        high = np.where(np.isinf(a), np.inf, a) / np.where(np.isinf(b), fb, b)
    return np.nan_to_num(low, nan=0.0, posinf=np.inf), np.nan_to_num(
        high, nan=np.inf, posinf=np.inf
    )


def ratio_test(
    after: np.ndarray,
    before: np.ndarray,
    tie: float = 0.0,
    after_floor: np.ndarray | None = None,
    before_floor: np.ndarray | None = None,
) -> Test:
    """Sign test of ``after > before`` on paired critical norms (inf: censored, never fooled).

    A pair counts for the side its ratio is known to be on beyond ``tie`` in log
    units (:func:`tie_tolerance`); a pair whose ratio could be on either side (equal
    within the search's precision, or censored below the other side) is a tie. The
    effect is the median ratio; where censored ratios decide it, it is a lower (or
    upper) bound: ``Test.effect_high`` differs from ``Test.effect``.
    """
    after, before = np.asarray(after, float), np.asarray(before, float)
    keep = before > 0
    low, high = ratio_bounds(
        after[keep],
        before[keep],
        None if after_floor is None else np.asarray(after_floor, float)[keep],
        None if before_floor is None else np.asarray(before_floor, float)[keep],
    )
    sign = np.where(low > math.exp(tie), 1.0, np.where(high < math.exp(-tie), -1.0, 0.0))
    _, untied, p, direction = sign_test(sign)
    m = censored_median(low, high)
    return Test(len(low), untied, m.low, m.ci_low, m.ci_high, p, direction, effect_high=m.high)


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
    if not test.sufficient(alpha):
        return "insufficient"
    if p_adjusted >= alpha or test.direction == 0:
        return "inconclusive"
    return "holds" if test.direction > 0 else "reversed"


def signed(value: float, digits: int = 3) -> str:
    """``+0.123``: an effect or an interval end with its sign, and a rounded zero without a
    minus (``-0.000`` reads as a direction the data do not have)."""
    text = f"{value:+.{digits}f}"
    return "+" + text[1:] if float(text) == 0 else text
