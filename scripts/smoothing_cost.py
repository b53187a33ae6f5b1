"""What a Laplacian-smoothing solve costs, before (a git revision) and now, on sample photos.

    python scripts/smoothing_cost.py --images 8 --base 9368b25

1. One application of L_alpha (batch of N photos at 224 px): the base revision's
   shifted sums, this checkout's precombined stencil.
2. One solve of the paper's 50 CG iterations from zero, per image, both.
3. Iterations a cold solve needs for each relative-residual tolerance, and how far
   its solution is from a converged one (1e-7).
Load averages are printed beside the figures: the dev machine is shared.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

from pipeline.data import build_manifest
from pipeline.models.images import load_batch
from pipeline.models.networks import load_model
from tasks import smoothing
from tasks.attacks.params import SmoothingCfg

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared/data/imagenet-sample"


def base_module(rev: str) -> ModuleType:
    """``tasks/smoothing.py`` as it was at ``rev``, imported under another name."""
    text = subprocess.run(
        ["git", "show", f"{rev}:tasks/smoothing.py"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "base_smoothing.py"
    path.write_bytes(text)
    spec = importlib.util.spec_from_file_location("base_smoothing", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(fn: Callable[[], object], reps: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--base", default="9368b25", help="git revision of the 'before' solver")
    args = parser.parse_args()
    model = load_model("efficientnet_lite0")
    paths = build_manifest("ilsvrc", SAMPLE).table.column("path").to_pylist()[: args.images]
    x = load_batch(paths, model.cfg)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    n = x.shape[0]
    fixed = SmoothingCfg(tol=0.0, cg_iters=50)
    base = base_module(args.base)
    before, now = base.LaplacianSmoother(x, fixed), smoothing.LaplacianSmoother(x, fixed)
    print(f"## {n} photos at 224 px, {torch.get_num_threads()} torch threads; {load()}\n")
    print("| | base " + args.base + " | this checkout |\n|---|---:|---:|")
    t_before, t_now = timed(lambda: before.laplacian(z), 5), timed(lambda: now.laplacian(z), 5)
    print(f"| L_alpha v, ms per batch of {n} | {t_before * 1e3:.1f} | {t_now * 1e3:.1f} |")
    t_before, t_now = timed(lambda: before.solve(z), 1), timed(lambda: now.solve(z), 1)
    print(
        f"| 50-iteration solve, ms per image | {t_before * 1e3 / n:.0f} | {t_now * 1e3 / n:.0f} |"
    )
    print(f"\n{load()}\n")
    reference = smoothing.conjugate_gradient(now.operator, z, 5000, 1e-7)
    print(f"converged reference: {reference.iterations} iterations to 1e-7\n")
    print("| tol (cold start) | iterations | max relative error of the solution |\n|---|---:|---:|")
    for tol in (1e-1, 1e-2, 1e-3, 1e-4):
        out = smoothing.conjugate_gradient(now.operator, z, 5000, tol)
        err = (out.x - reference.x).flatten(1).norm(dim=1) / reference.x.flatten(1).norm(dim=1)
        print(f"| {tol:g} | {out.iterations} | {float(err.max()):.2e} |")
    out = smoothing.conjugate_gradient(now.operator, z, 50, 0.0)
    err = (out.x - reference.x).flatten(1).norm(dim=1) / reference.x.flatten(1).norm(dim=1)
    print(f"| 0 (50 fixed, the paper's) | 50 | {float(err.max()):.2e} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
