"""Perception pieces that need no model: tall-part splitting, one name per object, the scene line."""

from __future__ import annotations

import numpy as np

from vlarm.planning.perception import Detection, assign_names, describe_scene, split_tall_parts


def test_a_block_in_a_bowl_is_split_off_as_its_own_proposal():
    hm = np.zeros((100, 60), np.float32)
    hm[20:56, 10:46] = 0.03          # a bowl's footprint (walls 3 cm)
    hm[30:43, 20:33] = 0.045         # a block standing in it
    hm[70:83, 20:33] = 0.04          # a block on the table
    labels, centres, parent = split_tall_parts(hm)
    assert len(centres) == 3
    sizes = sorted(int((labels == k).sum()) for k in range(1, 4))
    assert sizes == [169, 169, 36 * 36 - 169]
    (child, owner), = parent.items()
    assert int((labels == child).sum()) == 169 and int((labels == owner).sum()) == 36 * 36 - 169


def test_assignment_gives_each_name_to_one_proposal():
    # two proposals both most likely "blue block"; the less sure one takes its next best name
    probs = np.array([[0.95, 0.04, 0.01], [0.60, 0.05, 0.35], [0.0, 0.0, 0.0]])
    assert assign_names(probs) == {0: 0, 1: 2}


def test_scene_line_names_objects_and_relations():
    def det(name, xy, inside=""):
        return Detection(name, 1.0, {}, (0, 0), xy, np.zeros((2, 2), bool), inside)

    from vlarm.tasks.saycan_tabletop import PLACES

    line = describe_scene([det("red block", (0.5, 0.0), "green bowl"), det("blue block", (0.3, 0.3)),
                           det("pink block", PLACES["top right corner"]),
                           det("green bowl", (0.5, 0.0)), det("yellow bowl", (0.35, 0.35))])
    assert line == ("objects = [red block, blue block, pink block, green bowl, yellow bowl]; red block in green bowl, "
                    "blue block near yellow bowl, pink block at top right corner")
