"""Exact binomial intervals, shared by the science (fresh-draw judgements) and the summaries."""

from __future__ import annotations

CONFIDENCE = 0.95


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact interval of a binomial proportion ``k / n`` (``(0, 1)`` when ``n`` is 0)."""
    if n == 0:
        return (0.0, 1.0)
    # here, not at import: every actor imports this module (through the adaptive task), and
    # scipy.stats is a tenth of an actor's imports; only the adaptive task's rows need it
    from scipy import stats

    a = (1 - confidence) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi
