"""The model worker: one network, resident, computing shards of work.

Like xgboost_ray, :class:`ModelWorker` is a plain class (unit-testable without
Ray) and :data:`RemoteModelWorker` is the thin ``ray.remote`` wrapper; the
resources are bound at creation from :class:`ActorResources` by the runner.
A worker returns Arrow tables; the driver writes them, so workers need no
shared filesystem.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import ray
import torch

from pipeline.images import load_input
from pipeline.models import load_model
from pipeline.results import ATTACK_SCHEMA, CLEAN_SCHEMA, PERTURBATION_SCHEMA, table_from_rows
from pipeline.store import encode
from tasks import attacks as attack_registry
from tasks.attacks.base import Attack, AttackResult
from tasks.clean import clean_scores
from tasks.criterion import TopK
from tasks.linesearch import LineSearch


@dataclass(frozen=True)
class WorkUnit:
    """One shard of images for one model: which tasks are still missing."""

    model: str
    shard: int
    image_ids: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    attacks: tuple[str, ...]  # attack names still to compute for this shard
    clean: bool


@dataclass
class ShardOutput:
    unit: WorkUnit
    clean: pa.Table | None
    attacks: dict[str, tuple[pa.Table, pa.Table]] = field(default_factory=dict)
    seconds: float = 0.0
    worker: str = ""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to build its model and attacks."""

    model: str
    preprocess: dict[str, Any]
    attacks: dict[str, dict[str, Any]]  # name -> params
    top_k: int = 5
    rtol: float = 1e-3
    batch_size: int = 16
    device: str = "auto"
    threads: int = 1


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


class ModelWorker:
    """Holds one pretrained network and computes clean scores and attacks for shards."""

    def __init__(self, spec: WorkerSpec) -> None:
        torch.set_num_threads(max(1, spec.threads))
        self.spec = spec
        self.device = pick_device(spec.device)
        self.model = load_model(spec.model, spec.preprocess, self.device)
        self.criterion = TopK(spec.top_k)
        search = LineSearch(rtol=spec.rtol)
        self.attacks: dict[str, Attack] = {
            name: attack_registry.create(
                name, criterion=self.criterion, line_search=search, **params
            )
            for name, params in spec.attacks.items()
        }

    def describe(self) -> dict[str, Any]:
        """Where this worker runs and with what preprocessing (for logs and provenance)."""
        return {
            "model": self.spec.model,
            "device": str(self.device),
            "preprocess": self.model.cfg.as_dict(),
            "threads": torch.get_num_threads(),
        }

    def process(self, unit: WorkUnit) -> ShardOutput:
        start = time.perf_counter()
        clean_rows: list[dict[str, Any]] = []
        attack_rows: dict[str, list[dict[str, Any]]] = {a: [] for a in unit.attacks}
        pert_rows: dict[str, list[dict[str, Any]]] = {a: [] for a in unit.attacks}
        size = self.spec.batch_size
        for lo in range(0, len(unit.image_ids), size):
            idx = range(lo, min(lo + size, len(unit.image_ids)))
            self._process_batch(unit, list(idx), clean_rows, attack_rows, pert_rows)
        out = ShardOutput(unit=unit, clean=None, seconds=time.perf_counter() - start)
        out.worker = str(self.device)
        if unit.clean:
            out.clean = table_from_rows(clean_rows, CLEAN_SCHEMA)
        for name in unit.attacks:
            out.attacks[name] = (
                table_from_rows(attack_rows[name], ATTACK_SCHEMA),
                table_from_rows(pert_rows[name], PERTURBATION_SCHEMA),
            )
        return out

    def _load(
        self, unit: WorkUnit, idx: list[int]
    ) -> tuple[list[int], torch.Tensor | None, dict[int, str]]:
        """Load images; a file that fails becomes an error, the rest go on."""
        good, tensors, errors = [], [], {}
        for i in idx:
            try:
                tensors.append(load_input(unit.paths[i], self.model.cfg))
                good.append(i)
            except Exception as exc:  # any decoding failure is a per-image error row
                errors[i] = f"{unit.paths[i]}: could not load image: {exc}"
        x = torch.stack(tensors).to(self.device) if tensors else None
        return good, x, errors

    def _process_batch(
        self,
        unit: WorkUnit,
        idx: list[int],
        clean_rows: list[dict[str, Any]],
        attack_rows: dict[str, list[dict[str, Any]]],
        pert_rows: dict[str, list[dict[str, Any]]],
    ) -> None:
        good, x, errors = self._load(unit, idx)
        base = {
            i: {"image_id": unit.image_ids[i], "label": unit.labels[i], "model": unit.model}
            for i in idx
        }
        for i, message in errors.items():
            if unit.clean:
                clean_rows.append({**base[i], "error": message})
            for name in unit.attacks:
                attack_rows[name].append({**base[i], "attack": name, "error": message})
        if x is None:
            return
        labels = torch.tensor([unit.labels[i] for i in good], device=self.device)
        if unit.clean:
            scores = clean_scores(self.model, x, labels)
            for j, i in enumerate(good):
                clean_rows.append({**base[i], **{k: v[j].item() for k, v in scores.items()}})
        for name in unit.attacks:
            try:
                result = self.attacks[name](self.model, x, labels)
            except Exception:  # an attack bug must not kill the shard's other work
                message = f"attack {name} failed on this batch: {traceback.format_exc(limit=3)}"
                attack_rows[name].extend(
                    {**base[i], "attack": name, "error": message} for i in good
                )
                continue
            self._rows_from_result(
                name, result, [base[i] for i in good], attack_rows[name], pert_rows[name]
            )

    def _rows_from_result(
        self,
        name: str,
        result: AttackResult,
        bases: list[dict[str, Any]],
        rows: list[dict[str, Any]],
        perts: list[dict[str, Any]],
    ) -> None:
        norms = result.norms()
        criterion = f"top{self.criterion.k}"
        for j, b in enumerate(bases):
            row = {
                **b,
                "attack": name,
                "criterion": criterion,
                "success": bool(result.success[j]),
                "scale": _num(result.scale[j]),
                "l1pp": _num(norms["l1pp"][j]),
                "l2": _num(norms["l2"][j]),
                "linf": _num(norms["linf"][j]),
                "adv_label": int(result.adv_label[j]),
                "clean_correct": bool(result.clean_correct[j]),
                "clean_label": int(result.clean_label[j]),
                "n_forward": int(result.n_forward[j]),
                "n_backward": int(result.n_backward[j]),
                "seconds": float(result.seconds[j]),
            }
            rows.append(row)
            if row["success"] and row["clean_correct"]:
                enc = encode(result.direction[j])
                perts.append(
                    {
                        "image_id": b["image_id"],
                        "model": b["model"],
                        "attack": name,
                        "scale": row["scale"],
                        **dataclasses.asdict(enc),
                        "shape": list(enc.shape),
                    }
                )


def _num(value: torch.Tensor) -> float | None:
    v = float(value)
    return None if v != v else v  # nan -> null


RemoteModelWorker = ray.remote(ModelWorker)
