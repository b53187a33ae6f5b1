"""Runs the pairs: ours on every image, the peer on the first M, both re-checked alike.

* **Same criterion for both sides.** The peers only know top-1
  misclassification, so our attack runs with ``TopK(1)`` in every pair, and
  every adversarial image (ours and the peer's) is re-checked by one forward
  of the same float32 model; a peer's claimed success that does not hold on
  re-check is a failure.
* **Same norm**, the one our attack class minimises (``Pair.norm``), in 0..255
  pixel units (docs/protocol.md).
* **Paired medians.** Medians are over the images both sides fooled, so a
  side that fails on hard images is not rewarded with a smaller median.
* **Time per image.** A peer too slow for all N images runs on the first M
  (said in the table); ratios are of seconds per image.
* **The ceiling** (:mod:`pipeline.bench.ceiling`): every network pass of our
  attack is recorded with its batch size, the passes are timed alone at those
  batch sizes, and the table shows the share of our wall time they need.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.bench import machine
from pipeline.bench.ceiling import Ceiling, Pass, Profiled, least_seconds, measure_ceiling
from pipeline.bench.images import BenchImages, load_images
from pipeline.bench.pairs import PAIRS, PairSettings
from pipeline.bench.peers import PeerMissing
from pipeline.bench.success import SuccessRow, run_success
from tasks import norms
from tasks.attacks import create
from tasks.criterion import TopK
from tasks.linesearch import LineSearch

#: The criterion of every pair: the peers only implement top-1.
PAIR_CRITERION = TopK(1)


@dataclass
class PairResult:
    """Measured outcome of one pair (norms in 0..255 pixel units)."""

    pair: str
    attack: str
    peer: str
    norm: str
    ours_settings: str
    peer_settings: str
    n_ours: int
    n_peer: int
    ours_seconds: float
    peer_seconds: float
    ours_success: float
    peer_success: float
    ours_median: float  # paired median (images both fooled)
    peer_median: float
    n_paired: int
    n_forward: int
    n_backward: int
    calls: dict[tuple[Pass, int], int] = field(default_factory=dict)  # our network passes
    skipped: str | None = None
    peer_unfinished: int = 0  # images the peer was still working on when its budget ran out
    #: CPU seconds of this process (all threads) on each side: on a shared machine the
    #: wall-time ratio moves with the other work, the CPU-time ratio much less
    ours_cpu_seconds: float = float("nan")
    peer_cpu_seconds: float = float("nan")

    @property
    def peer_per_image(self) -> float:
        """Peer seconds per finished image; with none finished, a lower bound (all its time)."""
        return self.peer_seconds / max(self.n_peer, 1)

    @property
    def time_ratio(self) -> float:
        """Ours / peer, in seconds per image (an upper bound if the peer did not finish one)."""
        return (self.ours_seconds / self.n_ours) / self.peer_per_image

    @property
    def cpu_ratio(self) -> float:
        """Ours / peer, in CPU seconds per image (what the wall-time ratio is under load)."""
        return (self.ours_cpu_seconds / self.n_ours) / (self.peer_cpu_seconds / max(self.n_peer, 1))

    @property
    def norm_ratio(self) -> float:
        return self.ours_median / self.peer_median if self.peer_median > 0 else float("nan")

    def ceiling_shares(self, ceilings: dict[int, Ceiling]) -> tuple[float, float]:
        """(forward, backward): shares of our wall time our passes need at the ceiling."""
        if not self.calls or any(b not in ceilings for _, b in self.calls):
            return float("nan"), float("nan")
        fwd, bwd = least_seconds(self.calls, ceilings)
        return fwd / self.ours_seconds, bwd / self.ours_seconds


def _median(values: torch.Tensor) -> float:
    return float(statistics.median(values.tolist())) if values.numel() else float("nan")


def _checked(
    model: nn.Module, x: torch.Tensor, adv: torch.Tensor, labels: torch.Tensor, batch: int
) -> torch.Tensor:
    """Which adversarial images fool ``model`` under the pair criterion, inside [0, 255]."""
    ok = []
    for i in range(0, len(x), batch):
        a = adv[i : i + batch]
        with torch.no_grad():
            logits = model(a)
        inside = (a.flatten(1).amin(1) >= -1e-4) & (a.flatten(1).amax(1) <= 255 + 1e-4)
        ok.append(PAIR_CRITERION.is_adversarial(logits, labels[i : i + batch]) & inside)
    return torch.cat(ok)


def run_pair(
    name: str,
    model: nn.Module,
    images: BenchImages,
    batch: int,
    rtol: float,
    peer_images: int | None = None,
    ceilings: dict[int, Ceiling] | None = None,
) -> PairResult:
    """Run our attack on all images, then the peer on the first M, and compare.

    With ``ceilings``, the batch sizes our attack used that it lacks are timed
    right after the attack (before the peer), under the load the attack saw.
    """
    pair = PAIRS.get(name)
    x, y = images.x[: pair.max_images], images.labels[: pair.max_images]
    attack = create(
        pair.attack, criterion=PAIR_CRITERION, line_search=LineSearch(rtol=rtol), **pair.params
    )
    profiled = Profiled(model)
    start, cpu_start = time.perf_counter(), time.process_time()
    results = [
        attack(profiled, x[i : i + batch], y[i : i + batch]) for i in range(0, len(x), batch)
    ]
    ours_seconds, ours_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if ceilings is not None:
        for b in sorted({b for _, b in profiled.calls} - set(ceilings)):
            ceilings[b] = measure_ceiling(model, x, b)
    ours_norm = torch.cat([r.norms()[pair.norm] for r in results])
    ours_ok = torch.cat([r.success for r in results])

    m = min(len(x), peer_images or pair.max_peer_images or len(x))
    settings = PairSettings(batch=batch, rtol=rtol, ours_median=_median(ours_norm[ours_ok]))
    base: dict[str, Any] = {
        "pair": name,
        "attack": pair.attack,
        "peer": pair.peer,
        "norm": pair.norm,
        "ours_settings": pair.describe_ours(),
        "peer_settings": pair.describe_peer(settings),
        "n_ours": len(x),
        "n_peer": m,
        "ours_seconds": ours_seconds,
        "ours_cpu_seconds": ours_cpu,
        "ours_success": float(ours_ok.float().mean()),
        "n_forward": int(sum(int(r.n_forward.sum()) for r in results)),
        "n_backward": int(sum(int(r.n_backward.sum()) for r in results)),
        "calls": dict(profiled.calls),
    }
    try:
        start, cpu_start = time.perf_counter(), time.process_time()
        adv = pair.run_peer(model, x[:m], y[:m], pair.peer_kwargs(settings), settings)
        peer_seconds, peer_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    except PeerMissing as exc:
        nan = float("nan")
        return PairResult(
            **base, peer_seconds=nan, peer_success=nan, ours_median=nan, peer_median=nan,
            n_paired=0, skipped=str(exc),
        )  # fmt: skip
    finished = ~adv.flatten(1).isnan().any(1)
    n_done = int(finished.sum())
    adv, xm, ym = adv[finished], x[:m][finished], y[:m][finished]
    peer_ok = _checked(model, xm, adv, ym, batch) if n_done else torch.zeros(0, dtype=torch.bool)
    peer_norm = norms.all_norms(adv - xm)[pair.norm] if n_done else torch.zeros(0)
    both = peer_ok & ours_ok[:m][finished]
    base["n_peer"] = n_done
    return PairResult(
        **base,
        peer_unfinished=m - n_done,
        peer_seconds=peer_seconds,
        peer_cpu_seconds=peer_cpu,
        peer_success=float(peer_ok.float().mean()),
        ours_median=_median(ours_norm[:m][finished][both]),
        peer_median=_median(peer_norm[both]),
        n_paired=int(both.sum()),
    )


@dataclass
class BenchReport:
    """Everything the table and docs/benchmarks.md show."""

    command: str
    model: str
    images: BenchImages
    batch: int
    rtol: float
    ceilings: dict[int, Ceiling]  # by batch size: every size our attacks called the model with
    results: list[PairResult]
    peak_rss_mib: float
    seconds: float
    success: list[SuccessRow] = field(default_factory=list)
    device: str = "cpu"
    load: tuple[float, float] | None = None  # 1-minute load average at start and end

    def machine(self) -> str:
        return machine.describe(self.device)


def success_params() -> dict[str, dict[str, Any]]:
    """The top-5 success table runs the pairs' settings where a pair fixes them
    (C&W's 9 x 1000 default steps are a GPU budget, not a 2-core CPU one)."""
    return {name: PAIRS.get(name).params for name in ("deepfool", "cw")}


def run_bench(
    model_name: str,
    attacks: Sequence[str],
    n_images: int,
    batch: int,
    rtol: float,
    layout: str,
    root: str | Path | None,
    command: str,
    peer_images: int | None = None,
    log: Callable[[str], None] = print,
    success_attacks: Sequence[str] = (),
    success_defaults: bool = False,
) -> BenchReport:
    """Load the model and photos once; run every pair, timing the network alone at
    every batch size our attacks called it with (the ceiling). The success table
    runs the pairs' settings, or every attack's defaults with ``success_defaults``."""
    from pipeline.models.networks import load_model

    unknown = [a for a in attacks if a not in PAIRS]
    if unknown:
        raise ValueError(f"no peer pair for {unknown}; pairs: {PAIRS.names()}")
    start, load_start = time.perf_counter(), machine.load_average()
    model = load_model(model_name)
    images = load_images(model, layout, root, n_images, model.cfg)
    results = []
    ceilings: dict[int, Ceiling] = {}
    for name in attacks:
        log(f"{name} vs {PAIRS.get(name).peer} (and the ceiling at batch sizes new to it) ...")
        result = run_pair(name, model, images, batch, rtol, peer_images, ceilings)
        if result.skipped:
            log(f"  skipped: {result.skipped}")
        else:
            log(
                f"  ours {result.ours_seconds:.1f} s, peer {result.peer_seconds:.1f} s "
                f"({result.n_peer} images), norm ratio {result.norm_ratio:.3f}"
            )
        results.append(result)
    success = []
    if success_attacks:
        log(f"success under top-5: {', '.join(success_attacks)} ...")
        success = run_success(
            model,
            images.x,
            images.labels,
            batch,
            rtol,
            success_attacks,
            None if success_defaults else success_params(),
            log=log,
        )
    return BenchReport(
        command=command,
        model=model_name,
        images=images,
        batch=batch,
        rtol=rtol,
        ceilings=ceilings,
        results=results,
        peak_rss_mib=machine.peak_rss_mib(),
        seconds=time.perf_counter() - start,
        success=success,
        device=str(next(model.parameters()).device),
        load=None if load_start is None else (load_start, machine.load_average() or 0.0),
    )
