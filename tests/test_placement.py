"""Actor requests fitted to the nodes that exist, on paper and on real multi-node clusters.

The planning tests give :func:`plan_actors` node lists (it is arithmetic, checked
by placing the planned actors greedily, as Ray places equal bundles). The
cluster tests run the real pipeline on one ``ray.cluster_utils.Cluster`` whose
worker nodes are swapped per test (the head offers no CPU, so only the nodes
under test hold actors): every run must end with every row exactly once, or
with the one-line placement error and exit 2 within seconds.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from ray.cluster_utils import Cluster
from ray.util.placement_group import placement_group, remove_placement_group

import pipeline.cli.main as cli
from pipeline.config.benchmark import AttackRef, BenchmarkConfig, DatasetCfg, ModelRef, RayCfg
from pipeline.data import build_manifest
from pipeline.run.run_result import RunHooks
from pipeline.run.runner import run_benchmark
from pipeline.stages.attack_unit import AttackOutput
from pipeline.stages.placement import Node, PlacementError, alive_nodes, plan_actors
from pipeline.summary.attacks import read_results

TINY = ("test_convnext", "test_convnext2", "test_convnext3")  # timm test nets, ~0.3M params
N_IMAGES = 3


def nodes(*shapes: tuple[float, float]) -> list[Node]:
    """Nodes of (CPUs, GPUs)."""
    return [Node(f"node{i:04d}", "10.0.0.1", c, g) for i, (c, g) in enumerate(shapes)]


def place_greedily(plan_nodes: list[Node], n: int, cpu: float, gpu: float) -> list[int]:
    """Actors per node when each goes to the first node with room (what Ray does with
    equal bundles); fails if one finds no room."""
    free = [[node.cpus, node.gpus] for node in plan_nodes]
    counts = [0] * len(plan_nodes)
    for _ in range(n):
        i = next(i for i, (c, g) in enumerate(free) if c >= cpu - 1e-9 and g >= gpu - 1e-9)
        free[i][0] -= cpu
        free[i][1] -= gpu
        counts[i] += 1
    return counts


# -- planning -----------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("shapes", "ray_cfg", "models", "expected"),
    [
        # the issue: one model on two 1-CPU nodes asked for 2 CPUs and was never placed
        ([(1, 0), (1, 0)], RayCfg(), 1, (1, 1.0, 0.0)),
        # 3 models on 4 nodes of 8 CPUs asked for 10.67 CPUs each
        ([(8, 0)] * 4, RayCfg(), 3, (3, 8.0, 0.0)),
        ([(2, 0), (2, 0)], RayCfg(), 3, (3, 1.0, 0.0)),
        # a 2-core laptop: shares shrink below the config's request so all fit at once
        ([(2, 0)], RayCfg(cpus_per_actor=1), 3, (3, 0.6666, 0.0)),
        ([(2, 0)], RayCfg(), 1, (1, 2.0, 0.0)),
        # GPUs: pooled by default, one actor per GPU, the CPUs of the GPU nodes shared out
        ([(2, 4), (2, 4)], RayCfg(), 3, (8, 0.5, 1.0)),
        ([(1, 0), (16, 1), (16, 1)], RayCfg(), 3, (2, 16.0, 1.0)),
        # one actor per model on more GPUs than models: every GPU still gets an actor
        ([(8, 4), (8, 4)], RayCfg(pooled=False), 3, (8, 2.0, 1.0)),
        # more models than GPUs: fractional GPU shares
        ([(16, 1)], RayCfg(pooled=False, cpus_per_actor=1), 3, (3, 1.0, 0.3333)),
        # a GPU share Ray accepts: 1.5 GPUs on 1-GPU nodes is not one; a share of 0.3 stays
        ([(8, 1), (8, 1)], RayCfg(pooled=True, actors=5, gpus_per_actor=1), 1, (5, 2.6666, 0.3333)),
        ([(8, 2)], RayCfg(actors=3, gpus_per_actor=0.3, cpus_per_actor=1), 1, (3, 1.0, 0.3)),
        # what the config asks for, when there is room
        ([(16, 4)], RayCfg(pooled=False, actors_per_model=1, cpus_per_actor=1), 2, (2, 1.0, 1.0)),
    ],
)
def test_every_planned_actor_fits_on_a_node_and_all_fit_at_once(
    shapes: list[tuple[float, float]], ray_cfg: RayCfg, models: int, expected: tuple
) -> None:
    plan_nodes = nodes(*shapes)
    plan = plan_actors(ray_cfg, "auto", models, plan_nodes)
    assert (plan.n_actors, plan.cpu, plan.gpu) == expected
    counts = place_greedily(plan_nodes, plan.n_actors, plan.cpu, plan.gpu)
    gpus = sum(n.gpus for n in plan_nodes)
    chosen = ray_cfg.actors or ray_cfg.actors_per_model  # else the plan picks the count
    if gpus and plan.gpu >= 1 and not chosen:  # whole GPUs: every one holds an actor
        assert sum(counts) * plan.gpu == gpus


@pytest.mark.unit
def test_device_cpu_asks_for_no_gpu() -> None:
    plan = plan_actors(RayCfg(), "cpu", 3, nodes((2, 0), (4, 2)))
    assert plan.gpu == 0.0 and not plan.pooled and plan.n_actors == 3 and plan.cpu == 2.0


@pytest.mark.unit
@pytest.mark.parametrize(
    ("shapes", "ray_cfg", "device", "fragment"),
    [
        (
            [(4, 0), (4, 0)],
            RayCfg(),
            "cuda",
            "{GPU: 1} (device cuda) fits on no node",
        ),
        (
            [(2, 0), (2, 0)],
            RayCfg(cpus_per_actor=4),
            "auto",
            "{CPU: 4} (ray.cpus_per_actor) fits on no node",
        ),
        (
            [(8, 1), (8, 1)],
            RayCfg(gpus_per_actor=2),
            "auto",
            "{GPU: 2} (ray.gpus_per_actor) fits on no node",
        ),
        # the CPUs are on the head, the GPU node has 1: a GPU actor cannot have 4
        ([(16, 0), (1, 1)], RayCfg(cpus_per_actor=4), "auto", "{CPU: 4} on a GPU node"),
    ],
)
def test_a_request_no_node_can_hold_is_one_line_naming_it_and_the_nodes(
    shapes: list[tuple[float, float]], ray_cfg: RayCfg, device: str, fragment: str
) -> None:
    with pytest.raises(PlacementError) as info:
        plan_actors(ray_cfg, device, 3, nodes(*shapes))
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert all(n.node_id[:8] in message for n in nodes(*shapes)), message


# -- real clusters ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head that offers no CPU, joined by the worker nodes each test declares."""
    made = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False},
    )
    ray.init(address=made.address, logging_level=logging.WARNING)
    yield made
    ray.shutdown()
    made.shutdown()


