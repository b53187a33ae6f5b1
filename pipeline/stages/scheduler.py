"""Work units to model actors, surviving actor crashes and lost nodes.

Why the driver and not Ray retries the work (``max_task_retries=0``): when an
actor dies, its shards go back to the front of the model's queue and the next
*live* actor takes them at once, instead of waiting for the dead one to be
restarted and reload its network (or forever, when its node is gone and no
slot is free). Each result reaches the driver once, so a shard is written once.

An actor that died is not given work until it answers a ping: while Ray
restarts it (``max_restarts``) calls fail fast with ``ActorUnavailableError``,
and feeding it would only burn the shards' attempts. An actor whose ping says
it is dead for good, or that died more than ``max_restarts`` times, is retired;
when a model has no actor left, its remaining shards are reported as failed.

Actors either serve one model (their key in ``actors`` is the model) or every
model of the run (key :data:`ANY_MODEL`: one pool of actors that load networks
on demand, pipeline/stages/worker.py ``ModelPool``). A pooled actor takes its next unit
from the model with the most work left per actor already on it, measured in
seconds from the units finished so far (so the slowest model gets the most
actors), and stays on the model it has loaded while that is within a factor
of two of the best choice (a reload costs seconds).

The scheduler talks to actors through a :class:`Backend` (submit a call, wait,
get, kill): :class:`RayBackend` by default, which turns Ray's exceptions into
the three outcomes the scheduler acts on (:class:`ActorLost`,
:class:`ActorRestarting`, :class:`UnitFailed`). Tests drive the same logic
with a plain-Python actor simulation (tests/test_scheduler.py).
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import ray

from pipeline.results.write_error import ResultWriteError


class Unit(Protocol):
    """What the scheduler needs of a work unit: the model that runs it and an identity."""

    @property
    def model(self) -> str: ...

    @property
    def key(self) -> str: ...


ANY_MODEL = "*"  # the key of actors that serve every model
PING_INTERVAL_S = 0.5
RECOVERY_TIMEOUT_S = 900.0  # a restart that cannot be placed (no free slot) gives up
#: A call whose actor is gone: died, lost its result, or was killed by Ray's memory monitor
#: (OutOfMemoryError: the actor restarts and its unit is requeued, like any death).
ACTOR_ERRORS = (
    ray.exceptions.RayActorError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OutOfMemoryError,
)


class AttemptWatch(Protocol):
    """Follows each attempt of a unit (pipeline/stages/progress.py shows progress inside units)."""

    def start(self, unit: Unit) -> tuple[Any, ...]:
        """An attempt is sent; returns extra arguments for the actor's call."""

    def end(self, unit: Unit, settled: bool) -> None:
        """The attempt is over; ``settled``: the unit will not run again."""

    def tick(self) -> None:
        """Called between the scheduler's waits."""


