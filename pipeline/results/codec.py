"""The perturbation codec: attack directions kept compactly, so no stage recomputes an attack.

A minimum perturbation is ``clip(x + scale * d) - x``; we keep ``d`` and
``scale`` (``x`` is re-derived from the image by the model's deterministic
preprocessing). Keeping the direction rather than the clipped ``e*`` is what
the norm sweeps need: they rescale the direction (docs/protocol.md, "Perturbation store").

Codecs, chosen per image:

- ``sign1``: values all in {-1, +1}: one bit per value (sign attacks);
- ``sign2``: values in {-1, 0, +1}: two bits per value;
- ``q8z``: anything else: ``d / max|d|`` rounded to 255 levels (int8),
  zstd-compressed, with ``max|d|`` kept in ``norm`` (error <= max|d| / 254);
- ``f16z``: read only (stores written before q8z): float16, zlib.

Why 8 bits: the attack's final line search runs on the stored direction (the
pipeline sets :func:`roundtrip` as the attack's ``quantize`` hook), so stored
and evaluated numbers are always the same; the codec only decides how far the
attack's result moves. Measured on the protocol run's BFGS directions
(``scripts/codec_study.py``, docs/benchmarks.md): 8 bits move the critical
L1-per-pixel norm by a median -0.4 to -0.6% (at most -3.6%), inside the
evaluation's 5% tolerance, at 75-100 KiB per image (float16: 275-370 KiB);
6 bits would meet 60 KiB but move it by -5 to -8% (up to -24%).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

LEVELS = 127  # int8 levels either side of zero
_ZSTD = pa.Codec("zstd", compression_level=1)  # level 19 saves 3% at 20x the time


@dataclass(frozen=True)
class Encoded:
    codec: str
    shape: tuple[int, ...]
    norm: float
    data: bytes


def encode(direction: torch.Tensor) -> Encoded:
    """Pack one image's direction (C, H, W) into bytes."""
    d = direction.detach().float().cpu().numpy()
    shape = tuple(int(s) for s in d.shape)
    flat = d.reshape(-1)
    values = np.unique(flat)
    if np.isin(values, (-1.0, 1.0)).all():
        return Encoded("sign1", shape, 1.0, np.packbits(flat > 0).tobytes())
    if np.isin(values, (-1.0, 0.0, 1.0)).all():
        bits = np.concatenate([flat != 0, flat < 0])
        return Encoded("sign2", shape, 1.0, np.packbits(bits).tobytes())
    peak = float(np.abs(flat).max()) or 1.0
    levels = np.round(flat / np.float32(peak) * LEVELS).astype(np.int8)
    return Encoded("q8z", shape, peak, _ZSTD.compress(levels.tobytes(), asbytes=True))


def decode(enc: Encoded) -> torch.Tensor:
    """Inverse of :func:`encode` (exact for sign codecs, quantized otherwise)."""
    n = int(np.prod(enc.shape))
    if enc.codec == "sign1":
        bits = np.unpackbits(np.frombuffer(enc.data, dtype=np.uint8), count=n)
        flat = bits.astype(np.float32) * 2 - 1
    elif enc.codec == "sign2":
        bits = np.unpackbits(np.frombuffer(enc.data, dtype=np.uint8), count=2 * n)
        nonzero, negative = bits[:n].astype(np.float32), bits[n:].astype(np.float32)
        flat = nonzero * (1 - 2 * negative)
    elif enc.codec == "q8z":
        raw = _ZSTD.decompress(enc.data, decompressed_size=n, asbytes=True)
        flat = np.frombuffer(raw, dtype=np.int8).astype(np.float32) * np.float32(enc.norm / LEVELS)
    elif enc.codec == "f16z":
        half = np.frombuffer(zlib.decompress(enc.data), dtype=np.float16)
        flat = half.astype(np.float32) * np.float32(enc.norm)
    else:
        raise ValueError(
            f"unknown perturbation codec {enc.codec!r}; was this written by a newer foveabench?"
        )
    return torch.from_numpy(flat.reshape(enc.shape).copy())


def roundtrip(directions: torch.Tensor) -> torch.Tensor:
    """What the store will hold for a batch ``(B, C, H, W)``: the attack's final line search
    and every later stage then use exactly the stored numbers."""
    out = torch.stack([decode(encode(d)) for d in directions])
    return out.to(device=directions.device, dtype=directions.dtype)


def record(
    image_id: str, model: str, attack: str, setup: str, scale: float, direction: torch.Tensor
) -> dict[str, object]:
    """One perturbation-store row (PERTURBATION_SCHEMA)."""
    enc = encode(direction)
    return {
        "image_id": image_id,
        "model": model,
        "attack": attack,
        "setup": setup,
        "scale": scale,
        "codec": enc.codec,
        "shape": list(enc.shape),
        "norm": enc.norm,
        "data": enc.data,
    }


def read_store(table: pa.Table | None) -> dict[str, tuple[Encoded, float]]:
    """image_id -> (encoded direction, scale) of perturbation-store rows."""
    out = {}
    for row in table.to_pylist() if table is not None else []:
        enc = Encoded(row["codec"], tuple(row["shape"]), row["norm"], row["data"])
        out[row["image_id"]] = (enc, float(row["scale"]))
    return out
