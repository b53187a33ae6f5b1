"""Command-line overrides of a config (``--set key=value``, ``--models``, ``--limit``...).

They are written into the YAML mapping before it is checked, so an override meets
exactly the checks and messages of the same value in the file (``--attacks sgn`` and
``attacks: [sgn]`` give the same "did you mean 'sign'"). Values of ``--set`` are read
as YAML (``--set eval.points=[3,5.3]``, ``--set ray.pooled=true``), with the file's
limits. Standard library and PyYAML only: an override error answers in milliseconds.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.config.error import ConfigError, excerpt
from pipeline.config.yaml_file import parse_yaml

#: The short forms: option -> (config key, how its text is read: a comma-separated list
#: of names, a YAML value, or the text as it is).
SHORT_FORMS: dict[str, tuple[str, str]] = {
    "models": ("models", "list"),
    "attacks": ("attacks", "list"),
    "tasks": ("tasks", "list"),
    "device": ("device", "text"),
    "limit": ("dataset.limit", "yaml"),
    "output_dir": ("output_dir", "text"),
}


@dataclass(frozen=True)
class Override:
    """One value for one dotted key, and the option that gave it (for error messages)."""

    key: str
    value: Any
    option: str


def parse_set(text: str) -> Override:
    """``key=value`` of ``--set`` (the value read as YAML); ConfigError when malformed."""
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise ConfigError(
            f"--set {excerpt(text)!r}: write KEY=VALUE with a dotted key, e.g. "
            "--set eval.rtol=0.01 or --set models=[efficientnet_lite0]"
        )
    return Override(key.strip(), parse_yaml(value, f"--set {key.strip()}"), f"--set {key.strip()}")


def _by_name(entries: Any, names: list[str]) -> list[Any]:
    """``names`` as a models/attacks list, keeping the file's settings of a name it had
    (``--attacks sign`` keeps ``{sign: {loss: ce}}``)."""
    known: dict[str, Any] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and len(entry) == 1:
            known[str(next(iter(entry)))] = entry
        elif isinstance(entry, str):
            known[entry] = entry
    return [known.get(name, name) for name in names]


def short_forms(values: dict[str, Any]) -> list[Override]:
    """The overrides of the short options given (None: not given); list options split at
    commas."""
    out = []
    for option, (key, kind) in SHORT_FORMS.items():
        text = values.get(option)
        if text is None:
            continue
        flag = f"--{option.replace('_', '-')}"
        value: Any = text
        if kind == "list":
            value = [n.strip() for n in str(text).split(",") if n.strip()]
        elif kind == "yaml":
            value = parse_yaml(str(text), flag)
        out.append(Override(key, value, flag))
    return out


def apply(raw: dict[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """A copy of the config mapping with every override written in, in order."""
    out = copy.deepcopy(raw)
    for o in overrides:
        *sections, last = o.key.split(".")
        node = out
        for depth, part in enumerate(sections):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(sections[: depth + 1])
                raise ConfigError(
                    f"{o.option}: {where} = {excerpt(repr(child))} is a value, not a section "
                    f"of keys; set {where} itself"
                )
            node = child
        keep = o.option in ("--models", "--attacks")  # --set replaces the list as written
        node[last] = _by_name(node.get(last), o.value) if keep else o.value
    return out
