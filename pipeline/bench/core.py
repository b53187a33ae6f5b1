"""Ours vs the peers, in one process, on the same model and the same pixels.

Each comparison is one :class:`Pair` in :data:`PAIRS`: our registry attack with
its parameters, and a function that runs the peer on the same 0..255 images
and returns its adversarial images. Everything else is shared:

* **Same criterion for both sides.** The peers only know top-1
  misclassification, so our attack runs with ``TopK(1)`` in every pair, and
  every adversarial image (ours and the peer's) is re-checked by one forward
  of the same float32 model; a peer's claimed success that does not hold on
  re-check is a failure.
* **Same norm.** The norm the pair's attacks both minimise (``linf`` for
  sign/FGSM, ``l1pp`` for L-BFGS with Foolbox's MAE distance, ``l2`` for
  DeepFool and C&W), in 0..255 pixel units (DESIGN.md).
* **Paired medians.** Medians are over the images both sides fooled, so a
  side that fails on hard images is not rewarded with a smaller median.
* **Time per image.** A peer too slow for all N images runs on the first M
  (said in the table); ratios are of seconds per image.
* **The ceiling.** :func:`measure_ceiling` times a plain loss-gradient pass
  (and a plain forward) at the bench's batch size; each attack's achieved
  gradient evaluations per second, from our ``n_backward`` counts, is shown
  as a fraction of it, which says how much of the gap to the hardware is
  bookkeeping rather than arithmetic.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.bench.peers import (
    PeerMissing,
    art_fgsm_minimal,
    foolbox3_minimization,
    foolbox24_lbfgs,
)
from pipeline.bench.success import SuccessRow, run_success, success_markdown
from tasks import norms
from tasks.attacks import create
from tasks.criterion import TopK
from tasks.linesearch import LineSearch

#: The criterion of every pair: the peers only implement top-1.
PAIR_CRITERION = TopK(1)

PeerFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, "PairSettings"], torch.Tensor]


@dataclass(frozen=True)
class PairSettings:
    """What a peer may depend on besides the images: the bench's knobs and our result."""

    batch: int
    rtol: float
    ours_median: float  # our median norm on these images (sets ART's step: same precision)


@dataclass(frozen=True)
class Pair:
    """One comparison: our attack and how to run the peer that does the same job."""

    attack: str
    peer: str
    norm: str  # "linf" | "l2" | "l1pp": the norm both sides minimise
    run_peer: PeerFn
    describe_peer: Callable[[PairSettings], str]
    params: dict[str, Any] = field(default_factory=dict)
    max_peer_images: int | None = None  # peers too slow for N images run on the first M
    max_images: int | None = None  # both sides, when even ours is too slow for N on this machine


def _art_step(s: PairSettings) -> float:
    # ART's linear search has absolute precision eps_step; ours is relative
    # (rtol). They agree at our median norm.
    return max(s.rtol * s.ours_median, 1e-3)


ART_MAX_EPS = 16.0
#: Foolbox 2.4's L-BFGS takes many minutes per ImageNet image on a CPU; past
#: this budget the unfinished image's time is reported as a lower bound.
LBFGS_BUDGET_S = 240.0  # Linf cap of ART's linear search, 0..255 units


def _run_art(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: PairSettings) -> torch.Tensor:
    return art_fgsm_minimal(model, x, y, eps_step=_art_step(s), eps=ART_MAX_EPS, batch_size=s.batch)


def _batched(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> Callable[..., torch.Tensor]:
    def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: PairSettings) -> torch.Tensor:
        del model
        return torch.cat(
            [fn(x[i : i + s.batch], y[i : i + s.batch]) for i in range(0, len(x), s.batch)]
        )

    return run


DEEPFOOL = {"steps": 50, "candidates": 10, "overshoot": 0.02}
CW = {
    "binary_search_steps": 5,
    "steps": 100,
    "stepsize": 0.01,
    "initial_const": 1e-3,
    "confidence": 0.0,
}


def _fb3(attack: str, kwargs: dict[str, Any]) -> PeerFn:
    def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: PairSettings) -> torch.Tensor:
        return _batched(
            lambda xb, yb: foolbox3_minimization(model, xb, yb, attack=attack, **kwargs)
        )(model, x, y, s)

    return run


