"""Decode once: model inputs kept as uint8 per (image, preprocessing), prefetched.

A protocol run asks for the same image many times (clean, every attack, every
evaluation unit, the MP-Object windows). Decoding and resizing is PIL work on
the CPU that a GPU would wait on, so each actor keeps what it decoded in a
byte-bounded LRU (uint8: a 224 px input is 147 KiB) shared by its attack and
evaluation stages, and :meth:`ImageCache.prefetch` decodes the next batch in a
background thread while the network works on the current one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import torch
from PIL import Image

from pipeline.models.images import BoxTuple, input_from, open_rgb, window_from
from pipeline.models.networks import PreprocessCfg

DEFAULT_BUDGET = 2 << 30  # 2 GiB of decoded inputs per actor


class ImageCache:
    """uint8 inputs and object-crop windows by (path, preprocessing[, box])."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET) -> None:
        self.budget = budget_bytes
        self._items: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self.decodes = 0  # files opened (for the counters in the results)

    def inputs(self, paths: Sequence[str], cfg: PreprocessCfg) -> torch.Tensor:
        """``(B, 3, H, W)`` float32 in 0..255."""
        return torch.stack([self._input(p, cfg) for p in paths]).float()

    def windows(
        self, path: str, boxes: Sequence[BoxTuple], cfg: PreprocessCfg
    ) -> list[torch.Tensor]:
        """float32 ``(3, H, W)`` per window of one image (decoded once for all of them)."""
        keys = [(path, _cfg_key(cfg), tuple(round(v, 6) for v in b)) for b in boxes]
        found = [self._get(k) for k in keys]
        if any(f is None for f in found):
            im = self._open(path)
            found = [
                f if f is not None else self._put(k, window_from(im, b, cfg))
                for f, k, b in zip(found, keys, boxes, strict=True)
            ]
        return [f.float() for f in found if f is not None]

    def prefetch(self, paths: Sequence[str], cfg: PreprocessCfg) -> Future[None]:
        """Decode ``paths`` into the cache in the background."""
        return self._pool.submit(self._decode_all, list(paths), cfg)

    # -- internals -------------------------------------------------------------------------
    def _decode_all(self, paths: list[str], cfg: PreprocessCfg) -> None:
        for p in paths:
            self._input(p, cfg)

    def _input(self, path: str, cfg: PreprocessCfg) -> torch.Tensor:
        key = (path, _cfg_key(cfg))
        found = self._get(key)
        return found if found is not None else self._put(key, input_from(self._open(path), cfg))

    def _open(self, path: str) -> Image.Image:
        self.decodes += 1
        return open_rgb(path)

    def _get(self, key: Hashable) -> torch.Tensor | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def _put(self, key: Hashable, value: torch.Tensor) -> torch.Tensor:
        size = value.numel() * value.element_size()
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self._bytes += size
            while self._bytes > self.budget and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.numel() * old.element_size()
        return value


def _cfg_key(cfg: PreprocessCfg) -> Hashable:
    return (cfg.input_size, cfg.interpolation, cfg.mode, cfg.crop_pct)
