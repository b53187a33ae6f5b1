"""How often our attacks succeed under the benchmark's own criterion (top-5), no peer.

The pairs run under top-1 because the peers know nothing else; the pipeline
runs top-5. This table runs each attack as the pipeline would, on the bench's
photos, and counts every success again with one forward of the same model
(adversarial under top-5 and inside [0, 255]), so a success is never taken on
the attack's word.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tasks.attacks import create
from tasks.criterion import TopK
from tasks.linesearch import LineSearch

CRITERION = TopK(5)
DEFAULT_ATTACKS = ("bfgs", "sign", "deepfool", "cw", "ddn")


@dataclass(frozen=True)
class SuccessRow:
    attack: str
    norm: str  # the attack's native norm, read from its class
    params: str
    n: int
    claimed: int  # successes the attack reported
    verified: int  # successes that hold on an independent forward
    median: float  # of the native norm over verified successes
    seconds: float

    @property
    def rate(self) -> float:
        return self.verified / self.n if self.n else float("nan")


def _verified(
    model: nn.Module, x: torch.Tensor, adv: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    with torch.no_grad():
        fooled = CRITERION.is_adversarial(model(adv), y)
    inside = (adv.flatten(1).amin(1) >= -1e-4) & (adv.flatten(1).amax(1) <= 255 + 1e-4)
    return fooled & inside


def run_success(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    rtol: float,
    attacks: Sequence[str] = DEFAULT_ATTACKS,
    params: dict[str, dict[str, Any]] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[SuccessRow]:
    """Each attack on every image under top-5; ``params`` per attack override its defaults.

    ``log`` hears each attack's row as it finishes (a long table shows progress)."""
    rows = []
    for name in attacks:
        kwargs = (params or {}).get(name, {})
        attack = create(name, criterion=CRITERION, line_search=LineSearch(rtol=rtol), **kwargs)
        norm = attack.norm  # the norm it minimises with these parameters: its median's unit
        claimed = verified = 0
        found: list[float] = []
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            xb, yb = x[i : i + batch], y[i : i + batch]
            result = attack(model, xb, yb)
            ok = result.success & _verified(model, xb, xb + result.perturbation, yb)
            claimed += int(result.success.sum())
            verified += int(ok.sum())
            found += result.norms()[norm][ok].tolist()
        rows.append(
            SuccessRow(
                attack=name,
                norm=norm,
                params=", ".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults",
                n=len(x),
                claimed=claimed,
                verified=verified,
                median=float(statistics.median(found)) if found else float("nan"),
                seconds=time.perf_counter() - start,
            )
        )
        if log is not None:
            log(success_markdown(rows[-1:])[-1])
    return rows


def success_markdown(rows: Sequence[SuccessRow]) -> list[str]:
    lines = [
        "| attack | params | images | success (verified, top-5) | claimed | median norm (0..255) | s/img |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.attack} | {r.params} | {r.n} | {r.rate:.1%} | {r.claimed} | "
            f"{r.norm} {r.median:.4g} | {r.seconds / max(r.n, 1):.3g} |"
        )
    return lines
