"""The GPU check script runs anywhere: on a machine without CUDA it says so and exits 0."""

from __future__ import annotations

import pytest
import torch

from pipeline.bench.gpu_check import main

pytestmark = pytest.mark.unit


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the check measures (minutes)")
def test_without_cuda_the_gpu_check_says_so_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out
