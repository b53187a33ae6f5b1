"""Every condition's scan in shared rounds: one batched pass through the network per round.

For each :class:`ConditionBatch` a :class:`~tasks.scan.GridScan` runs on the
grid of the condition's norm axis; a round collects the pending points of all
scans (plus the dense-grid checks and any extra queries, e.g. linearity's) into
one :class:`~tasks.probing.ScoreQueue` and flushes it once. The result per
condition and image: the critical scale, the norms of the perturbation actually
added there (and in the source's frame), the image-forwards it cost, and for
the dense sample how many points of a denser grid disagree with the bracket the
search reported (correct at or below its last correct point, adversarial from
its crossing on). A set-up's base condition also checks every grid point below
the attack's own scale: the attack stage's line search, checked on every image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from tasks.criterion import TopK
from tasks.evaluation.conditions import ConditionBatch
from tasks.probing import Query, ScoreQueue, aggregate
from tasks.scan import GridScan


@dataclass(frozen=True)
class Grids:
    """The norm grids of the curves, and which axis a condition's search runs on."""

    values: dict[str, tuple[float, ...]]  # norm -> grid values (0..255 units)
    rtol: float = 0.05  # precision of refined critical scales (Table 1, medians)
    search: str = "bisect"  # bisect: grid-index bisection; scan: every point below checked

    def positive(self, axis: str) -> tuple[float, ...]:
        return tuple(v for v in self.values[axis] if v > 0)

    def with_points(self, axis: str, points: tuple[float, ...]) -> Grids:
        """These grids with ``points`` added to ``axis`` (evaluation points searched exactly)."""
        if not points:
            return self
        merged = tuple(sorted({*self.values[axis], *points}))
        return dataclasses.replace(self, values={**self.values, axis: merged})


@dataclass
class ConditionResult:
    """Per image of a condition batch (tensors of length n, on the CPU)."""

    clean_correct: torch.Tensor
    scale: torch.Tensor  # 0: wrong clean; inf: not fooled up to the largest grid norm
    scale_lo: torch.Tensor
    crit: dict[str, torch.Tensor]  # norm -> added-perturbation norm at ``scale`` (this frame)
    source: dict[str, torch.Tensor]  # norm -> the same in the source's frame
    image_forwards: torch.Tensor  # network inputs spent on the image (every view counted)
    dense_mismatch: list[int | None]  # dense points disagreeing with the search (sample)
    dense_earlier: list[bool | None]  # the dense grid found a crossing below the scan's
    line_search_earlier: list[bool | None]  # a grid point below the attack's scale fools
    lo_norms: dict[str, torch.Tensor] | None = None  # norms at ``scale_lo`` (censored: tried)
    autocast_agrees: list[bool | None] | None = None  # bf16 vs fp32 on the dense sample


#: Extra work that rides along in the rounds: called with the queue before each flush
#: (round index) and after it; returns False when it has nothing more to ask.
Rider = Callable[[ScoreQueue, int], Callable[[], bool]]


