"""Algorithm 5.1 of Peck (2017): a certified floor under each image's minimum perturbation.

The network is read as a sequence of layers ending in a linear (softmax)
classifier. Backwards from the output:

1. the output layer gives ``kappa_L`` by Lemma 3.5 (the distance of the
   penultimate features to the closest other class's hyperplane, for the
   predicted class ``c``);
2. the trailing fully connected block ``h_L`` (Linear/activation/Dropout
   layers before the output layer) gives Theorem 4.2 / Theorem 1, with
   ``||J(x)||`` the spectral norm of its Jacobian at the image (power
   iteration) and ``M`` from Algorithm 4.1 (ReLU's ``B = 1``, sec. 4.3.1);
   certified by the product of the layers' Frobenius norms;
3. every earlier layer maps ``kappa`` through its rule in
   :mod:`tasks.bounds.layers`.

Pixel models (a ``net`` with ``shift``/``scale`` buffers, i.e.
``net((x - shift) / scale)`` with ``scale = 255 * std``) are unwrapped: a pixel
perturbation ``e`` becomes ``e / scale`` in the network's input, whose norm is
at most ``||e|| / min(scale)``, so ``bound_pixel = min(scale) * bound_input``.
The bound is on the L2 norm of any perturbation, unclipped, that changes the
top-1 class (the thesis's ``f(x + r) != f(x)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from tasks.bounds.layers import ACTIVATIONS, IDENTITIES, RULES, UnsupportedLayerError

Layer = tuple[str, nn.Module]
_MLP_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Dropout, nn.Identity, *ACTIVATIONS)


@dataclass
class BoundResult:
    """Per image: the bound in the caller's input units and the chain of kappas."""

    bound_l2: torch.Tensor
    predicted: torch.Tensor
    kappas: dict[str, torch.Tensor] = field(default_factory=dict)  # layer input -> bound
    thesis: dict[str, torch.Tensor] = field(default_factory=dict)  # the thesis's own value
    input_scale: float = 1.0


def sequential_layers(model: nn.Module, prefix: str = "") -> list[Layer]:
    """The layers of a sequential network, in order, or an error naming the culprit."""
    if isinstance(model, nn.Sequential):
        out: list[Layer] = []
        for name, child in model.named_children():
            out += sequential_layers(child, f"{prefix}{name}.")
        return out
    features, pool, head = (getattr(model, a, None) for a in ("features", "avgpool", "classifier"))
    kind = type(model).__name__
    if kind in ("AlexNet", "VGG") and features is not None and head is not None:
        # torchvision's forward: features -> avgpool -> flatten -> classifier
        layers = sequential_layers(features, f"{prefix}features.")
        if pool is not None:
            layers += sequential_layers(pool, f"{prefix}avgpool.")
        return [
            *layers,
            (f"{prefix}flatten", nn.Flatten()),
            *sequential_layers(head, f"{prefix}classifier."),
        ]
    if type(model) in RULES or isinstance(model, (nn.Linear, nn.Softmax, nn.LogSoftmax)):
        return [(prefix.rstrip(".") or kind, model)]
    where = prefix.rstrip(".") or "<model>"
    culprit = _first_unsupported(model, where)
    detail = f"; the first layer without a rule is {culprit}" if culprit else ""
    raise UnsupportedLayerError(
        f"cannot bound layer {where!r} ({kind}){detail}. Peck's bounds cover sequential networks "
        "of Conv2d, Linear, ReLU/Tanh/Sigmoid/Softplus, Max/Avg/Lp pooling, BatchNorm2d, "
        "LocalResponseNorm, Dropout and Flatten (nn.Sequential, torchvision AlexNet/VGG); "
        "residual or branching blocks have no rule"
    )


def _first_unsupported(model: nn.Module, where: str) -> str | None:
    """Name and type of the first descendant that is neither a container nor a known layer."""
    for name, child in model.named_modules():
        known = type(child) in RULES or isinstance(child, (nn.Linear, nn.Softmax, nn.LogSoftmax))
        if name and not known and not isinstance(child, nn.Sequential):
            return f"{where}.{name!s} ({type(child).__name__})".replace("<model>.", "")
    return None


def unwrap_pixel_model(model: nn.Module) -> tuple[nn.Module, nn.Module | None, float]:
    """(network, normaliser, factor) with ``bound_pixel = factor * bound_network``."""
    net, shift, scale = (getattr(model, a, None) for a in ("net", "shift", "scale"))
    if (
        isinstance(net, nn.Module)
        and isinstance(shift, torch.Tensor)
        and isinstance(scale, torch.Tensor)
    ):
        return net, _Normalise(shift, scale), float(scale.min())
    return model, None, 1.0


class _Normalise(nn.Module):
    def __init__(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.shift, self.scale = shift, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


def output_bound(layer: nn.Linear, h: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """Lemma 3.5: ``min_{j != c} |(w_j - w_c) h + b_j - b_c| / ||w_j - w_c||``."""
    w = layer.weight.detach().double()
    logits = h.double() @ w.T
    if layer.bias is not None:
        logits = logits + layer.bias.detach().double()
    wc = w[predicted]
    gap = (logits - logits.gather(1, predicted[:, None])).abs()
    sq = (w * w).sum(1)[None, :] + (wc * wc).sum(1)[:, None] - 2 * wc @ w.T
    dist = gap / sq.clamp_min(0).sqrt()
    dist = torch.where(sq > 1e-24, dist, torch.full_like(dist, float("inf")))
    dist.scatter_(1, predicted[:, None], float("inf"))
    return dist.amin(dim=1)


def _spectral_norm(block: nn.Sequential, x: torch.Tensor, iters: int) -> torch.Tensor:
    """``||J(x)||_2`` of ``block`` per image by power iteration on ``J^T J``."""
    x = x.detach()
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    v = v / v.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1))
    sigma = torch.zeros(x.shape[0], dtype=torch.float64)
    with torch.enable_grad():
        vjp_fn = torch.func.vjp(block, x)[1]
    for _ in range(iters):
        jv = torch.func.jvp(block, (x,), (v,))[1]
        jtjv = vjp_fn(jv)[0]
        sigma = jv.flatten(1).norm(dim=1).double()
        v = jtjv / jtjv.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *[1] * (x.dim() - 1))
    return sigma