def with_workers(cluster: Cluster, n: int, num_cpus: int, num_gpus: int = 0) -> list[Node]:
    """``n`` worker nodes of ``num_cpus`` and ``num_gpus``, all alive; return them. The
    nodes of the test before are kept when Ray reports them of that shape (each run
    releases what it reserved, and a node costs seconds of Ray's daemons to start);
    otherwise they are replaced."""
    if [(w.cpus, w.gpus) for w in alive_nodes() if w.cpus > 0] != [(num_cpus, num_gpus)] * n:
        for node in list(cluster.worker_nodes):
            cluster.remove_node(node)
        for _ in range(n):
            cluster.add_node(object_store_memory=100 * 2**20, num_cpus=num_cpus, num_gpus=num_gpus)
        cluster.wait_for_nodes()
    deadline = time.monotonic() + 30
    while True:
        workers = [w for w in alive_nodes() if w.cpus > 0]
        if len(workers) == n and len(alive_nodes()) == n + 1:
            return workers
        assert time.monotonic() < deadline, f"workers not (only) alive: {alive_nodes()}"
        time.sleep(0.2)


def tiny_config(tmp_path: Path, photos: Path, n_models: int, **ray_cfg: Any) -> BenchmarkConfig:
    """2-4 photos, ``sign``, clean and min_perturbation, tiny untrained networks at 32 px."""
    return BenchmarkConfig(
        name="placed",
        dataset=DatasetCfg(layout="ilsvrc", root=str(photos), limit=N_IMAGES),
        models=tuple(
            ModelRef(f"untrained_timm:{m}", {"input_size": [32, 32]}) for m in TINY[:n_models]
        ),
        attacks=(AttackRef("sign"),),
        tasks=("clean", "min_perturbation"),
        output_dir=str(tmp_path),
        shard_size=1,
        batch_size=4,
        ray=RayCfg(max_restarts=0, **ray_cfg),
    )


