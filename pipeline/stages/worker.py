"""The model worker: one network, resident, computing shards of work.

Like xgboost_ray, :class:`ModelWorker` is a plain class (unit-testable without
Ray) and :data:`RemoteModelWorker` is the thin ``ray.remote`` wrapper; its
resources and placement-group bundle are bound at creation (pipeline/stages/actors.py).
A worker writes its own result pieces where the run lives (a local folder or an
object-store URI, pipeline/results/write.py) and returns only the small row tables, so
no perturbation byte passes through the driver and no node needs a shared disk.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
import torch

from pipeline.config.benchmark import EvalCfg
from pipeline.models.image_cache import ImageCache
from pipeline.models.networks import load_model
from pipeline.results.codec import record, roundtrip
from pipeline.results.tables import (
    ATTACK_SCHEMA,
    BOUNDS_SCHEMA,
    CLEAN_SCHEMA,
    PERTURBATION_SCHEMA,
    table_from_rows,
)
from pipeline.results.write import ResultWriter, strip_attack, strip_eval
from pipeline.stages.attack_unit import AttackOutput, AttackUnit
from pipeline.stages.eval_unit import EvalOutput, EvalUnit
from pipeline.stages.eval_worker import Evaluator
from pipeline.stages.oom import bisecting, is_out_of_memory
from pipeline.stages.progress import ProgressTarget, UnitProgress
from tasks import attacks as attack_registry
from tasks.attacks.base import Attack, AttackResult
from tasks.attacks.params import AttackParams
from tasks.bounds import UnsupportedLayerError, peck_bound
from tasks.clean import clean_measures, clean_scores
from tasks.criterion import TopK
from tasks.linesearch import LineSearch
from tasks.protocol import MP


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to build its model and attacks."""

    model: str
    preprocess: dict[str, Any]
    attacks: dict[str, AttackParams]  # name -> its validated parameters
    top_k: int = 5
    rtol: float = 1e-3
    batch_size: int = 16
    device: str = "auto"
    threads: int = 1
    eval: EvalCfg = field(default_factory=EvalCfg)
    run_dir: str = ""  # where the pieces go (local path or URI); "" = the caller writes
    provenance: dict[str, Any] = field(default_factory=dict)  # stamped on every piece
    checkpoint: str | None = None  # local weights (absolute path or URI), checked by sha256
    checkpoint_sha256: str | None = None


@dataclass
class _BatchRows:
    """Rows of one batch, kept apart until the batch succeeds (a retried batch adds none)."""

    clean: list[dict[str, Any]] = field(default_factory=list)
    attacks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    perts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bounds: list[dict[str, Any]] = field(default_factory=list)

    def add_error(self, unit: AttackUnit, base: dict[str, Any], message: str) -> None:
        """One image failed before any task ran: an error row in every task's table."""
        if unit.clean:
            self.clean.append({**base, "error": message})
        if unit.bounds:
            self.bounds.append({**base, "error": message})
        for name in unit.attacks:
            self.attacks.setdefault(name, []).append({**base, "attack": name, "error": message})

    def extend(self, other: _BatchRows) -> None:
        self.clean.extend(other.clean)
        self.bounds.extend(other.bounds)
        for name, rows in other.attacks.items():
            self.attacks.setdefault(name, []).extend(rows)
        for name, rows in other.perts.items():
            self.perts.setdefault(name, []).extend(rows)


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


