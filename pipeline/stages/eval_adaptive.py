"""The ``adaptive`` evaluation task: each foveation attacked by an attacker who knows it.

For a self pair's batch, every foveation of the run is turned into a view
(:mod:`tasks.adaptive`) of the frame its set-up's perturbation lives in: the MP set-up's
crops (``eval.crops``) and the random resized crop as crops of the input, the MP-Object
set-up's shifted windows as views of the object crop. Fixed views are attacked as they
are; random ones (3 random crops, the random resized crop, 1 random crop of MP-Object)
as the EOT average of their draws, and judged on ``eval.fresh_draws`` fresh draws. The
unit's own attack minimises the perturbation of the composite network in that frame
and its norm units. Each (image, foveation) gets a row (ADAPTIVE_SCHEMA) with the
adaptive perturbation's norms beside the set-up's own minimum perturbation (MP, or
MP-Object) of the same image, so the summary compares critical norms found by the same
line search on both sides.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pipeline.config.benchmark import EvalCfg
from pipeline.stages.eval_unit import EvalUnit
from tasks import norms
from tasks.adaptive import (
    FreshDrawJudge,
    FreshJudgement,
    ObjectFrameView,
    draw_views,
    eot_view,
    fresh_critical_scale,
    judge_fresh,
    noise_fools,
    random_draw,
)
from tasks.attacks.base import Attack, AttackResult
from tasks.context import PIXEL_BOUNDS
from tasks.evaluation.build import BatchData
from tasks.foveation import VIEWS, ViewInputs
from tasks.protocol import CONDITIONS, MODERN_FOVEATION, OBJECT
from tasks.views import CropView, View


def adaptive_foveations(settings: EvalCfg) -> list[str]:
    """The foveations the task attacks: the run's MP-set-up crops, the modern one, and the
    MP-Object set-up's views."""
    every = [*settings.crops, MODERN_FOVEATION, *settings.object_crops]
    wanted = settings.adaptive_foveations
    return every if wanted is None else [f for f in every if f in wanted]


@dataclass
class Case:
    """One foveation on the batch images it applies to, in its set-up's frame."""

    rows: list[int]  # batch rows
    x: torch.Tensor  # the frame the perturbation lives in (the input, or the object crop)
    labels: torch.Tensor
    reference: dict[str, torch.Tensor]  # the set-up's own minimum perturbation's norms (inf: none)
    has_reference: torch.Tensor
    view: View  # the attack's composite (EOT average for random views)
    views_per_query: list[int]  # network inputs per composite query, per image
    fresh: Judge | None  # judge x_adv (of images idx) on a stream of fresh draws
    fresh_inputs: int = 0  # network inputs per image of one judgement


#: ``(x_adv of images idx, idx or None for all, stream)``: the judgement of a random
#: foveation on the draws of ``stream`` ("fresh": the criterion; "holdout": a check).
Judge = Callable[[torch.Tensor, torch.Tensor | None, str], FreshJudgement]


@dataclass(frozen=True)
class Outcome:
    """What a row reports of one case: the perturbation that fools the foveation by its
    criterion, per image, and for random foveations the fresh draws' verdicts."""

    perturbation: torch.Tensor
    scale: torch.Tensor  # the attack's own scale (times the fresh search's, random views)
    success: torch.Tensor
    clean_correct: torch.Tensor
    judged: FreshJudgement | None = None  # the criterion's draws, at the perturbation
    holdout: FreshJudgement | None = None  # independent draws, never searched on
    looks: torch.Tensor | None = None  # judgements per image (fresh search and holdout)


@dataclass(frozen=True)
class Costs:
    """Per image of a case: network inputs forward and backward, and seconds."""

    forwards: list[int]
    backwards: list[int]
    seconds: list[float]


@dataclass(frozen=True)
class TaskBatch:
    """One batch of a unit as the adaptive task's two halves see it (white box on a self
    pair, :func:`adaptive_rows`; black box on a cross pair, pipeline/stages/eval_black_box.py);
    ``on_done(k)`` after the k-th foveation (progress inside a unit: one foveation with
    EOT can take minutes)."""

    unit: EvalUnit
    idx: list[int]
    data: BatchData
    model: torch.nn.Module
    attack: Attack[Any]  # the unit's attack (the black box uses its criterion and norm)
    settings: EvalCfg
    on_done: Callable[[int], None] | None = None

    def cases(self, foveations: list[str]) -> Iterator[tuple[str, Case]]:
        """Each foveation on the batch images it applies to, progress reported between."""
        for k, name in enumerate(foveations, start=1):
            if self.on_done is not None and k > 1:
                self.on_done(k - 1)
            case = foveation_case(name, self.data, self.model, self.attack, self.settings)
            if case is not None:
                yield name, case


