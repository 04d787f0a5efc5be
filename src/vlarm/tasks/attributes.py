"""Attribute vocabularies and their seen/unseen splits, in one place for every task.

Colours and their RGB values follow Ravens/CLIPort ``utils.COLORS`` (the Tableau palette); the splits are
CLIPort's (Shridhar et al. CoRL 2021, Sec. 4.1 and Appendix): TRAIN colours for training everywhere, EVAL
colours for val/test of the ``unseen`` variants. Three colours (blue, red, green) appear in both.
"""

from __future__ import annotations

#: Colour name -> RGB in [0, 1] (Ravens/CLIPort palette), in the palette's canonical order.
COLORS: dict[str, tuple[float, float, float]] = {
    "blue": (78 / 255, 121 / 255, 167 / 255),
    "red": (255 / 255, 87 / 255, 89 / 255),
    "green": (89 / 255, 169 / 255, 79 / 255),
    "orange": (242 / 255, 142 / 255, 43 / 255),
    "yellow": (237 / 255, 201 / 255, 72 / 255),
    "purple": (176 / 255, 122 / 255, 161 / 255),
    "pink": (255 / 255, 157 / 255, 167 / 255),
    "cyan": (118 / 255, 183 / 255, 178 / 255),
    "brown": (156 / 255, 117 / 255, 95 / 255),
    "white": (255 / 255, 255 / 255, 255 / 255),
    "gray": (186 / 255, 176 / 255, 172 / 255),
}

TRAIN_COLORS: tuple[str, ...] = ("blue", "red", "green", "yellow", "brown", "gray", "cyan")
EVAL_COLORS: tuple[str, ...] = ("blue", "red", "green", "orange", "purple", "pink", "white")
ALL_COLORS: tuple[str, ...] = tuple(COLORS)

SPLITS: tuple[str, ...] = ("train", "val", "test")

#: Ravens kit shapes by id (``assembling_kits.py``); CLIPort trains on 0-13 and evaluates unseen shapes on 14-19.
KIT_SHAPES: tuple[str, ...] = (
    "letter R", "letter A", "triangle", "square", "plus", "letter T", "diamond", "pentagon", "rectangle", "flower",
    "star", "circle", "letter G", "letter V", "letter E", "letter L", "ring", "hexagon", "heart", "letter M")
TRAIN_SHAPES: tuple[str, ...] = KIT_SHAPES[:14]
EVAL_SHAPES: tuple[str, ...] = KIT_SHAPES[14:]

#: Named objects of the packing-{seen,unseen}-objects tasks (``vlarm.sim.objects``, a stand-in for CLIPort's 56
#: Google scanned objects): 37 training names and 19 evaluation names, disjoint. The ``seen`` variants use all 56 on
#: every split (``values_for("object", split, "full")``), the ``unseen`` ones these lists (CLIPort Appendix A).
TRAIN_OBJECTS: tuple[str, ...] = (
    "mug", "paper cup", "soda can", "bottle", "plate", "frying pan", "spatula", "fork", "cutting board", "sponge",
    "wrench", "pliers", "tape measure", "silver tape", "flashlight", "padlock", "battery", "rubber duck",
    "teddy bear", "dice", "toy car", "toy school bus", "frisbee", "tennis ball", "donut", "traffic cone", "book",
    "tablet", "remote control", "computer mouse", "calculator", "eraser", "alarm clock", "sunglasses", "sneaker",
    "apple", "chocolate bar")
EVAL_OBJECTS: tuple[str, ...] = (
    "hammer", "screwdriver", "spoon", "butter knife", "paint brush", "magnifying glass", "scissors", "key",
    "toy bunny", "puzzle cube", "toy train", "toy airplane", "yo-yo", "starfish", "smartphone", "pencil", "stapler",
    "lemon", "banana")

#: Attribute variants of a task (CLIPort): ``seen`` uses the training values on every split, ``unseen`` the
#: evaluation values on val/test, ``full`` the union everywhere (multi-attribute training).
VARIANTS: tuple[str, ...] = ("seen", "unseen", "full")

#: Attribute kind -> (training values, evaluation values).
SPLIT_VALUES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "color": (TRAIN_COLORS, EVAL_COLORS),
    "shape": (TRAIN_SHAPES, EVAL_SHAPES),
    "object": (TRAIN_OBJECTS, EVAL_OBJECTS),
}

#: Attribute kind -> the values policies may see in training (train split of every variant). A goal attribute
#: outside its kind's training vocabulary is *novel*.
TRAIN_VOCABULARY: dict[str, tuple[str, ...]] = {kind: values[0] for kind, values in SPLIT_VALUES.items()}

#: Novelty classes of an episode, by how many of its goal attributes are novel.
NOVELTY_CLASSES: tuple[str, ...] = ("all", "some", "none")


def is_novel(kind: str, value: str, variant: str = "unseen") -> bool:
    """True when ``value`` of attribute ``kind`` (e.g. ``("color", "orange")``) never appears in the training split of
    a task ``variant``: the values a policy trained under the benchmark's protocol has seen.

    ``unseen`` and ``seen`` variants train on the training values (:data:`TRAIN_VOCABULARY`), except where a ``seen``
    variant trains on the union (the named objects: all 56 everywhere); ``full`` variants train on the union, so
    nothing is novel there.

    Raises:
        ValueError: for an unknown kind or variant (the message lists the known ones).
    """
    if kind not in TRAIN_VOCABULARY:
        raise ValueError(f"unknown attribute kind {kind!r}; known kinds: {', '.join(TRAIN_VOCABULARY)}")
    return value not in values_for(kind, "train", variant)