def curvature_m(block: list[Layer]) -> float:
    """Algorithm 4.1: ``M`` bounding every second derivative of ``h_L`` (ReLU: B = 1)."""
    m, n_prev = 0.0, 1.0
    layers = [mod for _, mod in block if not isinstance(mod, IDENTITIES)]
    for i, mod in enumerate(layers):
        if not isinstance(mod, nn.Linear):
            continue
        s = float(mod.weight.detach().double().abs().sum(dim=1).max())
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        a, b = ACTIVATIONS.get(type(nxt), (1.0, 0.0)) if nxt is not None else (1.0, 0.0)
        m = b * n_prev**2 * s**2 + a * m * s
        n_prev = a * n_prev * s
    return m


def mlp_bound(
    block: list[Layer], x: torch.Tensor, kappa: torch.Tensor, iters: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(thesis, certified) input bounds of the fully connected block ``h_L`` (Theorem 4.2)."""
    seq = nn.Sequential(*[m for _, m in block])
    n_out = seq(x[:1]).flatten(1).shape[1]
    j = _spectral_norm(seq, x, iters)
    m = curvature_m(block)
    k = kappa.double()
    if m > 0:
        a = m * math.sqrt(n_out)
        thesis = ((j**2 + 2 * a * k).sqrt() - j) / a
    else:
        thesis = k / j.clamp_min(1e-300)
    lip = 1.0
    for _, mod in block:
        if isinstance(mod, nn.Linear):
            lip *= float(mod.weight.detach().double().norm())
        elif type(mod) in ACTIVATIONS:
            lip *= ACTIVATIONS[type(mod)][0]
    return thesis, k / lip


def _split_head(layers: list[Layer]) -> tuple[list[Layer], list[Layer], Layer]:
    """(body, fully connected block, output layer), dropping a final softmax."""
    while layers and isinstance(layers[-1][1], (nn.Softmax, nn.LogSoftmax)):
        layers = layers[:-1]
    if not layers or not isinstance(layers[-1][1], nn.Linear):
        last = layers[-1][0] if layers else "<empty>"
        raise UnsupportedLayerError(
            f"the network must end in a linear classifier (thesis ch. 5); it ends with {last!r}"
        )
    out = layers[-1]
    start = len(layers) - 1
    while start > 0 and isinstance(layers[start - 1][1], _MLP_TYPES):
        start -= 1
    block = layers[start:-1]
    if not any(isinstance(m, nn.Linear) for _, m in block):
        start, block = len(layers) - 1, []
    return layers[:start], block, out


@torch.no_grad()
def peck_bound(model: nn.Module, x: torch.Tensor, power_iters: int = 20) -> BoundResult:
    """Algorithm 5.1: per-image lower bound on the L2 norm of any top-1-changing perturbation.

    ``x`` is in the model's own input space (0..255 for pixel models). Raises
    :class:`UnsupportedLayerError` naming the first layer without a rule.
    """
    net, normalise, factor = unwrap_pixel_model(model)
    body, block, (out_name, out_layer) = _split_head(sequential_layers(net))
    assert isinstance(out_layer, nn.Linear)
    for name, mod in body:
        if isinstance(mod, nn.Linear):
            body_linear_error = f"fully connected layer {name!r} inside the convolutional body"
            raise UnsupportedLayerError(
                f"cannot bound {body_linear_error}; only a trailing block is covered"
            )
        if mod.training and isinstance(mod, (nn.BatchNorm2d, nn.Dropout)):
            raise ValueError(f"layer {name!r} is in training mode; call model.eval() first")
    with torch.no_grad():
        h = normalise(x) if normalise is not None else x
        inputs: list[torch.Tensor] = []
        for _, mod in body:
            inputs.append(h)
            h = mod(h)
        feats = h
        for _, mod in block:
            h = mod(h)
        predicted = nn.functional.linear(h.flatten(1), out_layer.weight, out_layer.bias).argmax(1)
    kappa = output_bound(out_layer, h.flatten(1), predicted)
    kappas = {out_name: kappa}
    thesis = {out_name: kappa}
    if block:
        t, c = mlp_bound(block, feats, kappa, power_iters)
        kappa = torch.minimum(t, c)
        kappas[block[0][0]], thesis[block[0][0]] = kappa, t
    outputs = [*inputs[1:], feats]
    for (name, mod), x_in, x_out in zip(
        reversed(body), reversed(inputs), reversed(outputs), strict=True
    ):
        rule = RULES[type(mod)]
        lb = rule(mod, x_in, x_out, kappa)
        kappa = lb.used
        kappas[name], thesis[name] = kappa, lb.thesis
    return BoundResult(
        bound_l2=(kappa * factor).float(),
        predicted=predicted,
        kappas=kappas,
        thesis=thesis,
        input_scale=factor,
    )
