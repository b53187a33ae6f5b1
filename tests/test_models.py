"""Every registered offline model builds, preprocesses as its weights expect, and sees a photo.

Parametrized over the model registry itself (as timm's tests over
``list_models()``), so a model added to ``MODELS`` is tested without touching
this file. The expected input size and normalisation come from timm's own
pretrained configuration of the same TensorFlow-ported architecture, not from
our registry; the known answer is the espresso photo that every registered
network gets right top-1.
"""

from __future__ import annotations

import pytest
import timm
import torch

from pipeline.data import build_manifest
from pipeline.models.images import load_batch
from pipeline.models.networks import MODELS, load_model

PHOTO = "coffee"  # scikit-image's espresso cup; ImageNet class 967 "espresso"


@pytest.fixture(scope="module")
def photo() -> tuple[str, int]:
    rows = [r for r in build_manifest("sample", None).table.to_pylist() if r["image_id"] == PHOTO]
    assert len(rows) == 1, f"the sample set lost {PHOTO!r}"
    return rows[0]["path"], int(rows[0]["label"])


@pytest.mark.integration
@pytest.mark.parametrize("name", MODELS.names())
def test_registered_model_builds_preprocesses_and_classifies_a_photo(
    name: str, photo: tuple[str, int]
) -> None:
    model = load_model(name)
    assert not model.training and not any(p.requires_grad for p in model.parameters())

    # Input size and normalisation: what the weights were trained with, per timm.
    reference = timm.models.get_pretrained_cfg(f"tf_{name}")
    assert reference is not None, f"timm has no pretrained config for tf_{name}"
    assert (3, *model.cfg.input_size) == tuple(reference.input_size)
    assert model.cfg.mode == "whole"  # the paper's preprocessing (docs/protocol.md)

    path, label = photo
    x = load_batch([path], model.cfg)
    assert x.shape == (1, 3, *model.cfg.input_size) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 255.0 and float(x.max()) > 1.0

    with torch.no_grad():
        logits = model(x)
        mean = torch.tensor(reference.mean).view(1, 3, 1, 1)
        std = torch.tensor(reference.std).view(1, 3, 1, 1)
        direct = model.net((x / 255.0 - mean) / std)
    assert logits.shape == (1, 1000) and bool(torch.isfinite(logits).all())
    torch.testing.assert_close(logits, direct, rtol=1e-4, atol=1e-4)  # 0..255 in, normalised inside
    assert int(logits.argmax(1)) == label, f"{name} does not see an espresso in {path}"


@pytest.mark.unit
def test_untrained_timm_is_seeded_and_takes_a_small_input() -> None:
    """``untrained_timm:<name>``: timm's architecture, random weights equal on every actor,
    timm's default preprocessing unless the config overrides it (the scale benchmark's
    32 px network, docs/benchmarks.md)."""
    name = "untrained_timm:test_convnext3"
    default, reference = load_model(name), timm.models.get_pretrained_cfg("test_convnext3")
    assert reference is not None and (3, *default.cfg.input_size) == reference.input_size
    a, b = (load_model(name, {"input_size": [32, 32]}) for _ in range(2))
    x = torch.rand(2, 3, 32, 32) * 255
    with torch.no_grad():
        logits = a(x)
        torch.testing.assert_close(logits, b(x), rtol=0, atol=0)  # the same seed on every actor
    assert logits.shape == (2, 1000) and bool(torch.isfinite(logits).all())
    with pytest.raises(ValueError, match="timm has no model"):
        load_model("untrained_timm:no_such_net")