def _kw(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


PAIRS: dict[str, Pair] = {
    "sign": Pair(
        attack="sign",
        peer="ART FastGradientMethod",
        norm="linf",
        params={"loss": "ce"},  # FGSM's loss, as ART uses: same direction definition
        run_peer=_run_art,
        # ART's linear search costs (hardest image's Linf / eps_step) forwards of the
        # whole batch: thousands at our precision, so it gets the first 4 images.
        max_peer_images=4,
        describe_peer=lambda s: (
            f"FastGradientMethod(norm=inf, minimal=True, eps_step={_art_step(s):.4g}/255, "
            f"eps={ART_MAX_EPS:g}/255, batch_size={s.batch})"
        ),
    ),
    "sign-score": Pair(
        attack="sign",
        peer="ART FastGradientMethod",
        norm="linf",
        params={"loss": "score"},  # Luo et al.'s loss (our default) vs ART's cross-entropy
        run_peer=_run_art,
        describe_peer=lambda s: (
            f"FastGradientMethod(norm=inf, minimal=True, eps_step={_art_step(s):.4g}/255, "
            f"eps={ART_MAX_EPS:g}/255, batch_size={s.batch}); ours with loss=score"
        ),
    ),
    "bfgs": Pair(
        attack="bfgs",
        peer="Foolbox 2.4 LBFGSAttack",
        norm="l1pp",
        run_peer=lambda m, x, y, s: foolbox24_lbfgs(
            m, x, y, distance="MAE", maxiter=150, budget_s=LBFGS_BUDGET_S
        ),
        describe_peer=lambda s: (
            "v1.attacks.LBFGSAttack(criterion=Misclassification(), distance=MAE)"
            f"(maxiter=150, epsilon=1e-5), per image, wall budget {LBFGS_BUDGET_S:g} s"
        ),
        max_peer_images=2,
        max_images=16,
    ),
    "deepfool": Pair(
        attack="deepfool",
        peer="Foolbox 3 L2DeepFoolAttack",
        norm="l2",
        params={"norm": "l2", "candidates": 10, "overshoot": 0.02, "max_iter": 50},
        run_peer=_fb3("L2DeepFoolAttack", DEEPFOOL),
        describe_peer=lambda s: f"L2DeepFoolAttack({_kw(DEEPFOOL)}), loss=logits",
        max_peer_images=16,
    ),
    "cw": Pair(
        attack="cw",
        peer="Foolbox 3 L2CarliniWagnerAttack",
        norm="l2",
        params={
            "binary_steps": 5,
            "max_iter": 100,
            "lr": 0.01,
            "initial_const": 1e-3,
            "kappa": 0.0,
        },
        run_peer=_fb3("L2CarliniWagnerAttack", CW),
        describe_peer=lambda s: f"L2CarliniWagnerAttack({_kw(CW)}), abort_early=True",
        max_images=4,
    ),
}


#: The top-5 success table runs the pairs' settings where a pair fixes them
#: (C&W's 9 x 1000 default steps are a GPU budget, not a 2-core CPU one).
SUCCESS_PARAMS = {"deepfool": PAIRS["deepfool"].params, "cw": PAIRS["cw"].params}


# ----------------------------------------------------------------------------- images


@dataclass
class BenchImages:
    """The photos of the bench: correct clean under the pair criterion."""

    x: torch.Tensor
    labels: torch.Tensor
    image_ids: list[str]
    examined: int
    top5_correct: int
    top1_correct: int


def load_images(
    model: nn.Module, layout: str, root: str | Path | None, n: int, cfg: Any
) -> BenchImages:
    """First ``n`` photos (by image_id) the model classifies correctly top-1.

    Top-1 because every pair runs under top-1 (the peers' criterion): an image
    that is top-5 but not top-1 correct is already adversarial and would put
    zeros into both medians. The counts of both are reported.
    """
    from pipeline.data import build_manifest
    from pipeline.images import load_batch

    table = build_manifest(layout, root).table.to_pylist()
    xs, ys, ids = [], [], []
    examined = top5 = top1 = 0
    for start in range(0, len(table), 32):
        rows = table[start : start + 32]
        x = load_batch([r["path"] for r in rows], cfg)
        y = torch.tensor([int(r["label"]) for r in rows])
        with torch.no_grad():
            logits = model(x)
        ok5 = ~TopK(5).is_adversarial(logits, y)
        ok1 = ~TopK(1).is_adversarial(logits, y)
        examined += len(rows)
        top5 += int(ok5.sum())
        top1 += int(ok1.sum())
        for i in ok1.nonzero().squeeze(1).tolist():
            xs.append(x[i])
            ys.append(y[i])
            ids.append(str(rows[i]["image_id"]))
        if len(xs) >= n:
            break
    return BenchImages(
        x=torch.stack(xs[:n]),
        labels=torch.stack(ys[:n]),
        image_ids=ids[:n],
        examined=examined,
        top5_correct=top5,
        top1_correct=top1,
    )


# ----------------------------------------------------------------------------- ceiling


@dataclass(frozen=True)
class Ceiling:
    """What the model itself sustains on this machine at the bench's batch size."""

    batch: int
    forward_per_s: float  # images/s, no-grad forward
    gradient_per_s: float  # images/s, forward + backward of a loss w.r.t. the input


def measure_ceiling(model: nn.Module, x: torch.Tensor, batch: int, repeats: int = 3) -> Ceiling:
    """Images/s of a plain forward and of a plain input-gradient pass (best of ``repeats``).

    Best-of rather than mean: the ceiling is what the machine *can* do; noise
    only ever slows a pass down.
    """
    xb = x[:batch]
    if xb.shape[0] < batch:  # repeat images to reach the batch size
        xb = xb.repeat((batch + xb.shape[0] - 1) // xb.shape[0], 1, 1, 1)[:batch]
    labels = torch.zeros(batch, dtype=torch.long)

    def grad_pass() -> None:
        xi = xb.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = nn.functional.cross_entropy(model(xi), labels)
            torch.autograd.grad(loss, xi)

    def fwd_pass() -> None:
        with torch.no_grad():
            model(xb)

    def best(fn: Callable[[], None]) -> float:
        fn()  # warm-up (allocator, kernels)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return batch / min(times)

    return Ceiling(batch=batch, forward_per_s=best(fwd_pass), gradient_per_s=best(grad_pass))


# ----------------------------------------------------------------------------- one pair


@dataclass
class PairResult:
    """Measured outcome of one pair (norms in 0..255 pixel units)."""

    pair: str
    attack: str
    peer: str
    norm: str
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
    skipped: str | None = None
    peer_unfinished: int = 0  # images the peer was still working on when its budget ran out

    @property
    def peer_per_image(self) -> float:
        """Peer seconds per finished image; with none finished, a lower bound (all its time)."""
        return self.peer_seconds / max(self.n_peer, 1)

    @property
    def time_ratio(self) -> float:
        """Ours / peer, in seconds per image (an upper bound if the peer did not finish one)."""
        return (self.ours_seconds / self.n_ours) / self.peer_per_image

    @property
    def norm_ratio(self) -> float:
        return self.ours_median / self.peer_median if self.peer_median > 0 else float("nan")


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
    pairs: dict[str, Pair] | None = None,
) -> PairResult:
    """Run our attack on all images, then the peer on the first M, and compare."""
    pair = (pairs or PAIRS)[name]
    x, y = images.x[: pair.max_images], images.labels[: pair.max_images]
    attack = create(
        pair.attack, criterion=PAIR_CRITERION, line_search=LineSearch(rtol=rtol), **pair.params
    )
    start = time.perf_counter()
    results = [attack(model, x[i : i + batch], y[i : i + batch]) for i in range(0, len(x), batch)]
    ours_seconds = time.perf_counter() - start
    ours_norm = torch.cat([r.norms()[pair.norm] for r in results])
    ours_ok = torch.cat([r.success for r in results])
    n_forward = int(sum(int(r.n_forward.sum()) for r in results))
    n_backward = int(sum(int(r.n_backward.sum()) for r in results))

    m = min(len(x), peer_images or pair.max_peer_images or len(x))
    settings = PairSettings(batch=batch, rtol=rtol, ours_median=_median(ours_norm[ours_ok]))
    base: dict[str, Any] = {
        "pair": name,
        "attack": pair.attack,
        "peer": pair.peer,
        "norm": pair.norm,
        "peer_settings": pair.describe_peer(settings),
        "n_ours": len(x),
        "n_peer": m,
        "ours_seconds": ours_seconds,
        "ours_success": float(ours_ok.float().mean()),
        "n_forward": n_forward,
        "n_backward": n_backward,
    }
    try:
        start = time.perf_counter()
        adv = pair.run_peer(model, x[:m], y[:m], settings)
        peer_seconds = time.perf_counter() - start
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
        peer_success=float(peer_ok.float().mean()),
        ours_median=_median(ours_norm[:m][finished][both]),
        peer_median=_median(peer_norm[both]),
        n_paired=int(both.sum()),
    )


