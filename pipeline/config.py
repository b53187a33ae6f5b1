"""Benchmark configuration: YAML in, a validated frozen dataclass out.

The keys the README and configs/ document are a contract. Every mistake is found here,
on the driver, before a model, Ray or MLflow starts, and reported as one line
that names the file, the key, the bad value and what to write instead; nothing
unknown is silently ignored. Attack names and parameters are checked against
the torch-free catalogue (:mod:`tasks.attacks.specs`), model and layout names
against :mod:`pipeline.names`, so a config error answers in milliseconds.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config_checks import checked_eval, did_you_mean
from pipeline.config_error import ConfigError, excerpt, located
from pipeline.config_yaml import load_yaml
from pipeline.eval_config import EvalCfg
from pipeline.names import LAYOUT_NAMES, MAX_INPUT_SIZE, check_model_name
from tasks.attacks.params import AttackParams
from tasks.attacks.specs import attack_spec
from tasks.protocol import TASKS
from tasks.registry import RegistryError
from tasks.typed import ParamError, checked_values, known_keys, param

#: A run name becomes a directory name: one path component, no hidden or option-like names.
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
N_CLASSES = 1000  #: ImageNet-1k: top_k beyond it cannot be computed
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class DatasetCfg:
    layout: str = "sample"
    root: str | None = None
    limit: int | None = param(None, "first N images of the manifest (sorted by image_id)", ge=0)


@dataclass(frozen=True)
class ModelRef:
    """A registry model name plus optional preprocessing overrides."""

    name: str
    preprocess: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AttackRef:
    """A registry attack name plus its validated parameters (its spec's dataclass).

    ``params`` may be given as a mapping (or left out for the defaults); it is
    always the dataclass afterwards. Unknown names and bad parameters raise
    :class:`~tasks.registry.RegistryError` / ``AttackParamError``.
    """

    name: str
    params: AttackParams = None  # type: ignore[assignment]  # None/mapping -> dataclass

    def __post_init__(self) -> None:
        raw: Any = self.params
        object.__setattr__(self, "params", attack_spec(self.name).build_params(raw))

    def as_yaml(self) -> str | dict[str, dict[str, Any]]:
        """``name``, or ``{name: {changed params}}`` (defaults are not repeated)."""
        changed = self.params.changed()
        return {self.name: changed} if changed else self.name


@dataclass(frozen=True)
class MlflowCfg:
    tracking_uri: str | None = None  # None: sqlite file in the run's output dir
    experiment: str = "foveabench"


@dataclass(frozen=True)
class RayCfg:
    address: str | None = None  # None: start a local Ray
    gpus_per_actor: float = param(1.0, "GPU share per actor, when the cluster has GPUs", ge=0)
    cpus_per_actor: float | None = param(
        None, "CPU cores per actor (None: the largest equal share the nodes can all hold)", gt=0
    )
    actors_per_model: int | None = param(
        None, "None: one per model, and with GPUs one per GPU share (models take turns)", ge=1
    )
    max_restarts: int = param(3, "restarts of a crashed actor", ge=0)
    #: Pooled actors serve every model (loaded on demand), scheduled by measured throughput,
    #: so 8 GPUs and 3 models keep all 8 busy. None: pooled when the cluster has GPUs.
    pooled: bool | None = None
    actors: int | None = param(
        None, "pooled actors (None: one per GPU share, or one per model on CPU)", ge=1
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
    name: str = "demo"
    dataset: DatasetCfg = field(default_factory=DatasetCfg)
    models: tuple[ModelRef, ...] = (ModelRef("efficientnet_lite0"),)
    attacks: tuple[AttackRef, ...] = (AttackRef("sign"),)
    top_k: int = 5
    tasks: tuple[str, ...] = ("clean", "min_perturbation")
    output_dir: str = "results"
    mlflow: MlflowCfg = field(default_factory=MlflowCfg)
    ray: RayCfg = field(default_factory=RayCfg)
    eval: EvalCfg = field(default_factory=EvalCfg)
    batch_size: int = 16
    shard_size: int = 64
    rtol: float = 1e-3  # relative precision of every scale line search
    device: str = "auto"  # auto: cuda when the actor has a GPU, else cpu
    #: where the best-known distances of every run live (a folder or object-store URI):
    #: each run merges its own in and scores each attack's optimality against them
    best_known: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The resolved config in the YAML shape (written to config.yaml and MLflow)."""
        d = dataclasses.asdict(self)
        d["criterion"] = {"top_k": d.pop("top_k")}
        d["models"] = [m.name if not m.preprocess else {m.name: m.preprocess} for m in self.models]
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


def _named_entries(raw: Any, key: str, source: str) -> list[tuple[str, Any]]:
    if isinstance(raw, str):
        raise _fail(source, f"{key} = {raw!r}", f"must be a list; write {key}: [{raw}]")
    if not isinstance(raw, list) or not raw:
        raise _fail(source, f"{key} = {raw!r}", "must be a non-empty list of names")
    out: list[tuple[str, Any]] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            name, params = item, None
        elif isinstance(item, dict) and len(item) == 1:
            ((name, params),) = item.items()
            if params is not None and not isinstance(params, dict):
                raise _fail(
                    source,
                    f"{key}[{i}] = {item!r}",
                    f"the settings of {name!r} must be a mapping, e.g. {{{name}: {{key: value}}}}",
                )
        else:
            raise _fail(
                source,
                f"{key}[{i}] = {item!r}",
                "write a name or a one-key mapping like {sign: {loss: ce}}",
            )
        if any(name == seen for seen, _ in out):
            raise _fail(source, f"{key}[{i}] = {name!r}", "is listed twice; keep one entry")
        out.append((str(name), params))
    return out


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


def _models(raw: Any, source: str) -> tuple[ModelRef, ...]:
    refs = []
    for i, (name, preprocess) in enumerate(_named_entries(raw, "models", source)):
        try:
            check_model_name(name)
        except RegistryError as exc:
            raise _fail(source, f"models[{i}] = {name!r}", str(exc)) from None
        size = (preprocess or {}).get("input_size")
        sides = size if isinstance(size, list) else [size]
        if size is not None and any(
            isinstance(v, int) and not isinstance(v, bool) and v > MAX_INPUT_SIZE for v in sides
        ):
            raise _fail(
                source,
                f"models[{i}] = {name!r}: input_size = {size!r}",
                f"each side must be at most {MAX_INPUT_SIZE} pixels (ImageNet networks "
                "take 224-600); fix input_size",
            )
        refs.append(ModelRef(name, dict(preprocess or {})))
    return tuple(refs)


def _attacks(raw: Any, source: str) -> tuple[AttackRef, ...]:
    refs = []
    for i, (name, params) in enumerate(_named_entries(raw, "attacks", source)):
        try:
            refs.append(AttackRef(name, params))
        except (RegistryError, ParamError) as exc:
            raise _fail(source, f"attacks[{i}]", str(exc)) from None
    return tuple(refs)


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


def _tasks(raw: Any, source: str) -> tuple[str, ...]:
    known = TASKS.names()
    if isinstance(raw, str):
        raise _fail(source, f"tasks = {raw!r}", f"must be a list; write tasks: [{raw}]")
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) for t in raw):
        raise _fail(source, f"tasks = {raw!r}", f"must be a list of {list(known)}")
    for i, t in enumerate(raw):
        if t not in known:
            raise _fail(source, f"tasks: {t!r}", f"unknown task; {did_you_mean(t, known)}")
        if t in raw[:i]:
            raise _fail(source, f"tasks[{i}] = {t!r}", "is listed twice; keep one entry")
    return tuple(raw)


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


