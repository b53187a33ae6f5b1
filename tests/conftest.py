"""Shared fixtures: where the offline ImageNet sample lives, a small real run config."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMAGENET_SAMPLE = ROOT.parent / "shared" / "data" / "imagenet-sample"


@pytest.fixture
def imagenet_sample() -> Path:
    if not (IMAGENET_SAMPLE / "images").is_dir():
        pytest.skip(f"{IMAGENET_SAMPLE} is absent (it sits beside the checkout in CI and dev)")
    return IMAGENET_SAMPLE