def evaluate(
    queue: ScoreQueue,
    conditions: list[ConditionBatch],
    criterion: TopK,
    grids: Grids,
    axis: str,
    dense_axes: Callable[[ConditionBatch], tuple[str, ...]],
    riders: list[Rider] | None = None,
) -> list[ConditionResult]:
    """Scan every condition to its critical scale on the ``axis`` grid, all in shared rounds.

    ``dense_axes(condition)``: the grids its dense sample is swept on (the axes
    its curves are reported on). A condition whose spec names ``guess_from`` (one of
    ``conditions``) starts once that one is done, from its answer.
    """
    by_name = {c.spec.name: k for k, c in enumerate(conditions)}
    waits_for = {
        k: by_name[c.spec.guess_from]
        for k, c in enumerate(conditions)
        if c.spec.guess_from in by_name
    }
    scans: list[GridScan | None] = [
        None if k in waits_for else _scan_for(c, grids, axis) for k, c in enumerate(conditions)
    ]
    forwards = [torch.zeros(c.x.shape[0], dtype=torch.long) for c in conditions]
    dense = [
        _dense_queries(queue, c, grids, dense_axes(c), axis, forwards[k])
        for k, c in enumerate(conditions)
    ]
    below_attack = [
        _line_search_queries(queue, c, grids, axis, forwards[k]) for k, c in enumerate(conditions)
    ]
    waiting = list(riders or [])
    round_index = 0
    while not all(s is not None and s.done for s in scans) or waiting:
        for k, ref in waits_for.items():
            if scans[k] is None and (ref_scan := scans[ref]) is not None and ref_scan.done:
                guess = _guess_from(conditions[k], conditions[ref], ref_scan)
                scans[k] = _scan_for(conditions[k], grids, axis, guess)
        asked: list[tuple[int, int, float, Query]] = []
        for k, (c, scan) in enumerate(zip(conditions, scans, strict=True)):
            for j, s in scan.pending() if scan is not None else []:
                q = queue.add(c.n_views(j), _maker(c, j, s), c.keys(j, s))
                asked.append((k, j, s, q))
                forwards[k][j] += len(q.compute)
        after = [rider(queue, round_index) for rider in waiting]
        queue.flush()
        waiting = [r for r, more in zip(waiting, after, strict=True) if more()]
        verdicts: list[list[tuple[int, float, bool]]] = [[] for _ in conditions]
        margins: list[list[float]] = [[] for _ in conditions]
        for k, j, s, q in asked:
            c = conditions[k]
            scores = aggregate(q.logits)[None]
            adversarial = bool(criterion.is_adversarial(scores, c.labels[j : j + 1])[0])
            verdicts[k].append((j, s, adversarial))
            margins[k].append(float(criterion.margin(scores, c.labels[j : j + 1])[0]))
        for scan, v, m in zip(scans, verdicts, margins, strict=True):
            if scan is not None and (v or not scan.done):
                scan.record(v, m)
        round_index += 1
    if queue.pending:  # every scan was done before a round (the target wrong on every image)
        queue.flush()  # but the dense sample and the line-search checks still asked
    done = [s for s in scans if s is not None]
    return [
        _result(c, scan, forwards[k], dense[k], below_attack[k], criterion)
        for k, (c, scan) in enumerate(zip(conditions, done, strict=True))
    ]


def _maker(c: ConditionBatch, j: int, s: float) -> Callable[[list[int]], torch.Tensor]:
    return partial(c.inputs, j, s)


def _guess_from(c: ConditionBatch, ref: ConditionBatch, ref_scan: GridScan) -> torch.Tensor | None:
    """Per image of ``c``: the crossing ``ref`` found (same direction and scale), where it
    found one above 0 (an image wrong there, or missing from it, keeps ``c``'s own guess).
    A censored answer starts the search at the top of the grid."""
    found = dict(zip(ref.rows, ref_scan.result().scale.tolist(), strict=True))
    guess = c.guess.clone().double() if c.guess is not None else None
    for j, row in enumerate(c.rows):
        scale = found.get(row, 0.0)
        if scale > 0:
            if guess is None:
                guess = torch.full((len(c.rows),), float("nan"), dtype=torch.float64)
            guess[j] = scale
    return guess


def _scan_for(
    c: ConditionBatch, grids: Grids, axis: str, start: torch.Tensor | None = None
) -> GridScan:
    """The condition's search; ``start`` (per image, nan: none) overrides its own guess."""
    grid = c.grid_scales(axis, grids.positive(axis))
    # Images without a perturbation are evaluated unperturbed: only their clean point counts.
    grid = torch.where(c.has_direction[:, None], grid, torch.full_like(grid, float("inf")))
    wanted = c.guess if start is None else start
    guess = None
    if wanted is not None:
        # a nan guess counts no grid point: the search starts at the first one
        guess = (grid <= wanted[:, None].to(grid.dtype)).sum(dim=1).clamp_min(1)
    return GridScan(
        grid,
        guess=guess,
        refine=c.spec.refine,
        rtol=grids.rtol,
        ceiling=torch.where(c.has_direction, c.ceilings().cpu(), torch.zeros(len(c.rows))),
        clean=c.clean,
        search=grids.search,
    )


@dataclass
class _Dense:
    """The dense-grid queries of the sampled images: axis -> per image [(value, query)]."""

    points: dict[str, list[list[tuple[float, Query]]]]


#: The dense sample's grid on the searched axis has this many points per search-grid step.
DENSITY = 4


def densify(values: tuple[float, ...], factor: int = DENSITY) -> tuple[float, ...]:
    """``factor`` points per step of an ascending positive grid: geometric between grid
    points, linear from 0 to the first one (the grid points themselves included)."""
    out: list[float] = []
    previous = 0.0
    for v in values:
        if previous <= 0:
            out += [v * k / factor for k in range(1, factor)]
        else:
            out += [previous * (v / previous) ** (k / factor) for k in range(1, factor)]
        out.append(v)
        previous = v
    return tuple(out)


