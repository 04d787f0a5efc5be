import numpy as np
import pytest

from vlarm.eval.qa.questions import (
    NEGATIVE_SETTINGS,
    Query,
    ValueStats,
    false_values,
    is_novel,
    parse_question,
    positives,
    truth,
    unknown_values,
)
from vlarm.eval.qa.scenes import (
    AttributePrior,
    ObjectSpec,
    SceneSpec,
    relations_between,
    sample_scene,
    value_lists,
)

COLORS, SHAPES = value_lists("seen")
KINDS = ("block", "bowl", *SHAPES)


def scene(index=0, bowl="blue", face="green") -> SceneSpec:
    """Block (red, small, green face) at y = +0.1, bowl at y = -0.1, star behind both (robot frame)."""
    return SceneSpec(index, "seen", (
        ObjectSpec("block", "red", "small", (0.45, 0.10), 0.3, face_color=face, face_side=1),
        ObjectSpec("bowl", bowl, "large", (0.45, -0.10), 0.0),
        ObjectSpec("star", "yellow", "large", (0.60, 0.0), 1.0),
    ))


def test_relations_in_the_robot_frame():
    s = scene()
    block, bowl, star = s.objects
    assert relations_between(block, bowl) == ({"left of"}, {"right of"})
    true, false = relations_between(star, block)
    assert true == {"behind", "right of"} and false == {"in front of", "left of"}
    near = ObjectSpec("circle", "gray", "small", (0.47, 0.12), 0.0)
    assert relations_between(near, block) == (set(), set())          # within the margin: ambiguous


def test_truth_by_hand():
    s = scene()
    assert truth(s, Query("color", "block", "red")) is True
    assert truth(s, Query("color", "block", "blue")) is False
    assert truth(s, Query("shape", "yellow", "star")) is True
    assert truth(s, Query("shape", "yellow", "circle")) is False
    assert truth(s, Query("size", "bowl", "large")) is True and truth(s, Query("size", "bowl", "small")) is False
    assert truth(s, Query("face", "block", "green")) is True and truth(s, Query("face", "block", "gray")) is False
    assert truth(s, Query("relation", "block", "left of", "bowl")) is True
    assert truth(s, Query("relation", "block", "right of", "bowl")) is False
    assert truth(s, Query("relation", "block", "behind", "bowl")) is None       # same x: ambiguous
    assert truth(s, Query("color", "heart", "red")) is None                     # no heart: not an attribute question
    assert truth(s, Query("shape", "cyan", "block")) is None
    with pytest.raises(ValueError, match="valid: color, shape"):
        truth(s, Query("texture", "block", "rough"))


def test_templates():
    assert Query("color", "block", "red").text == "Is the block red?"
    assert Query("shape", "red", "star").text == "Is the red object a star?"
    assert Query("relation", "block", "left of", "bowl").text == "Is the block left of the bowl?"
    assert Query("face", "block", "green").text == "Does the block have a green side?"
    assert Query("size", "bowl", "small").with_value("large").text == "Is the bowl large?"


def test_parse_question_reads_what_a_person_types():
    for text in ("Is the bowl purple?", "is the bowl purple", "  IS the  bowl purple ?! ", "Is the bowl purple."):
        assert parse_question(text) == Query("color", "bowl", "purple")
    assert parse_question("Is the red object a letter L?") == Query("shape", "red", "letter L")
    assert parse_question("Is anything here?") is None


def test_unknown_values_name_the_valid_ones():
    assert unknown_values(Query("color", "block", "red")) is None
    assert unknown_values(Query("relation", "block", "left of", "bowl")) is None
    message = unknown_values(Query("color", "cube", "magenta"))
    assert "'cube' is not a kind here (kinds: block, bowl" in message
    assert "'magenta' is not a colour here (colours: blue" in message
    assert "'above' is not a relation" in unknown_values(Query("relation", "block", "above", "bowl"))


def test_positives_are_true_and_negative_candidates_false():
    prior = AttributePrior.make(COLORS, SHAPES, seed=0)
    for i in range(30):
        rng = np.random.default_rng(i)
        spec = sample_scene(i, "seen", rng, prior, int(rng.integers(3, 5)), 0.8)
        qs = positives(spec, rng)
        assert {q.type for q in qs} >= {"color", "shape", "size"}
        for q in qs:
            assert truth(spec, q) is True, q
            for v in false_values(spec, q, COLORS, KINDS):
                assert truth(spec, q.with_value(v)) is False, (q, v)
                block = spec.by_kind("block")
                if q.type == "color" and q.subject == "block":
                    assert v != block.face_color            # never the painted face's colour: ambiguous


