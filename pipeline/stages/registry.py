"""The stages of a run, in the order they run: the attack stage, then the evaluation stage.

Adding a stage is one module declaring a :class:`~pipeline.stages.stage.Stage` (as
:mod:`pipeline.stages.attack_stage`) and its line here; the driver plans, schedules, books
and compacts it, and the actor finds it by its unit's type.
"""

from __future__ import annotations

from typing import Any

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.stages.attack_stage import ATTACK
from pipeline.stages.eval_stage import EVALUATION
from pipeline.stages.stage import Stage
from tasks.registry import Registry

STAGES: Registry[Stage[Any, Any]] = Registry("stage")
for _stage in (ATTACK, EVALUATION):
    STAGES.add(_stage.name, _stage)


def stage_of(unit: object) -> Stage[Any, Any]:
    """The stage whose units are of ``unit``'s type."""
    for stage in STAGES.in_order():
        if isinstance(unit, stage.unit_type):
            return stage
    known = ", ".join(f"{s.unit_type.__name__} ({s.name})" for s in STAGES.in_order())
    raise TypeError(f"no stage computes a {type(unit).__name__}; units of stages: {known}")


def active_stages(cfg: BenchmarkConfig) -> list[Stage[Any, Any]]:
    """The stages ``cfg`` asks for, in the order they run."""
    return [stage for stage in STAGES.in_order() if stage.active(cfg)]
