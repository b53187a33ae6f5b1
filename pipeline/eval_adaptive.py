"""The ``adaptive`` evaluation task: each foveation attacked by an attacker who knows it.

For a self pair's batch, every MP-set-up foveation of the run (``eval.crops``) and the
random resized crop is turned into a view of the input (:mod:`tasks.adaptive`): fixed
crops as they are, random ones (3 random crops, the random resized crop) as the EOT
average of ``eval.eot_draws`` draws per image. The unit's own attack then minimises the
perturbation of the composite network, in the input's frame and norm units; a random
foveation's result is judged on ``eval.fresh_draws`` fresh draws. Each (image,
foveation) gets a row (ADAPTIVE_SCHEMA) with the adaptive perturbation's norms beside
the attack stage's MP norms for the same image, so the summary can compare critical
norms found by the same line search on both sides.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from pipeline.config import EvalCfg
from pipeline.eval_unit import EvalUnit
from tasks import norms
from tasks.adaptive import draw_views, eot_view, judge_fresh, random_draw
from tasks.attacks.base import Attack
from tasks.evaluation.build import BatchData
from tasks.foveation import VIEWS, ViewInputs
from tasks.protocol import CONDITIONS, MODERN_FOVEATION
from tasks.views import CropView


def adaptive_foveations(settings: EvalCfg) -> list[str]:
    """The foveations the task attacks: the run's MP-set-up crops, then the modern one."""
    return [*settings.crops, MODERN_FOVEATION]


def adaptive_rows(
    unit: EvalUnit,
    idx: list[int],
    data: BatchData,
    model: torch.nn.Module,
    attack: Attack[Any],
    settings: EvalCfg,
) -> list[dict[str, object]]:
    """One row per (image, foveation) of the batch."""
    x, labels = data.x, data.labels
    size = (int(x.shape[-2]), int(x.shape[-1]))
    mp = _mp_norms(data)
    out: list[dict[str, object]] = []
    for name in adaptive_foveations(settings):
        rows = [j for j in range(x.shape[0]) if data.boxes[j] or not _needs_box(name)]
        if not rows:
            continue
        ids = [data.ids[j] for j in rows]
        draw = random_draw(name)
        random_draws = draw is not None
        if draw is not None:
            per_image = draw_views(draw, ids, size, settings.seed, "attack", settings.eot_draws)
            view: CropView = eot_view(per_image, size)
        else:
            inputs = ViewInputs(
                x[rows], [data.boxes[j] for j in rows], ids, settings.seed, settings.saliency
            )
            view = CropView.of(VIEWS.get(name)(inputs), size)
        sel = torch.tensor(rows, device=x.device)
        result = attack(model, x[sel], labels[sel], view=view)
        success = result.success & result.clean_correct
        judged = None
        if draw is not None:
            fresh = draw_views(draw, ids, size, settings.seed, "fresh", settings.fresh_draws)
            judged = judge_fresh(
                model,
                (x[sel] + result.perturbation).clamp(0, 255),
                labels[sel],
                attack.criterion,
                fresh,
            )
            success = success & judged.success.to(success.device)
        found = norms.all_norms(result.perturbation)
        crops = [len(w) for w in view.windows]
        for k, j in enumerate(rows):
            ok = bool(success[k])
            fresh_forwards = (
                0
                if judged is None or draw is None
                else judged.draws * len(draw(*size, random.Random(0)))
            )
            out.append(
                {
                    "image_id": unit.image_ids[idx[j]],
                    "label": unit.labels[idx[j]],
                    "source": unit.source,
                    "target": unit.target,
                    "attack": unit.attack,
                    "condition": name,
                    "random_views": random_draws,
                    "has_perturbation": bool(data.has_direction[j]),
                    "clean_correct": bool(result.clean_correct[k]),
                    "success": ok,
                    "critical_scale": float(result.scale[k]) if ok else math.inf,
                    **{f"crit_{n}": float(v[k]) if ok else math.inf for n, v in found.items()},
                    **{f"mp_{n}": float(v[j]) for n, v in mp.items()},
                    "eot_draws": settings.eot_draws if random_draws else None,
                    "fresh_draws": None if judged is None else judged.draws,
                    "fresh_fooled": None if judged is None else float(judged.fooled[k]),
                    "fresh_ci_low": None if judged is None else float(judged.ci_low[k]),
                    "fresh_ci_high": None if judged is None else float(judged.ci_high[k]),
                    "n_image_forwards": int(result.n_forward[k]) * crops[k] + fresh_forwards,
                    "n_image_backwards": int(result.n_backward[k]) * crops[k],
                    "seconds": float(result.seconds[k]),
                }
            )
    return out


def _needs_box(name: str) -> bool:
    return name in CONDITIONS and CONDITIONS.get(name).needs_box


def _mp_norms(data: BatchData) -> dict[str, torch.Tensor]:
    """The attack stage's minimum perturbation of each image, in this frame (inf: none)."""
    scale = torch.where(
        data.has_direction,
        data.scale.to(torch.float64),
        torch.full_like(data.scale, math.inf, dtype=torch.float64),
    )
    return {
        k: v.cpu()
        for k, v in norms.added_norms(
            data.x.double(), data.direction.double(), scale.to(data.x.device)
        ).items()
    }
