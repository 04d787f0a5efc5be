import numpy as np
import pytest
import torch

from vlarm.vlm.detector import DetectorConfig, distill, heatmap, load_detector, save_detector, teacher_targets

COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 230)}


def _scenes(n, seed):
    rng = np.random.default_rng(seed)
    images, objects = [], []
    for _ in range(n):
        img = np.full((64, 64, 3), 40, np.uint8)
        objs = []
        centres = [(16, 16), (16, 48), (48, 16), (48, 48)]
        for name, k in zip(rng.permutation(list(COLOURS)), rng.permutation(4)[:3], strict=False):
            r, c = centres[k]
            img[r - 6 : r + 6, c - 6 : c + 6] = COLOURS[name]
            objs.append((str(name), "block", (r, c)))
        images.append(img)
        objects.append(objs)
    return images, objects


@pytest.fixture(scope="module")
def distilled(lit):
    model, tf, _ = lit
    images, objects = _scenes(8, 0)
    cfg = DetectorConfig(width=16, depth=2, region_radius=5, crop_size=24, epochs=25, batch_size=4, lr=1e-2)
    return distill(model, tf, images, objects, cfg, progress=False)


def test_region_embeddings_localise_teacher_queries(lit, distilled):
    """Query each held-out scene with the teacher's embedding of one object's crop: the argmax lands on it."""
    model, tf, _ = lit
    images, objects = _scenes(4, 1)
    targets = teacher_targets(model, tf, images, objects, crop_size=24)
    hits = total = 0
    for img, objs, t in zip(images, objects, targets, strict=True):
        for obj, emb in zip(objs, t, strict=True):
            hm = heatmap(distilled, emb, img)
            flat = int(hm.argmax())
            pix = np.array([flat // 64, flat % 64])
            hits += np.linalg.norm(pix - np.array(obj[2])) <= 8
            total += 1
    assert hits / total > 0.6  # chance (random pixel within 8 px of the object) is ~5%


def test_detector_round_trip(tmp_path, distilled):
    save_detector(distilled, tmp_path / "det")
    loaded = load_detector(tmp_path / "det")
    x = torch.rand(1, 3, 64, 64) * 255
    assert torch.allclose(loaded(x), distilled(x), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="detector_config.json"):
        load_detector(tmp_path / "missing")


def test_metrics_and_threshold_calibration_on_hand_made_queries():
    from vlarm.vlm.detector import QueryRecord, calibrate_threshold, metrics_at

    # Two present phrases found with high scores, one absent phrase with a middling score, one absent low.
    records = [QueryRecord(0.9, True, True), QueryRecord(0.6, True, True), QueryRecord(0.4, False, False),
               QueryRecord(0.1, False, False)]
    at0 = metrics_at(records, 0.0)
    assert at0["precision"] == 0.5 and at0["recall"] == 1.0 and at0["n_present"] == 2
    t = calibrate_threshold(records)
    assert 0.4 <= t < 0.6
    best = metrics_at(records, t)
    assert best["precision"] == 1.0 and best["recall"] == 1.0 and best["f1"] == 1.0
    with pytest.raises(ValueError, match="no query records"):
        calibrate_threshold([])
