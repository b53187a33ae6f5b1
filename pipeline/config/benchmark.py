"""Benchmark configuration: YAML in, a validated frozen dataclass out.

The keys the README and configs/ document are a contract. Every mistake is found here,
on the driver, before a model, Ray or MLflow starts, and reported as one line
that names the file, the key, the bad value and what to write instead; nothing
unknown is silently ignored. Attack names and parameters are checked against
the torch-free catalogue (:mod:`tasks.attacks.specs`), model and layout names
against :mod:`pipeline.config.names`, so a config error answers in milliseconds.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import entries
from pipeline.config.checks import checked_eval
from pipeline.config.entries import AttackRef, ModelRef
from pipeline.config.error import ConfigError, excerpt, located
from pipeline.config.evaluation import EvalCfg
from pipeline.config.names import LAYOUT_NAMES
from pipeline.config.overrides import Override
from pipeline.config.overrides import apply as apply_overrides
from pipeline.config.yaml_file import load_yaml
from tasks.attacks.specs import attack_spec
from tasks.protocol import TASKS
from tasks.registry import RegistryError
from tasks.typed import ParamError, checked_values, known_keys, param

if TYPE_CHECKING:
    from pipeline.data.limits import DataLimits

#: A run name becomes a directory name: one path component, no hidden or option-like names.
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
N_CLASSES = 1000  #: ImageNet-1k: top_k beyond it cannot be computed
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class DatasetCfg:
    """The images: a layout and its root (``foveabench list layouts``)."""

    layout: str = param("sample", "sample, ilsvrc, kaggle or imagefolder (the README's table)")
    root: str | None = param(None, "the dataset folder or object-store URI (not for sample)")
    limit: int | None = param(None, "first N images of the manifest (sorted by image_id)", ge=0)
    #: Bounds per image, checked before decoding (pipeline/data/limits.py): far above ILSVRC,
    #: far below what a crafted file needs to exhaust memory.
    max_boxes: int = param(1000, "boxes one image may have (more: a bad row)", ge=1)
    max_xml_bytes: int = param(1_000_000, "bytes of one bbox XML (more: a bad row)", ge=1)
    max_aspect: float = param(30.0, "longest over shortest image side (more: a bad row)", ge=1)

    def limits(self) -> DataLimits:
        from pipeline.data.limits import DataLimits

        return DataLimits(self.max_boxes, self.max_xml_bytes, self.max_aspect)


@dataclass(frozen=True)
class MlflowCfg:
    """Where the run is tracked."""

    tracking_uri: str | None = param(
        None, "MLflow server or store (null: MLFLOW_TRACKING_URI, else output_dir/mlflow.db)"
    )
    experiment: str = param("foveabench", "MLflow experiment name")
    request_timeout_s: int = param(
        30, "seconds an MLflow server may take per request (2 retries, then no tracking)", ge=1
    )


@dataclass(frozen=True)
class ReportCfg:
    """What the report flags."""

    perceptible_linf: float = param(
        16.0, "a minimum perturbation with linf above this (0..255 units) is flagged", gt=0
    )


@dataclass(frozen=True)
class RayCfg:
    """The Ray cluster and the actors on it (README, "Actors and GPUs")."""

    address: str | None = param(
        None, "a running cluster's address (host:6379, ray://host:10001); null: a local Ray"
    )
    gpus_per_actor: float = param(1.0, "GPU share per actor, when the cluster has GPUs", ge=0)
    cpus_per_actor: float | None = param(
        None, "CPU cores per actor (null: the largest equal share the nodes can all hold)", gt=0
    )
    actors_per_model: int | None = param(
        None, "null: one per model, and with GPUs one per GPU share (models take turns)", ge=1
    )
    max_restarts: int = param(3, "restarts of a crashed actor", ge=0)
    #: Pooled actors serve every model (loaded on demand), scheduled by measured throughput,
    #: so 8 GPUs and 3 models keep all 8 busy. None: pooled when the cluster has GPUs.
    pooled: bool | None = param(
        None, "every actor serves every model (null: pooled when the cluster has GPUs)"
    )
    actors: int | None = param(
        None, "pooled actors (null: one per GPU share, or one per model on CPU)", ge=1
    )
    model_memory_mb: float = param(
        8192.0, "network bytes a pooled actor keeps resident before evicting (LRU)", gt=0
    )
    placement_timeout_s: float = param(
        60.0, "seconds Ray may take to reserve every actor's resources before the run fails", gt=0
    )
    connect_timeout_s: float = param(
        30.0, "seconds ray.address may take to answer before the run stops", gt=0
    )


@dataclass(frozen=True)
class BenchmarkConfig:
    """A benchmark: what to run on which images, where the results go."""

    name: str = param("demo", "the run's directory under output_dir and its MLflow run name")
    dataset: DatasetCfg = field(default_factory=DatasetCfg)
    models: tuple[ModelRef, ...] = param(
        (ModelRef("efficientnet_lite0"),),
        "names, or {name: {settings}} with preprocessing keys (input_size, mean, std, "
        "interpolation, mode, crop_pct) and checkpoint (`foveabench list models`)",
    )
    attacks: tuple[AttackRef, ...] = param(
        (AttackRef("sign"),),
        "names, or {name: {parameters}} (`foveabench run --help-attack NAME`)",
    )
    top_k: int = param(5, "an image counts as fooled once its label leaves the top k (1..1000)")
    tasks: tuple[str, ...] = param(
        ("clean", "min_perturbation"), "what to compute (`foveabench list tasks`)"
    )
    output_dir: str = param("results", "where run directories go (a folder or object-store URI)")
    mlflow: MlflowCfg = field(default_factory=MlflowCfg)
    ray: RayCfg = field(default_factory=RayCfg)
    eval: EvalCfg = field(default_factory=EvalCfg)
    report: ReportCfg = field(default_factory=ReportCfg)
    batch_size: int = param(16, "images per attack-stage batch in an actor", ge=1)
    shard_size: int = param(64, "images per unit of work (a shard file per model and table)", ge=1)
    rtol: float = param(1e-3, "relative precision of every scale line search", gt=0, lt=1)
    device: str = param(
        "auto", "auto (cuda when the actor has a GPU, else cpu), cpu, cuda, cuda:<n> or mps"
    )
    #: each run merges its own in and scores each attack's optimality against them
    best_known: str | None = param(
        None, "where the best-known distances of every run live (a folder or URI)"
    )

    def as_dict(self) -> dict[str, Any]:
        """The resolved config in the YAML shape (written to config.yaml and MLflow)."""
        d = dataclasses.asdict(self)
        d["criterion"] = {"top_k": d.pop("top_k")}
        d["models"] = [m.as_yaml() for m in self.models]
        d["attacks"] = [a.as_yaml() for a in self.attacks]
        d["tasks"] = list(self.tasks)
        return _plain(d)


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so the dict is YAML- and JSON-safe."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def default_config_path() -> Path:
    """``configs/demo.yaml``: in the checkout, or as installed package data."""
    return Path(str(importlib.resources.files("configs").joinpath("demo.yaml")))


_fail = located


def _section(cls: type, raw: Any, key: str, source: str) -> Any:
    """A config section: known keys only, each of its field's type and bounds."""
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise _fail(source, f"{key} = {raw!r}", "must be a mapping of keys")
    try:
        return cls(**checked_values(cls, raw))
    except ParamError as exc:
        raise _fail(source, key, f"{exc} ({known_keys(cls)})") from None
    except ConfigError as exc:  # a section's own cross-field checks (e.g. eval grids)
        raise ConfigError(f"{source}: {exc}") from None


