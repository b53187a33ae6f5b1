"""Evidence for issue 7 (the other seeds), printed as Markdown.

    python scripts/seeds_report.py --images 16 --smooth-images 8

1. Peck's bounds vs the smallest L2 adversarial found (random-weight AlexNet).
2. Balda's rho1 / rho2 / eps(>99%) on efficientnet_lite0..2 and whether they rank alike.
3. Zhang's Table 1 (P_suc, D-bar) for pgd2, qpgd2, cw, scw, ifgsm on lite0, plus TV ratios.
4. CG smoothing cost per image at 224 px.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torchvision

from pipeline.data import build_manifest
from pipeline.models.images import load_batch
from pipeline.models.networks import PixelModel, PreprocessCfg, load_model
from tasks import attacks, measures
from tasks.bounds import peck_bound
from tasks.criterion import TopK
from tasks.smoothing import LaplacianSmoother, SmoothingCfg

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/imagenet-sample"


def sample(cfg: PreprocessCfg, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    table = build_manifest("ilsvrc", SAMPLE).table
    paths = table.column("path").to_pylist()[:n]
    labels = torch.tensor(table.column("label").to_pylist()[:n])
    return load_batch(paths, cfg), labels


def bounds_section(n: int) -> None:
    cfg = PreprocessCfg(
        input_size=(224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    )
    torch.manual_seed(0)
    model = PixelModel(torchvision.models.alexnet(weights=None), cfg, "alexnet").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, _ = sample(cfg, n)
    result = peck_bound(model, x, power_iters=10)
    labels = result.predicted
    found = attacks.create("fgv", criterion=TopK(1))(model, x, labels).norms()["l2"]
    ok = bool((result.bound_l2 <= torch.nan_to_num(found, nan=float("inf"))).all())
    print(f"## Peck bounds (random-weight AlexNet, 224 px, {n} images)\n")
    print(
        f"bound_l2 median {result.bound_l2.median():.3e}, fgv L2 median {found.nanmedian():.3f}, "
        f"never violated: {ok}\n"
    )


def rho_section(n: int) -> None:
    print(
        f"## Balda's measures, p = inf, DeepFool-Linf minimum perturbations ({n} images, top-1)\n"
    )
    print("| model | clean top-1 | rho1 | rho2 | eps fooling >99% |")
    print("|---|---|---|---|---|")
    rows = []
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        model = load_model(name)
        x, y = sample(model.cfg, n)
        attack = attacks.create(
            "deepfool", criterion=TopK(1), norm="linf", candidates=5, max_iter=30
        )
        res = attack(model, x, y)
        keep = res.clean_correct
        r1 = measures.rho1(res.perturbation[keep], x[keep], res.success[keep], "linf")
        r2 = measures.rho2(measures.first_order_distance(model, x[keep], y[keep], p="linf"))
        linf = torch.where(
            res.success, res.norms()["linf"], torch.full_like(res.scale, float("inf"))
        )
        e99 = measures.eps_fooling(linf[keep])
        rows.append((name, r1, r2))
        print(f"| {name} | {keep.float().mean():.2f} | {r1:.5f} | {r2:.3e} | {e99:.3f} |")
    by1 = [r[0] for r in sorted(rows, key=lambda r: r[1])]
    by2 = [r[0] for r in sorted(rows, key=lambda r: r[2])]
    print(f"\nrank by rho1: {by1}\nrank by rho2: {by2}\nsame ranking: {by1 == by2}\n")


def smooth_section(n: int, iters: int) -> None:
    model = load_model("efficientnet_lite0")
    x, y = sample(model.cfg, n)
    cwp = {"binary_steps": 3, "max_iter": iters, "initial_const": 1.0, "lr": 0.01}
    runs = {"pgd2": {}, "qpgd2": {}, "cw": cwp, "scw": cwp, "ifgsm": {}}
    print(
        f"## Zhang Table 1 on efficientnet_lite0 ({n} images, top-1, min-perturbation protocol)\n"
    )
    print(
        "| attack | P_suc | D-bar (L2, 0..255) | D-bar (L2, [0,1]) | TV(r)/TV(x) median | s/img |"
    )
    print("|---|---|---|---|---|---|")
    for name, params in runs.items():
        start = time.perf_counter()
        res = attacks.create(name, criterion=TopK(1), **params)(model, x, y)
        secs = (time.perf_counter() - start) / n
        keep = res.clean_correct
        l2 = res.norms()["l2"][keep]
        stats = measures.success_distortion(torch.nan_to_num(l2), res.success[keep])
        tv = measures.tv_ratio(res.perturbation[keep], x[keep])[res.success[keep]]
        print(
            f"| {name} | {stats.p_suc:.2f} | {stats.d_bar:.1f} | {stats.d_bar / 255:.3f} | "
            f"{tv.median():.4f} | {secs:.1f} |"
        )
    print()


def cg_cost_section(reps: int = 3) -> None:
    print("## CG smoothing cost at 224 px (50 iterations, this CPU)\n")
    x = 255 * torch.rand(8, 3, 224, 224)
    z = torch.randn_like(x)
    for nb in (4, 8):
        cfg = SmoothingCfg(neighbours=nb, tol=0.0, cg_iters=50)  # type: ignore[arg-type]
        smoother = LaplacianSmoother(x, cfg)
        start = time.perf_counter()
        for _ in range(reps):
            smoother(z)
        per = (time.perf_counter() - start) / reps / x.shape[0]
        print(
            f"- {nb}-neighbour graph: {per * 1000:.0f} ms per image per solve (batch of 8, float32)"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--smooth-images", type=int, default=8)
    parser.add_argument("--cw-iters", type=int, default=50)
    parser.add_argument("--only", choices=["bounds", "rho", "smooth", "cg"], default=None)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    sections = {
        "cg": cg_cost_section,
        "bounds": lambda: bounds_section(args.images),
        "rho": lambda: rho_section(args.images),
        "smooth": lambda: smooth_section(args.smooth_images, args.cw_iters),
    }
    for key, run in sections.items():
        if args.only in (None, key):
            run()


if __name__ == "__main__":
    main()
