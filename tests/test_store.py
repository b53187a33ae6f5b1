"""The perturbation store round-trips directions compactly."""

from __future__ import annotations

import pytest
import torch

from pipeline.store import decode, encode

pytestmark = pytest.mark.unit

SHAPE = (3, 224, 224)


def test_sign_directions_are_one_bit_per_value_and_exact() -> None:
    d = torch.randn(SHAPE).sign()
    enc = encode(d)
    assert enc.codec == "sign1"
    assert len(enc.data) == d.numel() // 8
    assert torch.equal(decode(enc), d)


def test_sign_with_zeros_is_two_bits_and_exact() -> None:
    d = torch.randn(SHAPE).sign()
    d[0, :10] = 0
    enc = encode(d)
    assert enc.codec == "sign2"
    assert len(enc.data) == d.numel() // 4
    assert torch.equal(decode(enc), d)


def test_real_valued_directions_are_float16_accurate() -> None:
    d = torch.randn(SHAPE) * 3.7
    enc = encode(d)
    assert enc.codec == "f16z"
    back = decode(enc)
    peak = d.abs().max()
    assert (back - d).abs().max() <= peak * 2**-10
    assert len(enc.data) < d.numel() * 2  # never worse than raw float16


def test_sparse_directions_compress() -> None:
    d = torch.zeros(SHAPE)
    d[:, 100:120, 50:90] = torch.randn(3, 20, 40)
    enc = encode(d)
    assert len(enc.data) < d.numel() * 2 / 10
