"""Perturbation norms in 0..255 pixel units (Luo et al.'s norms; docs/protocol.md).

``l1pp`` is Luo et al.'s "L1 norm per pixel": sum|e| / (H*W*C).
"""

from __future__ import annotations

import torch

NORMS = ("l1pp", "l2", "linf")


def flat(e: torch.Tensor) -> torch.Tensor:
    return e.reshape(e.shape[0], -1)


def l1pp(e: torch.Tensor) -> torch.Tensor:
    return flat(e).abs().mean(dim=1)


def l2(e: torch.Tensor) -> torch.Tensor:
    return flat(e).norm(p=2, dim=1)


def linf(e: torch.Tensor) -> torch.Tensor:
    return flat(e).abs().amax(dim=1)


def norm(e: torch.Tensor, name: str) -> torch.Tensor:
    """Per-image norm of a batch of perturbations by name."""
    if name == "l1pp":
        return l1pp(e)
    if name == "l2":
        return l2(e)
    if name == "linf":
        return linf(e)
    raise ValueError(f"unknown norm {name!r}; use one of {', '.join(NORMS)}")


def all_norms(e: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: norm(e, name) for name in NORMS}


# -- norms of the perturbation actually added (after clipping) ------------------------------
# The protocol's x-axes are norms of ``clip(x + s d) - x``: what the network receives
# (issue 10, item 5). Each norm of it is non-decreasing and continuous in ``s``, so
# "the smallest scale at which the added perturbation has norm v" is well defined and
# has a closed form; no forward pass is needed to place a grid point on a ray.


def room(x: torch.Tensor, d: torch.Tensor, lo: float = 0.0, hi: float = 255.0) -> torch.Tensor:
    """Per value: how far ``x`` can move in the direction of ``d`` before the bound."""
    return torch.where(d > 0, hi - x, torch.where(d < 0, x - lo, torch.zeros_like(x)))


def saturation_scale(
    x: torch.Tensor, d: torch.Tensor, bounds: tuple[float, float] | None = (0.0, 255.0)
) -> torch.Tensor:
    """Per image, the scale past which ``clip(x + s d)`` stops changing (inf without bounds;
    0 for a zero direction): beyond it the perturbation can grow no further."""
    n = x.shape[0]
    if bounds is None:
        return torch.full((n,), float("inf"), device=x.device, dtype=x.dtype)
    r = room(x, d, *bounds)
    needed = torch.where(d != 0, r / d.abs().clamp_min(1e-30), torch.zeros_like(d))
    return needed.reshape(n, -1).amax(dim=1)


def added(
    x: torch.Tensor, d: torch.Tensor, scale: torch.Tensor, bounds: tuple[float, float] | None
) -> torch.Tensor:
    """``clip(x + s d) - x`` per image (``scale`` is ``(B,)``; inf is treated as 0)."""
    s = torch.where(torch.isfinite(scale), scale, torch.zeros_like(scale))
    xe = x + s.view(-1, *[1] * (x.dim() - 1)) * d
    return (xe if bounds is None else xe.clamp(*bounds)) - x


def added_norms(
    x: torch.Tensor,
    d: torch.Tensor,
    scale: torch.Tensor,
    bounds: tuple[float, float] | None = (0.0, 255.0),
) -> dict[str, torch.Tensor]:
    """Every norm of the added perturbation at ``scale``; inf scale -> inf, 0 -> 0."""
    out = all_norms(added(x, d, scale, bounds))
    inf = torch.isinf(scale)
    return {k: torch.where(inf, torch.full_like(v, float("inf")), v) for k, v in out.items()}


def scales_at_norms(
    x: torch.Tensor,
    d: torch.Tensor,
    values: torch.Tensor,
    name: str,
    bounds: tuple[float, float] | None = (0.0, 255.0),
) -> torch.Tensor:
    """``(B, V)``: per image, the smallest ``s`` with ``||clip(x + s d) - x||_name = v``.

    inf where ``v`` is beyond what the ray can reach (every touched value saturated).
    Per value ``i`` with ``a_i = |d_i|`` and room ``r_i``, the added amount is
    ``min(s a_i, r_i)``, saturating at ``t_i = r_i / a_i``. Sorting the ``t_i``
    makes the l1/l2 norms piecewise linear/quadratic in ``s`` with known pieces;
    ``linf >= v`` iff some value with room ``>= v`` has ``s a_i >= v``.
    """
    b = x.shape[0]
    v = values.to(x.dtype).to(x.device).view(1, -1).expand(b, -1)
    a = flat(d).abs().double()
    unbounded = torch.full_like(a, float("inf"))
    r = unbounded if bounds is None else flat(room(x, d, *bounds)).double()
    r = torch.where(a > 0, r, torch.zeros_like(r))
    if name == "linf":
        return _linf_scales(a, r, v.double()).to(x.dtype)
    n = a.shape[1]
    if name == "l1pp":
        target, power = v.double() * n, 1
    elif name == "l2":
        target, power = v.double() ** 2, 2
    else:
        raise ValueError(f"unknown norm {name!r}; use one of {', '.join(NORMS)}")
    t = torch.where(a > 0, r / a.clamp_min(1e-300), torch.full_like(a, float("inf")))
    t, order = t.sort(dim=1)
    a_p, r_p = a.gather(1, order) ** power, r.gather(1, order) ** power
    # f(s) = s^p * (sum of a^p over unsaturated values) + (sum of r^p over saturated ones)
    rest = a_p.flip(1).cumsum(1).flip(1)  # sum over k >= j of a_p
    done = r_p.cumsum(1) - r_p  # sum over k < j of r_p
    finite_t = torch.where(torch.isfinite(t), t, torch.zeros_like(t))
    at_break = finite_t**power * rest + done  # f just before value j saturates (at s = t_j)
    at_break = torch.where(torch.isfinite(t), at_break, torch.full_like(at_break, float("inf")))
    j = torch.searchsorted(at_break.contiguous(), target.contiguous(), right=False)
    j = j.clamp(max=n - 1)
    rest_j, done_j = rest.gather(1, j), done.gather(1, j)
    s = ((target - done_j) / rest_j.clamp_min(1e-300)) ** (1.0 / power)
    reachable = target <= (r_p.sum(1, keepdim=True) if bounds is not None else float("inf"))
    s = torch.where(reachable & (rest_j > 0), s, torch.full_like(s, float("inf")))
    s = torch.where(target <= 0, torch.zeros_like(s), s)
    return s.to(x.dtype)


def _linf_scales(a: torch.Tensor, r: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(v)
    for k in range(v.shape[1]):
        vk = v[:, k : k + 1]
        reach = torch.where(r >= vk, a, torch.zeros_like(a)).amax(dim=1, keepdim=True)
        s = torch.where(reach > 0, vk / reach.clamp_min(1e-300), torch.full_like(vk, float("inf")))
        out[:, k : k + 1] = torch.where(vk <= 0, torch.zeros_like(vk), s)
    return out
