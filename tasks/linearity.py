"""Linearity of the network along a perturbation (Luo et al. sec. 3, Fig. 4, 6, 9-12).

Scores are the pre-softmax logit of the true class. ``f(e)`` — the network
applied to the perturbation alone — needs an input that the network treats as
"zero": in Caffe the input is mean-subtracted, so ``f(e)`` meant the mean image
plus ``e``. Here the model takes 0..255 pixels and normalises inside, so we
evaluate ``f(reference + a e)`` with ``reference`` = the normalisation mean in
pixel units (no clipping: it is a probe of the linear hypothesis, not an image).

Every score is one query of a :class:`~tasks.probing.ScoreQueue`, so the probes
ride along in the evaluation's rounds; repeated points (``a = 1`` and ``a = 2``
of Fig. 12, the shared ``f(x)``) are asked once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from tasks.context import PIXEL_BOUNDS
from tasks.evaluation.conditions import ConditionBatch
from tasks.probing import Query, ScoreQueue, aggregate


@dataclass
class Effect:
    """Fig. 6 for one foveation ``T``: the image's and the perturbation's score change.

    ``base`` / ``view`` present the images without / with the foveation (the
    view's direction moved as the condition moves it); ``base=None``: the probe's
    own ``x`` and ``x + e*`` (asked once for both). ``items``: for each image
    measured, (its index in ``base``, in ``view``, its row in the probe's batch,
    the scale that puts ``e*`` on it).
    """

    base: ConditionBatch | None
    view: ConditionBatch
    items: list[tuple[int, int, int, float]]
    image: torch.Tensor = field(default_factory=lambda: torch.empty(0))  # f(x) - f(T(x))
    perturbation: torch.Tensor = field(default_factory=lambda: torch.empty(0))


@dataclass
class Linearity:
    """Per image: the Fig. 4/9-11 curves and the Fig. 12 errors (after the flush)."""

    alphas: list[float]
    response: torch.Tensor = field(default_factory=lambda: torch.empty(0))  # f(x+a e)-f(x)
    alone: torch.Tensor = field(default_factory=lambda: torch.empty(0))  # f(ref + a e)
    err_interpolation: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    err_alone: torch.Tensor = field(default_factory=lambda: torch.empty(0))


class LinearityProbe:
    """Queues every linearity and Fig. 6 score once; computes the curves after the flush."""

    def __init__(
        self,
        x: torch.Tensor,
        e: torch.Tensor,
        labels: torch.Tensor,
        alphas: list[float],
        reference: torch.Tensor,
        effects: dict[str, Effect] | None = None,
    ) -> None:
        self.x, self.e, self.labels = x, e, labels
        self.reference = reference
        self.out = Linearity(list(alphas))
        self.effects = effects or {}
        self.points = sorted({*alphas, 0.0, 1.0, 2.0})
        self._on_x: dict[tuple[int, float], Query] = {}
        self._alone: dict[tuple[int, float], Query] = {}
        self._fx: dict[tuple[str, str, int, int], Query] = {}
        self.image_forwards = torch.zeros(x.shape[0], dtype=torch.long)

    def __call__(self, queue: ScoreQueue, round_index: int) -> Callable[[], bool]:
        """A rider of :func:`tasks.evaluation.engine.evaluate`: everything in the first round."""
        lo, hi = PIXEL_BOUNDS
        for j in range(self.x.shape[0]):
            for a in self.points:
                xj, ej = self.x[j : j + 1], self.e[j : j + 1]
                self._on_x[(j, a)] = queue.add(1, partial(_along, xj, ej, a, (lo, hi)))
                self.image_forwards[j] += 1
                if a != 0.0 or j == 0:  # f(reference) is the same for every image
                    self._alone[(j, a)] = queue.add(1, partial(_along, self.reference, ej, a, None))
                    self.image_forwards[j] += 1
        for name, effect in self.effects.items():
            for kb, kv, j, scale in effect.items:
                for which, cond, k in (("base", effect.base, kb), ("view", effect.view, kv)):
                    for on in (0, 1):
                        if cond is None:
                            self._fx[(name, which, j, on)] = self._on_x[(j, float(on))]
                            continue
                        at = scale * on
                        q = queue.add(
                            cond.n_views(k), partial(cond.inputs, k, at), cond.keys(k, at)
                        )
                        self._fx[(name, which, j, on)] = q
                        self.image_forwards[j] += len(q.compute)
        return self._finish

    def _finish(self) -> bool:
        n = self.x.shape[0]
        y = self.labels

        def score(q: Query, j: int, how: str = "logit") -> float:
            return float(aggregate(q.logits, how)[y[j]])

        on_x = torch.tensor([[score(self._on_x[(j, a)], j) for a in self.points] for j in range(n)])
        alone = torch.tensor(
            [
                [score(self._alone.get((j, a), self._alone[(0, 0.0)]), j) for a in self.points]
                for j in range(n)
            ]
        )
        at = {a: k for k, a in enumerate(self.points)}
        f_x = on_x[:, at[0.0]]
        cols = [at[a] for a in self.out.alphas]
        self.out.response = on_x[:, cols] - f_x[:, None]
        self.out.alone = alone[:, cols]
        f_1, f_2 = on_x[:, at[1.0]], on_x[:, at[2.0]]
        self.out.err_interpolation = (f_1 - (f_x + f_2) / 2).abs()
        self.out.err_alone = ((f_1 - f_x) - alone[:, at[1.0]]).abs()
        for name, effect in self.effects.items():

            def term(
                which: str, on: int, name: str = name, effect: Effect = effect
            ) -> torch.Tensor:
                return torch.tensor(
                    [score(self._fx[(name, which, j, on)], j) for _, _, j, _ in effect.items]
                )

            f_x, f_xe, t_x, t_xe = (
                term("base", 0),
                term("base", 1),
                term("view", 0),
                term("view", 1),
            )
            effect.image = f_x - t_x
            effect.perturbation = (f_xe - f_x) - (t_xe - t_x)
        return False


def _along(
    x: torch.Tensor, e: torch.Tensor, a: float, bounds: tuple[float, float] | None, _: list[int]
) -> torch.Tensor:
    """``x + a e`` (clipped to ``bounds``): one probe input (a single view)."""
    out = x + a * e
    return out if bounds is None else out.clamp(*bounds)
