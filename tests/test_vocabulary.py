"""One protocol vocabulary: every condition, set-up and baseline is declared in one place.

Modules read names from the registries (tasks/protocol.py, the attack registry);
a string literal of a condition or set-up name anywhere else in pipeline/,
dashboards/ or tasks/ is a second declaration that can drift. Implementations
are registered once per name, in the module that implements that kind of view.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tasks.foveation import MASKS, VIEWS
from tasks.mp_object import OBJECT_VIEWS
from tasks.protocol import CONDITIONS, SETUPS, TASKS, conditions_of, eval_tasks, table1_ratios

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
#: Where a condition name may be written: its declaration and its implementation registry.
DECLARED = {"tasks/protocol.py", "tasks/foveation.py", "tasks/mp_object.py"}


def literals() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for package in ("pipeline", "dashboards", "tasks"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found[node.value].add(path.relative_to(ROOT).as_posix())
    return found


def test_condition_and_setup_names_are_declared_once() -> None:
    found = literals()
    unrelated = {"object": {"pipeline/data/annotations.py"}}  # the ILSVRC XML <object> tag
    for name in [*CONDITIONS.names(), *SETUPS]:
        elsewhere = found[name] - DECLARED - unrelated.get(name, set())
        assert not elsewhere, f"{name!r} is also written in {elsewhere}"
        assert "tasks/protocol.py" in found[name]


def test_every_view_and_mask_condition_has_exactly_one_implementation() -> None:
    for spec in CONDITIONS.in_order():
        implemented = [r for r in (MASKS, VIEWS, OBJECT_VIEWS) if spec.name in r]
        needs = spec.views or spec.task == "masks"
        assert len(implemented) == int(needs), spec.name
    assert set(MASKS.names()) | set(VIEWS.names()) | set(OBJECT_VIEWS.names()) <= set(
        CONDITIONS.names()
    )


def test_the_registry_answers_what_other_modules_need() -> None:
    assert set(eval_tasks()) == {"norm_sweep", "masks", "foveation", "linearity", "adaptive"}
    assert all(CONDITIONS.get(c).task in TASKS for c in CONDITIONS.names())
    assert {c.name for c in conditions_of("norm_sweep")} == {"mp"}
    for num, den in table1_ratios():
        assert CONDITIONS.get(num).setup == CONDITIONS.get(den).setup


def test_baselines_and_attack_norms_come_from_the_attack_registry() -> None:
    from tasks.attacks.specs import ATTACK_SPECS, attack_spec

    baselines = [a for a in ATTACK_SPECS.names() if attack_spec(a).baseline]
    assert baselines == ["random"]
    found = literals()
    for name in baselines:
        assert all(p.startswith("tasks/attacks/") for p in found[name]), found[name]
    # no table of attack norms outside the attack modules
    for path in (
        "pipeline/bench/success.py",
        "pipeline/summary/protocol.py",
        "dashboards/report.py",
    ):
        source = (ROOT / path).read_text()
        assert "NATIVE_NORM" not in source, path
