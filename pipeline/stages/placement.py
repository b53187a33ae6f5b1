"""Actor requests planned against the nodes that exist, then reserved by Ray at once.

An actor runs on one node, so a request sized from the cluster's total (2 CPUs
each on two 1-CPU nodes) may fit on no node and wait forever. :func:`plan_actors`
sizes one identical request per actor from each alive node's CPUs and GPUs so
that every actor fits on a node and all fit together (equal requests pack
greedily, so Ray's own bundle placement finds the fit the count promises), and
where there are GPUs every GPU gets an actor. :func:`reserve` then asks Ray for
one placement group with one bundle per actor (SPREAD: compute-bound actors on
as many nodes as possible) and waits for it; the actors are scheduled into the
bundles. A request no node can hold raises :class:`PlacementError` before Ray
is asked (one line, exit 2); one that fits on paper but is not reserved within
``ray.placement_timeout_s`` (another job holds the resources) raises it too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import ray
from ray.util.placement_group import (
    PlacementGroup,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

from pipeline.config.benchmark import RayCfg
from pipeline.config.error import ConfigError

STRATEGY = "SPREAD"
QUANTUM = 1e-4  # Ray's resource granularity: shares are rounded down to it, so they still fit
EPS = 1e-9


class PlacementError(ConfigError):
    """The run's actors cannot all be placed on the cluster's nodes (the message says why)."""

    label = "placement error"


@dataclass(frozen=True)
class Node:
    """An alive Ray node and what it offers actors."""

    node_id: str
    address: str
    cpus: float
    gpus: float

    def holds(self, cpu: float, gpu: float) -> int:
        """How many actors asking ``cpu`` and ``gpu`` fit here."""
        fit = math.floor(self.cpus / cpu + EPS) if cpu else math.inf
        if gpu:
            fit = min(fit, math.floor(self.gpus / gpu + EPS))
        return int(fit) if fit != math.inf else 0

    def describe(self) -> str:
        gpus = f", {self.gpus:g} GPU" if self.gpus else ""
        return f"{self.node_id[:8]} ({self.address}: {self.cpus:g} CPU{gpus})"


@dataclass(frozen=True)
class Plan:
    """How many actors, what each asks for, and whether they serve every model."""

    n_actors: int
    cpu: float
    gpu: float
    pooled: bool

    def bundle(self) -> dict[str, float]:
        return {"CPU": self.cpu, **({"GPU": self.gpu} if self.gpu else {})}

    def request(self) -> str:
        return f"{self.n_actors} actor(s) of {_fmt(self.bundle())}"


def alive_nodes() -> list[Node]:
    """Ray's view of the cluster, node by node (a dead node offers nothing)."""
    return [
        Node(
            node_id=str(n["NodeID"]),
            address=str(n.get("NodeManagerAddress", "?")),
            cpus=float(n.get("Resources", {}).get("CPU", 0.0)),
            gpus=float(n.get("Resources", {}).get("GPU", 0.0)),
        )
        for n in ray.nodes()
        if n.get("Alive")
    ]


def plan_actors(cfg: RayCfg, device: str, n_models: int, nodes: list[Node]) -> Plan:
    """The actors of a run and the one request each makes, fitted to ``nodes``.

    GPUs are asked for when ``device`` may use CUDA and some node has one (or
    ``device`` demands CUDA: then a cluster without GPUs is an error). Shares
    shrink below ``cpus_per_actor``/``gpus_per_actor`` when there are more
    actors than room, as on a laptop with 3 models and 2 cores; a share larger
    than every node is the user's request and an error, not something to shrink.
    """
    needs_cuda = device.startswith("cuda")
    may_use_cuda = device == "auto" or needs_cuda
    wants_gpu = may_use_cuda and cfg.gpus_per_actor > 0 and any(n.gpus for n in nodes)
    if needs_cuda and not wants_gpu:
        what = f"an actor asking {{GPU: {cfg.gpus_per_actor:g}}} (device {device})"
        raise _error(what, nodes, "set device: auto (or cpu), or add GPU nodes")
    eligible = [n for n in nodes if n.cpus > 0 and (n.gpus > 0 or not wants_gpu)]
    if not eligible:
        raise _error("an actor asks for CPUs", nodes, "add nodes with CPUs")
    pooled = cfg.pooled if cfg.pooled is not None else wants_gpu
    gpu = cfg.gpus_per_actor if wants_gpu else 0.0
    if gpu > max(n.gpus for n in eligible) + EPS:
        what = f"an actor asking {{GPU: {gpu:g}}} (ray.gpus_per_actor)"
        raise _error(what, nodes, "lower ray.gpus_per_actor, or add larger nodes")
    cap = cfg.cpus_per_actor
    if cap is not None and cap > max(n.cpus for n in eligible) + EPS:
        on = " on a GPU node" if wants_gpu else ""
        what = f"an actor asking {{CPU: {cap:g}}}{on} (ray.cpus_per_actor)"
        raise _error(what, nodes, "lower ray.cpus_per_actor, or add larger nodes")
    slots = sum(n.holds(0.0, gpu) for n in eligible) if gpu else 0
    if pooled:
        n_actors = cfg.actors or (slots or n_models)
    elif cfg.actors_per_model:
        n_actors = cfg.actors_per_model * n_models
    else:
        n_actors = max(n_models, slots)  # with GPUs: every GPU gets an actor
    if gpu:
        gpu = _largest(_gpu_shares(gpu, n_actors), lambda g: _room(eligible, QUANTUM, g), n_actors)
    cpus = {n.cpus / k for n in eligible for k in range(1, n_actors + 1)}
    candidates = [c for c in cpus if cap is None or c <= cap] + ([cap] if cap else [])
    cpu = _largest(candidates, lambda c: _room(eligible, c, gpu), n_actors)
    if not cpu or (wants_gpu and not gpu):
        what = f"{n_actors} actors with at least {{CPU: {QUANTUM:g}}} each"
        raise _error(what, nodes, "lower ray.actors / ray.actors_per_model, or add nodes")
    return Plan(n_actors=n_actors, cpu=cpu, gpu=gpu, pooled=pooled)


