"""The attack stage on an actor: clean scores, Peck's bounds and every attack for one unit,
batch by batch, on the network the actor holds.

Every batch goes through the one resilient-batch helper (:func:`pipeline.stages.oom.bisecting`):
on failure it is split in halves down to single images, so out of memory (a batch that fits
one GPU may not fit another) costs a smaller batch, and one bad image becomes one error row
while its neighbours still get results. A batch that ran out of memory also lowers the
worker's batch size for good (half of it, for every later batch and unit), so the actor
does not fail on every batch and split it again.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import TYPE_CHECKING

import ray
import torch

from pipeline.stages.attack_rows import BatchRows, bound_rows
from pipeline.stages.attack_unit import AttackOutput, AttackUnit
from pipeline.stages.oom import bisecting, is_out_of_memory
from pipeline.stages.progress import ProgressTarget, UnitProgress
from tasks.clean import clean_measures, clean_scores

if TYPE_CHECKING:
    from pipeline.stages.worker import ModelWorker


class AttackBatches:
    """One attack unit on one worker's network (its halvings and progress are the unit's)."""

    def __init__(
        self, worker: ModelWorker, unit: AttackUnit, progress: ProgressTarget | None
    ) -> None:
        self.worker, self.unit = worker, unit
        self.halvings = 0
        steps = int(unit.clean) + int(unit.bounds) + len(unit.attacks)
        self.progress = UnitProgress(progress, unit.model, steps)

    def output(self) -> AttackOutput:
        """Every batch of the unit; each finished batch (and each task within one) is
        reported to the progress target."""
        start = time.perf_counter()
        unit, images, cfg = self.unit, self.worker.images, self.worker.model.cfg
        rows = BatchRows.of(unit)
        lo, n = 0, len(unit.image_ids)
        while lo < n:
            size = self.worker.batch_size  # lowered for good by an out of memory
            idx = list(range(lo, min(lo + size, n)))
            if lo + size < n:  # decode the next batch while this one computes
                images.prefetch(unit.paths[lo + size : lo + 2 * size], cfg)
            batch = self._resilient(idx)
            rows.extend(batch)
            self.progress.commit(len(idx), batch.clean, batch.attacks)
            lo += len(idx)
        out = AttackOutput(unit=unit, clean=None, seconds=time.perf_counter() - start)
        out.worker = str(self.worker.device)
        out.pid = os.getpid()
        out.node_id = _node_id()
        out.halvings = self.halvings
        rows.fill(out)
        return out

    def _resilient(self, idx: list[int]) -> BatchRows:
        """A batch through :func:`bisecting`; an image that fails alone becomes error rows."""

        def free_cache(exc: BaseException, oom: bool, n: int) -> bool:
            if oom:  # the worker's batches stay below a size that ran out of memory
                self.worker.batch_size = min(self.worker.batch_size, max(1, n // 2))
                if self.worker.device.type == "cuda":
                    torch.cuda.empty_cache()
            return False  # never the same batch again: split it

        def give_up(i: int, exc: BaseException, oom: bool) -> BatchRows:
            what = "out of memory with a batch of 1" if oom else "failed"
            message = f"{self.unit.paths[i]}: {what}: {type(exc).__name__}: {exc}"
            rows = BatchRows(attacks={a: [] for a in self.unit.attacks})
            rows.add_error(self.unit, self._base(i), message)
            return rows

        def split() -> None:
            self.halvings += 1

        return bisecting(idx, self._batch, give_up, BatchRows.extend, free_cache, split)

    def _base(self, i: int) -> dict[str, object]:
        u = self.unit
        return {"image_id": u.image_ids[i], "label": u.labels[i], "model": u.model}

    def _load(self, idx: list[int]) -> tuple[list[int], torch.Tensor | None, dict[int, str]]:
        """Load images; a file that fails becomes an error, the rest go on."""
        good, tensors, errors = [], [], {}
        for i in idx:
            path = self.unit.paths[i]
            try:
                tensors.append(self.worker.images.inputs([path], self.worker.model.cfg)[0])
                good.append(i)
            except Exception as exc:  # any decoding failure is a per-image error row
                errors[i] = f"{path}: could not load image: {exc}"
        x = torch.stack(tensors).to(self.worker.device) if tensors else None
        return good, x, errors

    def _batch(self, idx: list[int]) -> BatchRows:
        """Clean scores and every attack for one batch; raises if the batch must be split."""
        unit, worker = self.unit, self.worker
        rows = BatchRows.of(unit)
        good, x, errors = self._load(idx)
        base = {i: self._base(i) for i in idx}
        for i, message in errors.items():
            rows.add_error(unit, base[i], message)
        if x is None:
            return rows
        labels = torch.tensor([unit.labels[i] for i in good], device=worker.device)
        finished = 0  # tasks of this batch done, for the progress inside the unit
        if unit.clean:
            scores = {
                **clean_scores(worker.model, x, labels),
                **clean_measures(worker.model, x, labels),
            }
            for j, i in enumerate(good):
                rows.clean.append({**base[i], **{k: v[j].item() for k, v in scores.items()}})
            finished += 1
            self.progress.step(len(idx), finished)
        if unit.bounds:
            rows.bounds.extend(bound_rows(worker.model, unit.model, x, [base[i] for i in good]))
            finished += 1
            self.progress.step(len(idx), finished)
        for name in unit.attacks:
            try:
                result = worker.attacks[name](worker.model, x, labels)
            except Exception as exc:
                if len(good) > 1:
                    raise  # split the batch: isolate the image (or the memory) at fault
                what = "out of memory with a batch of 1" if is_out_of_memory(exc) else "failed"
                message = f"attack {name} {what} on this image: {traceback.format_exc(limit=3)}"
                rows.attacks[name].extend(
                    {**base[i], "attack": name, "error": message} for i in good
                )
                continue
            criterion = f"top{worker.criterion.k}"
            rows.add_result(name, result, [base[i] for i in good], criterion)
            finished += 1
            self.progress.step(len(idx), finished)
        return rows


def _node_id() -> str:
    try:
        return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else ""
    except Exception:  # outside a Ray worker there is no node
        return ""
