"""Route a free-form instruction to the task whose grammar grounds it.

Every task family grounds its own instructions (``Task.parse_instruction``, built on ``vlarm.tasks.language``). The
router asks one representative task of every family; exactly one family must ground the instruction. Within the
family, the variant is chosen by where the instruction's attribute values live (CLIPort's splits, Shridhar et al.
CoRL 2021, Sec. 4.1): the ``seen`` variant when every value is a training value, else ``unseen`` when every value is
an evaluation value of the test split, else ``full`` (the union); families without attribute splits have one task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vlarm.tasks import family_example, list_families, make_task
from vlarm.tasks.attributes import SPLIT_VALUES, values_for
from vlarm.tasks.language import closeness, echo


class RoutingError(ValueError):
    """No family, or more than one, grounds an instruction; the message lists the families with an example each."""


@dataclass
class Route:
    """Where an instruction goes.

    Attributes:
        task: the task variant to run, e.g. ``"put-block-in-bowl-seen-colors"``.
        family: its family, e.g. ``"put-block-in-bowl"``.
        goal: the goal overrides the task's grammar grounded (``Task.parse_instruction``'s result).
        errors: family -> why its grammar did not ground the instruction (for ``--verbose`` reports).
    """

    task: str
    family: str
    goal: dict
    errors: dict[str, str] = field(default_factory=dict)


def _families_help(families=None) -> str:
    return "; ".join(f"{family}: '{family_example(family)}'" for family in families or list_families())


def choose_variant(variants: list[str], goal: dict) -> str:
    """The variant of one family whose test split holds every attribute value in ``goal`` (module docstring).

    Args:
        variants: the family's task names.
        goal: grounded overrides, e.g. ``{"pick": "orange", "place": "red"}`` (values that are not attribute values,
            such as counts or locations, are ignored).

    Returns:
        One of ``variants``.
    """
    if len(variants) == 1:
        return variants[0]
    values = {str(v) for v in goal.values() if isinstance(v, str)}
    by_variant = {make_task(name).variant: name for name in variants}
    for variant in ("seen", "unseen", "full"):
        if variant not in by_variant:
            continue
        allowed = {value for kind in SPLIT_VALUES for value in values_for(kind, "test", variant)}
        known = {value for kind in SPLIT_VALUES for value in values_for(kind, "test", "full")}
        if all(v in allowed for v in values if v in known):
            return by_variant[variant]
    return by_variant.get("full", sorted(variants)[0])


def route(instruction: str) -> Route:
    """Find the task that grounds ``instruction``.

    Args:
        instruction: free text, e.g. ``"stack the blocks into a pyramid"``.

    Returns:
        A :class:`Route`.

    Raises:
        RoutingError: when no family grounds the instruction (when one family understood part of it, its own
            "Understood / Not understood" message and the family names; otherwise every family with an example), or
            when several do (it names them, each with an example).
    """
    grounded: dict[str, tuple[list[str], dict]] = {}
    errors: dict[str, str] = {}
    for family, variants in list_families().items():
        try:
            grounded[family] = (variants, make_task(variants[0]).parse_instruction(instruction))
        except ValueError as err:
            errors[family] = str(err)
    if len(grounded) == 1:
        family, (variants, goal) = next(iter(grounded.items()))
        return Route(choose_variant(variants, goal), family, goal, errors)
    if len(grounded) > 1:
        examples = _families_help(grounded)
        raise RoutingError(f"the instruction {echo(instruction.strip())} is ambiguous: it reads as a task of "
                           f"{', '.join(grounded)}; pass --task to choose (an example of each: {examples}).")
    if not instruction.strip():
        raise RoutingError(f"cannot ground the instruction: an empty instruction. Families and an example of each: "
                           f"{_families_help()}.")
    closest = _closest(errors)
    if closest is not None:   # a near miss: what the closest family understood, and where to see the others
        raise RoutingError(f"{closest[1]} (closest task family: {closest[0]}; `vlarm tasks` lists every family "
                           "with an example)")
    raise RoutingError(f"cannot ground the instruction {echo(instruction.strip())}: no task family understands it. "
                       f"Families and an example of each: {_families_help()}.")


def _closest(errors: dict[str, str]) -> tuple[str, str] | None:
    """The family whose grammar came closest (:func:`vlarm.tasks.language.closeness`); None when none understood
    anything."""
    if not errors:
        return None
    family, message = max(errors.items(), key=lambda item: closeness(item[1]))
    return (family, message) if closeness(message)[0] else None
