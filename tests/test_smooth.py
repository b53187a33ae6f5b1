"""Zhang's Laplacian smoothing: solves its system, smooths, differentiates; smooth attacks run."""

from __future__ import annotations

import pytest
import torch

from tasks import attacks
from tasks.criterion import TopK
from tasks.smoothing import LaplacianSmoother, SmoothingCfg, magnify, total_variation
from tests.linear import random_linear

pytestmark = pytest.mark.unit


def test_smoothing_a_random_signal_on_a_constant_image_is_smooth_and_solves_the_system() -> None:
    image = torch.full((2, 3, 16, 16), 100.0)
    cfg = SmoothingCfg(alpha=0.95, cg_iters=300, tol=1e-10)
    smoother = LaplacianSmoother(image, cfg)
    z = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    r, residual = smoother.solve(z)
    assert float(residual.max()) < 1e-6
    assert float((smoother.laplacian(r) - z).norm() / z.norm()) < 1e-5
    smoothed = smoother(z)
    assert bool((total_variation(smoothed) < 0.3 * total_variation(z)).all())
    # eq. (9): the normalised filter keeps constants constant.
    torch.testing.assert_close(
        smoother(torch.ones_like(z)), torch.ones_like(z), rtol=1e-5, atol=1e-5
    )


def test_smoothing_follows_the_image_edges() -> None:
    image = torch.zeros(1, 3, 12, 12)
    image[..., 6:] = 255.0  # two flat halves with a sharp vertical edge
    smoother = LaplacianSmoother(image, SmoothingCfg(alpha=0.99, cg_iters=300, tol=1e-10))
    z = torch.zeros(1, 1, 12, 12)
    z[..., :6] = 1.0  # a step on the same edge passes through almost unchanged
    out = smoother(z)
    assert float(out[..., :6].min()) > 0.95 and float(out[..., 6:].max()) < 0.05


def test_gradient_through_cg_matches_finite_differences() -> None:
    g = torch.Generator().manual_seed(1)
    image = 255 * torch.rand(1, 3, 5, 5, generator=g, dtype=torch.float64)
    smoother = LaplacianSmoother(
        image, SmoothingCfg(alpha=0.9, neighbours=4, cg_iters=200, tol=1e-14)
    )
    z = torch.randn(1, 3, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: smoother(t), (z,), eps=1e-6, atol=1e-6)


def test_magnification_returns_an_image_of_the_same_shape() -> None:
    x = 255 * torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(2))
    mag = magnify(x, sigma_d=2.0)
    assert mag.shape == x.shape and bool(torch.isfinite(mag).all())


@pytest.mark.parametrize("name", ["pgd2", "ifgsm", "qpgd2", "scw"])
def test_smooth_attacks_and_baselines_fool_a_linear_model(name: str) -> None:
    model, x = random_linear(3, shape=(3, 8, 8), seed=3)
    labels = model(x).argmax(1)
    params = {"max_iter": 40, "binary_steps": 3, "initial_const": 10.0} if name == "scw" else {}
    if name in ("qpgd2", "scw"):
        params.update(alpha=0.5, cg_iters=10)
    result = attacks.create(name, criterion=TopK(1), **params)(model, x, labels)
    assert bool(result.success.all())
    adv = model(x + result.perturbation).argmax(1)
    assert bool((adv != labels).all())


def dense_laplacian(image: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """Eq. (5)-(8) written out for one image: L_a = (I - a D^-1/2 W D^-1/2) / (1 - a)."""
    _, h, w = image.shape
    colours = (image / 255).flatten(1).T
    n = h * w
    weights = torch.zeros(n, n, dtype=image.dtype)
    for i in range(n):
        for j in range(n):
            (yi, xi), (yj, xj) = divmod(i, w), divmod(j, w)
            if i != j and abs(yi - yj) <= 1 and abs(xi - xj) <= 1:
                weights[i, j] = torch.exp(-(colours[i] - colours[j]).norm() / sigma)
    isd = weights.sum(1).rsqrt()
    normalised = isd[:, None] * weights * isd[None, :]
    return (torch.eye(n, dtype=image.dtype) - alpha * normalised) / (1 - alpha)


def test_the_stencil_is_the_papers_operator_and_the_exact_solve_runs_its_count() -> None:
    g = torch.Generator().manual_seed(4)
    image = 255 * torch.rand(2, 3, 5, 6, generator=g, dtype=torch.float64)
    v = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64)
    exact = LaplacianSmoother(image, SmoothingCfg(alpha=0.9, cg_iters=7, tol=0.0))
    applied = exact.laplacian(v)
    for b in range(2):
        dense = dense_laplacian(image[b], 0.9, 0.1)
        expected = (dense @ v[b].flatten(1).T).T.reshape(3, 5, 6)
        torch.testing.assert_close(applied[b], expected)
    exact.solve(v, "forward")
    assert exact.stats.iterations == 7 + 7, "s(1) and the solve: 7 iterations each, no early stop"
    converged = LaplacianSmoother(image, SmoothingCfg(alpha=0.9, cg_iters=500, tol=1e-9))
    r, residual = converged.solve(v)
    assert float(residual.max()) <= 1e-9
    torch.testing.assert_close(converged.laplacian(r), v)


