"""The protocol's vocabulary: tasks and conditions, declared once with their metadata.

Every module that needs to know which conditions a task holds, which pairs of
networks it runs on, whether it needs a ground-truth box, which set-up its
perturbation comes from or which Table 1 ratio it enters reads it here (as
timm reads a model's pretrained config from its registry entry). Adding a
foveation is one :data:`CONDITIONS` entry plus its view builder in
:mod:`tasks.foveation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tasks.registry import Registry

#: The minimum perturbation on the whole input: both the base condition (no foveation)
#: and the set-up whose perturbation it is (the other set-up is MP-Object, "object").
MP = "mp"
#: The MP-Object set-up: the minimum perturbation of the object crop (Luo et al. sec. 4).
OBJECT = "object"
SETUPS = (MP, OBJECT)
#: The modern random fixation (a random resized crop), attacked only by the ``adaptive``
#: task: it has no transferred condition (tasks.adaptive draws it).
MODERN_FOVEATION = "random_resized_crop"
#: The evaluation task that attacks each foveation through itself (pipeline/stages/eval_adaptive.py).
ADAPTIVE = "adaptive"
#: Fig. 6's result columns per set-up: ``<prefix>_image`` and ``<prefix>_perturbation``.
EFFECT_COLUMNS = {MP: "fov_object", OBJECT: "fov_one_crop"}

Pairs = Literal["all", "self"]
Setup = str  # one of SETUPS
Stage = Literal["attack", "eval"]


@dataclass(frozen=True)
class TaskSpec:
    """A config ``tasks:`` entry: which stage computes it and on which network pairs."""

    name: str
    stage: Stage
    pairs: Pairs = "self"
    implies: tuple[str, ...] = ()  # tasks it needs (``transfer`` needs ``norm_sweep``)
    doc: str = ""
    shards: bool = True  # writes result shards of its own (``transfer`` is read off the sweeps)
    #: computed for a baseline's directions (random) too; the self-pair tasks never are
    baseline_ok: bool = True


@dataclass(frozen=True)
class ConditionSpec:
    """One way of presenting a perturbed image to the target network.

    ``setup``: whose perturbation (``mp``: the attack on the whole image;
    ``object``: the MP-Object attack on the object crop, Luo et al. sec. 4).
    ``reference``: the condition it is compared with in Table 1 (critical norm
    after / before the foveation); ``None`` if it is not a Table 1 numerator.
    ``refine``: whether a continuous critical scale is needed (Table 1 and the
    transfer medians), or the grid interval is enough (the curves).
    ``guess_from``: a one-view condition of the same set-up whose answer starts this
    multi-view search (issue 12.2): a crop's crossing lies far above the attack's own
    scale (20-80x for BFGS), but near that of another crop of the same image.
    """

    name: str
    task: str
    label: str
    setup: Setup = "mp"
    pairs: Pairs = "self"
    needs_box: bool = False
    views: bool = False  # crops of the input (a foveation), built by tasks.foveation
    reference: str | None = None
    refine: bool = True
    baseline_ok: bool = False  # evaluated for baseline directions (random) too
    better_than: str | None = None  # a further claim of the paper: accuracy above this one's
    effect: bool = False  # Fig. 6's foveation T of its set-up (score changes of x and e*)
    base: bool = False  # the set-up's condition without foveation (MP, MP-Object)
    guess_from: str | None = None
    #: the paper's control: this foveation adds only a little over that one (Table 1: 10
    #: Crop MP-Object vs 1 Crop MP-Object); reported, not a claim a test can sign
    small_gain_over: str | None = None
    #: its views are drawn at random per image (the paper's 3 random crops, 1 random crop of
    #: MP-Object): an adaptive attacker averages over draws (EOT), judged on fresh ones
    random_views: bool = False


TASKS: Registry[TaskSpec] = Registry("task")
CONDITIONS: Registry[ConditionSpec] = Registry("condition")

for _task in (
    TaskSpec("clean", "attack", "all", doc="clean top-1/top-5, margins, Balda's rho2"),
    TaskSpec("min_perturbation", "attack", "all", doc="each attack's minimum perturbation"),
    TaskSpec("bounds", "attack", "all", doc="Peck's certified lower bounds"),
    TaskSpec("norm_sweep", "eval", "all", doc="accuracy vs norm of each direction (Fig. 2, 7)"),
    TaskSpec("transfer", "eval", "all", ("norm_sweep",), "cross-model matrices", shards=False),
    TaskSpec(
        "masks",
        "eval",
        "self",
        doc="object / background masked perturbations (Fig. 3, 8)",
        baseline_ok=False,
    ),
    TaskSpec(
        "foveation",
        "eval",
        "self",
        doc="foveations, MP and MP-Object (Fig. 5, 13; Tables)",
        baseline_ok=False,
    ),
    TaskSpec(
        "linearity",
        "eval",
        "self",
        doc="local linearity and Fig. 6 effects (Fig. 4, 6, 9-12)",
        baseline_ok=False,
    ),
    TaskSpec(
        ADAPTIVE,
        "eval",
        "all",
        baseline_ok=False,
        doc="each foveation attacked through itself (EOT if random); other networks' MP "
        "through it (black box)",
    ),
):
    TASKS.add(_task.name, _task)

for _cond in (
    ConditionSpec(MP, "norm_sweep", "MP", pairs="all", baseline_ok=True, base=True),
    ConditionSpec("object_mask", "masks", "Object Masked MP", needs_box=True, refine=False),
    ConditionSpec(
        "background_mask",
        "masks",
        "Background Masked MP",
        needs_box=True,
        refine=False,
        better_than="object_mask",
    ),
    ConditionSpec(
        "object_crop",
        "foveation",
        "Object Crop MP",
        needs_box=True,
        views=True,
        reference=MP,
        effect=True,
    ),
    ConditionSpec(
        "ten_crop", "foveation", "10 Crop MP", views=True, reference=MP, guess_from="object_crop"
    ),
    ConditionSpec(
        "three_crop",
        "foveation",
        "3 Crop MP",
        views=True,
        reference=MP,
        guess_from="object_crop",
        random_views=True,
    ),
    ConditionSpec(
        "saliency_crop",
        "foveation",
        "Saliency Crop MP",
        views=True,
        reference=MP,
        better_than="three_crop",
        guess_from="object_crop",
    ),
    ConditionSpec("mp_object", "foveation", "MP-Object", setup=OBJECT, needs_box=True, base=True),
    ConditionSpec(
        "ten_crop_object",
        "foveation",
        "10 Crop MP-Object",
        setup=OBJECT,
        needs_box=True,
        views=True,
        reference="mp_object",
        guess_from="one_crop_object",
        small_gain_over="one_crop_object",
    ),
    ConditionSpec(
        "one_crop_object",
        "foveation",
        "1 Crop MP-Object",
        setup=OBJECT,
        needs_box=True,
        views=True,
        reference="mp_object",
        effect=True,
        random_views=True,
    ),
):
    CONDITIONS.add(_cond.name, _cond)


def conditions_of(task: str) -> list[ConditionSpec]:
    """The conditions a task's shards hold, in declaration order."""
    return [c for c in CONDITIONS.in_order() if c.task == task]


def eval_tasks() -> list[str]:
    """Tasks the evaluation stage writes shards for, in declaration order."""
    return [t.name for t in TASKS.in_order() if t.stage == "eval" and t.shards]


def table1_ratios() -> list[tuple[str, str]]:
    """(numerator, denominator) condition names of Table 1, in declaration order."""
    return [(c.name, c.reference) for c in CONDITIONS.in_order() if c.reference is not None]


def mp_foveations() -> tuple[str, ...]:
    """The foveations of the MP set-up (crops of the input), in declaration order."""
    return tuple(c.name for c in CONDITIONS.in_order() if c.views and c.setup == MP)


def object_foveations() -> tuple[str, ...]:
    """The foveations of the MP-Object set-up (views of the object crop), in order."""
    return tuple(c.name for c in CONDITIONS.in_order() if c.views and c.setup == OBJECT)


def base_of(setup: str) -> ConditionSpec:
    """A set-up's condition without foveation (MP, MP-Object)."""
    return next(c for c in CONDITIONS.in_order() if c.setup == setup and c.base)


def effect_of(setup: str) -> ConditionSpec | None:
    """Fig. 6's foveation T of a set-up."""
    return next((c for c in CONDITIONS.in_order() if c.setup == setup and c.effect), None)
