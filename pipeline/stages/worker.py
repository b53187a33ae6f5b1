"""The model actor: one network, resident, with its image cache and attacks, computing
units of any stage (pipeline/stages/stage.py says what a stage declares).

Like xgboost_ray, :class:`ModelWorker` is a plain class (unit-testable without
Ray) and :data:`RemoteModelWorker` is the thin ``ray.remote`` wrapper; its
resources and placement-group bundle are bound at creation (pipeline/stages/actors.py).
A worker writes its own result pieces where the run lives (a local folder or an
object-store URI, pipeline/results/write.py) and returns only the small row tables, so
no perturbation byte passes through the driver and no node needs a shared disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray
import torch

from pipeline.config.benchmark import EvalCfg
from pipeline.models.image_cache import ImageCache
from pipeline.models.networks import load_model
from pipeline.results.codec import roundtrip
from pipeline.results.write import ResultWriter
from pipeline.stages.eval_worker import Evaluator
from pipeline.stages.progress import ProgressTarget
from pipeline.stages.registry import stage_of
from tasks import attacks as attack_registry
from tasks.attacks.base import Attack
from tasks.attacks.params import AttackParams
from tasks.criterion import TopK
from tasks.linesearch import LineSearch


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


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


class ModelWorker:
    """Holds one pretrained network (its attacks, its evaluator, its decoded images) and runs
    any stage's units on it."""

    def __init__(self, spec: WorkerSpec, images: ImageCache | None = None) -> None:
        torch.set_num_threads(max(1, spec.threads))
        self.spec = spec
        #: the attack stage's batch: below any size that ran out of memory on this actor
        self.batch_size = spec.batch_size
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

    def _writer(self) -> ResultWriter:
        if not self.spec.run_dir:
            raise RuntimeError("this worker was built without a run_dir to write to")
        if self._result_writer is None:
            self._result_writer = ResultWriter(self.spec.run_dir, self.spec.provenance)
        return self._result_writer

    def run_unit(self, unit: Any, progress: ProgressTarget | None = None) -> Any:
        """The actor's one method, for a unit of any stage (found by the unit's type,
        pipeline/stages/registry.py): computed, written and committed here; what goes back
        is the stage's stripped output (rows, without the perturbation bytes)."""
        stage = stage_of(unit)
        out = stage.compute(self, unit, progress)
        stage.write(self._writer(), out)
        return stage.strip(out)

    def describe(self) -> dict[str, Any]:
        """Where this worker runs and with what preprocessing (for logs and provenance)."""
        return {
            "model": self.spec.model,
            "device": str(self.device),
            "preprocess": self.model.cfg.as_dict(),
            "threads": torch.get_num_threads(),
        }


RemoteModelWorker = ray.remote(ModelWorker)
