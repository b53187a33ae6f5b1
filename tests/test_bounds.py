"""Peck's lower bounds: closed form on linear models, never above a found adversarial."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from pipeline.models.networks import PixelModel, PreprocessCfg
from tasks import attacks
from tasks.bounds import UnsupportedLayerError, peck_bound
from tasks.criterion import TopK
from tasks.linesearch import LineSearch

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/imagenet-sample"
L2_ATTACKS = {"deepfool": {"norm": "l2", "candidates": 5, "max_iter": 20}, "fgv": {}, "pgd2": {}}
#: Cheap L2 attacks for the real architectures (the bound is orders of magnitude below anyway).
FAST_ATTACKS = {"fgv": {}, "gn1": {"p": "l2"}}


def smallest_adversarial_l2(
    model: nn.Module,
    x: torch.Tensor,
    bounds: tuple[float, float] | None,
    which: dict[str, dict[str, object]] = L2_ATTACKS,
    rtol: float = 1e-3,
) -> torch.Tensor:
    """Per image, the smallest L2 perturbation any of the L2 attacks found for top-1 change."""
    with torch.no_grad():
        labels = model(x).argmax(1)
    best = torch.full((x.shape[0],), float("inf"))
    search = LineSearch(rtol=rtol)
    for name, params in which.items():
        attack = attacks.create(
            name, criterion=TopK(1), bounds=bounds, line_search=search, **params
        )
        result = attack(model, x, labels)
        l2 = torch.nan_to_num(result.norms()["l2"], nan=float("inf"))
        best = torch.minimum(best, l2)
    return best


def lenet_like() -> nn.Sequential:
    """Every layer type of the thesis's chapter 5 in one small sequential net."""
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(8)
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.1, 0.1)
    return nn.Sequential(
        nn.Conv2d(3, 8, 5, padding=2),
        nn.ReLU(),
        nn.LocalResponseNorm(5, alpha=1e-3, beta=0.75, k=2.0),
        nn.MaxPool2d(3, 2),
        bn,
        nn.Conv2d(8, 16, 3),
        nn.Tanh(),
        nn.LPPool2d(2, 2),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 2 * 2, 32),
        nn.Sigmoid(),
        nn.Dropout(),
        nn.Linear(32, 10),
    ).eval()


@pytest.mark.unit
def test_linear_model_bound_is_the_closed_form() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 7)).eval()
    x = torch.randn(9, 3, 4, 4)
    w, b = model[1].weight.detach(), model[1].bias.detach()
    logits = x.flatten(1) @ w.T + b
    c = logits.argmax(1)
    expected = torch.stack(
        [
            min(
                (logits[i, j] - logits[i, c[i]]).abs() / (w[j] - w[c[i]]).norm()
                for j in range(7)
                if j != c[i]
            )
            for i in range(9)
        ]
    )
    result = peck_bound(model, x)
    torch.testing.assert_close(result.bound_l2, expected, rtol=1e-5, atol=1e-7)
    # ... and the closed form is attained: DeepFool on a linear model finds it (no box).
    found = smallest_adversarial_l2(model, x, bounds=None)
    assert bool((result.bound_l2 <= found * (1 + 1e-4)).all())
    assert bool((found <= result.bound_l2 * 1.05).all())


@pytest.mark.unit
def test_pixel_wrapper_scales_the_bound_by_the_smallest_std() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()
    cfg = PreprocessCfg(input_size=(4, 4), mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    pixel = PixelModel(net, cfg, "tiny").eval()
    x = 255 * torch.rand(6, 3, 4, 4)
    inner = peck_bound(net, (x - pixel.shift) / pixel.scale)
    outer = peck_bound(pixel, x)
    torch.testing.assert_close(outer.bound_l2, inner.bound_l2 * 0.2 * 255)
    assert bool(
        (outer.bound_l2 <= smallest_adversarial_l2(pixel, x, bounds=None) * (1 + 1e-4)).all()
    )


@pytest.mark.unit
def test_every_layer_type_bound_below_found_perturbations() -> None:
    model = lenet_like()
    x = torch.rand(16, 3, 24, 24)
    result = peck_bound(model, x)
    assert set(result.kappas) >= {"0", "2", "3", "4", "7", "8", "10", "13"}
    assert bool((result.bound_l2 > 0).all())
    found = smallest_adversarial_l2(model, x, bounds=None)
    assert bool(torch.isfinite(found).all())
    assert bool((result.bound_l2 <= found).all())


@pytest.mark.unit
def test_residual_network_names_the_layer_it_cannot_bound() -> None:
    with pytest.raises(UnsupportedLayerError, match=r"layer1\.0 \(BasicBlock\)"):
        peck_bound(torchvision.models.resnet18(weights=None).eval(), torch.rand(1, 3, 32, 32))
    odd = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    with pytest.raises(UnsupportedLayerError, match=r"'1' \(GELU\)"):
        peck_bound(odd, torch.rand(1, 3, 8, 8))


def _sample_batch(size: int) -> tuple[PreprocessCfg, torch.Tensor]:
    from pipeline.data import build_manifest
    from pipeline.models.images import load_batch

    if not (SAMPLE / "images").is_dir():
        pytest.skip(f"{SAMPLE} is absent")
    manifest = build_manifest("ilsvrc", SAMPLE)
    cfg = PreprocessCfg(
        input_size=(size, size), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    )
    return cfg, load_batch(manifest.table.column("path").to_pylist(), cfg)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("arch", "size", "count"),
    # Sizes and counts keep each case under a minute on 2 CPU cores: AlexNet at 127 px (its
    # last pool still gives 3x3) on all 100 images; VGG11 at 32 px on 20 images, because its
    # 25088x4096 classifier costs ~10 GFLOP per 100-image forward whatever the input size.
    # Layer types and classifier heads are the real architectures' (random weights).
    [("alexnet", 127, 100), ("vgg11", 32, 20)],
)
def test_bound_never_violated_on_imagenet_sample(arch: str, size: int, count: int) -> None:
    cfg, x = _sample_batch(size)
    x = x[:count]
    torch.manual_seed(0)
    net = getattr(torchvision.models, arch)(weights=None).eval()
    model = PixelModel(net, cfg, arch).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    bound = peck_bound(model, x, power_iters=5).bound_l2
    found = smallest_adversarial_l2(model, x, (0.0, 255.0), FAST_ATTACKS, rtol=0.05)
    assert bool(torch.isfinite(found).sum() >= 0.9 * count), (
        "attacks should fool nearly every image"
    )
    assert bool((bound <= found).all()), (
        f"violations: {(bound > found).nonzero().flatten().tolist()}"
    )