def test_warm_starts_follow_each_image_when_rows_drop_out() -> None:
    g = torch.Generator().manual_seed(5)
    image = 255 * torch.rand(3, 3, 24, 24, generator=g)
    cfg = SmoothingCfg(alpha=0.99, cg_iters=2000, tol=1e-5)
    smoother = LaplacianSmoother(image, cfg)
    z = torch.randn(3, 3, 24, 24, generator=g)
    smoother(z)  # all three rows: their solutions become the warm starts
    cold = smoother.stats.iterations - LaplacianSmoother(image, cfg).stats.iterations
    # rows 0 and 2 go on (row 1 succeeded), each with a slightly changed right-hand side
    rows = torch.tensor([0, 2])
    nearby = z[rows] + 1e-3 * torch.randn(2, 3, 24, 24, generator=g)
    before = smoother.stats.iterations
    out = smoother.subset(rows)(nearby)
    warm = smoother.stats.iterations - before
    reference = LaplacianSmoother(image[rows], SmoothingCfg(alpha=0.99, cg_iters=2000, tol=1e-7))
    torch.testing.assert_close(out, reference(nearby), rtol=0, atol=1e-3)
    assert warm < cold / 2, f"a warm start near the solution took {warm} of {cold} iterations"
    # a right-hand side of zero (a new binary step's z = 0) is solved exactly, warm or not
    zero = smoother.subset(rows)(torch.zeros_like(nearby))
    assert float(zero.abs().max()) == 0.0


def test_the_backward_solve_stops_at_its_own_tolerance() -> None:
    g = torch.Generator().manual_seed(6)
    image = 255 * torch.rand(2, 3, 24, 24, generator=g)
    z = torch.randn(2, 3, 24, 24, generator=g, requires_grad=True)
    incoming = torch.randn(2, 3, 24, 24, generator=g)

    def backward_cost(cfg: SmoothingCfg) -> tuple[torch.Tensor, torch.Tensor, int]:
        smoother = LaplacianSmoother(image, cfg)
        out = smoother(z)
        before = smoother.stats.iterations
        (grad,) = torch.autograd.grad(out, z, incoming)
        return out, grad, smoother.stats.iterations - before

    exact_out, exact_grad, exact_iters = backward_cost(
        SmoothingCfg(alpha=0.99, cg_iters=2000, tol=1e-7)
    )
    out, grad, iters = backward_cost(
        SmoothingCfg(alpha=0.99, cg_iters=2000, tol=1e-7, adjoint_tol=1e-2)
    )
    torch.testing.assert_close(out, exact_out, rtol=0, atol=1e-5)  # the forward is untouched
    error = float((grad - exact_grad).norm() / exact_grad.norm())
    assert 1e-6 < error < 0.1, f"the gradient is {error:.1e} from the converged one"
    assert iters < exact_iters / 2, f"the loose backward took {iters} of {exact_iters} iterations"


def test_an_images_solve_does_not_depend_on_the_images_beside_it() -> None:
    g = torch.Generator().manual_seed(7)
    image = 255 * torch.rand(2, 3, 24, 24, generator=g)
    image[0] = 128.0  # a flat image converges in far fewer iterations than a noisy one
    cfg = SmoothingCfg(alpha=0.99, cg_iters=2000, tol=1e-4)
    z = torch.randn(2, 3, 24, 24, generator=g)
    together, residual = LaplacianSmoother(image, cfg).solve(z)
    alone, _ = LaplacianSmoother(image[:1], cfg).solve(z[:1])
    assert float(residual.max()) <= 1e-4
    # each image leaves the iteration once converged, so the flat one stops where it would alone
    assert torch.equal(together[:1], alone)