# ----------------------------------------------------------------------------- report


@dataclass
class BenchReport:
    """Everything the table and docs/benchmarks.md show."""

    command: str
    model: str
    images: BenchImages
    batch: int
    rtol: float
    ceiling: Ceiling
    results: list[PairResult]
    peak_rss_mib: float
    seconds: float
    success: list[SuccessRow] = field(default_factory=list)

    def machine(self) -> str:
        import os

        cores = os.cpu_count()
        threads = torch.get_num_threads()
        return (
            f"{platform.machine()} CPU, {cores} cores ({threads} torch threads), no GPU; "
            f"Python {platform.python_version()}, torch {torch.__version__}"
        )


def peak_rss_mib() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if platform.system() != "Darwin" else rss / 2**20


def _f(v: float, digits: int = 3) -> str:
    if v != v:  # nan
        return "-"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


COLUMNS = (
    "attack", "peer", "norm", "n ours/peer", "s/img ours", "s/img peer", "time ours/peer",
    "med ours", "med peer", "norm ours/peer", "paired", "success ours", "success peer",
    "grad/s", "grad % ceil", "fwd/s", "fwd % ceil",
)  # fmt: skip


def table_rows(report: BenchReport) -> list[list[str]]:
    """One row of strings per pair that ran (skipped pairs are listed separately)."""
    rows = []
    c = report.ceiling
    for r in report.results:
        if r.skipped:
            continue
        bound = ">=" if r.n_peer == 0 and r.peer_unfinished else ""
        grad_s = r.n_backward / r.ours_seconds
        fwd_s = r.n_forward / r.ours_seconds
        rows.append([
            r.attack, r.peer, r.norm, f"{r.n_ours}/{r.n_peer}",
            _f(r.ours_seconds / r.n_ours), bound + _f(r.peer_per_image), ("<=" if bound else "") + _f(r.time_ratio),
            _f(r.ours_median), _f(r.peer_median), _f(r.norm_ratio), str(r.n_paired),
            f"{r.ours_success:.0%}", f"{r.peer_success:.0%}",
            _f(grad_s), f"{grad_s / c.gradient_per_s:.0%}", _f(fwd_s), f"{fwd_s / c.forward_per_s:.0%}",
        ])  # fmt: skip
    return rows


