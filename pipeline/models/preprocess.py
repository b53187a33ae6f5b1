"""How an image becomes a model's input (:class:`PreprocessCfg`), without torch.

Why its own module: a config's preprocessing overrides (``models: [{name: {mean:
...}}]``) are checked when the config is loaded, in milliseconds and before torch is
imported, by the same class that :mod:`pipeline.models.networks` resolves for every model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

PreprocessMode = Literal["whole", "center_crop"]
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessCfg:
    """How an image becomes this model's input (values in 0..1 units for mean/std)."""

    input_size: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    mode: PreprocessMode = "whole"
    crop_pct: float = 0.875  # only for center_crop: resize short side to size / crop_pct

    def __post_init__(self) -> None:
        size, mean, std = self.input_size, self.mean, self.std
        if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
            raise ValueError(f"input_size must be [height, width] in pixels, got {size!r}")
        for key, values in (("mean", mean), ("std", std)):
            if len(values) != 3 or not all(isinstance(v, (int, float)) for v in values):
                raise ValueError(f"{key} must be three numbers (R, G, B in 0..1), got {values!r}")
        if not all(v > 0 for v in std):
            raise ValueError(f"std must be positive, got {std!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} not in {INTERPOLATIONS}")
        if self.mode not in ("whole", "center_crop"):
            raise ValueError(f"preprocess mode {self.mode!r}: use 'whole' or 'center_crop'")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")

    def override(self, overrides: Mapping[str, Any]) -> PreprocessCfg:
        """A copy with config overrides applied (unknown keys are an error)."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - fields
        if unknown:
            raise ValueError(
                f"unknown preprocessing key(s) {sorted(unknown)}; known: {sorted(fields)}"
            )
        values = dict(overrides)
        for key in ("input_size", "mean", "std"):
            if key in values:
                v = values[key]
                if key == "input_size" and isinstance(v, int):
                    v = (v, v)
                if not isinstance(v, (list, tuple)):
                    raise ValueError(f"preprocessing {key} must be a list, got {v!r}")
                values[key] = tuple(v)
        return dataclasses.replace(self, **values)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def override_problem(overrides: Mapping[str, Any]) -> str | None:
    """Why ``overrides`` cannot apply to any model (unknown key, wrong shape or range), or
    None. Every check is per key, so an ImageNet default stands in for the model's own."""
    try:
        PreprocessCfg((224, 224), IMAGENET_MEAN, IMAGENET_STD).override(overrides)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None
