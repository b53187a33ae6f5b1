"""AttackBench's optimality of a minimum-norm attack (Cinà et al. 2024, eq. 5).

Per sample, the best-known distance ``d*`` is the smallest adversarial
perturbation any attack found. The robust accuracy at ``eps`` is the share of
samples whose distance exceeds ``eps`` (samples misclassified clean have
distance 0; failures inf); ``A`` is its area over ``[0, d_max]``, ``d_max``
the largest finite best-known distance, so the best-known curve reaches its
floor there. Then

    optimality = 1 - (A_attack - A*) / (clean_acc * d_max - A*)

is 1 when the attack's curve is the best-known one and 0 when it never
succeeds (its curve stays at the clean accuracy). The curve is a step
function; the trapezoid rule on its corner points (both ends of every
vertical step) is its exact area, which is what attackbenchlib's
``eval_optimality`` sums as rectangles, so the two agree to rounding. As
attackbenchlib, the score is clipped to [0, 1] (an attack whose distances
were not part of the best-known set can beat it) and is nan when the
best-known curve has no area to gain (every best-known distance equal).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _distances(values: ArrayLike, clean_correct: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Distances as floats: nan (failed) -> inf, samples misclassified clean -> 0."""
    d = np.asarray(values, dtype=np.float64).copy()
    if d.shape != clean_correct.shape:
        raise ValueError(f"{d.shape[0]} distances for {clean_correct.shape[0]} samples")
    d[np.isnan(d)] = np.inf
    d[~clean_correct] = 0.0
    return d


def robust_accuracy_curve(
    distances: ArrayLike, d_max: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Corner points ``(eps, robust accuracy)`` of the step curve on ``[0, d_max]``.

    The accuracy drops by ``1/n`` at each distance (left limit, then right);
    distances above ``d_max`` (and inf) never lower it inside the window.
    """
    d = np.sort(np.asarray(distances, dtype=np.float64))
    n = d.shape[0]
    inside = d[np.isfinite(d) & (d <= d_max)]
    after = 1.0 - np.arange(1, inside.shape[0] + 1) / n
    before = np.concatenate(([1.0], after[:-1]))[: after.size]  # none inside: a flat curve
    eps = np.concatenate(([0.0], np.repeat(inside, 2), [d_max]))
    last = after[-1] if after.size else 1.0
    acc = np.concatenate(([1.0], np.column_stack([before, after]).ravel(), [last]))
    return eps, acc


def curve_area(distances: ArrayLike, d_max: float) -> float:
    """``A``: the area under :func:`robust_accuracy_curve` (trapezoid rule on its corners)."""
    eps, acc = robust_accuracy_curve(distances, d_max)
    return float(np.trapezoid(acc, eps))


def optimality(
    distances_attack: ArrayLike, distances_best: ArrayLike, clean_correct: ArrayLike
) -> float:
    """AttackBench's optimality of one attack against the best-known distances.

    ``distances_attack``/``distances_best``: per sample, the attack's and the
    best-known minimum perturbation (same norm and units; nan or inf where none
    was found); ``clean_correct``: the model classifies the sample correctly
    clean (otherwise its distance is 0 whatever is passed).
    """
    correct = np.asarray(clean_correct, dtype=bool)
    attack = _distances(distances_attack, correct)
    best = _distances(distances_best, correct)
    finite = best[np.isfinite(best)]
    if finite.size == 0:
        return float("nan")
    d_max = float(finite.max())
    clean_acc = float(correct.mean())
    best_area = curve_area(best, d_max)
    room = clean_acc * d_max - best_area
    if room <= 0:
        return float("nan")
    score = 1.0 - (curve_area(attack, d_max) - best_area) / room
    return float(np.clip(score, 0.0, 1.0))