def assert_rows_exactly_once(cfg: BenchmarkConfig, photos: Path) -> None:
    ids = build_manifest("ilsvrc", str(photos), N_IMAGES).table.column("image_id").to_pylist()
    expected = sorted((i, m.name) for i in ids for m in cfg.models)
    for sub in ("clean", "attacks"):
        table = read_results(Path(cfg.output_dir) / cfg.name, sub)
        assert table is not None, sub
        keys = sorted((r["image_id"], r["model"]) for r in table.to_dicts())
        assert keys == expected, f"{sub}: rows lost or duplicated"


def opening_line(err: str) -> str:
    (line,) = [x for x in err.splitlines() if x.startswith("ray: ") and "placed" in x]
    return line


def run_placed(
    cfg: BenchmarkConfig,
    photos: Path,
    capsys: pytest.CaptureFixture[str],
    while_running: Callable[[], None] = lambda: None,
) -> tuple[str, list[AttackOutput]]:
    """Run ``cfg`` to the end; its opening line and every shard's output.
    ``while_running`` is called after each shard, while the actors live."""
    outputs: list[AttackOutput] = []

    def record(out: AttackOutput) -> None:
        outputs.append(out)
        while_running()

    summary = run_benchmark(cfg, hooks=RunHooks(attack_unit=record))
    assert not summary.failed_units, summary.failed_units
    assert_rows_exactly_once(cfg, photos)
    return opening_line(capsys.readouterr().err), outputs


@pytest.mark.integration
@pytest.mark.own_ray  # a multi-node cluster of its own (conftest: the session Ray is stopped)
@pytest.mark.parametrize(
    ("cpus", "n_models", "placed"),
    [
        (1, 1, ["1 model actors, each {CPU: 1}, placed (SPREAD) 1 on "]),  # the cluster
        (2, 3, ["3 model actors, each {CPU: 1}, placed (SPREAD) 2 on ", "; 1 on "]),
    ],
    ids=["one-model-two-1-cpu-nodes", "three-models-two-2-cpu-nodes"],
)
def test_cpu_actors_fit_on_small_nodes(
    cluster: Cluster,
    tmp_path: Path,
    imagenet_sample: Path,
    capsys: pytest.CaptureFixture[str],
    cpus: int,
    n_models: int,
    placed: list[str],
) -> None:
    workers = with_workers(cluster, 2, num_cpus=cpus)
    cfg = tiny_config(tmp_path, imagenet_sample, n_models)
    line, outputs = run_placed(cfg, imagenet_sample, capsys)
    assert all(p in line for p in placed), line
    used = {o.node_id for o in outputs}
    assert used <= {w.node_id for w in workers} and len(used) == min(n_models, 2)


