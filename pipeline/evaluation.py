"""The evaluation stage's worker side: one target network evaluates stored perturbations.

For a shard of images, a source model's stored directions (never recomputed)
are mapped into the target's input and every condition of the protocol gets a
critical scale (DESIGN.md "Cost model"): the full perturbation (``mp``: norm
sweeps and transfer matrices), the object / background masks and the
foveations. Self pairs also run the MP-Object set-up (the attack on the object
crop ``T(x)``, a new attack, computed once here) and the linearity probes.

Conventions (written down in docs/protocol.md):

- A direction lives in the *source's* input. Masks are applied there, and every
  reported norm is the norm of the source-space perturbation before any
  foveation (the x-axis of the paper's figures). For a target with another
  input size the direction is resized bilinearly (antialiased when shrinking).
- Foveations use the target's own view of the image; multi-crop conditions
  average softmax confidences over the crops.
- Images without a ground-truth box get an error row for box-based conditions.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from pipeline.config import EvalCfg
from pipeline.images import load_input, map_boxes, object_mask
from pipeline.models import PixelModel, PreprocessCfg
from pipeline.results import CRITICAL_SCHEMA, LINEARITY_SCHEMA, PERTURBATION_SCHEMA, table_from_rows
from pipeline.store import Encoded, decode, encode
from tasks import attacks as attack_registry
from tasks import norms
from tasks.attacks.params import AttackParams
from tasks.criterion import TopK
from tasks.critical import critical_scales, dense_correct
from tasks.geometry import (
    Box,
    Window,
    crop_resize,
    largest_box,
    object_crops,
    one_crop_object,
    paste,
    shifted_object_windows,
    ten_crop,
    three_crop,
    windows_at,
)
from tasks.linearity import foveation_effect, linearity_curves, linearity_errors
from tasks.linesearch import LineSearch
from tasks.saliency import SALIENCY, top_peaks
from tasks.views import CropView

EVAL_TASKS = ("norm_sweep", "masks", "foveation", "linearity")
FOVEATION_CONDITIONS = ("object_crop", "ten_crop", "three_crop", "saliency_crop")
NO_BOX = "no ground-truth box in this image; box-based conditions are skipped for it"
NOT_FOOLED = "MP-Object: the object crop is misclassified clean or the attack on it failed"


@dataclass(frozen=True)
class EvalUnit:
    """One shard of one (source, target, attack) pair and the tasks to compute."""

    source: str
    target: str
    attack: str
    shard: int
    image_ids: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    sizes: tuple[tuple[int, int], ...]  # (width, height) of each original image
    boxes: tuple[tuple[Box, ...], ...]  # original pixel edges
    perturbations: str  # the source's perturbation shard (parquet) holding these images
    source_cfg: PreprocessCfg
    tasks: tuple[str, ...]

    @property
    def model(self) -> str:
        """The network that evaluates this unit (the scheduler routes on it)."""
        return self.target

    @property
    def key(self) -> str:
        return f"{self.source}->{self.target}/{self.attack}/shard-{self.shard:05d}"


@dataclass
class EvalOutput:
    unit: EvalUnit
    tables: dict[str, pa.Table] = field(default_factory=dict)  # task -> rows
    object_perturbations: pa.Table | None = None  # MP-Object directions of self pairs
    seconds: float = 0.0


def resize_direction(d: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A batch of source-space directions mapped onto another input size (linear in ``d``)."""
    if tuple(d.shape[-2:]) == tuple(size):
        return d
    shrink = size[0] < d.shape[-2] or size[1] < d.shape[-1]
    return F.interpolate(d, size=size, mode="bilinear", align_corners=False, antialias=shrink)


@dataclass
class _Batch:
    """One batch of a unit, in the target's input space."""

    unit: EvalUnit
    base: list[dict[str, Any]]
    x: torch.Tensor
    labels: torch.Tensor
    d_src: torch.Tensor
    s_src: torch.Tensor
    idx: list[int]  # rows of the unit in this batch
    boxes: list[list[Box]]  # target input coordinates
    dense: int