def novelty(goal_attributes: dict[str, tuple[str, str]], variant: str | dict[str, str] = "unseen") -> str:
    """Novelty class of an episode's goal: ``"all"``, ``"some"`` or ``"none"`` of its attributes novel.

    Args:
        goal_attributes: role -> ``(kind, value)``, e.g. ``{"pick": ("color", "orange"), "place": ("color", "red")}``.
        variant: the task variant whose training split defines "seen" (:func:`is_novel`), or kind -> variant when
            the kinds of one task follow different splits (``Task.attribute_variant``).

    Returns:
        One of :data:`NOVELTY_CLASSES` (``"none"`` for a goal without attributes).
    """
    flags = [is_novel(kind, value, variant if isinstance(variant, str) else variant.get(kind, "unseen"))
             for kind, value in goal_attributes.values()]
    if flags and all(flags):
        return "all"
    return "some" if any(flags) else "none"


def check_split(split: str) -> str:
    """Return ``split`` if valid; raise ValueError naming the valid splits otherwise."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split


def values_for(kind: str, split: str, variant: str) -> tuple[str, ...]:
    """Values of attribute ``kind`` a task variant may use on ``split`` (see :data:`VARIANTS`).

    Args:
        kind: an attribute kind of :data:`SPLIT_VALUES` (``"color"``, ``"shape"``, ...).
        split: ``"train"``, ``"val"`` or ``"test"``.
        variant: ``"seen"`` (training values everywhere), ``"unseen"`` (evaluation values on val/test) or
            ``"full"`` (the union of both, in order, everywhere).

    Raises:
        ValueError: for an unknown kind, split or variant (the message lists the valid ones).
    """
    check_split(split)
    if kind not in SPLIT_VALUES:
        raise ValueError(f"unknown attribute kind {kind!r}; known kinds: {', '.join(SPLIT_VALUES)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    train, evaluation = SPLIT_VALUES[kind]
    if variant == "full":
        return tuple(dict.fromkeys(train + evaluation))
    return evaluation if variant == "unseen" and split != "train" else train


def colors_for(split: str, variant: str) -> tuple[str, ...]:
    """Colour names a task variant may use as goal colours (``values_for("color", split, variant)``).

    Raises:
        ValueError: for an unknown split or variant.
    """
    return values_for("color", split, variant)


def color_rgb(name: str) -> tuple[float, float, float]:
    """RGB in [0, 1] of a colour name; raises ValueError listing the known colours if unknown."""
    if name not in COLORS:
        raise ValueError(f"unknown colour {name!r}; known colours: {', '.join(ALL_COLORS)}")
    return COLORS[name]


#: Val seeds are the odd numbers below :data:`TEST_SEED_OFFSET`, so a split holds at most this many val episodes.
TEST_SEED_OFFSET = 10000
MAX_VAL_EPISODES = TEST_SEED_OFFSET // 2


def split_seed(split: str, index: int) -> int:
    """Seed of the ``index``-th episode of a split (CLIPort convention).

    Train seeds are even (0, 2, 4, ...), val seeds odd below 10000 (1, 3, ..., 9999), test seeds odd from 10001
    (10001, 10003, ...). The three sets are disjoint for every valid index: train has no upper limit, nor has
    test; val stops at :data:`MAX_VAL_EPISODES` (5000) episodes, where its next seed would be a test seed.

    Raises:
        ValueError: for an unknown split, a negative index, or a val index >= 5000.
    """
    check_split(split)
    index = int(index)
    if index < 0:
        raise ValueError(f"episode index must be >= 0, got {index}")
    if split == "val" and index >= MAX_VAL_EPISODES:
        raise ValueError(f"val has {MAX_VAL_EPISODES} episodes (indices 0-{MAX_VAL_EPISODES - 1}); index {index} "
                         f"would reuse a test seed")
    return {"train": 2 * index, "val": 2 * index + 1, "test": TEST_SEED_OFFSET + 2 * index + 1}[split]


def check_episode_count(split: str, episodes: int) -> int:
    """Refuse, before any work, more episodes than ``split`` has (val: :data:`MAX_VAL_EPISODES`).

    Raises:
        ValueError: naming the split's limit.
    """
    check_split(split)
    if split == "val" and episodes > MAX_VAL_EPISODES:
        raise ValueError(f"the val split has {MAX_VAL_EPISODES} episodes (its next seed would be a test seed); "
                         f"asked for {episodes}")
    return episodes


def seed_split(seed: int) -> str:
    """The split a seed belongs to under :func:`split_seed`'s convention (its inverse for every seed >= 0).

    Raises:
        ValueError: for a negative seed.
    """
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seeds are >= 0, got {seed}")
    if seed % 2 == 0:
        return "train"
    return "val" if seed < TEST_SEED_OFFSET else "test"


def seed_index(seed: int) -> int:
    """The episode index of a seed within its split: ``split_seed(seed_split(seed), seed_index(seed)) == seed``.

    Raises:
        ValueError: for a negative seed.
    """
    split = seed_split(seed)
    return {"train": seed // 2, "val": (seed - 1) // 2, "test": (seed - TEST_SEED_OFFSET - 1) // 2}[split]
