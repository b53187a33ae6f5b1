"""What ``foveabench run`` checks on the driver before a manifest, Ray or MLflow starts.

:func:`check_paths` (standard library only, milliseconds): the run name, a
writable ``output_dir``, ``--fresh`` only on a run directory foveabench made,
an existing dataset root. :func:`check_models` imports the model registry
(torch) and resolves every model with its preprocessing overrides, so a
``timm:<typo>`` or a bad ``input_size`` fails here, not in an actor.
:func:`check_ray_address` refuses a cluster address that never answers.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config.benchmark import BenchmarkConfig, ConfigError
from pipeline.results import rundir

if TYPE_CHECKING:
    from pipeline.results.storage import Location


def check_paths(
    cfg: BenchmarkConfig, source: str, *, fresh: bool = False, run_name: str | None = None
) -> Location:
    """The run directory, once the paths a local run needs are known to work."""
    root = cfg.dataset.root
    if cfg.dataset.layout != "sample" and root and "://" not in root and not Path(root).is_dir():
        raise ConfigError(
            f"{source}: dataset.root = {root!r}: no such directory (from {Path.cwd()}); "
            "point dataset.root at the dataset folder"
        )
    store = cfg.best_known
    if store and "://" not in store:  # an object store shows at its first write
        try:
            Path(store).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=store):
                pass
        except OSError as exc:
            raise ConfigError(
                f"{source}: best_known = {store!r}: not a writable directory "
                f"({exc.strerror or exc}); point best_known at a folder you can write"
            ) from None
    try:
        return rundir.check(cfg.output_dir, run_name or cfg.name, fresh)
    except rundir.RunDirError as exc:
        raise rundir.RunDirError(f"{source}: {exc}") from None


def check_models(cfg: BenchmarkConfig, source: str) -> None:
    """Resolve every model (existence of ``timm:``/``torchvision:`` names, preprocessing keys)."""
    from pipeline.models.networks import resolve_cfg
    from tasks.registry import RegistryError

    for i, ref in enumerate(cfg.models):
        try:
            resolve_cfg(ref.name, ref.preprocess)
        except (RegistryError, ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: models[{i}] = {ref.name!r}: {exc}") from None


def check_ray_address(cfg: BenchmarkConfig, source: str) -> None:
    """A ``ray.address`` that accepts connections but never answers would make ``ray.init``
    retry forever; it is refused here, within ``ray.connect_timeout_s``."""
    from pipeline.run.netcheck import GRPC_HELLO, no_answer

    address = cfg.ray.address
    if not address:
        return
    silent = no_answer(address, 6379, GRPC_HELLO, cfg.ray.connect_timeout_s)
    if silent:
        raise ConfigError(
            f"{source}: ray.address = {address!r}: {silent}; is the cluster up and is this "
            "its head's GCS address (host:6379, or ray://host:10001)? Fix ray.address, or "
            "raise ray.connect_timeout_s for a slow network"
        )
