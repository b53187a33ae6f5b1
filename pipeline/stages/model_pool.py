"""An actor that serves every model of the run: networks loaded on first use, LRU-evicted.

With 8 GPUs and 3 models, one actor per model (or two) leaves GPUs idle and lets
the slowest model set the pace. A pooled actor instead takes any unit; the
scheduler (pipeline/stages/scheduler.py, ``ANY_MODEL``) sends it work by measured
throughput and keeps it on the model it has loaded when that is nearly as good.
Networks stay resident up to ``ray.model_memory_mb`` (their parameter and buffer
bytes); beyond it the least recently used one is dropped (lite0-2 together are
~60 MB, so on a GPU they all stay). Decoded images are shared by the models.
"""

from __future__ import annotations

import collections
import os
import time
from typing import Any

import ray

from pipeline.models.image_cache import ImageCache
from pipeline.stages.progress import ProgressTarget
from pipeline.stages.worker import ModelWorker, WorkerSpec


def resident_bytes(worker: ModelWorker) -> int:
    """Bytes a loaded network holds (parameters and buffers)."""
    tensors = [*worker.model.parameters(), *worker.model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


class ModelPool:
    """Plain class (tested without Ray); :data:`RemoteModelPool` is its actor."""

    def __init__(self, specs: dict[str, WorkerSpec], memory_mb: float) -> None:
        self.specs = specs
        self.budget = memory_mb * 2**20
        self.images = ImageCache()
        self.loaded: collections.OrderedDict[str, ModelWorker] = collections.OrderedDict()
        self.loads: collections.Counter[str] = collections.Counter()  # per model, evictions show

    def worker(self, model: str) -> ModelWorker:
        if model in self.loaded:
            self.loaded.move_to_end(model)
            return self.loaded[model]
        made = ModelWorker(self.specs[model], images=self.images)
        self.loaded[model] = made
        self.loads[model] += 1
        while len(self.loaded) > 1 and sum(map(resident_bytes, self.loaded.values())) > self.budget:
            self.loaded.popitem(last=False)  # least recently used
        return made

    def _loaded(self, model: str) -> tuple[ModelWorker, float]:
        start = time.perf_counter()
        return self.worker(model), time.perf_counter() - start

    def run_unit(self, unit: Any, progress: ProgressTarget | None = None) -> Any:
        """:meth:`ModelWorker.run_unit` on the unit's network, loaded first if need be."""
        worker, seconds = self._loaded(unit.model)
        out = worker.run_unit(unit, progress)
        out.load_seconds = seconds
        return out

    def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "loaded": list(self.loaded), "loads": dict(self.loads)}


RemoteModelPool = ray.remote(ModelPool)
