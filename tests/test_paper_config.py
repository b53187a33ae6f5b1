"""configs/paper.yaml: the paper's three networks, built offline with random weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from pipeline.config.benchmark import load_config
from pipeline.models.networks import PixelModel, resolve_cfg

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "paper.yaml"
SIZES = {"torchvision:alexnet": 227, "torchvision:googlenet": 224, "torchvision:vgg16": 224}


def test_paper_config_is_the_papers_protocol() -> None:
    cfg = load_config(CONFIG)
    assert [m.name for m in cfg.models] == list(SIZES)
    assert [a.name for a in cfg.attacks][:2] == ["bfgs", "sign"] and cfg.top_k == 5
    assert cfg.dataset.layout == "ilsvrc"
    assert {"norm_sweep", "masks", "foveation", "linearity", "transfer", "adaptive"} <= set(
        cfg.tasks
    )


@pytest.mark.parametrize("name", list(SIZES))
def test_each_network_takes_the_whole_image_at_its_papers_size(name: str) -> None:
    ref = next(m for m in load_config(CONFIG).models if m.name == name)
    cfg = resolve_cfg(name, ref.preprocess)  # torchvision's metadata: no download
    size = SIZES[name]
    assert cfg.input_size == (size, size) and cfg.mode == "whole"
    assert cfg.mean == pytest.approx((0.485, 0.456, 0.406))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torchvision.models.get_model(name.split(":")[1], weights=None)  # offline
    model = PixelModel(net, cfg, name).eval()
    with torch.no_grad():
        logits = model(torch.full((1, 3, size, size), 128.0))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()