def adaptive_rows(batch: TaskBatch) -> list[dict[str, object]]:
    """One row per (image, foveation) of the batch: each attacked through itself."""
    unit, idx, model, attack, settings = (
        batch.unit, batch.idx, batch.model, batch.attack, batch.settings
    )  # fmt: skip
    out: list[dict[str, object]] = []
    for name, case in batch.cases(adaptive_foveations(settings)):
        result = _attack_in_chunks(attack, model, case)
        outcome = _outcome(case, result, settings.fresh_rtol)
        crit = norms.norm(outcome.perturbation, attack.norm).cpu()
        size = torch.where(outcome.success.cpu(), crit, torch.full_like(crit, math.inf))
        noisy = _noise_in_chunks(model, attack, case, size, attack.norm, settings.seed)
        looks = [0] * len(case.rows) if outcome.looks is None else outcome.looks.tolist()
        n = len(case.rows)
        costs = Costs(  # the attack's queries, the noise check, every fresh look
            forwards=[(int(result.n_forward[k]) + 1) * case.views_per_query[k]
                      + case.fresh_inputs * looks[k] for k in range(n)],
            backwards=[int(result.n_backward[k]) * case.views_per_query[k] for k in range(n)],
            seconds=[float(v) for v in result.seconds],
        )  # fmt: skip
        eot = settings.eot_draws if case.fresh is not None else None
        out += case_rows(unit, idx, name, case, outcome, costs, noisy, eot)
    return out


def case_rows(
    unit: EvalUnit,
    idx: list[int],
    name: str,
    case: Case,
    outcome: Outcome,
    costs: Costs,
    noisy: torch.Tensor | None = None,
    eot_draws: int | None = None,
) -> list[dict[str, object]]:
    """The ADAPTIVE_SCHEMA rows of one case (a white-box attack of a self pair, or a
    black-box transfer of a cross pair: pipeline/stages/eval_black_box.py, which has neither the
    noise check nor EOT draws)."""
    found = norms.all_norms(outcome.perturbation)
    judged, holdout = outcome.judged, outcome.holdout
    out: list[dict[str, object]] = []
    for k, j in enumerate(case.rows):
        ok = bool(outcome.success[k])
        out.append(
            {
                "image_id": unit.image_ids[idx[j]],
                "label": unit.labels[idx[j]],
                "source": unit.source,
                "target": unit.target,
                "attack": unit.attack,
                "condition": name,
                "random_views": judged is not None,
                "has_perturbation": bool(case.has_reference[k]),
                "clean_correct": bool(outcome.clean_correct[k]),
                "success": ok,
                "critical_scale": float(outcome.scale[k]) if ok else math.inf,
                **{f"crit_{n}": float(v[k]) if ok else math.inf for n, v in found.items()},
                **{f"mp_{n}": float(v[k]) for n, v in case.reference.items()},
                "eot_draws": eot_draws,
                "fresh_draws": None if judged is None else judged.draws,
                "fresh_fooled": None if judged is None else float(judged.fooled[k]),
                "fresh_ci_low": None if judged is None else float(judged.ci_low[k]),
                "fresh_ci_high": None if judged is None else float(judged.ci_high[k]),
                "holdout_fooled": None if holdout is None else float(holdout.fooled[k]),
                "noise_fooled": bool(noisy[k]) if ok and noisy is not None else None,
                "n_image_forwards": costs.forwards[k],
                "n_image_backwards": costs.backwards[k],
                "seconds": costs.seconds[k],
            }
        )
    return out


def _outcome(case: Case, result: AttackResult, rtol: float) -> Outcome:
    """A fixed foveation: the attack's result. A random one: the attack's perturbation
    scaled to where most fresh draws are fooled, searched where the attack fooled the EOT
    average (:func:`fresh_outcome`)."""
    success = result.success & result.clean_correct
    if case.fresh is None:
        return Outcome(result.perturbation, result.scale, success, result.clean_correct)
    return fresh_outcome(
        case, result.perturbation, success, result.scale, result.clean_correct, rtol
    )


