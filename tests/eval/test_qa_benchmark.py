from dataclasses import replace

import numpy as np
import pytest

from vlarm.eval.qa.benchmark import (
    FRONT_CAMERA_XY,
    BenchmarkConfig,
    SceneRenderer,
    benchmark_config,
    build_benchmark,
    scene_specs,
    view_names,
)
from vlarm.eval.qa.questions import NEGATIVE_SETTINGS, Query, parse_question, truth
from vlarm.eval.qa.scenes import (
    REGION_CENTER,
    ObjectSpec,
    SceneSpec,
    crop_origin,
    hidden_side,
    look_at_camera,
    occluder_pose,
)
from vlarm.tasks.attributes import EVAL_COLORS, TRAIN_COLORS
from vlarm.vlm.qa.dataset import QA_SPLITS, QABenchmark

TINY = BenchmarkConfig(scenes=6, unseen_scenes=2, test_every=3, sampled_views=2, image_size=32, camera_scale=0.2,
                       face_probability=1.0, face_hidden_probability=1.0, occluder_probability=0.5)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("qa") / "bench"
    counts = build_benchmark(out, TINY, progress=False)
    return out, counts


def test_layout_counts_and_pairing(built):
    out, counts = built
    bench = QABenchmark(out)
    assert benchmark_config(bench) == TINY
    names = view_names(TINY)
    assert bench.view_names == names and bench.n_scenes == 8
    assert names == ["front", "left", "right", "around0", "around1"]
    for i in range(TINY.n_scenes):
        assert [p.name for p in sorted((out / "images" / f"{i:05d}").iterdir())] == [f"{v}_{n}.png"
                                                                                    for v, n in enumerate(names)]
    assert bench.images().shape == (8, 5, 32, 32, 3) and bench.images().dtype == np.uint8
    assert {r["split"] for r in bench.records} == set(QA_SPLITS)
    for split in QA_SPLITS:
        pos = bench.questions(split, "positive")
        c = counts["splits"][split]
        assert c["positives"] == len(pos) > 0
        assert c["negatives"] == {s: len(pos) for s in NEGATIVE_SETTINGS}
        for setting in NEGATIVE_SETTINGS:
            ev = bench.eval_set(split, setting)
            assert len(ev) == 2 * len(pos)
            assert sorted(r["pair"] for r in ev if r["label"] == "no") == sorted(r["pair"] for r in pos)
    assert [counts["splits"][s]["scenes"] for s in QA_SPLITS] == [2, 2, 2, 2]
    assert counts["splits"]["train"]["positives_by_type"]["face"] == 2      # every block painted
    for split in QA_SPLITS:                                                 # ... on the side the front camera
        assert counts["splits"][split]["front_view_shows_face"] == 0.0      # cannot see


def test_labels_agree_with_the_scenes(built):
    out, _ = built
    bench = QABenchmark(out)
    specs = scene_specs(bench)
    assert any(s.occluder is not None for s in specs)
    for r in bench.records:
        query = parse_question(r["question"])
        assert query == Query(r["type"], r["subject"], r["value"], r["other"])
        assert truth(specs[r["scene"]], query) is (r["label"] == "yes"), r
    unseen_colors = {o.color for s in specs if s.group == "unseen" for o in s.objects}
    seen_colors = {o.color for s in specs if s.group == "seen" for o in s.objects}
    assert unseen_colors <= set(EVAL_COLORS) and seen_colors <= set(TRAIN_COLORS)
    assert any(r["novel"] for r in bench.questions("unseen"))
    assert not any(r["novel"] for r in bench.questions("train") + bench.questions("test"))


def test_rebuild_is_identical_and_resumes(built, tmp_path):
    out, _ = built
    other = tmp_path / "again"
    build_benchmark(other, TINY, progress=False)
    assert (other / "questions.jsonl").read_text() == (out / "questions.jsonl").read_text()
    a = QABenchmark(out).images()
    np.testing.assert_array_equal(QABenchmark(other).images(), a)
    # A killed build: one scene and the questions missing. The rerun renders that scene again and nothing else.
    (other / "scenes" / "00003.json").unlink()
    (other / "questions.jsonl").unlink()
    kept = (other / "scenes" / "00001.json").stat().st_mtime_ns
    build_benchmark(other, TINY, progress=False)
    assert (other / "questions.jsonl").read_text() == (out / "questions.jsonl").read_text()
    assert (other / "scenes" / "00001.json").stat().st_mtime_ns == kept
    with pytest.raises(ValueError, match="another config"):
        build_benchmark(other, replace(TINY, seed=5), progress=False)


