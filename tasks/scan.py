"""The critical scale of a ray, found on the grid without ever stepping over a crossing.

For an image, a direction and a condition, the curves need to know at which
grid point of the condition's norm axis the image is first misclassified
(accuracy at v = share of images whose critical norm exceeds v), and Table 1
needs that critical scale to a few percent. :class:`GridScan` finds it per
image with these rules (docs/protocol.md, "Critical scales"):

- the grid points are the scales at which the *added* perturbation reaches
  each grid norm (:func:`tasks.norms.scales_at_norms`). A ray that is refined
  (Table 1, the medians) and still correct at the largest grid norm is followed
  further, doubling the scale up to its ``ceiling`` (where clipping saturates
  every value the direction moves: the perturbation can grow no further); only
  a ray correct there is right-censored (scale ``inf``, ``scale_lo`` the largest
  scale tried). A grid-only ray (the curves) stops at the largest grid norm;
- the points evaluated always form a prefix of the grid, so the first
  adversarial point found is the first crossing on the grid: every grid point
  below it was checked. The first round evaluates the clean image and every
  point up to a guess (another condition's answer); later rounds extend the
  prefix by 1, 2, 4... points;
- if asked, the crossing is then refined inside its grid interval to
  ``rtol`` (``hi`` is always an observed adversarial scale, ``lo`` an observed
  correct one). When the criterion's margin is known at both ends, a round asks
  the two points ``rtol/2`` either side of where the margin, interpolated
  linearly, crosses zero: on a smooth ray that closes the bracket in one round
  of two points, where geometric bisection needs 3-4 rounds over a grid
  interval of ratio 1.3-1.8. Otherwise (or after two such rounds) it bisects.

All images advance in the same rounds; the caller evaluates each round's
points in one batched pass (:mod:`tasks.probing`) and feeds the verdicts back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

MIN_SCALE = 1e-6
SEARCHES = ("scan", "bisect")
SECANT_ROUNDS = 2  # margin-interpolated refinement rounds before plain bisection


@dataclass
class _Ray:
    grid: list[float]  # ascending reachable scales of the grid norms (0 excluded)
    guess: int  # index of the grid point nearest the expected crossing (first round)
    refine: bool
    ceiling: float  # past the grid, refined rays double up to this scale (inf: no further)
    clean: bool | None  # correct at scale 0, when already known
    below: int = -1  # highest grid index known correct (-1: only scale 0)
    above: int | None = None  # lowest grid index known adversarial
    checked: int = 0  # scan: grid prefix evaluated
    chunk: int = 1
    hi: float = math.inf
    lo: float = 0.0
    phase: str = "start"  # start | search | beyond | refine | done
    next_beyond: float = math.nan  # the scale asked past the grid
    verdicts: dict[float, bool] = field(default_factory=dict)  # scale -> adversarial
    margins: dict[float, float] = field(default_factory=dict)  # scale -> criterion margin
    secant_rounds: int = 0
    n_points: int = 0


@dataclass
class ScanResult:
    """Per image: crossing, its bracket and the cost (scale points evaluated)."""

    clean_correct: torch.Tensor  # (B,) bool
    scale: torch.Tensor  # smallest observed adversarial scale; 0 wrong clean; inf never fooled
    scale_lo: torch.Tensor  # largest scale observed correct below it (censored: the largest tried)
    n_points: torch.Tensor  # (B,) long: scale points evaluated (0 included)


class GridScan:
    """Batched per-image search over grid scales; the caller runs the forward passes.

    ``search="scan"`` checks every grid point below the crossing it reports
    (the first crossing on the grid is never stepped over); ``"bisect"``
    bisects over grid indices (fewer points, exact when misclassification is
    monotone along the ray; the dense sample measures how often it is not).
    """

    def __init__(
        self,
        grid: torch.Tensor,
        *,
        guess: torch.Tensor | None = None,
        refine: bool = False,
        rtol: float = 0.05,
        ceiling: torch.Tensor | None = None,
        clean: torch.Tensor | None = None,
        search: str = "bisect",
    ) -> None:
        """``grid``: ``(B, K)`` scales (ascending per row; inf = unreachable norm).

        ``guess``: per image, how many grid points lie at or below the expected
        crossing (>= 1). ``ceiling``: per image, the scale where the perturbation
        stops growing (:func:`tasks.norms.saturation_scale`); a refined ray correct on
        the whole grid is followed up to it. ``clean``: known correctness at scale 0
        (skips that query).
        """
        if not 0 < rtol < 1:
            raise ValueError(f"rtol must be in (0, 1), got {rtol}")
        if search not in SEARCHES:
            raise ValueError(f"search {search!r}: use one of {', '.join(SEARCHES)}")
        self.rtol, self.search = rtol, search
        self.rays: list[_Ray] = []
        for i in range(grid.shape[0]):
            points = sorted({float(s) for s in grid[i].tolist() if 0 < s < math.inf})
            first = 1 if guess is None else int(guess[i])
            ray = _Ray(
                grid=points,
                guess=max(1, min(first, len(points))) if points else 0,
                refine=refine,
                ceiling=math.inf if ceiling is None else float(ceiling[i]),
                clean=None if clean is None else bool(clean[i]),
            )
            if ray.clean is False:  # known wrong clean: wrong at every norm, nothing to ask
                ray.hi, ray.lo, ray.phase = 0.0, 0.0, "done"
            self.rays.append(ray)

    @property
    def done(self) -> bool:
        return all(r.phase == "done" for r in self.rays)

    def pending(self) -> list[tuple[int, float]]:
        """This round's (image, scale) points; evaluate them all, then :meth:`record`."""
        out: list[tuple[int, float]] = []
        for i, r in enumerate(self.rays):
            if r.phase != "done":
                out += [(i, s) for s in self._round(r) if s not in r.verdicts]
        return out

    def record(
        self, verdicts: list[tuple[int, float, bool]], margins: list[float] | None = None
    ) -> None:
        """Feed back (image, scale, adversarial) for this round's points, then advance.

        ``margins`` (aligned with ``verdicts``, > 0 iff correct) guide the refinement."""
        for k, (i, s, adversarial) in enumerate(verdicts):
            ray = self.rays[i]
            ray.verdicts[s] = adversarial
            if margins is not None:
                ray.margins[s] = margins[k]
            ray.n_points += 1
        for r in self.rays:
            if r.phase != "done":
                self._advance(r)

    def result(self) -> ScanResult:
        clean = [
            r.clean if r.clean is not None else not r.verdicts.get(0.0, False) for r in self.rays
        ]
        return ScanResult(
            clean_correct=torch.tensor(clean, dtype=torch.bool),
            scale=torch.tensor([r.hi for r in self.rays], dtype=torch.float64),
            scale_lo=torch.tensor([r.lo for r in self.rays], dtype=torch.float64),
            n_points=torch.tensor([r.n_points for r in self.rays], dtype=torch.long),
        )

    # -- one ray -------------------------------------------------------------------------
    def _round(self, r: _Ray) -> list[float]:
        if r.phase == "refine":
            return self._refine_points(r)
        if r.phase == "beyond":
            return [r.next_beyond]
        points = [0.0] if r.phase == "start" and r.clean is None else []
        if not r.grid:
            return points
        if self.search == "scan":
            upto = r.guess if r.phase == "start" else min(len(r.grid), r.checked + r.chunk)
            return points + r.grid[r.checked : upto]
        if r.phase == "start":
            return [*points, r.grid[r.guess - 1]]
        return [*points, r.grid[self._next_index(r)]]

    def _next_index(self, r: _Ray) -> int:
        """Bisect: the next grid index to ask (gallop up until something fools)."""
        if r.above is None:
            return min(len(r.grid) - 1, r.below + r.chunk)
        return (r.below + r.above) // 2

    def _advance(self, r: _Ray) -> None:
        if r.phase == "beyond":
            self._beyond(r)
            return
        if r.phase == "refine":
            if self._secant(r) is not None:  # the round just answered was a secant round
                r.secant_rounds += 1
            inside = sorted(s for s in r.verdicts if r.lo < s < r.hi)
            for s in inside:  # the lowest adversarial point, the highest correct one below
                if r.verdicts[s]:
                    r.hi = s
                    break
            r.lo = max([r.lo, *(s for s in inside if s < r.hi and not r.verdicts[s])])
            if r.hi - r.lo <= self.rtol * r.hi or r.hi <= MIN_SCALE:
                r.phase = "done"
            return
        if r.phase == "start":
            if r.clean is None:
                r.clean = not r.verdicts.get(0.0, False)
            if not r.clean:  # wrong at every norm
                r.hi, r.lo, r.phase = 0.0, 0.0, "done"
                return
            r.phase = "search"
        elif self.search == "scan":
            r.chunk *= 2
        self._update(r)

    def _update(self, r: _Ray) -> None:
        """Read the verdicts on the grid; finish, refine, or keep searching."""
        asked = [k for k, s in enumerate(r.grid) if s in r.verdicts]
        if self.search == "scan":
            while r.checked < len(r.grid) and r.grid[r.checked] in r.verdicts:
                r.checked += 1
            asked = list(range(r.checked))
        fooled = [k for k in asked if r.verdicts[r.grid[k]]]
        correct = [k for k in asked if not r.verdicts[r.grid[k]]]
        r.above = fooled[0] if fooled else None
        r.below = max((k for k in correct if r.above is None or k < r.above), default=-1)
        if self.search == "bisect" and r.above is None and r.below >= 0:
            r.chunk = 2 * r.chunk if r.n_points > 1 else r.chunk
        closed = r.above is not None and (self.search == "scan" or r.above - r.below == 1)
        if closed:
            assert r.above is not None
            r.hi, r.lo = r.grid[r.above], (r.grid[r.above - 1] if r.above else 0.0)
            r.phase = "refine" if r.refine and r.hi - r.lo > self.rtol * r.hi else "done"
        elif (r.below == len(r.grid) - 1) or not r.grid:
            r.lo = r.grid[-1] if r.grid else 0.0
            r.hi = math.inf
            if r.refine and r.lo < r.ceiling < math.inf:  # follow the ray past the grid
                r.phase, r.next_beyond = "beyond", min(2 * r.lo, r.ceiling) or r.ceiling
            else:
                r.phase = "done"

    def _beyond(self, r: _Ray) -> None:
        """Past the grid: the scale just asked fools (bracket, refine) or is correct (double
        it, up to the ceiling; correct at the ceiling: censored there)."""
        s = r.next_beyond
        if r.verdicts[s]:
            r.hi = s
            r.phase = "refine" if r.hi - r.lo > self.rtol * r.hi else "done"
            return
        r.lo = s
        if s >= r.ceiling:
            r.phase = "done"
        else:
            r.next_beyond = min(2 * s, r.ceiling)

    def _refine_points(self, r: _Ray) -> list[float]:
        """Two points around the margin's interpolated zero, or the bracket's midpoint."""
        return self._secant(r) or [self._midpoint(r)]

    def _secant(self, r: _Ray) -> list[float] | None:
        """The points ``rtol/2`` either side of the margin's interpolated zero, while
        the margins at both ends are known and secant rounds are left; else None."""
        m_lo, m_hi = r.margins.get(r.lo, math.nan), r.margins.get(r.hi, math.nan)
        if r.secant_rounds >= SECANT_ROUNDS or not m_lo > 0 > m_hi:  # nan: unknown
            return None
        zero = r.lo + (r.hi - r.lo) * m_lo / (m_lo - m_hi)
        points = [zero * (1 - self.rtol / 2), zero * (1 + self.rtol / 2)]
        return [p for p in points if r.lo < p < r.hi] or None

    @staticmethod
    def _midpoint(r: _Ray) -> float:
        return r.hi / 2 if r.lo <= 0 else math.sqrt(r.lo * r.hi)