def _dataset(raw: Any, source: str) -> DatasetCfg:
    cfg: DatasetCfg = _section(DatasetCfg, raw, "dataset", source)
    if cfg.layout not in LAYOUT_NAMES:
        try:
            LAYOUT_NAMES.get(cfg.layout)
        except RegistryError as exc:
            raise _fail(source, f"dataset.layout = {cfg.layout!r}", str(exc)) from None
    if cfg.layout != "sample" and not cfg.root:
        raise _fail(
            source,
            f"dataset.root = {cfg.root!r}",
            f"layout {cfg.layout!r} needs dataset.root (the dataset directory)",
        )
    return cfg


def _top_level(raw: Mapping[str, Any], source: str) -> None:
    known = [f.name for f in dataclasses.fields(BenchmarkConfig) if f.name != "top_k"]
    known.append("criterion")
    for key in raw:
        if key in known:
            continue
        if key == "top_k":
            fix = f"top_k belongs to the criterion; write criterion: {{top_k: {raw[key]}}}"
        else:
            close = difflib.get_close_matches(str(key), known, n=1)
            fix = f"did you mean {close[0]!r}? " if close else ""
            fix += f"known: {', '.join(sorted(known))}"
        raise _fail(source, f"{key} = {raw[key]!r}", f"unknown key; {fix}")


def _criterion(raw: Any, source: str) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _fail(source, f"criterion = {raw!r}", "must be a mapping like {top_k: 5}")
    for key in raw:
        if key != "top_k":
            raise _fail(source, f"criterion.{key} = {raw[key]!r}", "unknown key; known: top_k")
    k = raw.get("top_k", 5)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= N_CLASSES:
        raise _fail(
            source,
            f"criterion.top_k = {k!r}",
            f"must be a positive integer up to {N_CLASSES}, the ImageNet classes (5: top-5)",
        )
    return k