def fresh_outcome(
    case: Case,
    perturbation: torch.Tensor,
    searched: torch.Tensor,
    scale: torch.Tensor,
    clean_correct: torch.Tensor,
    rtol: float,
) -> Outcome:
    """A random foveation: ``perturbation`` scaled to where most fresh draws are fooled
    (:func:`tasks.adaptive.fresh_critical_scale`, on the images ``searched``), then judged
    once on the criterion's draws and once on independent holdout draws (how far that
    choice of scale, made on the fresh draws, carries to draws it never saw)."""
    assert case.fresh is not None
    fresh = case.fresh
    judge = FreshDrawJudge(lambda x, idx: fresh(x, idx, "fresh"), torch.zeros(len(case.rows)))
    mask = searched.to(perturbation.device, perturbation.dtype)
    mask = mask.view(-1, *[1] * (case.x.dim() - 1))
    found = fresh_critical_scale(judge, case.x, perturbation * mask, rtol)
    ok = found.success.cpu() & searched.cpu()
    s = torch.where(ok, found.scale.cpu(), torch.zeros_like(found.scale.cpu()))
    x_adv = (case.x + s.to(case.x.device).view_as(mask) * perturbation).clamp(*PIXEL_BOUNDS)
    judged, holdout = fresh(x_adv, None, "fresh"), fresh(x_adv, None, "holdout")
    return Outcome(
        perturbation=x_adv - case.x,
        scale=scale.cpu() * s,
        success=ok & judged.success,
        clean_correct=clean_correct.cpu(),
        judged=judged,
        holdout=holdout,
        looks=judge.looks.long() + 2,
    )


#: Network inputs one composite query may hold: an EOT view of 20 draws of 3 crops is 60
#: inputs per image, and the attack's backward keeps every one's activations.
MAX_INPUTS_PER_CALL = 64


def _attack_in_chunks(attack: Attack[Any], model: torch.nn.Module, case: Case) -> AttackResult:
    """The attack on the case's images, as many at a time as keep a composite query under
    :data:`MAX_INPUTS_PER_CALL` network inputs (images are independent, so the results
    are the same as one call's)."""
    parts = [
        attack(model, case.x[idx], case.labels[idx], view=view) for _, idx, view in _chunks(case)
    ]
    if len(parts) == 1:
        return parts[0]
    tensors: dict[str, Any] = {
        f.name: torch.cat([getattr(p, f.name) for p in parts])
        for f in dataclasses.fields(AttackResult)
        if f.name != "info"
    }
    return AttackResult(**tensors)


def _noise_in_chunks(
    model: torch.nn.Module,
    attack: Attack[Any],
    case: Case,
    size: torch.Tensor,
    norm: str,
    seed: int,
) -> torch.Tensor:
    """:func:`~tasks.adaptive.noise_fools` on the case's images, chunked as the attack was
    (random foveations: through the attack's EOT view, the expected score)."""
    parts = [
        noise_fools(model, view, case.x[idx], case.labels[idx], attack.criterion,
                    size[chunk], norm, seed + chunk[0])
        for chunk, idx, view in _chunks(case)
    ]  # fmt: skip
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool)