class ModelWorker:
    """Holds one pretrained network and computes clean scores and attacks for shards."""

    def __init__(self, spec: WorkerSpec, images: ImageCache | None = None) -> None:
        torch.set_num_threads(max(1, spec.threads))
        self.spec = spec
        self._halvings = 0
        self._progress = UnitProgress(None, spec.model, 1)
        self._result_writer: ResultWriter | None = None
        self.device = pick_device(spec.device)
        self.model = load_model(
            spec.model, spec.preprocess, self.device, spec.checkpoint, spec.checkpoint_sha256
        )
        self.criterion = TopK(spec.top_k)
        self.images = images or ImageCache()  # decoded once, for both stages
        search = LineSearch(rtol=spec.rtol)
        self.attacks: dict[str, Attack[Any]] = {}
        for name, params in spec.attacks.items():
            attack = attack_registry.create(
                name, criterion=self.criterion, line_search=search, params=params
            )
            attack.quantize = roundtrip  # the scale is found for the stored direction
            self.attacks[name] = attack
        self.evaluator = Evaluator(
            self.model,
            self.criterion,
            spec.eval,
            self.attacks.__getitem__,
            self.images,
            spec.batch_size,
        )

    def evaluate(self, unit: EvalUnit, progress: ProgressTarget | None = None) -> EvalOutput:
        """The evaluation stage on this network (as the target), reusing the loaded model."""
        return self.evaluator.evaluate(unit, progress)

    def _writer(self) -> ResultWriter:
        if not self.spec.run_dir:
            raise RuntimeError("this worker was built without a run_dir to write to")
        if self._result_writer is None:
            self._result_writer = ResultWriter(self.spec.run_dir, self.spec.provenance)
        return self._result_writer

    def run_unit(self, unit: Unit, progress: ProgressTarget | None = None) -> Output:
        """The actor's one method, for a unit of either stage (:data:`UNIT_KINDS`): computed,
        written and committed here; its rows go back, without the perturbation bytes."""
        kind = UNIT_KINDS[type(unit)]
        out = kind.compute(self, unit, progress)
        kind.write(self._writer(), out)
        return kind.strip(out)

    def describe(self) -> dict[str, Any]:
        """Where this worker runs and with what preprocessing (for logs and provenance)."""
        return {
            "model": self.spec.model,
            "device": str(self.device),
            "preprocess": self.model.cfg.as_dict(),
            "threads": torch.get_num_threads(),
        }

    def process(self, unit: AttackUnit, progress: ProgressTarget | None = None) -> AttackOutput:
        """Clean scores, bounds and every attack for a unit, batch by batch; each finished
        batch (and each task within one) is reported to ``progress``."""
        start = time.perf_counter()
        self._halvings = 0
        steps = int(unit.clean) + int(unit.bounds) + len(unit.attacks)
        self._progress = UnitProgress(progress, unit.model, steps)
        rows = _BatchRows(
            attacks={a: [] for a in unit.attacks}, perts={a: [] for a in unit.attacks}
        )
        size, n = self.spec.batch_size, len(unit.image_ids)
        for lo in range(0, n, size):
            idx = list(range(lo, min(lo + size, n)))
            if lo + size < n:  # decode the next batch while this one computes
                self.images.prefetch(unit.paths[lo + size : lo + 2 * size], self.model.cfg)
            batch = self._process_resilient(unit, idx)
            rows.extend(batch)
            self._progress.commit(len(idx), batch.clean, batch.attacks)
        out = AttackOutput(unit=unit, clean=None, seconds=time.perf_counter() - start)
        out.worker = str(self.device)
        out.pid = os.getpid()
        out.node_id = _node_id()
        out.halvings = self._halvings
        if unit.clean:
            out.clean = table_from_rows(rows.clean, CLEAN_SCHEMA)
        if unit.bounds:
            out.bounds = table_from_rows(rows.bounds, BOUNDS_SCHEMA)
        for name in unit.attacks:
            out.attacks[name] = (
                table_from_rows(rows.attacks[name], ATTACK_SCHEMA),
                table_from_rows(rows.perts[name], PERTURBATION_SCHEMA),
            )
        return out

    def _process_resilient(self, unit: AttackUnit, idx: list[int]) -> _BatchRows:
        """Process a batch; on failure split it in halves down to single images.

        Out of memory is the common case (a batch that fits one GPU may not fit
        another); any other exception also bisects, so one bad image becomes one
        error row and its neighbours still get results.
        """

        def free_cache(exc: BaseException, oom: bool, n: int) -> bool:
            if oom and self.device.type == "cuda":
                torch.cuda.empty_cache()
            return False  # never the same batch again: split it

        def give_up(i: int, exc: BaseException, oom: bool) -> _BatchRows:
            what = "out of memory with a batch of 1" if oom else "failed"
            message = f"{unit.paths[i]}: {what}: {type(exc).__name__}: {exc}"
            return self._error_rows(unit, [i], message)

        def split() -> None:
            self._halvings += 1

        return bisecting(
            idx, lambda part: self._process_batch(unit, part), give_up, _joined, free_cache, split
        )

    def _error_rows(self, unit: AttackUnit, idx: list[int], message: str) -> _BatchRows:
        rows = _BatchRows(attacks={a: [] for a in unit.attacks})
        for i in idx:
            base = {"image_id": unit.image_ids[i], "label": unit.labels[i], "model": unit.model}
            rows.add_error(unit, base, message)
        return rows

    def _load(
        self, unit: AttackUnit, idx: list[int]
    ) -> tuple[list[int], torch.Tensor | None, dict[int, str]]:
        """Load images; a file that fails becomes an error, the rest go on."""
        good, tensors, errors = [], [], {}
        for i in idx:
            try:
                tensors.append(self.images.inputs([unit.paths[i]], self.model.cfg)[0])
                good.append(i)
            except Exception as exc:  # any decoding failure is a per-image error row
                errors[i] = f"{unit.paths[i]}: could not load image: {exc}"
        x = torch.stack(tensors).to(self.device) if tensors else None
        return good, x, errors

    def _process_batch(self, unit: AttackUnit, idx: list[int]) -> _BatchRows:
        """Clean scores and every attack for one batch; raises if the batch must be split."""
        rows = _BatchRows(
            attacks={a: [] for a in unit.attacks}, perts={a: [] for a in unit.attacks}
        )
        good, x, errors = self._load(unit, idx)
        base = {
            i: {"image_id": unit.image_ids[i], "label": unit.labels[i], "model": unit.model}
            for i in idx
        }
        for i, message in errors.items():
            rows.add_error(unit, base[i], message)
        if x is None:
            return rows
        labels = torch.tensor([unit.labels[i] for i in good], device=self.device)
        finished = 0  # tasks of this batch done, for the progress inside the unit
        if unit.clean:
            scores = {
                **clean_scores(self.model, x, labels),
                **clean_measures(self.model, x, labels),
            }
            for j, i in enumerate(good):
                rows.clean.append({**base[i], **{k: v[j].item() for k, v in scores.items()}})
            finished += 1
            self._progress.step(len(idx), finished)
        if unit.bounds:
            rows.bounds.extend(self._bounds(x, [base[i] for i in good]))
            finished += 1
            self._progress.step(len(idx), finished)
        for name in unit.attacks:
            try:
                result = self.attacks[name](self.model, x, labels)
            except Exception as exc:
                if len(good) > 1:
                    raise  # split the batch: isolate the image (or the memory) at fault
                what = "out of memory with a batch of 1" if is_out_of_memory(exc) else "failed"
                message = f"attack {name} {what} on this image: {traceback.format_exc(limit=3)}"
                rows.attacks[name].extend(
                    {**base[i], "attack": name, "error": message} for i in good
                )
                continue
            self._rows_from_result(
                name, result, [base[i] for i in good], rows.attacks[name], rows.perts[name]
            )
            finished += 1
            self._progress.step(len(idx), finished)
        return rows

    def _bounds(self, x: torch.Tensor, bases: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Peck's bound per image, or for a network it cannot bound, rows that say why."""
        try:
            result = peck_bound(self.model, x)
        except UnsupportedLayerError as exc:
            message = f"bounds: {self.spec.model}: {exc}"
            return [{**b, "error": message} for b in bases]
        layers = list(result.kappas)
        return [
            {
                **b,
                "predicted": int(result.predicted[j]),
                "bound_l2": _num(result.bound_l2[j]),
                "layers": layers,
                "kappas": [_num(result.kappas[name][j]) for name in layers],
            }
            for j, b in enumerate(bases)
        ]

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
                perts.append(
                    record(b["image_id"], b["model"], name, MP, row["scale"], result.direction[j])
                )


Unit = AttackUnit | EvalUnit
Output = AttackOutput | EvalOutput


@dataclass(frozen=True)
class UnitKind:
    """How a worker computes one stage's unit, writes it and strips it for the driver."""

    compute: Callable[[ModelWorker, Any, ProgressTarget | None], Any]
    write: Callable[[ResultWriter, Any], None]
    strip: Callable[[Any], Any]


#: The stages' units, by type: what :meth:`ModelWorker.run_unit` does with each.
UNIT_KINDS: dict[type, UnitKind] = {
    AttackUnit: UnitKind(ModelWorker.process, ResultWriter.attack_output, strip_attack),
    EvalUnit: UnitKind(ModelWorker.evaluate, ResultWriter.eval_output, strip_eval),
}


def _joined(first: _BatchRows, second: _BatchRows) -> _BatchRows:
    first.extend(second)
    return first


def _node_id() -> str:
    try:
        return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else ""
    except Exception:  # outside a Ray worker there is no node
        return ""


def _num(value: torch.Tensor) -> float | None:
    v = float(value)
    return None if v != v else v  # nan -> null


RemoteModelWorker = ray.remote(ModelWorker)
