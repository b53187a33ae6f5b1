"""A config's list keys (``models``, ``attacks``, ``tasks``): names, or one-key mappings of
a name to its settings, each checked against its registry on the driver in milliseconds.

A model entry's settings are preprocessing overrides and ``checkpoint`` (local weights
for a timm or torchvision architecture); an attack entry's are its parameters, checked
against the torch-free catalogue (:mod:`tasks.attacks.specs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.config.checks import did_you_mean
from pipeline.config.error import excerpt
from pipeline.config.error import located as _fail
from pipeline.config.names import MAX_INPUT_SIZE, check_model_name
from pipeline.models.preprocess import override_problem
from tasks.attacks.params import AttackParams
from tasks.attacks.specs import attack_spec
from tasks.protocol import TASKS
from tasks.registry import RegistryError
from tasks.typed import ParamError

CHECKPOINT_KEY = "checkpoint"  #: a model entry's local weights (the other keys: preprocessing)
#: model prefixes whose architecture a checkpoint can fill
CHECKPOINT_PREFIXES = ("timm", "torchvision")


@dataclass(frozen=True)
class ModelRef:
    """A registry model name plus optional preprocessing overrides, and optionally a local
    checkpoint (a path or storage URI) whose weights replace the usual ones."""

    name: str
    preprocess: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None

    def as_yaml(self) -> str | dict[str, dict[str, Any]]:
        """``name``, or ``{name: {settings}}`` (preprocessing keys and ``checkpoint``)."""
        settings = dict(self.preprocess)
        if self.checkpoint is not None:
            settings[CHECKPOINT_KEY] = self.checkpoint
        return {self.name: settings} if settings else self.name


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


def named_entries(raw: Any, key: str, source: str) -> list[tuple[str, Any]]:
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


def models(raw: Any, source: str) -> tuple[ModelRef, ...]:
    refs = []
    for i, (name, preprocess) in enumerate(named_entries(raw, "models", source)):
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
        settings = dict(preprocess or {})
        checkpoint = _checkpoint(name, settings.pop(CHECKPOINT_KEY, None), i, source)
        problem = override_problem(settings)  # torch-free: before any model is built
        if problem:
            raise _fail(source, f"models[{i}] = {name!r}", excerpt(problem, 300))
        refs.append(ModelRef(name, settings, checkpoint))
    return tuple(refs)


def _checkpoint(name: str, value: Any, i: int, source: str) -> str | None:
    """A model entry's ``checkpoint``: a path or URI, on a timm or torchvision architecture."""
    if value is None:
        return None
    where = f"models[{i}] = {name!r}: checkpoint = {value!r}"
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, where, "must be a file path or a URI (s3://, gs://)")
    if name.partition(":")[0] not in CHECKPOINT_PREFIXES:
        arch = name.partition(":")[2] or name
        raise _fail(
            source,
            where,
            "a checkpoint fills a timm or torchvision architecture; name it "
            f"timm:{arch} or torchvision:{arch}",
        )
    return value


def attacks(raw: Any, source: str) -> tuple[AttackRef, ...]:
    refs = []
    for i, (name, params) in enumerate(named_entries(raw, "attacks", source)):
        try:
            refs.append(AttackRef(name, params))
        except (RegistryError, ParamError) as exc:
            raise _fail(source, f"attacks[{i}]", str(exc)) from None
    return tuple(refs)


def tasks(raw: Any, source: str) -> tuple[str, ...]:
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