def format_text(report: BenchReport) -> str:
    """The table ``foveabench bench`` prints, aligned columns plus notes."""
    rows = [list(COLUMNS), *table_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            cell.rjust(w) if i > 2 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += ["", *_notes(report)]
    if report.success:
        lines += ["", "success under top-5 (ours only):", *success_markdown(report.success)]
    return "\n".join(lines)


def _notes(report: BenchReport) -> list[str]:
    im, c = report.images, report.ceiling
    out = [
        f"model {report.model}; {len(im.labels)} photos correct top-1 clean (of {im.examined} "
        f"examined: {im.top5_correct} top-5 correct, {im.top1_correct} top-1 correct); "
        f"criterion top-1 on both sides; batch {report.batch}; our line search rtol={report.rtol:g}",
        f"ceiling at batch {c.batch}: forward {c.forward_per_s:.1f} img/s, "
        f"forward+backward {c.gradient_per_s:.1f} img/s",
        f"peak RSS {report.peak_rss_mib:.0f} MiB; total {report.seconds:.0f} s; {report.machine()}",
    ]
    for r in report.results:
        if r.skipped:
            out.append(f"SKIPPED {r.attack} vs {r.peer}: {r.skipped}")
        else:
            out.append(
                f"{r.pair}: ours {r.attack}({_kw(PAIRS[r.pair].params) if r.pair in PAIRS else ''}); peer {r.peer_settings}"
            )
            if r.peer_unfinished:
                out.append(
                    f"{r.pair}: the peer did not finish {r.peer_unfinished} image(s) within its budget; "
                    f"its s/img is {'a lower bound' if r.n_peer == 0 else 'over the finished ones'}"
                )
    return out


def format_markdown(report: BenchReport) -> str:
    """The ``## Attacks vs peers`` section of docs/benchmarks.md."""
    lines = [
        SECTION,
        "",
        INSTALL,
        "Measured by:",
        "",
        "```bash",
        report.command,
        "```",
        "",
        f"Machine: {report.machine()}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    lines += ["", *[f"- {n}" for n in _notes(report)], ""]
    if report.success:
        lines += [
            "### Success under the benchmark's criterion (top-5), ours only",
            "",
            f"The same {len(report.images.labels)} photos, each attack as the pipeline runs it "
            "(top-5, our line search), every success re-checked by one forward of the model:",
            "",
            *success_markdown(report.success),
            "",
        ]
    return "\n".join(lines)


SECTION = "## Attacks vs peers"

INSTALL = """\
The peers are an optional extra, never part of the base install. In the
project's virtualenv:

```bash
pip install -e ".[bench]"   # ART 1.20, Foolbox 3.3.4, torchattacks 3.3.0
pip install --no-deps --target "$(python -c 'import sys; print(sys.prefix)')/opt/foolbox24" foolbox==2.4.0
```

The extra changes nothing in the base install (checked with `pip install
--dry-run`: torch 2.14.1, torchvision 0.29.1, numpy, requests untouched).
torchattacks is held at 3.3.0 because 3.4 and later pin `requests~=2.25.1`,
which would downgrade requests, urllib3 and idna under mlflow and ray.
Foolbox 2.4 (the last with L-BFGS) has the same distribution and package name
as Foolbox 3, so it goes into a private `--target` directory (override with
`FOVEABENCH_FOOLBOX24=<dir>`) and the bench loads it by file location as the
module `foolbox24` (its imports are all relative, so it never sees Foolbox 3),
after aliasing `collections.Iterable` & co. to `collections.abc` and
`np.float/np.int/np.bool` to the builtins. Its zoo needs GitPython; the bench
does not import the zoo. A missing peer makes `foveabench bench` print the
install command and skip that pair.

How the pairs are made comparable: every peer sees the same float32 pixels
(a wrapper maps its 0..1 inputs to our 0..255 model; Foolbox 2.4's float64 is
cast), every adversarial image from either side is re-checked with one
forward under top-1 (the peers' only criterion, so ours runs with `TopK(1)`
in every pair), norms are in 0..255 units, and medians are over the images
both sides fooled. Time ratios are seconds per image. ART's linear search
step is set to our relative line-search precision times our median Linf, so
both reach the same absolute precision at the median image.
"""


def write_section(path: Path, body: str, heading: str = SECTION) -> None:
    """Replace ``heading``'s section in ``path`` (up to the next ``## ``), or append it.

    Other sections, written by other tools or by hand, are kept as they are.
    """
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        new = text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        kept_after = lines[end:]
        new = (
            "\n".join(
                [
                    *lines[:start],
                    *body.rstrip("\n").splitlines(),
                    *(["", *kept_after] if kept_after else []),
                ]
            )
            + "\n"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


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
) -> BenchReport:
    """Load the model and photos once, measure the ceiling, run every pair."""
    from pipeline.models import load_model

    unknown = [a for a in attacks if a not in PAIRS]
    if unknown:
        raise ValueError(f"no peer pair for {unknown}; pairs: {sorted(PAIRS)}")
    start = time.perf_counter()
    model = load_model(model_name)
    images = load_images(model, layout, root, n_images, model.cfg)
    log(f"{len(images.labels)} photos, measuring the ceiling at batch {batch} ...")
    ceiling = measure_ceiling(model, images.x, batch)
    results = []
    for name in attacks:
        log(f"{name} vs {PAIRS[name].peer} ...")
        result = run_pair(name, model, images, batch, rtol, peer_images=peer_images)
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
            model, images.x, images.labels, batch, rtol, success_attacks, SUCCESS_PARAMS
        )
    return BenchReport(
        command=command,
        model=model_name,
        images=images,
        batch=batch,
        rtol=rtol,
        ceiling=ceiling,
        results=results,
        peak_rss_mib=peak_rss_mib(),
        seconds=time.perf_counter() - start,
        success=success,
    )
