"""The shard scheduler's retire/recover logic against a plain-Python actor simulation.

The real-Ray fault tests (tests/test_cluster.py: SIGKILL a busy actor, remove a
node) show the scheduler works with Ray; these pin down each rule on its own, in
a second: requeue on death, recovery after a ping, retirement after
``max_restarts`` deaths or when the actor is dead for good, and units failing
once no actor of their model is left. :class:`FakeBackend` answers the same
four calls :class:`~pipeline.stages.scheduler.RayBackend` does, with the outcomes
RayBackend turns Ray's exceptions into.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipeline.stages import scheduler
from pipeline.stages.scheduler import (
    ActorLost,
    ActorRestarting,
    UnitFailed,
    UnitFailure,
    UnitScheduler,
)


@dataclass(frozen=True)
class Unit:
    model: str
    key: str


class FakeActor:
    """One model actor as Ray runs it, following a script.

    It answers its calls in order; on its ``crash_on``-th call (counted over its
    whole life) it dies, and with it every call queued on that incarnation. Ray
    brings it back ``restarts`` times (after that it is dead for good); while it
    restarts, calls fail fast and its first ``unavailable_pings`` pings say so.
    """

    def __init__(
        self,
        name: str,
        crash_on: tuple[int, ...] = (),
        restarts: int = 0,
        unavailable_pings: int = 1,
        fail_units: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.crash_on = set(crash_on)
        self.restarts = restarts
        self.unavailable_pings = unavailable_pings
        self.fail_units = set(fail_units)  # keys whose call raises on a live actor
        self.state = "alive"  # alive | restarting | dead
        self.epoch = 0  # incarnation
        self.calls = self.deaths = self.pings_left = 0
        self.done: list[tuple[int, str]] = []  # (incarnation, unit key) it returned output for
        self.extras: list[Any] = []

    def answer(self, ref: Ref) -> Any:
        if ref.method == "describe":
            return self._ping()
        if ref.epoch != self.epoch:
            raise ActorLost("ActorDiedError")  # queued on the incarnation that died
        if self.state == "dead":
            raise ActorLost("ActorDiedError")
        if self.state == "restarting":
            raise ActorRestarting("ActorUnavailableError")
        self.calls += 1
        if self.calls in self.crash_on:
            self._die()
            raise ActorLost("ActorDiedError")
        unit = ref.args[0]
        self.extras.extend(ref.args[1:])  # the watch's extra arguments, if any
        if unit.key in self.fail_units:
            raise UnitFailed(f"ValueError: cannot read the image of {unit.key}")
        self.done.append((self.epoch, unit.key))
        return unit.key

    def _die(self) -> None:
        self.deaths += 1
        self.epoch += 1
        if self.deaths > self.restarts:
            self.state = "dead"
        else:
            self.state, self.pings_left = "restarting", self.unavailable_pings

    def _ping(self) -> str:
        if self.state == "dead":
            raise ActorLost("ActorDiedError")
        if self.state == "restarting":
            if self.pings_left > 0:
                self.pings_left -= 1
                raise ActorRestarting("ActorUnavailableError")
            self.state = "alive"
        return self.name


@dataclass(frozen=True)
class Ref:
    actor: FakeActor
    method: str
    args: tuple[Any, ...]
    epoch: int  # the actor's incarnation when the call was submitted


@dataclass
class FakeBackend:
    """Every call is done at once; ``wait`` hands back the oldest (Ray's FIFO per actor)."""

    killed: list[str] = field(default_factory=list)

    def submit(self, handle: FakeActor, method: str, *args: Any) -> Ref:
        return Ref(handle, method, args, handle.epoch)

    def wait(self, refs: list[Any], timeout: float) -> list[Any]:
        return refs[:1]

    def get(self, ref: Ref) -> Any:
        return ref.actor.answer(ref)

    def kill(self, handle: FakeActor) -> None:
        handle.state = "dead"
        self.killed.append(handle.name)


@dataclass
class Run:
    outputs: collections.Counter[str]
    settled: int
    failed: list[str]
    requeued: int
    log: list[str]


def run(
    actors: dict[str, list[FakeActor]],
    units: list[Unit],
    max_restarts: int,
    watch: scheduler.AttemptWatch | None = None,
) -> Run:
    log: list[str] = []
    outputs: collections.Counter[str] = collections.Counter()
    settled = 0

    def on_settled() -> None:
        nonlocal settled
        settled += 1

    sched = UnitScheduler(
        dict(actors), units, max_restarts, log.append, backend=FakeBackend(), watch=watch
    )
    result = sched.run(lambda key: outputs.update([key]), on_settled)
    return Run(outputs, settled, result.failed, result.requeued, log)


def units(model: str, n: int) -> list[Unit]:
    return [Unit(model, f"{model}/{i}") for i in range(n)]


@pytest.mark.unit
def test_a_dead_actors_units_are_requeued_and_it_works_again_after_a_ping() -> None:
    actor = FakeActor("a", crash_on=(1,), restarts=1, unavailable_pings=2)
    work = units("m", 4)
    r = run({"m": [actor]}, work, max_restarts=1)

    assert r.failed == [] and r.settled == 4
    assert r.outputs == {u.key: 1 for u in work}, "a unit lost or delivered twice"
    assert r.requeued == 2, "both calls queued on the dead actor go back to the queue"
    assert actor.deaths == 1 and {epoch for epoch, _ in actor.done} == {1}
    assert any("requeued" in line for line in r.log)
    assert any("back after a restart" in line for line in r.log)


@pytest.mark.unit
def test_an_actor_dying_more_than_max_restarts_is_retired_and_its_units_fail() -> None:
    """Ray would restart it again; the scheduler stops trusting it. Another model goes on."""
    flaky = FakeActor("a", crash_on=(1, 2), restarts=5, unavailable_pings=0)
    healthy = FakeActor("b")
    r = run({"m": [flaky], "n": [healthy]}, [*units("m", 3), *units("n", 2)], max_restarts=1)

    assert sorted(r.outputs) == ["n/0", "n/1"] and r.settled == 5
    assert sorted((f.kind, str(f)) for f in r.failed) == [
        ("lost", "m/0: lost with its actor 2 times"),
        ("lost", "m/1: lost with its actor 2 times"),
        ("orphaned", "m/2: no live actor left for m"),
    ]
    assert any("retired: died 2 times" in line for line in r.log)


@pytest.mark.unit
def test_an_actor_dead_for_good_is_retired_on_its_ping_and_a_live_one_takes_its_units() -> None:
    dead = FakeActor("a", crash_on=(1,), restarts=0)
    live = FakeActor("b")
    work = units("m", 6)
    r = run({"m": [dead, live]}, work, max_restarts=3)

    assert r.failed == [] and r.settled == 6
    assert r.outputs == {u.key: 1 for u in work}
    assert sorted(key for _, key in live.done) == sorted(u.key for u in work)
    assert any("retired: dead for good (ActorDiedError)" in line for line in r.log)


@pytest.mark.unit
def test_orphaned_units_fail_when_no_actor_is_left() -> None:
    actor = FakeActor("a", crash_on=(1,), restarts=0)
    r = run({"m": [actor]}, units("m", 3), max_restarts=3)

    assert not r.outputs and r.settled == 3
    assert sorted(r.failed, key=str) == [
        UnitFailure("orphaned", f"m/{i}", "no live actor left for m") for i in range(3)
    ]


@pytest.mark.unit
def test_a_restart_that_never_completes_is_retired(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "RECOVERY_TIMEOUT_S", 0.0)
    actor = FakeActor("a", crash_on=(1,), restarts=1, unavailable_pings=10**6)
    r = run({"m": [actor]}, units("m", 2), max_restarts=3)

    assert any("not restarted within 0 s" in line for line in r.log)
    assert sorted(map(str, r.failed)) == [
        "m/0: no live actor left for m",
        "m/1: no live actor left for m",
    ]


@pytest.mark.unit
def test_a_unit_that_raises_fails_alone_and_its_actor_keeps_working() -> None:
    actor = FakeActor("a", fail_units=("m/1",))
    r = run({"m": [actor]}, units("m", 4), max_restarts=1)

    assert r.failed == [UnitFailure("raised", "m/1", "ValueError: cannot read the image of m/1")]
    assert sorted(r.outputs) == ["m/0", "m/2", "m/3"] and r.settled == 4
    assert r.requeued == 0 and actor.state == "alive"


@pytest.mark.unit
def test_kill_all_ends_every_actor_for_good() -> None:
    backend = FakeBackend()
    actors = {"m": [FakeActor("a"), FakeActor("b")], "n": [FakeActor("c")]}
    UnitScheduler(actors, [], 1, print, backend=backend).kill_all()
    assert sorted(backend.killed) == ["a", "b", "c"]


# -- pooled actors: any actor serves any model, by measured throughput ----------------------


@pytest.mark.unit
def test_pooled_actors_take_every_models_units_and_a_dead_ones_go_to_the_others() -> None:
    pool = [FakeActor("p0", crash_on=(2,)), FakeActor("p1"), FakeActor("p2")]
    work = [*units("lite0", 5), *units("lite1", 5), *units("lite2", 5)]
    r = run({scheduler.ANY_MODEL: pool}, work, max_restarts=1)  # p0 is dead for good
    assert r.failed == [] and r.settled == 15 and r.requeued == 2
    assert r.outputs == {u.key: 1 for u in work}, "a unit lost or delivered twice"
    models_seen = {key.split("/")[0] for a in pool[1:] for _, key in a.done}
    assert models_seen == {"lite0", "lite1", "lite2"}, "pooled actors must serve every model"


@pytest.mark.unit
def test_a_pooled_actor_goes_where_the_most_measured_work_is_left_and_stays_if_close() -> None:
    sched = UnitScheduler(
        {scheduler.ANY_MODEL: [FakeActor("p")]},
        [*units("slow", 4), *units("fast", 4)],
        max_restarts=0,
        log=lambda _: None,
        backend=FakeBackend(),
    )
    (actor,) = sched.actors
    sched.unit_seconds["slow"] = [3.0]  # 4 units x 3 s left
    sched.unit_seconds["fast"] = [1.0]  # 4 units x 1 s left
    assert sched._next_model(actor) == "slow"
    actor.current = "fast"  # loaded, but a third of the best choice: it switches
    assert sched._next_model(actor) == "slow"
    sched.unit_seconds["fast"] = [2.0]  # now within a factor of two: no reload
    assert sched._next_model(actor) == "fast"
    sched.queues["slow"].clear()
    sched.queues["fast"].clear()
    assert sched._next_model(actor) is None


@dataclass
class AttemptLog:
    """A watch that records what the scheduler tells it (pipeline/stages/progress.py's contract)."""

    events: list[tuple[str, str, bool]] = field(default_factory=list)
    ticks: int = 0

    def start(self, unit: Any) -> tuple[Any, ...]:
        self.events.append(("start", unit.key, False))
        return (f"token-{len(self.events)}",)

    def end(self, unit: Any, settled: bool) -> None:
        self.events.append(("end", unit.key, settled))

    def tick(self) -> None:
        self.ticks += 1


@pytest.mark.unit
def test_the_watch_sees_every_attempt_end_and_only_the_last_one_settles_a_unit() -> None:
    """A requeued attempt ends unsettled (its progress is dropped), the retry starts anew
    with a new token; failed and orphaned units settle too, so a bar reaches its total."""
    watch = AttemptLog()
    crashing = FakeActor("a", crash_on=(2,), restarts=1)  # dies once, comes back
    failing = FakeActor("b", fail_units=("b/1",))  # b/1 raises on a live actor
    lost = FakeActor("g", crash_on=(1,))  # dead for good: its units are orphaned
    work = [*units("m", 3), *units("b", 2), *units("gone", 2)]
    r = run({"m": [crashing], "b": [failing], "gone": [lost]}, work, 1, watch)

    assert r.settled == 7 and r.requeued > 0 and len(r.failed) == 3
    starts = collections.Counter(k for e, k, _ in watch.events if e == "start")
    settled = collections.Counter(k for e, k, s in watch.events if e == "end" and s)
    unsettled = collections.Counter(k for e, k, s in watch.events if e == "end" and not s)
    assert settled == {u.key: 1 for u in work}, "exactly one settling end per unit"
    assert sum(unsettled.values()) == r.requeued, "each requeued attempt ends unsettled"
    for unit in work:  # every attempt ends; an orphaned unit settles without running
        ran = settled[unit.key] if unit.model != "gone" else 0
        assert starts[unit.key] == ran + unsettled[unit.key], unit.key
    tokens = [extra for a in (crashing, failing) for extra in a.extras]
    assert tokens and len(set(tokens)) == len(tokens), "each attempt carries its own token"
    assert watch.ticks > 0