@pytest.mark.integration
@pytest.mark.own_ray  # a multi-node cluster of its own (conftest: the session Ray is stopped)
@pytest.mark.parametrize(
    ("shape", "ray_cfg", "device", "fragment"),
    [
        ({"num_cpus": 2}, {}, "cuda", "{GPU: 1} (device cuda) fits on no node"),
        (
            {"num_cpus": 2},
            {"cpus_per_actor": 4},
            "auto",
            "{CPU: 4} (ray.cpus_per_actor) fits on no node",
        ),
    ],
)
def test_an_unplaceable_run_exits_2_in_one_line_within_seconds(
    cluster: Cluster,
    tmp_path: Path,
    imagenet_sample: Path,
    capfd: pytest.CaptureFixture[str],
    shape: dict[str, Any],
    ray_cfg: dict[str, Any],
    device: str,
    fragment: str,
) -> None:
    workers = with_workers(cluster, 2, **shape)
    raw = tiny_config(tmp_path, imagenet_sample, 1, address=cluster.address, **ray_cfg).as_dict()
    config = tmp_path / "unplaceable.yaml"
    config.write_text(yaml.safe_dump({**raw, "device": device}))
    capfd.readouterr()

    start = time.monotonic()
    code = cli.main(["run", str(config)])
    seconds = time.monotonic() - start

    err = capfd.readouterr().err
    # the manifest's summary line, then the one error line (placement is checked once the
    # plan has work, so a run with nothing to do never starts Ray)
    lines = [x for x in err.splitlines() if x.strip() and not x.startswith("manifest: ")]
    assert code == 2 and seconds < 10, (code, seconds, err)
    assert lines == [lines[-1]] and lines[-1].startswith("placement error: "), err
    assert fragment in lines[-1] and all(w.describe() in lines[-1] for w in workers), err
    placed = tmp_path / "placed"  # the manifest is built; no actor ran, no MLflow run opened
    assert not (placed / "attacks").exists() and not (placed / "mlflow.json").exists()


@pytest.mark.integration
@pytest.mark.own_ray  # a multi-node cluster of its own (conftest: the session Ray is stopped)
def test_resources_held_by_other_work_fail_the_run_after_the_placement_timeout(
    cluster: Cluster, tmp_path: Path, imagenet_sample: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The plan fits the nodes, but another job holds every CPU: exit 2 in one line, no wait."""
    with_workers(cluster, 2, num_cpus=2)
    other_job = placement_group([{"CPU": 2}] * 2, strategy="STRICT_SPREAD")
    ray.get(other_job.ready(), timeout=30)
    try:
        raw = tiny_config(tmp_path, imagenet_sample, 1, placement_timeout_s=2).as_dict()
        config = tmp_path / "busy.yaml"
        config.write_text(yaml.safe_dump(raw))
        capfd.readouterr()
        code = cli.main(["run", str(config)])
        lines = [x for x in capfd.readouterr().err.splitlines() if x.strip()]
        assert code == 2, lines
        assert lines[-1].startswith("placement error: 1 actor(s) of {CPU: 2} were not reserved")
        assert sum("placement error" in x for x in lines) == 1, lines
        states = [g["state"] for g in ray.util.placement_group_table().values()]
        assert states.count("CREATED") == 1 and "PENDING" not in states, states  # released
    finally:
        remove_placement_group(other_job)


@pytest.mark.integration
@pytest.mark.own_ray  # a multi-node cluster of its own (conftest: the session Ray is stopped)
def test_three_models_on_two_two_gpu_nodes_put_an_actor_on_every_gpu(
    cluster: Cluster, tmp_path: Path, imagenet_sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Declared GPUs on a machine without CUDA: placed as GPUs, computed on the CPU. Four
    GPUs for three models: pooled actors outnumber the models, and each node's CPU is
    shared out between its GPUs' actors."""
    workers = with_workers(cluster, 2, num_cpus=1, num_gpus=2)
    groups: list[dict[str, Any]] = []

    def record_groups() -> None:
        if not groups:
            groups.extend(g for g in ray.util.placement_group_table().values() if g["bundles"])

    cfg = tiny_config(tmp_path, imagenet_sample, 3)
    line, outputs = run_placed(cfg, imagenet_sample, capsys, record_groups)
    assert "ray: 4 pooled actors, each serving every model, each {CPU: 0.5, GPU: 1}" in line
    assert all(f"2 on {w.describe()}" in line for w in workers), line

    (group,) = [g for g in groups if g["state"] == "CREATED"]
    assert list(group["bundles"].values()) == [{"CPU": 0.5, "GPU": 1.0}] * 4
    per_node = collections.Counter(group["bundles_to_node_id"].values())
    assert per_node == {w.node_id: 2 for w in workers}, "a declared GPU holds no actor"
    assert {o.worker for o in outputs} == {"cpu"}, "no CUDA here: the actors compute on CPU"
    assert not [g for g in ray.util.placement_group_table().values() if g["state"] == "CREATED"]