def _chunks(case: Case) -> Iterator[tuple[list[int], torch.Tensor, View]]:
    """The case's images as many at a time as keep a composite query under
    :data:`MAX_INPUTS_PER_CALL` network inputs: (case rows, their index, their view)."""
    n = len(case.rows)
    step = max(1, MAX_INPUTS_PER_CALL // max(case.views_per_query, default=1))
    for lo in range(0, n, step):
        chunk = list(range(lo, min(n, lo + step)))
        view = case.view.select(chunk)  # type: ignore[attr-defined]
        yield chunk, torch.tensor(chunk, device=case.x.device), view


def foveation_case(
    name: str, data: BatchData, model: torch.nn.Module, attack: Attack[Any], settings: EvalCfg
) -> Case | None:
    """Foveation ``name`` on the batch images it applies to (None: none), with the source's
    perturbation norms as the reference and, if it draws at random, its fresh judge."""
    if name in CONDITIONS and CONDITIONS.get(name).setup == OBJECT:
        return _object_case(name, data, model, attack, settings)
    needs_box = name in CONDITIONS and CONDITIONS.get(name).needs_box
    rows = [j for j in range(data.x.shape[0]) if data.boxes[j] or not needs_box]
    if not rows:
        return None
    sel = torch.tensor(rows, device=data.x.device)
    x, ids = data.x[sel], [data.ids[j] for j in rows]
    size = (int(x.shape[-2]), int(x.shape[-1]))
    scale = torch.where(data.has_direction, data.scale, torch.full_like(data.scale, math.inf))
    reference = _norms(x, data.direction[sel], scale[rows])
    draw = random_draw(name)
    fresh = None
    if draw is None:
        inputs = ViewInputs(x, [data.boxes[j] for j in rows], ids, settings.seed, settings.saliency)
        view = CropView.of(VIEWS.get(name)(inputs), size)
        per_query = [len(w) for w in view.windows]
        fresh_inputs = 0
    else:
        view = eot_view(
            draw_views(draw, ids, size, settings.seed, "attack", settings.eot_draws), size
        )
        per_query = [len(w) for w in view.windows]
        draws = {
            stream: draw_views(draw, ids, size, settings.seed, stream, settings.fresh_draws)
            for stream in JUDGE_STREAMS
        }
        fresh = _judge(model, data.labels[sel], attack, draws, None)
        fresh_inputs = settings.fresh_draws * len(draw(*size, random.Random(0)))
    return Case(rows, x, data.labels[sel], reference, data.has_direction[rows], view, per_query, fresh, fresh_inputs)  # fmt: skip


def _object_case(
    name: str, data: BatchData, model: torch.nn.Module, attack: Attack[Any], settings: EvalCfg
) -> Case | None:
    """MP-Object's views of the object crop; a random one (1 of the ten) is attacked through
    the expectation over its draws, which is exactly the mean over all ten views."""
    o = data.object
    if o is None or name not in o.views or not o.rows:
        return None
    views = o.views[name]
    spec = CONDITIONS.get(name)
    labels = data.labels[torch.tensor(o.rows, device=data.labels.device)]
    reference = _norms(o.x, o.direction, torch.where(o.has_direction, o.scale, torch.full_like(o.scale, math.inf)))  # fmt: skip
    if not spec.random_views:
        view = ObjectFrameView.of(o.x, views)
        return Case(o.rows, o.x, labels, reference, o.has_direction, view, [len(v) for v in views], None)  # fmt: skip
    everyone = o.views[_every_view_of(name, o.views)]
    ids = [data.ids[j] for j in o.rows]
    draws = {  # one view of the ten per draw, from the image's own stream
        stream: [
            [[image[rng.randrange(len(image))]] for _ in range(settings.fresh_draws)]
            for image, rng in (
                (views_i, random.Random(f"{settings.seed}:{i}:{stream}"))
                for i, views_i in zip(ids, everyone, strict=True)
            )
        ]
        for stream in JUDGE_STREAMS
    }
    fresh = _judge(model, labels, attack, draws, o.x)
    view = ObjectFrameView.of(o.x, everyone)
    per_query = [len(v) for v in everyone]
    return Case(o.rows, o.x, labels, reference, o.has_direction, view, per_query, fresh, settings.fresh_draws)  # fmt: skip


def _every_view_of(name: str, views: dict[str, Any]) -> str:
    """The multi-view condition a random one draws from (1 Crop MP-Object: the ten)."""
    for c in CONDITIONS.in_order():
        if c.setup == OBJECT and c.views and c.small_gain_over == name and c.name in views:
            return c.name
    return name


#: The fresh draws' streams: the criterion's, and an independent holdout (tasks.adaptive).
JUDGE_STREAMS = ("fresh", "holdout")


def _judge(
    model: torch.nn.Module,
    labels: torch.Tensor,
    attack: Attack[Any],
    draws: Mapping[str, Sequence[Sequence[Any]]],
    object_frame: torch.Tensor | None,
) -> Judge:
    """The fresh-draw judge of one case: crops of the input, or views of the object crop
    (whose perturbation is the adversarial crop minus its clean one)."""

    def judge(x_adv: torch.Tensor, idx: torch.Tensor | None, stream: str) -> FreshJudgement:
        rows = list(range(len(labels))) if idx is None else idx.tolist()
        picked = [draws[stream][r] for r in rows]
        view_of = None
        if object_frame is not None:
            frame = object_frame[torch.tensor(rows, device=object_frame.device)]

            def view_of(part: list[tuple[int, Any]]) -> View:
                at = torch.tensor([i for i, _ in part], device=frame.device)
                return ObjectFrameView.of(frame[at], [d for _, d in part])

        return judge_fresh(model, x_adv, labels[rows], attack.criterion, picked, view_of=view_of)

    return judge


def _norms(x: torch.Tensor, d: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """Norms of the perturbation a scale adds along a direction (inf scale: inf)."""
    found = norms.added_norms(x.double(), d.double(), scale.to(x.device).double())
    return {k: v.cpu() for k, v in found.items()}