class ActorLost(Exception):
    """The call's actor died (or its result was lost with it); ``why`` names the cause."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class ActorRestarting(ActorLost):
    """The actor is being restarted: calls fail fast until it is back."""


class UnitFailed(Exception):
    """The call itself raised on a live actor (the message is the actor's error)."""


class Backend(Protocol):
    """The handful of actor-runtime calls the scheduler makes."""

    def submit(self, handle: Any, method: str, *args: Any) -> Any:
        """Start ``handle.method(*args)``; return a reference to its result."""

    def wait(self, refs: list[Any], timeout: float) -> list[Any]:
        """Some of ``refs`` that are done (at most one), or none after ``timeout`` seconds."""

    def get(self, ref: Any) -> Any:
        """The result; raises :class:`ActorLost`, :class:`ActorRestarting` or :class:`UnitFailed`."""

    def kill(self, handle: Any) -> None:
        """End the actor for good (no restart)."""


class RayBackend:
    """Ray actors: ``handle.method.remote``, ``ray.wait``, ``ray.get``, ``ray.kill``."""

    def submit(self, handle: Any, method: str, *args: Any) -> Any:
        return getattr(handle, method).remote(*args)

    def wait(self, refs: list[Any], timeout: float) -> list[Any]:
        done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        return list(done)

    def get(self, ref: Any) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.ActorUnavailableError as exc:
            raise ActorRestarting(type(exc).__name__) from exc
        except ACTOR_ERRORS as exc:
            raise ActorLost(type(exc).__name__) from exc
        except ray.exceptions.RayTaskError as exc:  # a result not written: its line alone
            cause = exc.cause if isinstance(exc.cause, ResultWriteError) else exc
            raise UnitFailed(str(cause)) from exc

    def kill(self, handle: Any) -> None:
        ray.kill(handle, no_restart=True)


@dataclass(frozen=True)
class UnitFailure:
    """A unit that produced no output, as a value (not a "key: message" string):

    - ``raised``: the unit's call raised on a live actor (``message`` is the error);
    - ``lost``: its actor died on it on every attempt;
    - ``orphaned``: no actor that could run it is left.
    """

    kind: Literal["raised", "lost", "orphaned"]
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass
class _Actor:
    handle: Any
    model: str  # the model it serves, or ANY_MODEL
    deaths: int = 0
    current: str = ""  # the model of its last unit (pooled actors keep it loaded)
    last_death: float = float("-inf")
    state: str = "ready"  # ready | recovering | retired
    next_ping: float = 0.0
    recovering_since: float = 0.0


@dataclass
class ScheduleResult:
    failed: list[UnitFailure] = field(default_factory=list)
    requeued: int = 0


class UnitScheduler:
    """Keeps every live actor busy (one shard running, one queued on it)."""

    def __init__(
        self,
        actors: dict[str, list[Any]],
        units: Iterable[Unit],
        max_restarts: int,
        log: Callable[[str], None],
        method: str = "process",
        backend: Backend | None = None,
        watch: AttemptWatch | None = None,
    ) -> None:
        self.watch = watch
        self.actors = [_Actor(h, model) for model, hs in actors.items() for h in hs]
        self.queues: dict[str, collections.deque[Unit]] = collections.defaultdict(collections.deque)
        for unit in units:
            self.queues[unit.model].append(unit)
        self.method = method  # the actor method a unit is given to
        self.backend: Backend = backend or RayBackend()
        self.max_restarts = max_restarts
        self.max_attempts = max_restarts + 1
        self.log = log
        self.in_flight: dict[Any, tuple[_Actor, Unit, float]] = {}
        self.pings: dict[Any, _Actor] = {}
        self.attempts: collections.Counter[str] = collections.Counter()
        self.result = ScheduleResult()
        self.unit_seconds: dict[str, list[float]] = collections.defaultdict(list)

    # -- public ------------------------------------------------------------------------
    def run(
        self, on_output: Callable[[Any], None], on_settled: Callable[[], None]
    ) -> ScheduleResult:
        """Drive every unit to an output or a failure; ``on_settled`` counts both."""
        for actor in self.actors:
            self._fill(actor)
        while self.in_flight or self.pings or self._waiting_for_recovery():
            if self.watch is not None:
                self.watch.tick()
            self._send_due_pings()
            refs = [*self.in_flight, *self.pings]
            done = self.backend.wait(refs, PING_INTERVAL_S) if refs else []
            if not refs:
                time.sleep(PING_INTERVAL_S)
            for ref in done:
                if ref in self.pings:
                    self._on_ping(ref)
                else:
                    self._on_unit(ref, on_output, on_settled)
            self._fail_orphans(on_settled)
        return self.result

    def kill_all(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone
                self.backend.kill(actor.handle)

    # -- units -------------------------------------------------------------------------
    def _fill(self, actor: _Actor) -> None:
        busy = sum(1 for a, _, _ in self.in_flight.values() if a is actor)
        while actor.state == "ready" and busy < 2:
            model = self._next_model(actor)
            if model is None:
                return
            unit = self.queues[model].popleft()
            extra = self.watch.start(unit) if self.watch is not None else ()
            ref = self.backend.submit(actor.handle, self.method, unit, *extra)
            self.in_flight[ref] = (actor, unit, time.monotonic())
            actor.current = model
            busy += 1

    def _next_model(self, actor: _Actor) -> str | None:
        """The queue an actor takes from: its own model's, or for a pooled actor the one
        with the most measured work left per actor already on it (its loaded one if close)."""
        if actor.model != ANY_MODEL:
            return actor.model if self.queues[actor.model] else None
        on = collections.Counter(u.model for _, u, _ in self.in_flight.values())
        scores = {m: self._work_left(m) / (1 + on[m]) for m, q in self.queues.items() if q}
        if not scores:
            return None
        best = max(scores, key=lambda m: scores[m])
        if actor.current in scores and scores[actor.current] * 2 >= scores[best]:
            return actor.current
        return best

    def _work_left(self, model: str) -> float:
        """Seconds of queued work for a model, from its finished units (1 s each before any)."""
        done = self.unit_seconds.get(model)
        per_unit = sum(done) / len(done) if done else 1.0
        return len(self.queues[model]) * per_unit

    def _on_unit(
        self, ref: Any, on_output: Callable[[Any], None], on_settled: Callable[[], None]
    ) -> None:
        actor, unit, submitted = self.in_flight.pop(ref)
        try:
            out = self.backend.get(ref)
        except ActorLost as exc:
            self._on_actor_failure(actor, submitted)
            self._ended(unit, settled=not self._requeue(unit, exc.why, on_settled))
            self._fill_any(unit.model)
            return
        except UnitFailed as exc:
            self.result.failed.append(UnitFailure("raised", unit.key, str(exc)))
            self._ended(unit, settled=True)
            on_settled()
            self._fill(actor)
            return
        spent = getattr(out, "seconds", None)  # the actor's own time, without queueing
        self.unit_seconds[unit.model].append(spent or time.monotonic() - submitted)
        self._fill(actor)  # before writing: the actor never idles on the driver's I/O
        self._ended(unit, settled=True)
        on_output(out)
        on_settled()

    def _ended(self, unit: Unit, settled: bool) -> None:
        if self.watch is not None:
            self.watch.end(unit, settled)

    def _requeue(self, unit: Unit, why: str, on_settled: Callable[[], None]) -> bool:
        """Back to the front of its queue, or failed after its last attempt; True if requeued."""
        key = unit.key
        self.attempts[key] += 1
        if self.attempts[key] < self.max_attempts:
            self.log(f"actor for {unit.model} died on {unit.key} ({why}); requeued")
            self.queues[unit.model].appendleft(unit)
            self.result.requeued += 1
            return True
        self.result.failed.append(
            UnitFailure("lost", key, f"lost with its actor {self.attempts[key]} times")
        )
        on_settled()
        return False

    def _fill_any(self, model: str) -> None:
        for actor in self.actors:
            if actor.model in (model, ANY_MODEL):
                self._fill(actor)

    # -- actor health ------------------------------------------------------------------
    def _on_actor_failure(self, actor: _Actor, submitted: float) -> None:
        """Count a death once (one death fails every call queued on the actor; only a
        call submitted after the last counted death reveals a new one); then ping."""
        if submitted > actor.last_death:
            actor.deaths += 1
            actor.last_death = time.monotonic()
        if actor.deaths > self.max_restarts:
            self._retire(actor, f"died {actor.deaths} times")
        elif actor.state == "ready":
            actor.state = "recovering"
            actor.next_ping = actor.recovering_since = time.monotonic()

    def _send_due_pings(self) -> None:
        now = time.monotonic()
        pinged = set(map(id, self.pings.values()))
        for actor in self.actors:
            if actor.state == "recovering" and actor.next_ping <= now and id(actor) not in pinged:
                self.pings[self.backend.submit(actor.handle, "describe")] = actor

    def _on_ping(self, ref: Any) -> None:
        actor = self.pings.pop(ref)
        try:
            self.backend.get(ref)
        except ActorRestarting:
            now = time.monotonic()
            if now - actor.recovering_since > RECOVERY_TIMEOUT_S:
                self._retire(actor, f"not restarted within {RECOVERY_TIMEOUT_S:.0f} s")
            actor.next_ping = now + PING_INTERVAL_S  # still restarting
            return
        except ActorLost as exc:
            self._retire(actor, f"dead for good ({exc.why})")
            return
        if actor.state == "recovering":
            actor.state = "ready"
            self.log(f"actor for {actor.model} is back after a restart")
            self._fill(actor)

    def _retire(self, actor: _Actor, why: str) -> None:
        if actor.state != "retired":
            actor.state = "retired"
            self.log(f"an actor for {actor.model} is retired: {why}")

    def _waiting_for_recovery(self) -> bool:
        return any(
            a.state == "recovering" and any(self.queues[m] for m in self._served(a))
            for a in self.actors
        )

    def _served(self, actor: _Actor) -> list[str]:
        return list(self.queues) if actor.model == ANY_MODEL else [actor.model]

    def _fail_orphans(self, on_settled: Callable[[], None]) -> None:
        """A model with queued work and no actor left that could ever run it."""
        for model, queue in self.queues.items():
            able = [a for a in self.actors if a.model in (model, ANY_MODEL)]
            if queue and all(a.state == "retired" for a in able):
                while queue:
                    unit = queue.popleft()
                    self.result.failed.append(
                        UnitFailure("orphaned", unit.key, f"no live actor left for {model}")
                    )
                    self._ended(unit, settled=True)
                    on_settled()