@dataclass
class _Condition:
    """Critical scales of ``d_search`` on ``x`` (a view optional), norms taken of ``d_norm``."""

    name: str
    x: torch.Tensor
    d_search: torch.Tensor
    d_norm: torch.Tensor
    view: CropView | None = None
    keep: list[bool] | None = None
    init: torch.Tensor | None = None
    dense: int = 0
    skip_reason: str = NO_BOX  # the error row of an image that ``keep`` leaves out


class Evaluator:
    """Evaluates perturbations on one target network (a plain class; actors wrap it)."""

    def __init__(
        self,
        model: PixelModel,
        criterion: TopK,
        search: LineSearch,
        settings: EvalCfg,
        attack_params: dict[str, AttackParams],
        batch_size: int = 16,
    ) -> None:
        self.model = model
        self.criterion = criterion
        self.search = search
        self.settings = settings
        self.attack_params = attack_params
        self.batch_size = batch_size
        self.device = model.shift.device
        self.size = model.cfg.input_size

    def evaluate(self, unit: EvalUnit) -> EvalOutput:
        start = time.perf_counter()
        stored = _read_perturbations(unit.perturbations)
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t in unit.tasks}
        objects: list[dict[str, Any]] = []
        for lo in range(0, len(unit.image_ids), self.batch_size):
            idx = list(range(lo, min(lo + self.batch_size, len(unit.image_ids))))
            try:
                batch = self._load(unit, idx, stored, dense=max(0, self.settings.dense_check - lo))
                self._run(batch, rows, objects)
            except Exception:  # a failing batch becomes error rows; the shard goes on
                message = traceback.format_exc(limit=4)
                for task in unit.tasks:
                    rows[task].extend({**_base(unit, i), "error": message} for i in idx)
        out = EvalOutput(unit=unit, seconds=time.perf_counter() - start)
        for task, task_rows in rows.items():
            schema = LINEARITY_SCHEMA if task == "linearity" else CRITICAL_SCHEMA
            out.tables[task] = table_from_rows(task_rows, schema)
        if objects:
            out.object_perturbations = table_from_rows(objects, PERTURBATION_SCHEMA)
        return out

    # -- batches -------------------------------------------------------------------------
    def _load(
        self, unit: EvalUnit, idx: list[int], stored: dict[str, tuple[Encoded, float]], dense: int
    ) -> _Batch:
        cfg = self.model.cfg
        missing = [unit.image_ids[i] for i in idx if unit.image_ids[i] not in stored]
        if missing:
            raise KeyError(
                f"{unit.perturbations}: no stored perturbation for {missing}; rerun the attack stage"
            )
        return _Batch(
            unit=unit,
            base=[_base(unit, i) for i in idx],
            x=torch.stack([load_input(unit.paths[i], cfg) for i in idx]).to(self.device),
            labels=torch.tensor([unit.labels[i] for i in idx], device=self.device),
            d_src=torch.stack([decode(stored[unit.image_ids[i]][0]) for i in idx]).to(self.device),
            s_src=torch.tensor([stored[unit.image_ids[i]][1] for i in idx], device=self.device),
            idx=idx,
            boxes=[map_boxes(unit.boxes[i], *unit.sizes[i], cfg) for i in idx],
            dense=dense,
        )

    def _run(
        self, b: _Batch, rows: dict[str, list[dict[str, Any]]], objects: list[dict[str, Any]]
    ) -> None:
        tasks = b.unit.tasks
        self_pair = b.unit.source == b.unit.target
        d_t = resize_direction(b.d_src, self.size)
        if "norm_sweep" in tasks:
            cond = _Condition("mp", b.x, d_t, b.d_src, init=b.s_src, dense=b.dense)
            rows["norm_sweep"] += self._critical_rows(b.base, cond)
        if not self_pair:
            return
        if "masks" in tasks:
            rows["masks"] += self._masks(b)
        if "foveation" in tasks:
            for cond in self._foveations(b, d_t):
                rows["foveation"] += self._critical_rows(b.base, cond)
        one_crop_effect: dict[int, tuple[float, float]] = {}
        if "foveation" in tasks or "linearity" in tasks:
            object_rows, one_crop_effect = self._mp_object(b, objects)
            if "foveation" in tasks:
                rows["foveation"] += object_rows
        if "linearity" in tasks:
            rows["linearity"] += self._linearity(b, d_t, one_crop_effect)

    def _masks(self, b: _Batch) -> list[dict[str, Any]]:
        src_cfg = b.unit.source_cfg
        idx = range(len(b.base))
        src_boxes = [map_boxes(b.unit.boxes[i], *b.unit.sizes[i], src_cfg) for i in b.idx]
        m = torch.stack([object_mask(bx, src_cfg) for bx in src_boxes]).to(self.device)
        keep = [bool(src_boxes[j]) for j in idx]
        out = []
        for name, mask in (("object_mask", m), ("background_mask", 1 - m)):
            masked = mask * b.d_src
            cond = _Condition(
                name, b.x, resize_direction(masked, self.size), masked, keep=keep, init=b.s_src
            )
            out += self._critical_rows(b.base, cond)
        return out

    def _foveations(self, b: _Batch, d_t: torch.Tensor) -> list[_Condition]:
        h, w = self.size
        n = b.x.shape[0]
        conds = []
        for crop in self.settings.crops:
            keep = None
            if crop == "object_crop":
                windows = [object_crops(bx) for bx in b.boxes]
                keep = [bool(bx) for bx in b.boxes]
            elif crop == "ten_crop":
                windows = [ten_crop(h, w)] * n
            elif crop == "three_crop":
                windows = [three_crop(h, w, self.settings.seed)] * n
            elif crop == "saliency_crop":
                maps = SALIENCY.get(self.settings.saliency)(b.x)
                windows = [windows_at(c, h, w) for c in top_peaks(maps, k=3)]
            else:
                raise ValueError(f"unknown crop {crop!r}; known: {', '.join(FOVEATION_CONDITIONS)}")
            full = [Window((0.0, 0.0, float(w), float(h)))]
            view = CropView.of([wins or full for wins in windows], (h, w))
            conds.append(_Condition(crop, b.x, d_t, b.d_src, view=view, keep=keep, init=b.s_src))
        return conds

    def _mp_object(
        self, b: _Batch, objects: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[int, tuple[float, float]]]:
        """MP-Object: attack the object crop, then evaluate shifted crops of the full image."""
        h, w = self.size
        have = [j for j, bx in enumerate(b.boxes) if bx]
        rows = [
            {**b.base[j], "condition": c, "error": NO_BOX}
            for j, bx in enumerate(b.boxes)
            if not bx
            for c in ("mp_object", "ten_crop_object", "one_crop_object")
        ]
        if not have:
            return rows, {}
        box = {j: largest_box(b.boxes[j]) for j in have}
        x_full, labels = b.x[have], b.labels[have]
        x_obj, _ = crop_resize(x_full, [[Window(box[j])] for j in have], (h, w))
        attack = attack_registry.create(
            b.unit.attack,
            criterion=self.criterion,
            line_search=self.search,
            params=self.attack_params.get(b.unit.attack),
        )
        result = attack(self.model, x_obj, labels)
        fooled = (result.success & result.clean_correct).tolist()
        base = [b.base[j] for j in have]
        e_obj = result.direction
        scale = torch.nan_to_num(result.scale, nan=1.0)
        rows += self._critical_rows(
            base,
            _Condition(
                "mp_object", x_obj, e_obj, e_obj, keep=fooled, init=scale, skip_reason=NOT_FOOLED
            ),
        )
        e_full = torch.stack([paste(e_obj[k], box[j], (h, w)) for k, j in enumerate(have)])
        for name, make in (
            ("ten_crop_object", shifted_object_windows),
            ("one_crop_object", one_crop_object),
        ):
            view = CropView.of([make(box[j], h, w) for j in have], (h, w))
            rows += self._critical_rows(
                base,
                _Condition(
                    name,
                    x_full,
                    e_full,
                    e_obj,
                    view=view,
                    keep=fooled,
                    init=scale,
                    skip_reason=NOT_FOOLED,
                ),
            )
        # Fig. 6, MP-Object set-up: x is the object crop, T the one shifted crop of the image.
        one = CropView.of([one_crop_object(box[j], h, w) for j in have], (h, w), aggregate="logit")
        e_star = (x_obj + scale.view(-1, 1, 1, 1) * e_obj).clamp(0, 255) - x_obj
        effect = _object_setup_effect(
            self.model, x_obj, x_full, e_star, e_full * scale.view(-1, 1, 1, 1), labels, one
        )
        one_crop_effect = {
            j: (float(effect[0][k]), float(effect[1][k])) for k, j in enumerate(have) if fooled[k]
        }
        for k in (k for k in range(len(have)) if fooled[k]):
            enc = encode(e_obj[k])
            objects.append(
                {
                    "image_id": base[k]["image_id"],
                    "model": b.unit.target,
                    "attack": f"{b.unit.attack}.object",
                    "scale": float(result.scale[k]),
                    "codec": enc.codec,
                    "shape": list(enc.shape),
                    "norm": enc.norm,
                    "data": enc.data,
                }
            )
        return rows, one_crop_effect

    def _linearity(
        self, b: _Batch, d_t: torch.Tensor, one_crop: dict[int, tuple[float, float]]
    ) -> list[dict[str, Any]]:
        h, w = self.size
        e = (b.x + b.s_src.view(-1, 1, 1, 1) * d_t).clamp(0, 255) - b.x
        reference = self.model.shift
        curves = linearity_curves(
            self.model, b.x, e, b.labels, list(self.settings.alphas), reference
        )
        errors = linearity_errors(self.model, b.x, e, b.labels, reference)
        full = [Window((0.0, 0.0, float(w), float(h)))]
        view = CropView.of([object_crops(bx) or full for bx in b.boxes], (h, w), aggregate="logit")
        effect = foveation_effect(self.model, b.x, e, b.labels, view)
        out = []
        for j, base in enumerate(b.base):
            has_box = bool(b.boxes[j])
            one_img, one_pert = one_crop.get(j, (None, None))
            out.append(
                {
                    **base,
                    "alphas": list(self.settings.alphas),
                    "response": curves.response[j].tolist(),
                    "alone": curves.alone[j].tolist(),
                    "err_interpolation": float(errors.interpolation[j]),
                    "err_alone": float(errors.alone[j]),
                    "fov_object_image": float(effect.image[j]) if has_box else None,
                    "fov_object_perturbation": float(effect.perturbation[j]) if has_box else None,
                    "fov_one_crop_image": one_img,
                    "fov_one_crop_perturbation": one_pert,
                }
            )
        return out

    # -- critical-scale rows ---------------------------------------------------------------
    def _critical_rows(self, base: list[dict[str, Any]], c: _Condition) -> list[dict[str, Any]]:
        keep = c.keep if c.keep is not None else [True] * len(base)
        sel = [j for j, k in enumerate(keep) if k]
        rows = [
            {
                **base[j],
                "condition": c.name,
                "error": NO_BOX if c.keep is not None else "no perturbation",
            }
            for j, k in enumerate(keep)
            if not k
        ]
        if not sel:
            return rows
        view = c.view.select(sel) if c.view is not None else None
        x, d, labels = c.x[sel], c.d_search[sel], _labels_of(base, sel, c.x.device)
        found = critical_scales(
            self.model,
            x,
            d,
            labels,
            criterion=self.criterion,
            view=view,
            search=self.search,
            init_scale=None if c.init is None else c.init[sel],
        )
        crit = {n: found.critical_norm(c.d_norm[sel], n) for n in norms.NORMS}
        mismatch = self._dense_mismatch(
            x, d, labels, view, c.d_norm[sel], crit, min(c.dense, len(sel))
        )
        for k, j in enumerate(sel):
            rows.append(
                {
                    **base[j],
                    "condition": c.name,
                    "clean_correct": bool(found.clean_correct[k]),
                    "critical_scale": float(found.scale[k]),
                    **{f"crit_{n}": float(v[k]) for n, v in crit.items()},
                    "n_forward": int(found.n_forward[k]),
                    "dense_mismatch": mismatch[k] if k < len(mismatch) else None,
                }
            )
        return rows

    def _dense_mismatch(
        self,
        x: torch.Tensor,
        d: torch.Tensor,
        labels: torch.Tensor,
        view: CropView | None,
        d_norm: torch.Tensor,
        crit: dict[str, torch.Tensor],
        n: int,
    ) -> list[int]:
        """How often a dense sweep disagrees with 'correct iff critical norm > v'."""
        if n == 0:
            return []
        total = torch.zeros(n, dtype=torch.long)
        for norm, grid in (("l1pp", self.settings.l1pp_grid), ("linf", self.settings.linf_grid)):
            # rescale d so that the *source-space* norm takes each grid value
            ratio = norms.norm(d_norm[:n], norm) / norms.norm(d[:n], norm).clamp_min(1e-30)
            target_grid_d = d[:n] * ratio.view(-1, 1, 1, 1)
            dense = dense_correct(
                self.model,
                x[:n],
                target_grid_d,
                labels[:n],
                list(grid),
                norm,
                criterion=self.criterion,
                view=view.select(list(range(n))) if view else None,
            )
            predicted = crit[norm][:n, None] > torch.tensor(grid, device=x.device)[None, :]
            total += (dense != predicted).sum(dim=1).cpu()
        return total.tolist()


