"""``foveabench bench``: the comparison machinery, the ceiling, the docs section.

The peers are an optional extra (``.[bench]``) that the base install used by
CI does not have, so the end-to-end pair skips without ART; the rest runs
everywhere.
"""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from pipeline.bench import (
    PAIRS,
    PairSettings,
    PeerMissing,
    machine,
    measure_ceiling,
    require,
    write_section,
)
from pipeline.bench.ceiling import Ceiling, Profiled, image_passes, least_seconds
from pipeline.bench.images import load_images
from pipeline.bench.report import COLUMNS, SECTION, format_text, table_rows
from pipeline.bench.runner import BenchReport, PairResult, run_pair
from tasks import attacks
from tasks.criterion import TopK


class _SlowBackward(torch.autograd.Function):
    """Identity on the input whose backward takes a known time (as a network's would)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, owner: Slow) -> torch.Tensor:
        ctx.owner = owner
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        time.sleep(ctx.owner.backward_s)
        ctx.owner.slept += ctx.owner.backward_s
        return grad, None


class Slow(nn.Module):
    """A linear classifier whose every forward call and every backward call take a known time."""

    def __init__(self, forward_s: float, backward_s: float, first_call_s: float = 0.0) -> None:
        super().__init__()
        self.lin = nn.Linear(12, 10)
        self.forward_s, self.backward_s, self.first_call_s = forward_s, backward_s, first_call_s
        self.weights_with_grad: list[bool] = []  # seen at each call
        self.slept = 0.0  # network time spent, first call's extra excluded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.weights_with_grad.append(any(p.requires_grad for p in self.parameters()))
        time.sleep(self.forward_s + self.first_call_s)
        self.slept += self.forward_s
        self.first_call_s = 0.0
        return self.lin(_SlowBackward.apply(x, self).flatten(1))

    def exact_ceiling(self, batch: int) -> Ceiling:
        """What :func:`measure_ceiling` would find on an idle machine."""
        fwd, bwd = batch / self.forward_s, batch / self.backward_s
        return Ceiling(batch, "float32", 1, forward_per_s=fwd, graph_per_s=fwd, backward_per_s=bwd)


@pytest.mark.unit
def test_ceiling_is_warm_per_pass_and_input_gradient_only() -> None:
    """Known pass times give known images/s: forward 20 ms, backward 10 ms, batch 4.

    The first call's extra 300 ms (a cold start) is a warm-up pass, never timed.
    """
    model = Slow(forward_s=0.02, backward_s=0.01, first_call_s=0.3)
    ceiling = measure_ceiling(model, torch.rand(3, 3, 2, 2), batch=4, repeats=1)
    assert ceiling.batch == 4 and ceiling.dtype == "float32" and ceiling.repeats == 1
    # Sleeps only ever run long: at most 4 / 0.02 img/s. A timed cold pass would give
    # under 4 / 0.3 = 13 img/s; the lower bounds leave room for a busy machine's jitter.
    assert 40 < ceiling.forward_per_s <= 200
    assert 40 < ceiling.graph_per_s <= 200
    assert 40 < ceiling.backward_per_s <= 400
    assert ceiling.gradient_per_s <= 4 / 0.03
    # Frozen while measured (as the attacks run), restored after.
    assert model.weights_with_grad and not any(model.weights_with_grad)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.unit
def test_no_attack_exceeds_the_ceiling_deepfool_included() -> None:
    """The least time of an attack's passes is the network time it really spent.

    DeepFool makes K backwards per graph forward and its active set shrinks, so
    per gradient it beats one forward+backward (the old yardstick) and it calls
    the model at several batch sizes. Counted pass by pass at each batch size,
    its passes at the ceiling take exactly the time the network spent, never
    more than the attack's wall time.
    """
    torch.manual_seed(0)  # a run of 78 passes at batch sizes 4, 3 and 2
    model = Slow(forward_s=0.004, backward_s=0.002)
    x = torch.rand(4, 3, 2, 2) * 255
    with torch.no_grad():
        labels = model(x).argmax(1)  # correct clean, so every image is attacked
    for p in model.parameters():
        p.requires_grad_(False)  # as load_model leaves a network
    model.slept = 0.0
    profiled = Profiled(model)
    start = time.perf_counter()
    result = attacks.create("deepfool", criterion=TopK(1), candidates=3)(profiled, x, labels)
    seconds = time.perf_counter() - start

    calls = profiled.calls  # the profile agrees with the attack's own query counts
    assert image_passes(calls, "forward") + image_passes(calls, "graph") == int(
        result.n_forward.sum()
    )
    assert image_passes(calls, "backward") == int(result.n_backward.sum()) >= 3 * 4
    assert all(calls["backward", b] == 3 * n for (kind, b), n in calls.items() if kind == "graph")
    assert len({b for _, b in calls}) > 1, "the active set never shrank"

    fwd, bwd = least_seconds(calls, {b: model.exact_ceiling(b) for _, b in calls})
    assert fwd + bwd == pytest.approx(model.slept) and fwd + bwd <= seconds


@pytest.mark.unit
def test_missing_peer_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(PeerMissing, match=r"pip install -e \"\.\[bench\]\""):
        require("surely_not_a_peer_library")
    monkeypatch.setenv("FOVEABENCH_FOOLBOX24", str(tmp_path / "nowhere"))
    monkeypatch.delitem(__import__("sys").modules, "foolbox24", raising=False)
    with pytest.raises(PeerMissing, match=r"--target .*foolbox==2\.4\.0"):
        require("foolbox24")


@pytest.mark.unit
def test_section_is_replaced_and_others_kept(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    write_section(doc, f"{SECTION}\n\nfirst\n")
    doc.write_text(doc.read_text() + "\n## Someone else\n\ntheirs\n")
    write_section(doc, f"{SECTION}\n\nsecond\n")
    text = doc.read_text()
    assert "second" in text and "first" not in text
    assert "## Someone else\n\ntheirs" in text
    assert text.count(SECTION) == 1


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("art") is None, reason="needs the 'bench' extra (ART)")
def test_sign_vs_art_on_real_photos() -> None:
    from pipeline.models.networks import load_model

    model = load_model("efficientnet_lite0")
    images = load_images(model, "sample", None, 2, model.cfg)
    assert len(images.labels) == 2
    result = run_pair("sign", model, images, batch=2, rtol=0.05)
    assert result.skipped is None
    assert isinstance(result, PairResult)
    for value in (
        result.ours_seconds,
        result.peer_seconds,
        result.time_ratio,
        result.cpu_ratio,
        result.norm_ratio,
    ):
        assert math.isfinite(value) and value > 0
    report = BenchReport(
        command="foveabench bench --attacks sign",
        model="efficientnet_lite0",
        images=images,
        batch=2,
        rtol=0.05,
        ceilings={b: measure_ceiling(model, images.x, b, repeats=1) for _, b in result.calls},
        results=[result],
        peak_rss_mib=1.0,
        seconds=1.0,
    )
    text = format_text(report)
    header = text.splitlines()[0]
    for column in (
        "time ours/peer",
        "cpu ours/peer",
        "norm ours/peer",
        "success ours",
        "grad % ceil",
        "net % ceil",
    ):
        assert column in header
    row = text.splitlines()[2].split()
    assert row[0] == "sign"
    numbers = [float(c.rstrip("%")) for c in row[-(len(COLUMNS) - 5) :] if c != "-"]
    assert numbers and all(math.isfinite(v) for v in numbers)
    assert row[-1].endswith("%"), "net % ceil: every batch size of our passes has a ceiling"


@pytest.mark.integration
def test_success_table_counts_only_verified_top5_successes() -> None:
    """Ours only (no peer needed): every claimed success is re-checked under top-5."""
    from pipeline.bench.success import run_success, success_markdown
    from pipeline.models.networks import load_model

    model = load_model("efficientnet_lite0")
    images = load_images(model, "sample", None, 2, model.cfg)
    heard: list[str] = []
    rows = run_success(
        model, images.x, images.labels, batch=2, rtol=0.05, attacks=("sign", "deepfool"),
        params={"deepfool": {"norm": "l2", "candidates": 10}}, log=heard.append,
    )  # fmt: skip
    assert [r.attack for r in rows] == ["sign", "deepfool"]
    for r in rows:
        assert r.n == 2 and r.verified == r.claimed == 2 and r.rate == 1.0
        assert math.isfinite(r.median) and r.median > 0
    table = success_markdown(rows)
    assert len(table) == 4 and "100.0%" in table[2] and "norm=l2" in table[3]
    assert heard == table[2:], "each attack's row is logged as it finishes (long tables)"


@pytest.mark.unit
@pytest.mark.parametrize("name", PAIRS.names())
def test_pair_is_one_declaration_read_from_the_attack(name: str) -> None:
    """Norms come from the attack class; shared settings exist once and are renamed for the peer."""
    pair = PAIRS.get(name)
    ours = attacks.create(pair.attack, **pair.params)  # our side accepts every parameter given
    assert pair.norm == ours.norm
    assert set(pair.peer_names) <= set(pair.shared), "a rename of a setting that is not shared"
    settings = PairSettings(batch=8, rtol=0.01, ours_median=1.0)
    kwargs = pair.peer_kwargs(settings)
    for ours, value in pair.shared.items():
        assert kwargs[pair.peer_names.get(ours, ours)] == value
    described = pair.describe_peer(settings)
    assert described.startswith(pair.peer_call + "(")
    assert all(f"{k}=" in described for k in kwargs)


@pytest.mark.unit
def test_machine_names_the_real_device() -> None:
    text = machine.describe("cpu")
    assert machine.cpu_model() in text and f"{machine.cores()} cores" in text
    if torch.cuda.is_available():
        assert str(torch.cuda.device_count()) + " x " in text and "not used" in text
    else:
        assert "no CUDA device" in text


def test_the_table_gives_wall_and_cpu_time_ratios_per_image() -> None:
    """On a shared machine the wall ratio moves with the other work; the CPU-time ratio
    (this process's CPU seconds on each side) is printed beside it, per image."""
    result = PairResult(
        pair="ddn-ce", attack="ddn", peer="adv_lib ddn", norm="l2", ours_settings="",
        peer_settings="", n_ours=4, n_peer=2, ours_seconds=8.0, peer_seconds=2.0,
        ours_success=1.0, peer_success=1.0, ours_median=9.0, peer_median=10.0, n_paired=2,
        n_forward=10, n_backward=8, ours_cpu_seconds=6.0, peer_cpu_seconds=1.0,
    )  # fmt: skip
    assert result.time_ratio == 2.0 and result.cpu_ratio == 3.0
    report = BenchReport(
        command="foveabench bench --attacks ddn-ce", model="m", images=None,  # type: ignore[arg-type]
        batch=4, rtol=0.01, ceilings={}, results=[result], peak_rss_mib=1.0, seconds=1.0,
    )  # fmt: skip
    (row,) = table_rows(report)
    cells = dict(zip(COLUMNS, row, strict=True))
    assert cells["attack"] == "ddn-ce"
    assert cells["time ours/peer"] == "2" and cells["cpu ours/peer"] == "3"
