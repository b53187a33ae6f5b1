"""Per-image L2 of a budgeted minimum-norm attack, with and without a budget, beside adv_lib's.

    OMP_NUM_THREADS=1 python scripts/budget_reserve.py --attack alma --steps 100

``--attack`` is a bench pair (``pipeline.bench.pairs``): both sides' settings are the
bench's, only the step count is this script's.

On the bench's photos (lite0, the first N the network gets right top-1, top-1 on both
sides): adv_lib's attack at ``steps``, ours at ``steps`` with no budget, and ours with
adv_lib's query budget (``2 * steps`` passes, the clean pass and the line search
included). Per image, not a median: at 100 steps on lite0 ALMA's iterates are far from
converged and a median of 5 hides how far apart single images land.
"""

from __future__ import annotations

import argparse

import torch

from pipeline.bench.images import load_images
from pipeline.bench.pairs import PAIRS, PairSettings
from pipeline.models.networks import load_model
from tasks.attacks import create
from tasks.criterion import TopK
from tasks.linesearch import LineSearch

#: The bench's budgeted pairs (adv_lib's DDN, FMN, ALMA): both sides' settings come from
#: there, only the step count is this script's.
BUDGETED = [name for name in PAIRS.names() if "budget" in PAIRS.get(name).ours_only]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attack", choices=BUDGETED, default="alma", help="a bench pair")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()
    model = load_model(args.model)
    photos = load_images(model, "sample", None, args.images, model.cfg)
    x, y = photos.x, photos.labels

    def show(label: str, l2: torch.Tensor, ok: torch.Tensor) -> None:
        values = ", ".join(f"{v:.1f}" for v in l2.tolist())
        print(
            f"{label:<28} L2 {values}  median {l2[ok].median():.1f}  fooled {int(ok.sum())}/{len(ok)}"
        )

    pair = PAIRS.get(args.attack)
    settings = PairSettings(batch=len(x), rtol=0.01, ours_median=float("nan"))
    peer_kwargs = {**pair.peer_kwargs(settings), pair.peer_names.get("steps", "steps"): args.steps}
    adv = pair.run_peer(model, x, y, peer_kwargs, settings)
    with torch.no_grad():
        show(pair.peer, (adv - x).flatten(1).norm(dim=1), model(adv).argmax(1) != y)
    for budget in (None, 2 * args.steps):
        params = {**pair.params, "steps": args.steps, "budget": budget}
        attack = create(pair.attack, criterion=TopK(1), line_search=LineSearch(rtol=0.01), **params)
        result = attack(model, x, y)
        show(f"ours, budget {budget}", result.norms()["l2"], result.success)


if __name__ == "__main__":
    main()
