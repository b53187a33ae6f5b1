"""Saliency maps for ``saliency_crop``, from models that are not the attacked classifier.

The paper uses SALICON; offline we ship the spectral residual method (Hou &
Zhang, CVPR 2007): no learned weights, no network, so it cannot share the
classifier's adversarial direction. New methods register in ``SALIENCY`` and
take images ``(B, 3, H, W)`` in 0..255 pixels, returning maps ``(B, H, W)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from tasks.registry import Registry

SaliencyFn = Callable[[torch.Tensor], torch.Tensor]
SALIENCY: Registry[SaliencyFn] = Registry("saliency method")


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))


@SALIENCY.register("spectral_residual")
def spectral_residual(x: torch.Tensor, width: int = 64) -> torch.Tensor:
    """Hou & Zhang: log-amplitude spectrum minus its local mean, back to image space.

    Computed on a grey image downscaled to ``width`` pixels wide (the paper's
    64), then upsampled to the input size.
    """
    b, _, h, w = x.shape
    grey = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(
        1, keepdim=True
    )
    small_h = max(8, round(h * width / w))
    small = F.interpolate(
        grey, size=(small_h, width), mode="bilinear", align_corners=False, antialias=True
    )
    spectrum = torch.fft.fft2(small)
    log_amp = torch.log(spectrum.abs().clamp_min(1e-12))
    phase = torch.angle(spectrum)
    residual = log_amp - F.avg_pool2d(F.pad(log_amp, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    sal = torch.fft.ifft2(torch.exp(residual + 1j * phase)).abs() ** 2
    sal = _blur(sal, sigma=2.5)
    sal = F.interpolate(sal, size=(h, w), mode="bilinear", align_corners=False)
    return sal.view(b, h, w)


def top_peaks(
    saliency: torch.Tensor, k: int = 3, suppress: float = 0.25
) -> list[list[tuple[float, float]]]:
    """The ``k`` strongest peaks (x, y) per map, with non-maximum suppression.

    After each pick, a window of ``suppress`` times the image size around it is
    zeroed, so the three crops look at different places.
    """
    out = []
    _, h, w = saliency.shape
    rh, rw = max(1, int(suppress * h / 2)), max(1, int(suppress * w / 2))
    for sal in saliency:
        sal = sal.clone()
        picks = []
        for _ in range(k):
            i = int(sal.argmax())
            y, x = divmod(i, w)
            picks.append((x + 0.5, y + 0.5))
            sal[max(0, y - rh) : y + rh + 1, max(0, x - rw) : x + rw + 1] = float("-inf")
        out.append(picks)
    return out
