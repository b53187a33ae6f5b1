"""A protocol condition on a batch of images: what the network sees at scale ``s``.

Three kinds of presentation, all linear in the direction before clipping:

- the whole input: ``clip(x + s d)`` (MP, masks, transfer);
- crops of it, resized back to the input size (the MP set-up's foveations):
  ``T(clip(x + s d))`` for each window ``T``;
- views of the object crop's frame (MP-Object's foveations): for each window,
  ``clip(c_k + s * shift_k(d))`` with ``c_k`` the window's clean content
  (:mod:`tasks.mp_object`).

Norms on the x-axis are those of the perturbation actually added *before*
any foveation, ``clip(x + s d) - x`` in the condition's own frame
(``norm_x``, ``norm_d``); a cross-model condition also reports the norms in
the source's frame at the same scale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import torch

from tasks import norms
from tasks.context import PIXEL_BOUNDS
from tasks.geometry import Window, crop_resize
from tasks.mp_object import background_share, shift_perturbation
from tasks.protocol import ConditionSpec


@dataclass(frozen=True)
class ObjectView:
    """One MP-Object view: clean content ``(C, H, W)`` and how ``d`` is moved into it."""

    content: torch.Tensor
    shift: tuple[int, int]
    flip: bool = False

    def describe(self) -> str:
        """``dx,dy`` in crop pixels (``,flip`` when mirrored)."""
        return f"{self.shift[0]},{self.shift[1]}" + (",flip" if self.flip else "")

    def background(self, size: tuple[int, int]) -> float:
        """Share of this view outside the box (the crop frame ``(h, w)`` is the box)."""
        return background_share(self.shift, size)


@dataclass
class ConditionBatch:
    """A condition over some images of a batch (``rows``: their index in the batch)."""

    spec: ConditionSpec
    frame: str  # conditions with the same frame share x and d: their views are cached once
    rows: list[int]
    x: torch.Tensor  # (n, C, H, W) clean, in the frame the network sees (before any crop)
    d: torch.Tensor  # (n, C, H, W) direction in that frame (zero: no perturbation)
    labels: torch.Tensor  # (n,)
    has_direction: torch.Tensor  # (n,) bool: the source's perturbation exists for the image
    crops: list[list[Window]] | None = None  # crop windows of x (MP foveations)
    object_views: list[list[ObjectView]] | None = None  # MP-Object views
    source_x: torch.Tensor | None = None  # source frame (cross-model pairs): source norms
    source_d: torch.Tensor | None = None
    guess: torch.Tensor | None = None  # (n,) a scale near the expected crossing
    #: (n,) the attack's own scale (nan: none), on a set-up's base condition: it seeds the
    #: search like any guess, and every grid point below it is checked (the attack stage's
    #: line search, checked on every image)
    attack_scale: torch.Tensor | None = None
    clean: torch.Tensor | None = None  # (n,) bool correctness at 0, when known
    dense: int = 0  # the first ``dense`` images are also swept on the dense grids

    def __post_init__(self) -> None:
        if not (len(self.rows) == self.x.shape[0] == self.d.shape[0] == self.labels.shape[0]):
            raise ValueError(f"{self.spec.name}: rows, x, d and labels disagree in length")

    def head(self, n: int) -> ConditionBatch:
        """The same condition on its first ``n`` images (no dense sample)."""

        def cut(value: Any) -> Any:
            return None if value is None else value[:n]

        return dataclasses.replace(
            self,
            rows=self.rows[:n],
            x=self.x[:n],
            d=self.d[:n],
            labels=self.labels[:n],
            has_direction=self.has_direction[:n],
            crops=cut(self.crops),
            object_views=cut(self.object_views),
            source_x=cut(self.source_x),
            source_d=cut(self.source_d),
            guess=cut(self.guess),
            attack_scale=cut(self.attack_scale),
            clean=cut(self.clean),
            dense=0,
        )

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.x.shape[-2]), int(self.x.shape[-1]))

    def n_views(self, j: int) -> int:
        """Network inputs per query of image ``j``."""
        if self.crops is not None:
            return len(self.crops[j])
        if self.object_views is not None:
            return len(self.object_views[j])
        return 1

    def inputs(self, j: int, scale: float, views: list[int] | None = None) -> torch.Tensor:
        """``(n_views, C, H, W)``: what the network sees for image ``j`` at ``scale``
        (only the listed views, when given)."""
        pick = views if views is not None else list(range(self.n_views(j)))
        lo, hi = PIXEL_BOUNDS
        if self.object_views is not None:
            out = []
            for v in (self.object_views[j][k] for k in pick):
                moved = shift_perturbation(self.d[j], v.shift)
                view = (v.content + scale * moved).clamp(lo, hi)
                out.append(view.flip(-1) if v.flip else view)
            return torch.stack(out)
        xe = (self.x[j : j + 1] + scale * self.d[j : j + 1]).clamp(lo, hi)
        if self.crops is not None:
            crops, _ = crop_resize(xe, [[self.crops[j][k] for k in pick]], self.size)
            return crops
        return xe

    def ceilings(self) -> torch.Tensor:
        """``(n,)``: per image, the scale past which no view it shows changes any more."""
        lo_hi = PIXEL_BOUNDS
        if self.object_views is None:
            return norms.saturation_scale(self.x.double(), self.d.double(), lo_hi).float()
        return torch.stack(
            [
                torch.stack(
                    [
                        norms.saturation_scale(
                            v.content[None].double(),
                            shift_perturbation(self.d[j], v.shift)[None].double(),
                            lo_hi,
                        )[0]
                        for v in views
                    ]
                ).amax()
                for j, views in enumerate(self.object_views)
            ]
        ).float()

    def view_names(self, j: int) -> list[str]:
        """What image ``j``'s views are, for its result row (empty: the whole input)."""
        if self.crops is not None:
            return [w.describe() for w in self.crops[j]]
        if self.object_views is not None:
            return [v.describe() for v in self.object_views[j]]
        return []

    def background_share(self, j: int) -> float | None:
        """MP-Object views: the mean share of a view that lies outside the object's box."""
        if self.object_views is None:
            return None
        h, w = self.size
        shares = [v.background((h, w)) for v in self.object_views[j]]
        return sum(shares) / len(shares) if shares else None

    def keys(self, j: int, scale: float) -> list[Hashable]:
        """One key per view: equal keys are the same network input."""
        row = self.rows[j]
        if self.object_views is not None:
            return [(self.frame, row, v.shift, v.flip, scale) for v in self.object_views[j]]
        if self.crops is not None:
            return [(self.frame, row, w, scale) for w in self.crops[j]]
        return [(self.frame, row, None, scale)]

    def grid_scales(self, axis: str, values: tuple[float, ...]) -> torch.Tensor:
        """``(n, K)``: scales at which the added perturbation reaches each grid norm."""
        v = torch.tensor(values, dtype=torch.float64)
        return norms.scales_at_norms(self.x.double(), self.d.double(), v, axis).float()

    def added_norms(self, scale: torch.Tensor) -> dict[str, torch.Tensor]:
        """Norms of the perturbation actually added at ``scale`` (per image), this frame."""
        return norms.added_norms(self.x.double(), self.d.double(), scale.double())

    def source_norms(self, scale: torch.Tensor) -> dict[str, torch.Tensor]:
        """The same scale's perturbation in the source's frame (cross pairs), else this frame."""
        if self.source_x is None or self.source_d is None:
            return self.added_norms(scale)
        return norms.added_norms(self.source_x.double(), self.source_d.double(), scale.double())
