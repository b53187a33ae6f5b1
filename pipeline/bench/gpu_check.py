"""The GPU check: what one CUDA device sustains, and how much of it each stage gets.

``scripts/gpu_check.sh`` (``python -m pipeline.bench.gpu_check``) prints, on a machine
with a CUDA device, in a few minutes:

1. the forward and forward+backward ceilings of efficientnet_lite0/1/2 at their best
   batch size (the batch doubles from 32 until the rate stops improving or memory runs
   out);
2. the attack stage's images/s for bfgs, sign, ddn and fmn (when registered) on the
   ImageNet sample, and the share of the ceiling its own passes would take
   (:func:`pipeline.bench.ceiling.least_seconds`' idea: passes at the ceiling's pace
   over the wall time);
3. the evaluation stage's share of the forward ceiling on the 100-photo sample
   (``foveabench bench --eval``'s measurement, on the device).

On a machine without CUDA it says so and exits 0, so it can sit in any checklist.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from pipeline.bench.ceiling import Ceiling, measure_ceiling
from pipeline.bench.machine import describe

MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
ATTACKS = ("bfgs", "sign", "ddn", "fmn")
SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "imagenet-sample"


def best_ceiling(
    model: torch.nn.Module, x: torch.Tensor, start: int = 32, top: int = 1024
) -> Ceiling:
    """The ceiling at the batch size with the most forward+backward images/s."""
    best: Ceiling | None = None
    batch = start
    while batch <= top:
        try:
            found = measure_ceiling(model, x, batch)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        if best is not None and found.gradient_per_s <= best.gradient_per_s * 1.02:
            break
        best, batch = found, batch * 2
    assert best is not None, f"batch {start} does not fit on this device"
    return best


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu check: no CUDA device on this machine; nothing measured (run it where one is)")
        return 0
    from pipeline.data import build_manifest
    from pipeline.models.image_cache import ImageCache
    from pipeline.models.networks import load_model
    from tasks import attacks
    from tasks.attacks.specs import ATTACK_SPECS
    from tasks.criterion import TopK

    device = "cuda"
    root = str(args.root)
    print(
        f"gpu check on {describe(torch.device(device))}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    rows = build_manifest("ilsvrc", root, args.images).table.to_pylist()
    cache = ImageCache()
    labels = torch.tensor([r["label"] for r in rows], device=device)
    for name in MODELS:
        model = load_model(name, device=device)
        x = cache.inputs([r["path"] for r in rows], model.cfg).to(device)
        c = best_ceiling(model, x)
        print(
            f"{name}: batch {c.batch}: forward {c.forward_per_s:.0f} img/s, forward+backward {c.gradient_per_s:.0f} img/s"
        )
        if name != MODELS[0]:
            continue
        for attack in (a for a in ATTACKS if a in ATTACK_SPECS):
            made = attacks.create(attack, criterion=TopK(5))
            torch.cuda.synchronize()
            start = time.perf_counter()
            result = made(model, x, labels)
            torch.cuda.synchronize()
            wall = time.perf_counter() - start
            passes = (
                float(result.n_forward.sum()) / c.forward_per_s
                + float(result.n_backward.sum()) / c.backward_per_s
            )
            print(
                f"  attack {attack}: {len(rows) / wall:.1f} img/s, its passes at the ceiling "
                f"{passes / wall:.0%} of the wall time, success {float(result.success.float().mean()):.2f}"
            )
    from pipeline.bench.evaluation import format_eval_text, run_eval_bench
    from pipeline.config.benchmark import EvalCfg

    report = run_eval_bench(
        model_name=MODELS[0],
        cross_model=MODELS[1],
        attacks=["sign"],
        n_images=args.eval_images,
        batch=args.eval_batch,
        settings=EvalCfg(dense_check=0),
        layout="ilsvrc",
        root=root,
        command="python -m pipeline.bench.gpu_check",
        log=lambda m: print(m, file=sys.stderr),
        device=device,
    )
    print(format_eval_text(report))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=SAMPLE, help="ilsvrc-layout photos (the sample)")
    p.add_argument("--images", type=int, default=64, help="photos for the ceilings and attacks")
    p.add_argument("--eval-images", type=int, default=100, help="photos for the evaluation stage")
    p.add_argument("--eval-batch", type=int, default=50, help="images per evaluation batch")
    return p


if __name__ == "__main__":
    sys.exit(main())
