"""How small can the perturbation store get without changing a result? (issue 11, item 3)

Reads a finished run's perturbation store and, per (model, attack):

- bytes per image of today's codec, and of candidate codecs (packed sign bits
  with zstd; the direction quantized to 8 or 6 bits of its peak, with zstd);
- for quantized codecs, what the attack's final line search would find on the
  quantized direction: the ratio of the critical L1-per-pixel norm to the
  stored direction's (1.0 = the result does not move).

The pipeline already runs the attack's final line search on the stored
(round-tripped) direction, so stored and evaluated numbers are always equal;
the question here is whether a coarser codec moves the attack's result.

    python scripts/codec_study.py RESULTS/RUN [--effect efficientnet_lite0 ...]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pipeline.models.image_cache import ImageCache
from pipeline.models.networks import load_model
from pipeline.results.codec import Encoded, decode
from tasks import norms
from tasks.context import QueryContext
from tasks.criterion import TopK
from tasks.linesearch import LineSearch, search_scale

ZSTD = pa.Codec("zstd", compression_level=19)


def zstd_kib(data: bytes) -> float:
    return len(ZSTD.compress(data, asbytes=True)) / 1024


def quantized(d: torch.Tensor, bits: int) -> torch.Tensor:
    """``d`` rounded to ``2**(bits-1)-1`` levels of its peak, per image."""
    levels = 2 ** (bits - 1) - 1
    peak = d.flatten(1).abs().amax(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return torch.round(d / peak * levels) / levels * peak


def store_rows(run: Path) -> dict[tuple[str, str], list[dict[str, object]]]:
    out: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
    for path in sorted((run / "perturbations").rglob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            out[(row["model"], row["attack"])].append(row)
    return out


def direction(row: dict[str, object]) -> torch.Tensor:
    shape = tuple(int(s) for s in row["shape"])  # type: ignore[attr-defined]
    return decode(Encoded(str(row["codec"]), shape, float(row["norm"]), bytes(row["data"])))  # type: ignore[arg-type]


def sizes(rows: list[dict[str, object]]) -> dict[str, float]:
    """Mean KiB per image of today's codec and the candidates."""
    found: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        d = direction(row).numpy().reshape(-1)
        found[f"stored ({row['codec']})"].append(len(row["data"]) / 1024)  # type: ignore[arg-type]
        if row["codec"] == "sign1":
            found["sign bits + zstd"].append(zstd_kib(np.packbits(d > 0).tobytes()))
            continue
        peak = float(np.abs(d).max()) or 1.0
        found["f16 + zstd"].append(zstd_kib((d / peak).astype(np.float16).tobytes()))
        for bits in (8, 6):
            levels = 2 ** (bits - 1) - 1
            q = np.round(d / peak * levels).astype(np.int8)
            found[f"q{bits} + zstd"].append(zstd_kib(q.tobytes()))
    return {k: statistics.fmean(v) for k, v in found.items()}


def effect(run: Path, model_name: str, attack: str, rows: list[dict[str, object]]) -> None:
    """Critical L1pp of q8/q6 directions over the stored direction's, same images."""
    manifest = {r["image_id"]: r for r in pq.read_table(run / "manifest.parquet").to_pylist()}
    model = load_model(model_name, {}, "cpu")
    x = ImageCache().inputs([manifest[r["image_id"]]["path"] for r in rows], model.cfg)
    labels = torch.tensor([manifest[r["image_id"]]["label"] for r in rows])
    d = torch.stack([direction(r) for r in rows])
    found = {}
    with torch.no_grad():
        for name, dd in (("stored", d), ("q8", quantized(d, 8)), ("q6", quantized(d, 6))):
            ctx = QueryContext.create(model, labels, TopK(5), (0.0, 255.0))
            scale = search_scale(ctx, x, dd, None, LineSearch(rtol=1e-3)).scale
            found[name] = norms.l1pp(ctx.clip(x + scale.view(-1, 1, 1, 1) * dd) - x)
    for name in ("q8", "q6"):
        ratio = (found[name] / found["stored"]).tolist()
        print(
            f"  {model_name} {attack} {name}: critical L1pp / stored, n={len(ratio)}: "
            f"median {statistics.median(ratio):.3f} (min {min(ratio):.3f}, max {max(ratio):.3f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run directory (results/<name>)")
    parser.add_argument("--effect", nargs="*", default=[], help="models to re-search (slow)")
    parser.add_argument("--attack", default="bfgs", help="attack for --effect")
    args = parser.parse_args()
    rows = store_rows(args.run)
    print("KiB per image (mean):")
    for (model, attack), group in sorted(rows.items()):
        shape = "x".join(map(str, group[0]["shape"]))  # type: ignore[call-overload]
        line = ", ".join(f"{k} {v:.1f}" for k, v in sizes(group).items())
        print(f"  {model} {attack} ({shape}, n={len(group)}): {line}")
    torch.set_num_threads(1)
    for model in args.effect:
        effect(args.run, model, args.attack, rows[(model, args.attack)])


if __name__ == "__main__":
    main()
