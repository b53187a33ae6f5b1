"""Progress inside a work unit: workers report finished batches, the driver shows them.

Why: a unit can take minutes (sC&W on one batch of photos, a large shard on CPU),
and a bar that counts whole units sits at ``0/1`` until the unit ends. Here a
worker sends, after each batch (and each attack within it), what the unit has
done so far to a :class:`ProgressBoard`, a tiny Ray actor; the driver reads the
board between the scheduler's waits and moves the bar (in images) and the
running metrics with it.

Each attempt of a unit gets its own token: a unit that is requeued after its
actor died starts again from zero, and whatever its dead attempt reported is
dropped with the token (reports are cumulative, so a late or repeated one never
counts twice). Values (clean top-5 hits, each attack's L1pp) are reported only
for batches that are complete: a batch that fails and is split in halves has
reported nothing it would report again.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import ray

from pipeline.stages.scheduler import Unit


@dataclass(frozen=True)
class Partial:
    """What one attempt of a unit has done so far (cumulative)."""

    model: str
    complete: int = 0  # images of the complete batches
    running: float = 0.0  # the part of the running batch whose tasks are done
    clean_rows: int = 0  # rows of the clean task (images_done counts these)
    top5: tuple[bool, ...] = ()  # clean top-5 hits of the complete batches
    #: attack -> l1pp of the fooled images correct clean (the final median's population)
    l1pp: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def images(self) -> float:
        return self.complete + self.running


class ProgressBoard:
    """The latest report of each attempt until the driver takes it (a plain class; the
    Ray actor is :data:`RemoteProgressBoard`)."""

    def __init__(self) -> None:
        self._latest: dict[int, Partial] = {}

    def report(self, token: int, partial: Partial) -> None:
        self._latest[token] = partial

    def take(self) -> dict[int, Partial]:
        """Reports since the last take (only the newest per attempt)."""
        out, self._latest = self._latest, {}
        return out


RemoteProgressBoard = ray.remote(num_cpus=0)(ProgressBoard)


@dataclass(frozen=True)
class ProgressTarget:
    """Where one attempt of a unit reports: a board (an actor handle, or a plain
    :class:`ProgressBoard` in tests) and the attempt's token."""

    board: Any
    token: int

    def send(self, partial: Partial) -> None:
        report = self.board.report
        if hasattr(report, "remote"):
            report.remote(self.token, partial)  # fire and forget: never slows the unit
        else:
            report(self.token, partial)


class UnitProgress:
    """The worker's side for one unit: counts complete batches and the running one."""

    def __init__(self, target: ProgressTarget | None, model: str, steps: int) -> None:
        self.target = target
        self.steps = max(1, steps)  # tasks per batch (clean, bounds, each attack)
        self.done = Partial(model)

    def step(self, batch_images: int, finished_steps: int) -> None:
        """Within a running batch: ``finished_steps`` of its tasks are done."""
        if self.target is not None:
            fraction = batch_images * min(finished_steps, self.steps) / self.steps
            self.target.send(replace(self.done, running=fraction))

    def commit(
        self,
        images: int,
        clean: list[dict[str, Any]] | None = None,
        attacks: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        """A batch is complete (its clean rows and each attack's rows): it counts from now on."""
        clean = clean or []
        merged = dict(self.done.l1pp)
        for attack, rows in (attacks or {}).items():
            fooled = (r.get("l1pp") for r in rows if r.get("success") and r.get("clean_correct"))
            merged[attack] = merged.get(attack, ()) + _present(fooled)
        self.done = replace(
            self.done,
            complete=self.done.complete + images,
            clean_rows=self.done.clean_rows + len(clean),
            top5=self.done.top5 + _present(r.get("top5_correct") for r in clean),
            l1pp=merged,
        )
        if self.target is not None:
            self.target.send(self.done)


def _present(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(v for v in values if v is not None)


class _NoBoard(ProgressBoard):
    """Stands in for a board whose actor died (its node was removed): reports nothing."""


#: Attempt tokens, unique in the driver: both stages report to one board, and a unit's
#: last report can land after its stage has taken the board for the last time (a token
#: per watch would hand that stale report to the next stage's first attempt).
_TOKENS = itertools.count()


class ProgressWatch:
    """The driver's side: tokens for each attempt, the bar in images, partial metrics.

    The scheduler calls :meth:`start` when it sends a unit (the extra call argument),
    :meth:`end` when that attempt is over (output, failure or requeue) and
    :meth:`tick` between its waits.
    """

    def __init__(
        self,
        board: Any,
        show: Callable[[float], None],
        size: Callable[[Any], int],
        on_partial: Callable[[str, list[Partial]], None] | None = None,
        every_s: float = 1.0,
    ) -> None:
        self.board = board
        self.show = show  # the bar: images done in this stage so far
        self.size = size  # a unit's number of images
        self.on_partial = on_partial  # (model, partials of its running units)
        self.every_s = every_s
        self._live: dict[str, tuple[int, int]] = {}  # unit key -> (attempt's token, images)
        self._partials: dict[int, Partial] = {}
        self._settled_images = 0.0
        self._pending: Any = None  # a take asked of the board actor, not read yet
        self._next_tick = 0.0

    def start(self, unit: Unit) -> tuple[Any, ...]:
        token = next(_TOKENS)
        self._live[unit.key] = (token, self.size(unit))
        return (ProgressTarget(self.board, token),)

    def end(self, unit: Unit, settled: bool) -> None:
        token, _ = self._live.pop(unit.key, (None, 0))
        if token is not None:
            self._partials.pop(token, None)
        if settled:
            self._settled_images += self.size(unit)
        self._show()

    def tick(self) -> None:
        now = time.monotonic()
        if now < self._next_tick:
            return
        self._next_tick = now + self.every_s
        images = dict(self._live.values())  # live attempt's token -> its images
        fresh = {t: p for t, p in self._take().items() if t in images}
        if not fresh:
            return
        grown = [  # new complete batches of a unit still running (its end logs the rest)
            t
            for t, p in fresh.items()
            if self._partials.get(t, Partial(p.model)).complete < p.complete < images[t]
        ]
        self._partials.update(fresh)
        self._show()
        if self.on_partial is not None:
            for model in sorted({fresh[t].model for t in grown}):
                self.on_partial(model, [p for p in self._partials.values() if p.model == model])

    def _take(self) -> dict[int, Partial]:
        """The board's reports; never waits on the board actor (the scheduler's loop must
        not stall on a busy machine): a take is asked for, and read on a later tick."""
        take = self.board.take
        if not hasattr(take, "remote"):
            plain: dict[int, Partial] = take()
            return plain
        try:
            if self._pending is not None:
                done, _ = ray.wait([self._pending], timeout=0)
                if not done:
                    return {}
                got: dict[int, Partial] = ray.get(self._pending)
                self._pending = take.remote()
                return got
            self._pending = take.remote()
        except ray.exceptions.RayError:  # the board's node is gone: progress stops, the run not
            self.board = _NoBoard()
            self._pending = None
        return {}

    def _show(self) -> None:
        running = sum(p.images for p in self._partials.values())
        self.show(self._settled_images + running)
