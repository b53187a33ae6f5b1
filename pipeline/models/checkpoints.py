"""Local weights for a timm or torchvision architecture (a model entry's ``checkpoint:``).

A checkpoint is read through :mod:`pipeline.results.storage` (a path, ``s3://`` or ``gs://``), so
actors on other nodes read the same bytes; its sha256 goes into provenance, and an actor
refuses a file whose hash is not the one the driver recorded (a checkpoint replaced
mid-run would otherwise give results that provenance misnames). The formats read are
those training scripts write: a state dict, or a dict holding it under ``state_dict``
or ``model`` (timm's train.py, Lightning-style), with DDP's ``module.`` prefix; a
``.safetensors`` file. Loading is strict: a key or shape that does not fit the
architecture is an error naming it, never a partly random network.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pipeline.results.storage import Location

WRAPPERS = ("state_dict", "model")  #: keys under which training scripts nest the state dict


class CheckpointError(ValueError):
    """A checkpoint that cannot fill its architecture; the message says why and the fix."""


def absolute(uri: str) -> str:
    """The checkpoint's location as actors on any node (and any working directory) see it."""
    return Location(uri).uri


def read(uri: str) -> tuple[bytes, str]:
    """The file's bytes and their sha256 (FileNotFoundError / StorageError when unreadable)."""
    data = Location(uri).read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def sha256(uri: str) -> str:
    """The file's sha256, computed once per file version (size and modification time)."""
    info = Location(uri)._info()
    return _sha256(Location(uri).uri, info.size, info.mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256(uri: str, size: int | None, mtime_ns: int | None) -> str:
    return read(uri)[1]


def state_dict(data: bytes, uri: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped (see the module docstring)."""
    if uri.endswith(".safetensors"):
        from safetensors.torch import load

        return dict(load(data))
    try:
        raw: Any = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and unsafe-global errors differ by damage
        raise CheckpointError(
            f"not a PyTorch state dict ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "save it with torch.save(model.state_dict(), PATH)"
        ) from None
    for key in WRAPPERS:
        if isinstance(raw, Mapping) and isinstance(raw.get(key), Mapping):
            raw = raw[key]
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(
            "holds no state dict (a mapping of tensor names to tensors); save it with "
            "torch.save(model.state_dict(), PATH)"
        )
    return {k.removeprefix("module."): v for k, v in raw.items()}


def load_into(net: nn.Module, uri: str, expect_sha256: str | None = None) -> str:
    """Fill ``net`` with the checkpoint's weights, strictly; returns the file's sha256."""
    data, digest = read(uri)
    if expect_sha256 is not None and digest != expect_sha256:
        raise CheckpointError(
            f"{uri}: sha256 {digest[:12]}... is not the {expect_sha256[:12]}... the run recorded "
            "at its start; the file changed, rerun to record the new one"
        )
    state = state_dict(data, uri)
    target = net.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    misfit = [k for k in state if k in target and state[k].shape != target[k].shape]
    if missing or unexpected or misfit:
        parts = [
            f"{len(keys)} {what} (e.g. {keys[0]})"
            for what, keys in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shapes that differ", misfit),
            )
            if keys
        ]
        raise CheckpointError(
            f"does not fit the architecture: {', '.join(parts)}; name the architecture it "
            "was trained as"
        )
    net.load_state_dict(state, strict=True)
    return digest
