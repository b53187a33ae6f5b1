"""AttackBench optimality: closed forms and attackbenchlib's own score on the same distances."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.summary.optimality import curve_area, optimality, robust_accuracy_curve

pytestmark = pytest.mark.unit


def sample(seed: int, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best-known distances, an attack's (worse by a factor, some failures), clean flags."""
    rng = np.random.default_rng(seed)
    correct = rng.random(n) < 0.8
    best = rng.lognormal(0.0, 0.7, n)
    attack = best * rng.uniform(1.0, 1.6, n)
    attack[rng.random(n) < 0.05] = np.inf
    best[rng.random(n) < 0.02] = np.inf  # also unbroken by the best attack
    attack[np.isinf(best)] = np.inf
    best[~correct] = attack[~correct] = 0.0  # misclassified clean: distance 0
    return attack, best, correct


def test_best_known_curve_scores_one() -> None:
    _, best, correct = sample(0)
    assert optimality(best, best, correct) == 1.0


def test_attack_that_never_succeeds_scores_zero() -> None:
    _, best, correct = sample(1)
    never = np.full(best.shape, np.nan)
    assert optimality(never, best, correct) == 0.0


def test_curve_area_is_the_step_function_area() -> None:
    """Three samples at 1, 2, inf over [0, 3]: 1*1 + 2/3*1 + 1/3*1."""
    assert curve_area([1.0, 2.0, math.inf], 3.0) == pytest.approx(1 + 2 / 3 + 1 / 3)
    eps, acc = robust_accuracy_curve([2.0, 1.0], 2.0)
    assert eps.tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    assert acc.tolist() == [1.0, 1.0, 0.5, 0.5, 0.0, 0.0]


def test_half_way_attack_scores_a_half() -> None:
    """One sample, best-known distance 2, attack 3 (clipped at d_max = 2): A* = 2, A = 2.
    With another at best 4, attack 4: d_max = 4, A* = (2 + 4) / 2 = 3, clean * d_max = 4,
    A = (3 + 4) / 2 = 3.5: optimality 1 - 0.5 / 1 = 0.5."""
    assert optimality([3.0, 4.0], [2.0, 4.0], [True, True]) == pytest.approx(0.5)


# attackbenchlib warns that a few samples stay unbroken by the best-known set (on purpose).
@pytest.mark.filterwarnings("ignore:The reference lower envelope leaves")
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_agrees_with_attackbenchlib(seed: int) -> None:
    metrics = pytest.importorskip(
        "attackbench.metrics.distances", reason="attackbenchlib (bench extra) is not installed"
    )
    attack, best, correct = sample(seed)
    theirs = metrics.eval_optimality(attack, best, clean_acc=float(correct.mean()))
    ours = optimality(attack, best, correct)
    assert 0.3 < ours < 1.0
    assert abs(ours - theirs) <= 1e-6, (ours, theirs)
