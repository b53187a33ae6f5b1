"""The README's config reference, generated from the config's dataclasses.

Every key a config may hold is a field of :class:`pipeline.config.benchmark.BenchmarkConfig` or of
one of its sections, with its meaning in the field's metadata (``tasks.typed.param``);
this module turns them into the README table, ``python -m pipeline.config.reference``
prints it, and tests/test_cli_habits.py keeps the README equal to it, so a key added
without a meaning, or a README edited by hand, fails the tests.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pipeline.config.benchmark import BenchmarkConfig, DatasetCfg, MlflowCfg, RayCfg, ReportCfg
from pipeline.config.evaluation import EvalCfg
from tasks.typed import describe

SECTIONS: dict[str, type] = {"dataset": DatasetCfg, "mlflow": MlflowCfg, "ray": RayCfg}
SECTIONS["eval"] = EvalCfg
SECTIONS["report"] = ReportCfg
#: where a field sits in the YAML when that is not its name
YAML_KEY = {"top_k": "criterion.top_k"}
#: the type of a list whose entries are richer than their Python type says
TYPES = {
    "models": "a list of names or {name: {settings}}",
    "attacks": "a list of names or {name: {parameters}}",
}


def _default(path: str) -> str:
    """The default as the YAML writes it (``BenchmarkConfig().as_dict()``)."""
    value: Any = BenchmarkConfig().as_dict()
    for part in path.split("."):
        value = value[part]
    return json.dumps(value)


def rows() -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) for every key, sections after the top-level keys."""
    top = []
    nested = []
    sections = {f.name for f in dataclasses.fields(BenchmarkConfig) if f.name in SECTIONS}
    for help_ in describe(BenchmarkConfig):
        if help_.name in sections:
            for sub in describe(SECTIONS[help_.name]):
                key = f"{help_.name}.{sub.name}"
                nested.append((key, sub.type, sub.bounds, sub.doc))
        else:
            key = YAML_KEY.get(help_.name, help_.name)
            kind = TYPES.get(help_.name, help_.type)
            top.append((key, kind, help_.bounds, help_.doc))
    out = []
    for key, kind, bounds, doc in top + nested:
        if not doc:
            raise ValueError(f"config key {key} has no meaning: give its field param(default, doc)")
        meaning = f"{doc} ({bounds})" if bounds else doc
        out.append((key, kind, _default(key), meaning))
    return out


def markdown_table() -> str:
    """The README's config reference table."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += [
        f"| `{key}` | {kind} | `{default}` | {meaning.replace('|', '/')} |"
        for key, kind, default, meaning in rows()
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
