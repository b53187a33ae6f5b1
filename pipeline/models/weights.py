"""Every model's weights, found on the driver before a manifest, Ray or MLflow starts.

A model whose weights cannot be loaded used to fail in its actors: Ray and MLflow
started, a minute of download retries, screens of worker tracebacks and a FAILED run.
Here each model is built once on the driver (or, where that is cheap to know, its
weight file is found), so the same failure is one line naming the model, the cause
and the fix, exit code 2. A model that passed is not built again in this process (a
notebook or a test session runs many benchmarks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config.benchmark import BenchmarkConfig, ModelRef
from pipeline.config.error import ConfigError
from pipeline.models.checkpoints import CheckpointError

#: Errors that mean "not on this disk, and the network could not bring it".
OFFLINE_ERRORS = (
    "LocalEntryNotFoundError",
    "OfflineModeIsEnabled",
    "URLError",
    "ConnectionError",
    "gaierror",
    "TimeoutError",
    "ConnectTimeout",
    "ReadTimeout",
)
#: Where each prefix's downloads are cached.
CACHES = {"timm": "~/.cache/huggingface (HF_HOME)", "torchvision": "~/.cache/torch (TORCH_HOME)"}

_verified: set[tuple[str, str | None, str | None]] = set()


class ModelError(ConfigError):
    """A model whose weights cannot be loaded; the message names the model, cause and fix."""

    label = "model error"


def check_weights(cfg: BenchmarkConfig, source: str) -> None:
    """Build every model of ``cfg`` once (or find its weight file); ModelError otherwise."""
    from pipeline.models import checkpoints
    from pipeline.models.networks import resolve_spec

    for i, ref in enumerate(cfg.models):
        try:
            digest = checkpoints.sha256(ref.checkpoint) if ref.checkpoint else None
            key = (ref.name, ref.checkpoint and checkpoints.absolute(ref.checkpoint), digest)
            if key in _verified:
                continue
            spec = resolve_spec(ref.name, ref.checkpoint, digest)
            if spec.available is not None:
                spec.available()
            else:
                spec.build()
            _verified.add(key)
        except Exception as exc:  # any failure is this model's: one line, never a traceback
            what, todo = cause(exc, ref), fix(exc, ref)
            raise ModelError(
                f"{source}: models[{i}] = {ref.name!r}: {what}" + (f"; {todo}" if todo else "")
            ) from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""


def cause(exc: BaseException, ref: ModelRef) -> str:
    """What went wrong, led by the exception's class (the name a search engine knows)."""
    kind = type(exc).__name__
    if kind in OFFLINE_ERRORS:
        return f"{kind}: weights not in the local cache and no network to download them"
    if ref.checkpoint and isinstance(exc, FileNotFoundError):
        return f"checkpoint {ref.checkpoint!r}: no such file"
    if isinstance(exc, CheckpointError):  # its message says what to do
        return f"checkpoint {ref.checkpoint!r}: {_first_line(exc)}"
    if ref.checkpoint:
        return f"checkpoint {ref.checkpoint!r}: {kind}: {_first_line(exc)}"
    return f"{kind}: {_first_line(exc)}"


def fix(exc: BaseException, ref: ModelRef) -> str:
    """What to do about it."""
    prefix, _, arch = ref.name.partition(":")
    if type(exc).__name__ in OFFLINE_ERRORS:
        cache = CACHES.get(prefix, "the local cache")
        return (
            f"run once with network access to fill {cache}, copy that cache here, or load "
            f"local weights: models: [{{{ref.name}: {{checkpoint: PATH}}}}]"
        )
    if ref.checkpoint and isinstance(exc, FileNotFoundError):
        return f"fix the path (a relative one is read from {Path.cwd()})"
    if isinstance(exc, CheckpointError):
        return ""
    if ref.checkpoint:
        return f"check that the file holds weights of {prefix} architecture {arch!r}"
    return "fix the model name, or reinstall the package that provides its weights"


def checkpoint_provenance(cfg: BenchmarkConfig) -> dict[str, dict[str, Any]]:
    """``{model: {uri, sha256}}`` for each model loaded from a checkpoint (provenance)."""
    from pipeline.models import checkpoints

    return {
        ref.name: {
            "uri": checkpoints.absolute(ref.checkpoint),
            "sha256": checkpoints.sha256(ref.checkpoint),
        }
        for ref in cfg.models
        if ref.checkpoint
    }