def test_config_validation_and_splits():
    assert [BenchmarkConfig(scenes=20).split_of(i) for i in range(10)] == ["train"] * 8 + ["val", "test"]
    assert BenchmarkConfig(scenes=20, unseen_scenes=3).split_of(21) == "unseen"
    with pytest.raises(ValueError, match="scene index must be in 0-22"):
        BenchmarkConfig(scenes=20, unseen_scenes=3).split_of(23)
    with pytest.raises(ValueError, match="image_size"):
        BenchmarkConfig(image_size=8)
    with pytest.raises(ValueError, match="raise it"):
        BenchmarkConfig(image_size=128, camera_scale=0.2)
    with pytest.raises(ValueError, match="renderer must be one of"):
        BenchmarkConfig(renderer="opengl")
    with pytest.raises(ValueError, match="test_every must be in 3"):
        BenchmarkConfig(scenes=20, test_every=2)
    with pytest.raises(ValueError, match="occluder_probability"):
        BenchmarkConfig(occluder_probability=1.5)
    with pytest.raises(ValueError, match="not a finished QA benchmark.*vlarm vlm qa build"):
        QABenchmark("/nonexistent/qa")


def test_look_at_camera_centres_its_target():
    target = np.array([0.5, 0.0, 0.02])
    cam = look_at_camera("c", (0.9, 0.3, 0.4), target, 32, 40.0)
    forward = cam.rotation_matrix[:, 2]
    direction = (target - np.array(cam.position)) / np.linalg.norm(target - np.array(cam.position))
    np.testing.assert_allclose(forward, direction, atol=1e-6)
    assert cam.rotation_matrix[2, 1] < 0                       # image rows run downwards in the world
    with pytest.raises(ValueError, match="straight above"):
        look_at_camera("c", (0.5, 0.0, 0.6), target, 32, 40.0)


def test_robot_crop_contains_the_region_centre():
    from vlarm.sim import default_cameras

    for cam in default_cameras(0.4):
        r, c = crop_origin(cam, 64)
        assert 0 <= r <= cam.image_size[0] - 64 and 0 <= c <= cam.image_size[1] - 64
    with pytest.raises(ValueError, match="raise camera_scale"):
        crop_origin(default_cameras(0.1)[0], 64)


def test_painted_face_shows_only_from_its_side():
    spec = SceneSpec(0, "seen", (ObjectSpec("block", "red", "large", REGION_CENTER, 0.0, face_color="blue",
                                            face_side=0),))                # painted face looks along +x
    config = BenchmarkConfig(image_size=32, camera_scale=0.2)
    x, y = REGION_CENTER
    toward = look_at_camera("plus_x", (x + 0.5, y, 0.25), (x, y, 0.03), 32, 60.0)
    away = look_at_camera("minus_x", (x - 0.5, y + 0.01, 0.25), (x, y, 0.03), 32, 60.0)
    with SceneRenderer(config) as renderer:
        images, pixels = renderer.render(spec, (toward, away))
    face_toward, face_away = pixels[3, -1], pixels[4, -1]
    assert face_toward > 20 and face_away == 0
    assert pixels[3, 0] > 0 and pixels[4, 0] > 0                 # the block itself shows from both sides
    # Shading darkens the face, but only the blue paint is much bluer than red (the block, table and floor are not).
    bluish = lambda img: int((img[..., 2].astype(int) - img[..., 0] > 25).sum())  # noqa: E731
    assert bluish(images[3]) > 10 and bluish(images[4]) == 0


def test_front_camera_constant_is_the_simulators():
    from vlarm.sim import default_cameras

    front = default_cameras(0.4)[0]
    assert front.name == "front" and tuple(front.position[:2]) == pytest.approx(FRONT_CAMERA_XY)


def test_hidden_face_and_occluder_hide_from_the_front_camera_only():
    """The face chosen by hidden_side and an object behind the wall of occluder_pose show no pixel in the front
    view, but do show from the opposite side of the table."""
    from vlarm.sim import default_cameras

    config = BenchmarkConfig(image_size=32, camera_scale=0.4)
    x, y = REGION_CENTER
    block = ObjectSpec("block", "red", "large", (x, y + 0.05), 0.4, face_color="blue",
                       face_side=hidden_side((x, y + 0.05), 0.4, FRONT_CAMERA_XY))
    star = ObjectSpec("star", "green", "small", (x - 0.02, y - 0.08), 0.0)
    spec = SceneSpec(0, "seen", (block, star), occluder=occluder_pose(star, FRONT_CAMERA_XY))
    behind = look_at_camera("behind", (x - 0.45, y, 0.35), (x, y, 0.03), 32, 40.0)
    with SceneRenderer(config) as renderer:
        _, pixels = renderer.render(spec, (behind,))
    front, opposite = pixels[0], pixels[len(default_cameras())]
    assert front[-1] == 0 and opposite[-1] > 5            # the painted face
    assert front[1] == 0 and opposite[1] > 5              # the star behind the wall
    assert front[0] > 20                                  # the block itself is in plain view