def run_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a run directory name, or None."""
    if not isinstance(name, str) or not RUN_NAME.match(name):
        return (
            "must be one directory name: letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (no '/', no '..'), at most 128 characters"
        )
    return None


def _path(raw: Mapping[str, Any], key: str, source: str, problem: str) -> str:
    """``raw[key]`` as a path or URI: a string that is not blank."""
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, f"{key} = {value!r}", problem)
    return value


def _scalars(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if "name" in raw:
        problem = run_name_problem(raw["name"])
        if problem:
            raise _fail(source, f"name = {raw['name']!r}", problem)
        kwargs["name"] = raw["name"]
    if "output_dir" in raw:
        kwargs["output_dir"] = _path(raw, "output_dir", source, "must be a directory path")
    if "device" in raw:
        value = raw["device"]
        if not isinstance(value, str) or not DEVICE.match(value):
            raise _fail(source, f"device = {value!r}", "use auto, cpu, cuda, cuda:<n> or mps")
        kwargs["device"] = value
    for key in ("batch_size", "shard_size"):
        if key in raw:
            value = raw[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise _fail(source, f"{key} = {value!r}", "must be a positive integer")
            kwargs[key] = value
    if raw.get("best_known") is not None:
        kwargs["best_known"] = _path(raw, "best_known", source, "must be a folder path or a URI")
    if "rtol" in raw:
        value = raw["rtol"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise _fail(source, f"rtol = {value!r}", "must be a number between 0 and 1, e.g. 0.001")
        kwargs["rtol"] = float(value)
    return kwargs


def parse_config(raw: dict[str, Any], source: str = "<config>") -> BenchmarkConfig:
    """Validate a YAML mapping into a :class:`BenchmarkConfig` (ConfigError on any mistake)."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, got {excerpt(repr(raw))}"
        )
    _top_level(raw, source)
    kwargs = _scalars(raw, source)
    top_k = _criterion(raw.get("criterion"), source)
    if top_k is not None:
        kwargs["top_k"] = top_k
    kwargs["dataset"] = _dataset(raw.get("dataset"), source)
    kwargs["mlflow"] = _section(MlflowCfg, raw.get("mlflow"), "mlflow", source)
    kwargs["ray"] = _section(RayCfg, raw.get("ray"), "ray", source)
    kwargs["report"] = _section(ReportCfg, raw.get("report"), "report", source)
    kwargs["eval"] = checked_eval(_section(EvalCfg, raw.get("eval"), "eval", source), source)
    if "models" in raw:
        kwargs["models"] = entries.models(raw["models"], source)
    if "attacks" in raw:
        kwargs["attacks"] = entries.attacks(raw["attacks"], source)
    if "tasks" in raw:
        kwargs["tasks"] = entries.tasks(raw["tasks"], source)
    cfg = BenchmarkConfig(**kwargs)
    _check_eval_axes(cfg, source)
    _check_adaptive_attacker(cfg, source)
    return cfg


def _check_adaptive_attacker(cfg: BenchmarkConfig, source: str) -> None:
    """The adaptive task differentiates through each foveation: it needs a gradient attack
    (every attack of the catalogue but a baseline's random directions)."""
    if "adaptive" in cfg.tasks and all(attack_spec(a.name).baseline for a in cfg.attacks):
        names = [a.name for a in cfg.attacks]
        raise _fail(
            source,
            f"tasks includes adaptive with attacks = {names}",
            "the adaptive task needs a gradient attack to differentiate through each "
            "foveation and baselines are not attacks; add one, e.g. attacks: [sign] "
            "(`foveabench list attacks`)",
        )


def _check_eval_axes(cfg: BenchmarkConfig, source: str) -> None:
    """The evaluation stage reports each attack on its catalogue norm's axis; parameters
    that make an attack minimise another norm (``gn1: {p: l2}``) would be read on the
    wrong axis, so they are refused for evaluation tasks rather than misreported."""
    if not any(TASKS.get(t).stage == "eval" for t in cfg.tasks):
        return
    for i, ref in enumerate(cfg.attacks):
        spec = attack_spec(ref.name)
        top = max(cfg.eval.grid(spec.norm))
        beyond = [v for v in cfg.eval.points if v > top]
        if beyond:
            raise _fail(
                source,
                f"eval.points = {list(cfg.eval.points)}",
                f"{beyond} lies beyond eval.{spec.norm}_grid (largest {top}), the axis "
                f"{ref.name} is reported on: no curve or table can show it; use points "
                f"up to {top} or extend the grid",
            )
        norm = spec.norm_for(ref.params)
        if norm != spec.norm:
            raise _fail(
                source,
                f"attacks[{i}] = {ref.as_yaml()!r}",
                f"minimises {norm} with these parameters, but the evaluation tasks read "
                f"{ref.name} on its {spec.norm} axis; keep its default norm or drop the "
                "evaluation tasks for this run",
            )


def load_config(
    path: str | Path | None = None, overrides: Sequence[Override] = ()
) -> BenchmarkConfig:
    """Read a YAML config (default: the embedded ``configs/demo.yaml``), with command-line
    ``overrides`` written in before it is checked: an error reads as if the file held the
    value (it names the key and the value given)."""
    path = Path(path) if path is not None else default_config_path()
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file; pass a YAML path or omit it for the demo")
    raw = load_yaml(path)
    if raw is None:
        raise ConfigError(
            f"{path}: empty (or only comments); write the settings to run, e.g. "
            "configs/demo.yaml, or omit the path to run the demo"
        )
    if overrides and isinstance(raw, dict):  # else the top-level error, before any override
        raw = apply_overrides(raw, overrides)
    return parse_config(raw, str(path))
