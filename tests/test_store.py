"""The perturbation store round-trips directions compactly."""

from __future__ import annotations

import pytest
import torch

from pipeline.results.codec import decode, encode, roundtrip

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


def test_real_valued_directions_are_8_bit_accurate_and_round_trip_exactly() -> None:
    d = torch.randn(SHAPE) * 3.7
    enc = encode(d)
    assert enc.codec == "q8z"
    back = decode(enc)
    peak = d.abs().max()
    assert (back - d).abs().max() <= peak / 254 * 1.0001
    assert len(enc.data) <= d.numel() * 1.01  # at most one byte per value (zstd framing)
    # what the attack's line search sees is what the store gives back, bit for bit
    assert torch.equal(roundtrip(d[None])[0], back)
    assert torch.equal(decode(encode(back)), back)


def test_sparse_directions_compress() -> None:
    d = torch.zeros(SHAPE)
    d[:, 100:120, 50:90] = torch.randn(3, 20, 40)
    enc = encode(d)
    assert len(enc.data) < d.numel() / 10