def _dense_queries(
    queue: ScoreQueue,
    c: ConditionBatch,
    grids: Grids,
    axes: tuple[str, ...],
    searched: str,
    forwards: torch.Tensor,
) -> _Dense:
    """The sampled images' queries: the searched axis at :data:`DENSITY` times the search
    grid, every other reported axis at its own grid."""
    n = min(c.dense, c.x.shape[0])
    points: dict[str, list[list[tuple[float, Query]]]] = {}
    for axis in axes:
        values = grids.positive(axis)
        if axis == searched:
            values = densify(values)
        points[axis] = _queries_at(queue, c, axis, values, range(n), forwards)
    return _Dense(points)


def _queries_at(
    queue: ScoreQueue,
    c: ConditionBatch,
    axis: str,
    values: tuple[float, ...],
    images: range,
    forwards: torch.Tensor,
    below: torch.Tensor | None = None,
) -> list[list[tuple[float, Query]]]:
    """Per image: a query at each reachable norm of ``values`` (below ``below[j]``'s scale)."""
    scales = c.grid_scales(axis, values)
    per_image = []
    for j in images:
        row = []
        if bool(c.has_direction[j]):
            limit = float("inf") if below is None else float(below[j])
            for v, s in zip(values, scales[j].tolist(), strict=True):
                if s < limit:
                    q = queue.add(c.n_views(j), _maker(c, j, s), c.keys(j, s))
                    row.append((v, q))
                    forwards[j] += len(q.compute)
        per_image.append(row)
    return per_image


def _line_search_queries(
    queue: ScoreQueue, c: ConditionBatch, grids: Grids, axis: str, forwards: torch.Tensor
) -> list[list[tuple[float, Query]]] | None:
    """Every grid point below the attack's own scale (a base condition's images): any that
    fools is an earlier crossing the attack stage's line search stepped over."""
    if c.attack_scale is None:
        return None
    known = torch.nan_to_num(c.attack_scale.double(), nan=0.0)
    return _queries_at(queue, c, axis, grids.positive(axis), range(len(c.rows)), forwards, known)


def _is_correct(q: Query, criterion: TopK, label: torch.Tensor) -> bool:
    return not bool(criterion.is_adversarial(aggregate(q.logits)[None], label)[0])


def _result(
    c: ConditionBatch,
    scan: GridScan,
    forwards: torch.Tensor,
    dense: _Dense,
    below_attack: list[list[tuple[float, Query]]] | None,
    criterion: TopK,
) -> ConditionResult:
    found = scan.result()
    scale, scale_lo = found.scale.float(), found.scale_lo.float()
    crit = {k: v.float() for k, v in c.added_norms(scale).items()}
    lo = {k: v.float() for k, v in c.added_norms(scale_lo).items()}
    n = c.x.shape[0]
    mismatch: list[int | None] = [None] * n
    earlier: list[bool | None] = [None] * n
    for axis, per_image in dense.points.items():
        for j, row in enumerate(per_image):
            if not row and not bool(c.has_direction[j]):
                continue
            bad, below = 0, False
            for v, q in row:
                correct = _is_correct(q, criterion, c.labels[j : j + 1])
                # the search says: correct up to its last correct point, fooled from its
                # crossing on; between the two (inside the refined bracket) it says nothing
                if v <= float(lo[axis][j]):
                    bad += int(not correct)
                    below |= not correct
                elif v >= float(crit[axis][j]):
                    bad += int(correct)
            mismatch[j] = (mismatch[j] or 0) + bad
            earlier[j] = bool(earlier[j]) or below
    line_search: list[bool | None] = [None] * n
    for j, row in enumerate(below_attack or []):
        if bool(c.has_direction[j]) and c.attack_scale is not None:
            line_search[j] = any(not _is_correct(q, criterion, c.labels[j : j + 1]) for _, q in row)
    return ConditionResult(
        clean_correct=found.clean_correct,
        scale=scale,
        scale_lo=scale_lo,
        crit=crit,
        source={k: v.float() for k, v in c.source_norms(scale).items()},
        image_forwards=forwards,
        dense_mismatch=mismatch,
        dense_earlier=earlier,
        line_search_earlier=line_search,
        lo_norms=lo,
    )
