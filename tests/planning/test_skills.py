"""Skills generated from the scene."""

from __future__ import annotations

import pytest

from vlarm.planning.skills import DONE_SKILL, Skill, generate_skills
from vlarm.tasks.saycan_tabletop import PLACES


def test_four_blocks_four_bowls_give_65_options_with_done_last():
    objects = [f"{c} block" for c in ("blue", "red", "green", "yellow")] + \
              [f"{c} bowl" for c in ("blue", "red", "green", "yellow")]
    skills = generate_skills(objects)
    assert len(skills) == 4 * (3 + 4 + len(PLACES)) + 1 == 65
    assert skills[-1] == DONE_SKILL and skills[-1].text == "done()"
    assert all(s.pick != s.place for s in skills[:-1])
    assert all(s.pick.endswith(" block") for s in skills[:-1])            # bowls are targets only
    assert Skill("red block", "green bowl") in skills


def test_skills_follow_the_scene_not_a_fixed_list():
    skills = generate_skills(["purple block", "white bowl"])
    assert [s.text for s in skills[:2]] == ["pick the purple block and place it on the white bowl",
                                            "pick the purple block and place it on the top left corner"]
    assert generate_skills([]) == [DONE_SKILL]


def test_text_round_trip_and_bad_text():
    skill = Skill("red block", "top left corner")
    assert Skill.from_text(skill.text) == skill
    assert Skill.from_text("done()") == DONE_SKILL
    with pytest.raises(ValueError, match="the form is"):
        Skill.from_text("dance")
