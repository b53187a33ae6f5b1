"""The sign search finds the closed-form minimal Linf scale of binary linear models."""

from __future__ import annotations

import pytest
import torch

from tasks import attacks
from tasks.criterion import TopK
from tasks.linesearch import LineSearch
from tests.linear import binary_linf_minimum, random_linear

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("loss", ["ce", "score"])
def test_sign_hits_exact_binary_linf_minimum(loss: str) -> None:
    model, x = random_linear(2)
    if loss == "score":  # the true-score gradient is optimal when w_1 = -w_0
        model.weight.data[1] = -model.weight.data[0]
    labels = model(x).argmax(1)
    expected = binary_linf_minimum(model, x, labels)
    result = attacks.create("sign", criterion=TopK(1), bounds=None, loss=loss)(model, x, labels)
    assert result.success.all()
    linf = result.norms()["linf"]
    torch.testing.assert_close(linf, expected, rtol=1e-2, atol=0)
    assert (linf >= expected * (1 - 1e-6)).all(), "below the true minimum: impossible"
    assert (model(x + result.perturbation).argmax(1) != labels).all()


def test_line_search_precision_is_what_it_states() -> None:
    model, x = random_linear(2, seed=3)
    labels = model(x).argmax(1)
    expected = binary_linf_minimum(model, x, labels)
    for rtol in (1e-1, 1e-3):
        search = LineSearch(rtol=rtol)
        res = attacks.create("sign", criterion=TopK(1), bounds=None, loss="ce", line_search=search)
        linf = res(model, x, labels).norms()["linf"]
        assert ((linf - expected) / expected).max() <= rtol