def _scalars(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if "name" in raw:
        problem = run_name_problem(raw["name"])
        if problem:
            raise _fail(source, f"name = {raw['name']!r}", problem)
        kwargs["name"] = raw["name"]
    if "output_dir" in raw:
        value = raw["output_dir"]
        if not isinstance(value, str) or not value.strip():
            raise _fail(source, f"output_dir = {value!r}", "must be a directory path")
        kwargs["output_dir"] = value
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
        value = raw["best_known"]
        if not isinstance(value, str) or not value.strip():
            raise _fail(source, f"best_known = {value!r}", "must be a folder path or a URI")
        kwargs["best_known"] = value
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
    kwargs["eval"] = checked_eval(_section(EvalCfg, raw.get("eval"), "eval", source), source)
    if "models" in raw:
        kwargs["models"] = _models(raw["models"], source)
    if "attacks" in raw:
        kwargs["attacks"] = _attacks(raw["attacks"], source)
    if "tasks" in raw:
        kwargs["tasks"] = _tasks(raw["tasks"], source)
    cfg = BenchmarkConfig(**kwargs)
    _check_eval_axes(cfg, source)
    return cfg


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


def load_config(path: str | Path | None = None) -> BenchmarkConfig:
    """Read a YAML config (default: the embedded ``configs/demo.yaml``)."""
    path = Path(path) if path is not None else default_config_path()
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file; pass a YAML path or omit it for the demo")
    raw = load_yaml(path)
    if raw is None:
        raise ConfigError(
            f"{path}: empty (or only comments); write the settings to run, e.g. "
            "configs/demo.yaml, or omit the path to run the demo"
        )
    return parse_config(raw, str(path))
