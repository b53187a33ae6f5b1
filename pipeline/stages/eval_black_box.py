"""The ``adaptive`` task on a cross pair: a black-box transfer through the target's foveation.

Carlini et al. (2019) list it among the signs of gradient masking: a perturbation made
for *another* network (black box) should never fool a defended network more cheaply than
the white-box attack on the network itself. For a cross pair (source S, target T) the
task takes S's minimum perturbation, mapped into T's frame as every cross pair does, and
searches its critical scale through each of T's foveations of the MP set-up (the MP-Object
set-up's perturbations live in S's own object crop and are not transferred): the fixed
foveations with the attack's line search on the foveated network, the random ones with
the fresh-draw search their white-box attack is judged by. The rows share ADAPTIVE_SCHEMA
(``source`` != ``target``); the summary compares, image by image, the smallest black-box
critical norm over the sources with the white-box one of T (``check_black_box_stronger``).

Only where T's frame is its own (``eval.transfer_resolution: target``): in the common
frame the norms would not be comparable with T's white-box ones.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from pipeline.config.benchmark import EvalCfg
from pipeline.stages.eval_adaptive import (
    Case,
    Costs,
    Outcome,
    TaskBatch,
    adaptive_foveations,
    case_rows,
    fresh_outcome,
)
from tasks.attacks.base import Attack
from tasks.context import PIXEL_BOUNDS
from tasks.critical import critical_scales
from tasks.linesearch import LineSearch
from tasks.protocol import CONDITIONS, OBJECT


def black_box_foveations(settings: EvalCfg) -> list[str]:
    """The foveations a black-box transfer goes through: the MP set-up's."""
    return [
        name
        for name in adaptive_foveations(settings)
        if name not in CONDITIONS or CONDITIONS.get(name).setup != OBJECT
    ]


def black_box_rows(batch: TaskBatch) -> list[dict[str, object]]:
    """One row per (image, foveation) of a cross pair's batch (the unit's attack gives the
    criterion and the norm; it is not run)."""
    data, settings = batch.data, batch.settings
    out: list[dict[str, object]] = []
    for name, case in batch.cases(black_box_foveations(settings)):
        start = time.perf_counter()
        rows = torch.tensor(case.rows)
        has = data.has_direction[rows]
        scale = torch.where(has, data.scale[rows], torch.zeros_like(data.scale[rows]))
        mp = data.direction[rows.to(data.direction.device)] * scale.to(data.direction.device).view(
            -1, *[1] * (case.x.dim() - 1)
        )  # the source's MP in this frame (zero: none)
        outcome, forwards = (
            _random(case, mp, has, scale, settings.fresh_rtol)
            if case.fresh is not None
            else _fixed(case, batch.model, batch.attack, mp, has, scale, settings.rtol)
        )
        spent = (time.perf_counter() - start) / max(1, len(case.rows))
        costs = Costs(forwards, [0] * len(case.rows), [spent] * len(case.rows))
        out += case_rows(batch.unit, batch.idx, name, case, outcome, costs)
    return out


def _fixed(
    case: Case,
    model: torch.nn.Module,
    attack: Attack[Any],
    mp: torch.Tensor,
    has: torch.Tensor,
    scale: torch.Tensor,
    rtol: float,
) -> tuple[Outcome, list[int]]:
    """A fixed foveation: the critical scale of the source's MP on the foveated network
    (:func:`tasks.critical.critical_scales`: one look at the clean image, then the line
    search on the images it gets right)."""
    found = critical_scales(
        model, case.x, mp, case.labels,
        criterion=attack.criterion, view=case.view, search=LineSearch(rtol=rtol),
    )  # fmt: skip
    clean_correct = found.clean_correct.cpu()
    ok = clean_correct & torch.isfinite(found.scale).cpu() & has.cpu()
    s = torch.where(ok, found.scale.cpu(), torch.zeros_like(found.scale.cpu()))
    x_adv = (case.x + s.to(case.x.device).view(-1, *[1] * (case.x.dim() - 1)) * mp).clamp(
        *PIXEL_BOUNDS
    )
    forwards = [int(f) * v for f, v in zip(found.n_forward, case.views_per_query, strict=True)]
    return Outcome(x_adv - case.x, scale * s, ok, clean_correct), forwards


def _random(
    case: Case, mp: torch.Tensor, has: torch.Tensor, scale: torch.Tensor, rtol: float
) -> tuple[Outcome, list[int]]:
    """A random foveation: the fresh-draw search along the source's MP (the criterion the
    white-box attack is judged by), where the fresh draws are mostly right on the clean
    image."""
    assert case.fresh is not None
    clean_correct = ~case.fresh(case.x, None, "fresh").success.cpu()
    searched = clean_correct & has.cpu()
    outcome = fresh_outcome(case, mp, searched, scale, clean_correct, rtol)
    looks = [0] * len(case.rows) if outcome.looks is None else outcome.looks.tolist()
    return outcome, [case.fresh_inputs * (1 + n) for n in looks]
