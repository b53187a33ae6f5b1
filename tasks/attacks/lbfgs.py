"""Batched, projected L-BFGS in torch: one optimiser for ``bfgs`` and ``lbfgsb``.

Szegedy et al. (and Luo et al., sec. B) minimise a penalised objective with
box-constrained L-BFGS; Tabacof & Valle (sec. III-A) use L-BFGS-B with 15
corrections. Running SciPy per image would serialise the batch, so this is a
*projected* L-BFGS written on tensors: every image has its own history
``(s, y)`` of ``m`` pairs, its own two-loop recursion, its own inner products
and its own Armijo backtracking, and all images advance together.

Box constraint: the variable ``e`` (a perturbation) must keep ``x + e`` in the
pixel box. Trial points are projected onto the box, and variables sitting on
a bound with the gradient pushing outward are frozen for the direction (the
two-metric projection of Bertsekas, as in Schmidt's minConf): a projected
L-BFGS, not Byrd et al.'s generalised-Cauchy-point L-BFGS-B.

Step length: with a curvature history the quasi-Newton step is tried at
``t = 1``. Without one (the first iteration, or a piecewise-linear objective
such as Luo's hinge, whose curvature pairs are all rejected) the step is
``-step0 * g``, where ``step0`` starts at the caller's guess and doubles
after every step that was accepted without backtracking, so a linear
objective is followed geometrically rather than at the gradient's raw,
pixel-unit scale.

The caller observes every evaluated point through ``on_eval`` and may stop
an image there (e.g. "already adversarial"); stopped images leave the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

#: ``objective(e, idx) -> (value per image, gradient, logits)`` for images ``idx``.
Objective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
#: ``on_eval(idx, e, logits) -> stop mask``: sees every evaluated point.
Observer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LBFGS:
    """Settings: iterations, history size ``m``, Armijo constant and backtracks."""

    max_iter: int = 100
    history: int = 10
    max_backtrack: int = 12
    c1: float = 1e-4
    ftol: float = 1e-9

    def __post_init__(self) -> None:
        if self.max_iter < 1 or self.history < 1 or self.max_backtrack < 1:
            raise ValueError(f"max_iter, history and max_backtrack must be >= 1, got {self}")


@dataclass
class LBFGSResult:
    """Final iterate, the iterate after one iteration (Luo's fallback), and flags."""

    e: torch.Tensor
    first: torch.Tensor
    stopped: torch.Tensor  # the observer stopped the image
    iterations: torch.Tensor


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(dim=1)


class _History:
    """Per-image ring of the last ``m`` curvature pairs (newest last)."""

    def __init__(self, n: int, d: int, m: int, like: torch.Tensor) -> None:
        self.s = like.new_zeros(n, m, d)
        self.y = like.new_zeros(n, m, d)
        self.rho = like.new_zeros(n, m)
        self.valid = torch.zeros(n, m, dtype=torch.bool, device=like.device)

    def push(self, rows: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> None:
        sy = _dot(s, y)
        ok = sy > 1e-10 * _dot(y, y).clamp_min(1e-30)  # keep the inverse Hessian positive
        rows, s, y, sy = rows[ok], s[ok], y[ok], sy[ok]
        if rows.numel() == 0:
            return
        self.s[rows] = torch.cat([self.s[rows, 1:], s[:, None]], dim=1)
        self.y[rows] = torch.cat([self.y[rows, 1:], y[:, None]], dim=1)
        self.rho[rows] = torch.cat([self.rho[rows, 1:], (1.0 / sy)[:, None]], dim=1)
        ones = torch.ones_like(rows, dtype=torch.bool)[:, None]
        self.valid[rows] = torch.cat([self.valid[rows, 1:], ones], dim=1)

    def reset(self, rows: torch.Tensor) -> None:
        self.valid[rows] = False

    def direction(self, rows: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two-loop recursion ``-H g`` for images ``rows``; also "has history"."""
        s, y, rho, valid = self.s[rows], self.y[rows], self.rho[rows], self.valid[rows]
        rho = rho * valid
        m = s.shape[1]
        q = g.clone()
        alpha = torch.zeros_like(rho)
        for i in reversed(range(m)):
            alpha[:, i] = rho[:, i] * _dot(s[:, i], q)
            q -= alpha[:, i, None] * y[:, i]
        newest = valid[:, -1]
        gamma = _dot(s[:, -1], y[:, -1]) / _dot(y[:, -1], y[:, -1]).clamp_min(1e-30)
        r = q * torch.where(newest, gamma, torch.ones_like(gamma))[:, None]
        for i in range(m):
            beta = rho[:, i] * _dot(y[:, i], r)
            r += (alpha[:, i] - beta)[:, None] * s[:, i]
        return -r, newest


def perturbation_box(
    x: torch.Tensor, bounds: tuple[float, float] | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Bounds on ``e`` that keep ``x + e`` inside the pixel box (None: unbounded)."""
    if bounds is None:
        return None, None
    return bounds[0] - x, bounds[1] - x


def minimize(
    objective: Objective,
    e0: torch.Tensor,
    step0: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    lower: torch.Tensor | None = None,
    upper: torch.Tensor | None = None,
    settings: LBFGS | None = None,
    on_eval: Observer | None = None,
    l1: float = 0.0,
) -> LBFGSResult:
    """Minimise ``objective`` over ``e`` (per image, batched) within ``[lower, upper]``.

    ``step0(g, logits)`` gives, per image, the first steepest-descent step
    length from the gradient and logits at ``e0`` (see the module docstring).
    ``l1`` adds ``l1 * ||e||_1`` to the objective, handled as in OWL-QN
    (Andrew & Gao, 2007): the direction uses the L1 pseudo-gradient and the
    curvature pairs use the smooth part's gradients only, since the kink of
    ``|e|`` at 0 is no curvature (a pair built from it would bend every
    direction towards ``sign(g)``). Orthant projection is not done.
    """
    cfg = settings or LBFGS()
    n, shape = e0.shape[0], e0.shape[1:]
    flat = lambda t: t.reshape(t.shape[0], -1)  # noqa: E731
    unflat = lambda t: t.reshape(t.shape[0], *shape)  # noqa: E731
    lo = None if lower is None else flat(lower)
    hi = None if upper is None else flat(upper)

    def project(rows: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        if lo is not None and hi is not None:
            e = torch.maximum(torch.minimum(e, hi[rows]), lo[rows])
        return e

    def evaluate(rows: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f, g, logits = objective(unflat(e), rows)
        if l1:
            f = f + l1 * e.abs().sum(dim=1)
        stop = (
            on_eval(rows, unflat(e), logits)
            if on_eval is not None
            else torch.zeros_like(f, dtype=torch.bool)
        )
        return f, flat(g), logits, stop

    def pseudo_grad(e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if not l1:
            return g
        at_zero = (g - l1 * g.sign()) * (g.abs() > l1)  # steepest side of the kink
        return torch.where(e == 0, at_zero, g + l1 * e.sign())

    all_rows = torch.arange(n, device=e0.device)
    e = project(all_rows, flat(e0).clone())
    f, g, logits, stopped = evaluate(all_rows, e)
    first = e.clone()
    step = step0(unflat(g), logits).to(e.dtype)
    hist = _History(n, e.shape[1], cfg.history, e)
    done = stopped.clone()
    iterations = torch.zeros(n, dtype=torch.long, device=e.device)

    for it in range(cfg.max_iter):
        rows = (~done).nonzero().squeeze(1)
        if rows.numel() == 0:
            break
        er, gr = e[rows], g[rows]
        pg = pseudo_grad(er, gr)
        free = torch.ones_like(pg, dtype=torch.bool)
        if lo is not None and hi is not None:
            free = ~(((er <= lo[rows]) & (pg > 0)) | ((er >= hi[rows]) & (pg < 0)))
        gf = pg * free
        d, has_hist = hist.direction(rows, gf)
        d = d * free
        uphill = _dot(gf, d) >= 0
        if uphill.any():  # not a descent direction: restart from steepest descent
            hist.reset(rows[uphill])
            has_hist = has_hist & ~uphill
            d = torch.where(uphill[:, None], -gf, d)
        d = torch.where(has_hist[:, None], d, -gf)
        t = torch.where(has_hist, torch.ones_like(step[rows]), step[rows])
        slope = _dot(gf, d)

        pending = (slope < 0).nonzero().squeeze(1)  # a zero gradient has nowhere to go
        accepted = torch.zeros(rows.numel(), dtype=torch.bool, device=e.device)
        first_try = torch.zeros_like(accepted)
        new_e, new_f, new_g = er.clone(), f[rows].clone(), gr.clone()
        new_stop = torch.zeros_like(accepted)
        for k in range(cfg.max_backtrack):
            if pending.numel() == 0:
                break
            sub = rows[pending]
            trial = project(sub, er[pending] + t[pending, None] * d[pending])
            f_t, g_t, _, stop_t = evaluate(sub, trial)
            moved = _dot(gf[pending], trial - er[pending])  # projected-step Armijo
            ok = stop_t | ((f_t <= f[sub] + cfg.c1 * moved) & torch.isfinite(f_t))
            hit = pending[ok]
            new_e[hit], new_f[hit], new_g[hit] = trial[ok], f_t[ok], g_t[ok]
            new_stop[hit] = stop_t[ok]
            accepted[hit] = True
            first_try[hit] = k == 0
            pending = pending[~ok]
            t[pending] = t[pending] * 0.5

        # Images whose backtracking failed or that stopped improving are done.
        small = (f[rows] - new_f).abs() <= cfg.ftol * new_f.abs().clamp_min(1.0)
        no_grad = slope >= 0
        hist.push(rows[accepted], (new_e - er)[accepted], (new_g - gr)[accepted])
        plain = ~has_hist & accepted
        step[rows] = torch.where(plain, torch.where(first_try, 2 * t, t), step[rows])
        e[rows], f[rows], g[rows] = new_e, new_f, new_g
        iterations[rows] += accepted.long()
        stopped[rows] |= new_stop
        done[rows] |= new_stop | ~accepted | (accepted & small) | no_grad
        if it == 0:
            first = e.clone()
    return LBFGSResult(e=unflat(e), first=unflat(first), stopped=stopped, iterations=iterations)