def test_scene_sampling_is_seeded_and_distinct():
    prior = AttributePrior.make(COLORS, SHAPES, seed=0)
    a = sample_scene(3, "seen", np.random.default_rng(5), prior, 4, 0.5)
    b = sample_scene(3, "seen", np.random.default_rng(5), prior, 4, 0.5)
    assert a == b
    assert len({o.kind for o in a.objects}) == 4 and len({o.color for o in a.objects}) == 4
    assert a.objects[0].kind == "block"
    for i, o in enumerate(a.objects):
        for p in a.objects[i + 1:]:
            assert np.hypot(o.position[0] - p.position[0], o.position[1] - p.position[1]) > o.radius + p.radius
    assert SceneSpec.from_dict(a.to_dict()) == a
    with pytest.raises(ValueError, match="2 to"):
        sample_scene(0, "seen", np.random.default_rng(0), prior, 1, 0.5)
    with pytest.raises(ValueError, match="valid: seen, unseen"):
        value_lists("novel")


def test_hidden_faces_and_occluders_in_sampled_scenes():
    """With both probabilities 1 every painted face is turned away from the front camera, the wall stands between
    that camera and one object, clear of the others, and the spec survives its JSON form."""
    prior = AttributePrior.make(COLORS, SHAPES, seed=0)
    camera = (1.0, 0.0)
    walls = 0
    for i in range(30):
        spec = sample_scene(i, "seen", np.random.default_rng([1, i]), prior, 4, 1.0, front_camera_xy=camera,
                            face_hidden_probability=1.0, occluder_probability=1.0)
        block = spec.by_kind("block")
        normal = block.yaw + block.face_side * np.pi / 2
        to_camera = np.arctan2(camera[1] - block.position[1], camera[0] - block.position[0])
        assert np.cos(normal - to_camera) < -0.7                 # faces away (within 45 degrees)
        assert SceneSpec.from_dict(spec.to_dict()) == spec
        if spec.occluder is None:
            continue
        walls += 1
        x, y, yaw, width = spec.occluder
        hidden = [o for o in spec.objects if np.isclose(np.arctan2(camera[1] - o.position[1],
                                                                   camera[0] - o.position[0]), yaw)]
        assert len(hidden) >= 1
        target = hidden[0]
        assert np.hypot(camera[0] - x, camera[1] - y) < np.hypot(camera[0] - target.position[0],
                                                                 camera[1] - target.position[1])
        assert width > 2 * target.radius
        for o in spec.objects:
            if o is not target:
                assert np.hypot(o.position[0] - x, o.position[1] - y) > o.radius + width / 2
    assert walls >= 20                                            # most layouts leave room for a wall


def test_popular_and_adversarial_negatives_follow_the_statistics():
    # Bowls elsewhere are always gray; red is the most frequent colour overall.
    others = [SceneSpec(i, "seen", (
        ObjectSpec("block", "red", "small", (0.4, 0.1), 0.0),
        ObjectSpec("bowl", "gray", "large", (0.4, -0.1), 0.0),
        ObjectSpec("circle", "cyan", "small", (0.6, 0.0), 0.0),
    )) for i in range(1, 6)]
    extra = [SceneSpec(9, "seen", (ObjectSpec("triangle", "red", "small", (0.5, 0.0), 0.0),))]
    stats = ValueStats([scene(), *others, *extra])
    s = scene(bowl="blue")
    q = Query("color", "bowl", "blue")
    cands = false_values(s, q, COLORS, KINDS)
    rng = np.random.default_rng(0)
    assert stats.pick("adversarial", s, q, cands, rng) == "gray"      # what bowls usually are
    assert stats.pick("popular", s, q, cands, rng) == "red"           # the most frequent colour overall
    picks = {stats.pick("random", s, q, cands, np.random.default_rng(k)) for k in range(40)}
    assert picks == set(cands)                                        # random covers every false value
    with pytest.raises(ValueError, match="valid: random, popular, adversarial"):
        stats.pick("hard", s, q, cands, rng)
    with pytest.raises(ValueError, match="no false value"):
        stats.pick("random", s, q, [], rng)
    assert NEGATIVE_SETTINGS == ("random", "popular", "adversarial")


def test_novelty():
    assert not is_novel(Query("color", "block", "red"))
    assert is_novel(Query("color", "block", "orange"))
    assert is_novel(Query("shape", "red", "heart"))
    assert not is_novel(Query("shape", "red", "star"))
    assert is_novel(Query("relation", "ring", "left of", "block"))