def _gpu_shares(gpu: float, n_actors: int) -> list[float]:
    """GPU requests Ray accepts, up to ``gpu``: whole GPUs, or a share of one (1/k, or
    ``gpu`` itself below 1); Ray refuses 1.5 GPUs."""
    wholes = [float(k) for k in range(1, math.floor(gpu + EPS) + 1)]
    parts = [1 / k for k in range(2, n_actors + 1) if 1 / k <= gpu] + ([gpu] if gpu < 1 else [])
    return wholes + parts


def _largest(candidates: list[float], room: Callable[[float], int], n_actors: int) -> float:
    """The largest candidate share (rounded down to Ray's quantum) with room for every actor."""
    for share in sorted(
        {math.floor(c / QUANTUM + EPS) * QUANTUM for c in candidates}, reverse=True
    ):
        if share > 0 and room(share) >= n_actors:
            return round(share, 4)
    return 0.0


def _room(nodes: list[Node], cpu: float, gpu: float) -> int:
    return sum(n.holds(cpu, gpu) for n in nodes)


def _fmt(resources: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in resources.items()) + "}"


def _nodes_line(nodes: list[Node]) -> str:
    return "; ".join(n.describe() for n in nodes) or "none alive"


def _error(request: str, nodes: list[Node], fix: str) -> PlacementError:
    """One line: the request, every node's resources, and what to change."""
    return PlacementError(f"{request} fits on no node; the nodes: {_nodes_line(nodes)}; {fix}")


@dataclass
class Reservation:
    """The placement group holding one bundle per actor, and where Ray put each bundle."""

    group: PlacementGroup
    plan: Plan
    bundle_nodes: list[str]  # node id of bundle i

    def release(self) -> None:
        remove_placement_group(self.group)

    def summary(self, nodes: list[Node], kind: str) -> str:
        """One line: how many actors went on which node, each with what resources."""
        by_id = {n.node_id: n for n in nodes}
        counts = Counter(self.bundle_nodes)
        where = "; ".join(
            f"{count} on {by_id[node].describe() if node in by_id else node[:8]}"
            for node, count in sorted(counts.items(), key=lambda kv: -kv[1])
        )
        return (
            f"ray: {self.plan.n_actors} {kind}, each {_fmt(self.plan.bundle())}, "
            f"placed ({STRATEGY}) {where}"
        )


def reserve(plan: Plan, nodes: list[Node], timeout_s: float) -> Reservation:
    """One bundle per actor, reserved by Ray; a group not ready in ``timeout_s`` is an error."""
    group = placement_group([plan.bundle()] * plan.n_actors, strategy=STRATEGY)
    try:
        ray.get(group.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        remove_placement_group(group)
        raise PlacementError(
            f"{plan.request()} were not reserved within {timeout_s:g} s "
            "(ray.placement_timeout_s): other work holds the resources of the nodes: "
            f"{_nodes_line(nodes)}"
        ) from None
    table = placement_group_table(group)
    placed = table.get("bundles_to_node_id", {})
    return Reservation(group, plan, [str(placed.get(i, "?")) for i in range(plan.n_actors)])