def _object_setup_effect(
    model: PixelModel,
    x_obj: torch.Tensor,
    x_full: torch.Tensor,
    e_obj: torch.Tensor,
    e_full: torch.Tensor,
    labels: torch.Tensor,
    view: CropView,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fig. 6 for MP-Object: x is the object crop, T(x) one shifted crop of the full image."""
    rows = torch.arange(x_obj.shape[0])
    with torch.no_grad():

        def score(logits: torch.Tensor) -> torch.Tensor:
            return logits.gather(1, labels[:, None]).squeeze(1)

        f_x = score(model(x_obj))
        f_xe = score(model((x_obj + e_obj).clamp(0, 255)))
        t_x = score(view.logits(model, x_full, rows))
        t_xe = score(view.logits(model, (x_full + e_full).clamp(0, 255), rows))
    return f_x - t_x, (f_xe - f_x) - (t_xe - t_x)


def _read_perturbations(path: str) -> dict[str, tuple[Encoded, float]]:
    """image_id -> (encoded direction, scale) from a perturbation shard."""
    table = pq.read_table(path)
    out = {}
    for row in table.to_pylist():
        enc = Encoded(row["codec"], tuple(row["shape"]), row["norm"], row["data"])
        out[row["image_id"]] = (enc, float(row["scale"]))
    return out


def _base(unit: EvalUnit, i: int) -> dict[str, Any]:
    return {
        "image_id": unit.image_ids[i],
        "label": unit.labels[i],
        "source": unit.source,
        "target": unit.target,
        "attack": unit.attack,
    }


def _labels_of(base: list[dict[str, Any]], sel: list[int], device: torch.device) -> torch.Tensor:
    return torch.tensor([base[j]["label"] for j in sel], device=device)
