"""Skills of SayCan's tabletop, generated from what the scene holds (Ahn et al. 2022, Sec. 3 and the tabletop
variant; REFERENCE.md Sec. 3): "pick the X and place it on the Y" for every block X and every other object or named
place Y, plus ``done()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vlarm.tasks.saycan_tabletop import DONE, PLACES, parse_skill, skill_text


@dataclass(frozen=True)
class Skill:
    """One option of the planner.

    Attributes:
        pick: the block to pick (``""`` for ``done()``).
        place: the object or named place to put it on (``""`` for ``done()``).
    """

    pick: str = ""
    place: str = ""

    @property
    def is_done(self) -> bool:
        """True for the terminating ``done()`` option."""
        return not self.pick

    @property
    def text(self) -> str:
        """The option's language (what the language model scores and the policy is told)."""
        return DONE if self.is_done else skill_text(self.pick, self.place)

    @classmethod
    def from_text(cls, text: str) -> Skill:
        """Parse ``"done()"`` or a skill text.

        Raises:
            ValueError: for any other text.
        """
        if text.strip().lower().rstrip(".") == DONE:
            return DONE_SKILL
        return cls(*parse_skill(text))


DONE_SKILL = Skill()


def generate_skills(objects: Iterable[str], places: Iterable[str] = tuple(PLACES)) -> list[Skill]:
    """Every skill the scene affords in language: each block onto each other object and each place, then ``done()``.

    Args:
        objects: object names seen in the scene, e.g. ``["red block", "green bowl"]`` (blocks end in " block";
            only blocks are picked, bowls are targets).
        places: named places (default: the four corners, the middle and the four sides).

    Returns:
        The skills, in the order of ``objects`` then ``places``, with ``done()`` last. Four blocks, four bowls and
        nine places give 4 x (3 + 4 + 9) + 1 = 65 options.
    """
    objects = list(dict.fromkeys(objects))
    places = list(places)
    blocks = [o for o in objects if o.endswith(" block")]
    skills = [Skill(b, t) for b in blocks for t in [*objects, *places] if t != b]
    return [*skills, DONE_SKILL]


__all__ = ["DONE_SKILL", "Skill", "generate_skills"]
