from dataclasses import replace

import numpy as np
import pytest

from vlarm.tasks.attributes import EVAL_COLORS, TRAIN_COLORS
from vlarm.vlm.qa.benchmark import BenchmarkConfig, QABenchmark, SceneRenderer, build_benchmark, view_names
from vlarm.vlm.qa.questions import NEGATIVE_SETTINGS, Query, parse_question, truth
from vlarm.vlm.qa.scenes import REGION_CENTER, ObjectSpec, SceneSpec, crop_origin, look_at_camera

TINY = BenchmarkConfig(scenes=4, unseen_scenes=2, test_every=2, sampled_views=2, image_size=32, camera_scale=0.2,
                       face_probability=1.0)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("qa") / "bench"
    counts = build_benchmark(out, TINY, progress=False)
    return out, counts


def test_layout_counts_and_pairing(built):
    out, counts = built
    bench = QABenchmark(out)
    assert bench.config == TINY
    names = view_names(TINY)
    assert names == ["front", "left", "right", "around0", "around1"]
    for i in range(TINY.n_scenes):
        assert [p.name for p in sorted((out / "images" / f"{i:05d}").iterdir())] == [f"{v}_{n}.png"
                                                                                    for v, n in enumerate(names)]
    assert bench.images().shape == (6, 5, 32, 32, 3) and bench.images().dtype == np.uint8
    assert {r["split"] for r in bench.records} == {"train", "test", "unseen"}
    for split in ("train", "test", "unseen"):
        pos = bench.questions(split, "positive")
        c = counts["splits"][split]
        assert c["positives"] == len(pos) > 0
        assert c["negatives"] == {s: len(pos) for s in NEGATIVE_SETTINGS}
        for setting in NEGATIVE_SETTINGS:
            ev = bench.eval_set(split, setting)
            assert len(ev) == 2 * len(pos)
            assert sorted(r["pair"] for r in ev if r["label"] == "no") == sorted(r["pair"] for r in pos)
    assert counts["splits"]["train"]["scenes"] == 2 and counts["splits"]["test"]["scenes"] == 2
    assert counts["splits"]["train"]["positives_by_type"]["face"] == 2      # every block painted


def test_labels_agree_with_the_scenes(built):
    out, _ = built
    bench = QABenchmark(out)
    specs = bench.scene_specs()
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
    assert [BenchmarkConfig(scenes=20).split_of(i) for i in range(10)] == ["train"] * 9 + ["test"]
    assert BenchmarkConfig(scenes=20, unseen_scenes=3).split_of(21) == "unseen"
    with pytest.raises(ValueError, match="scene index must be in 0-22"):
        BenchmarkConfig(scenes=20, unseen_scenes=3).split_of(23)
    with pytest.raises(ValueError, match="image_size"):
        BenchmarkConfig(image_size=8)
    with pytest.raises(ValueError, match="raise it"):
        BenchmarkConfig(image_size=128, camera_scale=0.2)
    with pytest.raises(ValueError, match="renderer must be one of"):
        BenchmarkConfig(renderer="opengl")
    with pytest.raises(ValueError, match="not a finished QA benchmark"):
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
