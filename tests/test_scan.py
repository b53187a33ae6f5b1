"""The grid scan finds first crossings exactly, on rays whose verdicts are known."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from tasks.scan import GridScan

pytestmark = pytest.mark.unit

GRID = torch.tensor([0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0])


def run(scan: GridScan, adversarial: Callable[[int, float], bool]) -> int:
    rounds = 0
    while not scan.done:
        scan.record([(i, s, adversarial(i, s)) for i, s in scan.pending()])
        rounds += 1
        assert rounds < 100
    return rounds


@pytest.mark.parametrize("search", ["scan", "bisect"])
@pytest.mark.parametrize("crossing", [0.3, 0.5, 2.5, 9.0, 30.0, 31.0])
def test_monotone_ray_crossing_is_found_and_refined(search: str, crossing: float) -> None:
    scan = GridScan(GRID[None], refine=True, rtol=0.01, search=search, guess=torch.tensor([3]))
    run(scan, lambda _, s: s >= crossing)
    r = scan.result()
    assert bool(r.clean_correct[0])
    if crossing > 30.0:  # no ceiling given: the ray is not followed past the grid
        assert math.isinf(float(r.scale[0])) and float(r.scale_lo[0]) == 30.0
    else:
        hi, lo = float(r.scale[0]), float(r.scale_lo[0])
        assert lo < crossing <= hi and hi - lo <= 0.01 * hi + 1e-12


@pytest.mark.parametrize("search", ["scan", "bisect"])
def test_grid_only_answer_is_the_first_fooled_grid_point(search: str) -> None:
    scan = GridScan(GRID[None], refine=False, search=search)
    run(scan, lambda _, s: s >= 4.0)
    r = scan.result()
    assert float(r.scale[0]) == 5.0 and float(r.scale_lo[0]) == 3.0


def test_scan_never_steps_over_an_earlier_crossing_that_bisect_can_miss() -> None:
    # fooled on [0.8, 1.2] (a pocket), correct again, then fooled from 12 on
    def ray(_: int, s: float) -> bool:
        return 0.8 <= s <= 1.2 or s >= 12.0

    scan = GridScan(GRID[None], search="scan", guess=torch.tensor([8]))
    run(scan, ray)
    assert float(scan.result().scale[0]) == 1.0  # every point below the guess was checked
    bisect = GridScan(GRID[None], search="bisect", guess=torch.tensor([8]))
    run(bisect, ray)
    assert float(bisect.result().scale[0]) == 15.0  # the pocket was stepped over


def test_clean_wrong_is_wrong_at_every_norm_and_known_clean_skips_the_query() -> None:
    scan = GridScan(GRID.expand(2, -1), clean=torch.tensor([False, True]))
    asked = scan.pending()
    assert all(s > 0 for _, s in asked) and {i for i, _ in asked} == {1}
    run(scan, lambda _, s: s >= 2.0)
    r = scan.result()
    assert r.scale.tolist()[0] == 0.0 and not bool(r.clean_correct[0])


@pytest.mark.parametrize("search", ["scan", "bisect"])
@pytest.mark.parametrize("crossing", [33.0, 75.0, 190.0])
def test_a_refined_ray_is_followed_past_the_grid_up_to_its_ceiling(
    search: str, crossing: float
) -> None:
    """Issue 21.2: no cap. A crossing above the largest grid norm is found and refined to
    rtol; only a ray still correct where the perturbation stops growing is censored, and
    ``scale_lo`` then says the largest scale tried."""
    ceiling = torch.tensor([100.0])
    scan = GridScan(GRID[None], refine=True, rtol=0.05, search=search, ceiling=ceiling)
    asked: list[float] = []
    run(scan, lambda _, s: bool(asked.append(s)) or s >= crossing)
    r = scan.result()
    if crossing <= 100.0:
        hi, lo = float(r.scale[0]), float(r.scale_lo[0])
        assert lo < crossing <= hi and hi - lo <= 0.05 * hi
    else:
        assert math.isinf(float(r.scale[0])) and float(r.scale_lo[0]) == 100.0
        assert max(asked) == 100.0  # never asked beyond what the pixels allow
    grid_only = GridScan(GRID[None], refine=False, search=search, ceiling=ceiling)
    run(grid_only, lambda _, s: s >= crossing)
    assert math.isinf(float(grid_only.result().scale[0]))  # the curves stop at the grid


@pytest.mark.parametrize("search", ["scan", "bisect"])
def test_unreachable_grid_points_cap_the_search(search: str) -> None:
    grid = GRID.clone()
    grid[5:] = float("inf")  # the ray saturates before the norm reaches 7.5
    scan = GridScan(grid[None], search=search)
    asked: list[float] = []
    run(scan, lambda _, s: bool(asked.append(s)))
    r = scan.result()
    assert math.isinf(float(r.scale[0])) and max(asked) == float(grid[4])  # censored at the cap
    if search == "scan":
        assert int(r.n_points[0]) == 6  # clean + every one of the 5 reachable points
    else:
        assert int(r.n_points[0]) < 6  # galloping skips some of them


def run_with_margin(scan: GridScan, margin: Callable[[float], float]) -> int:
    """Like :func:`run`, feeding the criterion's margin too (> 0 iff still correct)."""
    rounds = 0
    while not scan.done:
        asked = scan.pending()
        m = [margin(s) for _, s in asked]
        scan.record([(i, s, v <= 0) for (i, s), v in zip(asked, m, strict=True)], m)
        rounds += 1
        assert rounds < 100
    return rounds


@pytest.mark.parametrize(
    ("crossing", "curved"), [(4.2, False), (6.1, False), (0.7, True), (21.0, True)]
)
def test_known_margins_refine_in_fewer_points_to_the_same_precision(
    crossing: float, curved: bool
) -> None:
    """Issue 12.2: the margin's interpolated zero, bracketed rtol/2 either side, closes a
    grid interval in one round of two points where bisection needs 3-4; a curved margin
    takes another round at most, and hi/lo stay an observed adversarial/correct pair."""

    def margin(s: float) -> float:
        return crossing**2 - s**2 if curved else crossing - s

    guided = GridScan(GRID[None], refine=True, rtol=0.05, search="bisect", guess=torch.tensor([4]))
    run_with_margin(guided, margin)
    plain = GridScan(GRID[None], refine=True, rtol=0.05, search="bisect", guess=torch.tensor([4]))
    run(plain, lambda _, s: margin(s) <= 0)
    for found in (guided.result(), plain.result()):
        hi, lo = float(found.scale[0]), float(found.scale_lo[0])
        assert lo < crossing <= hi and hi - lo <= 0.05 * hi
    saved = int(plain.result().n_points[0]) - int(guided.result().n_points[0])
    assert saved >= (0 if curved else 1), (guided.result().n_points, plain.result().n_points)
