import json

import numpy as np
import pytest
import torch

from vlarm.eval.qa.benchmark import BenchmarkConfig, build_benchmark
from vlarm.eval.qa.scoring import evaluate
from vlarm.vlm.qa import train as qa_train
from vlarm.vlm.qa.dataset import QABenchmark
from vlarm.vlm.qa.inference import time_per_question
from vlarm.vlm.qa.train import (
    QATrainConfig,
    TrainingQuestions,
    load_model,
    names_absent_object,
    save_model,
    train,
    view_entropy,
    view_mask,
)
from vlarm.weights import WeightsError

TINY = BenchmarkConfig(scenes=6, unseen_scenes=2, test_every=3, sampled_views=6, image_size=16, camera_scale=0.2,
                       face_probability=1.0)
SMALL_MODEL = {"width": 16, "prompt_tokens": 2, "extractor_blocks": 1, "answer_layers": 1, "attention_heads": 2}


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("qa") / "bench"
    build_benchmark(out, TINY, progress=False)
    return out


def config(bench_dir, out, **kw) -> QATrainConfig:
    base = dict(question_encoder="words", epochs=3, batch_scenes=2, model=SMALL_MODEL)
    return QATrainConfig(str(bench_dir), str(out), **{**base, **kw})


def test_training_questions_with_and_without_negative_instructions(bench_dir):
    bench = QABenchmark(bench_dir)
    objects = bench.scene_objects()
    rng = np.random.default_rng(0)
    by_text = {r["question"]: r for r in bench.records}
    for ni in (False, True):
        data = TrainingQuestions(bench, objects, negative_instructions=ni)
        scenes = [int(s) for s in data.scenes[:3]]
        texts, labels, where, n_existence = data.batch(scenes, rng)
        n_pos = sum(labels)
        assert n_pos == sum(len(data.positives[s]) for s in scenes) and n_existence > 0
        attribute_negatives = 0
        for text, label, k in zip(texts, labels, where, strict=True):
            if label == 0 and not names_absent_object(objects[scenes[k]], by_text[text]):
                attribute_negatives += 1       # a question about an object that is there, answered "no"
        assert attribute_negatives == (n_pos if ni else 0)


def test_train_writes_a_checkpoint_and_learns_the_train_set(bench_dir, tmp_path):
    result = train(config(bench_dir, tmp_path / "run", epochs=12, lr=3e-3), progress=False)
    log = result["log"]
    assert len(log) == 12 and all(np.isfinite(e["loss"]) for e in log)
    assert log[-1]["loss"] < log[0]["loss"]
    ckpt = tmp_path / "run" / "checkpoint"
    assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "config.json", "optimizer.safetensors",
                                                "train_state.json"}
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 12
    model = load_model(tmp_path / "run")
    res = evaluate(model, QABenchmark(bench_dir), ("train", "test"))
    scored = {r["id"] for r in QABenchmark(bench_dir).records if r["split"] in ("train", "test")}
    assert set(res["predictions"]) == scored
    for split in ("train", "test"):
        for setting in ("random", "popular", "adversarial"):
            m = res[split]["settings"][setting]
            assert m["n"] == 2 * m["positives"] and m["unparseable"] == 0
    # A finished run is not trained again.
    assert train(config(bench_dir, tmp_path / "run", epochs=12, lr=3e-3), progress=False)["log"] == []


def test_resume_after_a_kill_gives_the_same_weights(bench_dir, tmp_path, monkeypatch):
    train(config(bench_dir, tmp_path / "full"), progress=False)
    real_save = qa_train._save_checkpoint

    def save_then_die(out, model, optimizer, epoch, *args):
        real_save(out, model, optimizer, epoch, *args)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(qa_train, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config(bench_dir, tmp_path / "killed"), progress=False)
    monkeypatch.setattr(qa_train, "_save_checkpoint", real_save)
    assert json.loads((tmp_path / "killed" / "checkpoint" / "train_state.json").read_text())["epoch"] == 2
    resumed = train(config(bench_dir, tmp_path / "killed"), progress=False)
    assert [e["epoch"] for e in resumed["log"]] == [3]
    a, b = load_model(tmp_path / "full").state_dict(), load_model(tmp_path / "killed").state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="another configuration"):
        train(config(bench_dir, tmp_path / "killed", lr=5e-4), progress=False)


def test_configuration_errors(bench_dir, tmp_path):
    with pytest.raises(ValueError, match="valid: map, concat, tile, mean"):
        config(bench_dir, tmp_path, fusion="attention")
    with pytest.raises(ValueError, match="valid: 1, 1\\+8"):
        config(bench_dir, tmp_path, views="2")
    with pytest.raises(ValueError, match="valid: minilm, words"):
        config(bench_dir, tmp_path, question_encoder="gpt")
    with pytest.raises(ValueError, match="view_dropout needs fusion map or mean"):
        config(bench_dir, tmp_path, fusion="concat", view_dropout=0.3)
    with pytest.raises(ValueError, match="view_entropy"):
        config(bench_dir, tmp_path, fusion="mean", view_entropy=0.1)
    small = tmp_path / "few-views"
    build_benchmark(small, BenchmarkConfig(scenes=3, unseen_scenes=0, test_every=3, sampled_views=1,
                                           image_size=16, camera_scale=0.2), progress=False)
    with pytest.raises(ValueError, match="needs 9 views; the benchmark has 4"):
        train(config(small, tmp_path / "run"), progress=False)
    with pytest.raises(ValueError, match="not a finished QA benchmark"):
        train(config(tmp_path / "missing", tmp_path / "run2"), progress=False)


def test_load_model_refuses_missing_and_damaged(bench_dir, tmp_path):
    with pytest.raises(ValueError, match="no MIAVLM model"):
        load_model(tmp_path / "nothing")
    model = qa_train.build_model(config(bench_dir, tmp_path), QABenchmark(bench_dir))
    save_model(model, tmp_path / "m")
    assert load_model(tmp_path / "m").config == model.config
    path = tmp_path / "m" / "model.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-16:-8] = b"\x00\x11\x22\x33\x44\x55\x66\x77"
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="digest mismatch"):
        load_model(tmp_path / "m")


def test_time_per_question(bench_dir, tmp_path):
    model = qa_train.build_model(config(bench_dir, tmp_path), QABenchmark(bench_dir)).eval()
    t = time_per_question(model, QABenchmark(bench_dir).images()[0], "Is the block red?", repeats=3)
    assert 0 < t["median_s"] <= t["p90_s"] and t["views"] == 9 and t["threads"] >= 1


def test_names_absent_object_reads_kinds_and_colours():
    objects = [{"kind": "block", "color": "red"}, {"kind": "bowl", "color": "blue"}]
    record = {"type": "color", "subject": "block", "other": None}
    assert not names_absent_object(objects, record)
    assert names_absent_object(objects, {**record, "subject": "star"})
    assert not names_absent_object(objects, {"type": "shape", "subject": "blue", "other": None})
    assert names_absent_object(objects, {"type": "shape", "subject": "green", "other": None})
    assert names_absent_object(objects, {"type": "relation", "subject": "block", "other": "star"})


def test_view_mask_and_entropy():
    rng = np.random.default_rng(0)
    keep = view_mask(rng, 500, 9, 0.5)
    assert keep.shape == (500, 9) and keep.dtype == torch.bool and bool(keep.any(1).all())
    assert 0.45 < float(keep.float().mean()) < 0.56
    assert bool(view_mask(rng, 50, 3, 0.99).sum(1).ge(1).all())          # never a scene without a view
    assert bool(view_mask(rng, 10, 4, 0.0).all())
    assert float(view_entropy(torch.full((2, 4), 0.25))) == pytest.approx(1.0)
    assert float(view_entropy(torch.tensor([[1.0, 0.0, 0.0]]))) == pytest.approx(0.0, abs=1e-9)
    assert float(view_entropy(torch.ones(3, 1))) == 0.0


def test_training_with_view_dropout_and_entropy(bench_dir, tmp_path):
    log = train(config(bench_dir, tmp_path / "run", epochs=3, views="1+8", view_dropout=0.5, view_entropy=0.1),
                progress=False)["log"]
    assert all(np.isfinite(e["loss"]) for e in log)
    for entry in log:                                     # each scene's weights sum to 1, dropped views get 0
        assert len(entry["view_weights"]) == 9 and sum(entry["view_weights"]) == pytest.approx(1.0, abs=1e-3)


def test_the_entropy_bonus_spreads_saturated_view_weights():
    """The collapse seen on the benchmark: sampler scores so far apart that the softmax over views is one-hot. A few
    steps on the bonus alone move the weights back towards uniform."""
    from vlarm.vlm.qa.model import MultiheadSampler

    torch.manual_seed(0)
    sampler = MultiheadSampler(16, 4)
    with torch.no_grad():                                   # large scores, as after the collapse
        sampler.key.weight.mul_(10)
        sampler.query.weight.mul_(10)
    cls, prompts = torch.randn(8, 9, 16) * 4, torch.randn(4, 16)
    with torch.no_grad():
        before = float(view_entropy(sampler(cls, prompts)))
    optimizer = torch.optim.Adam(sampler.parameters(), lr=1e-2)
    for _ in range(20):
        loss = -view_entropy(sampler(cls, prompts))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = float(view_entropy(sampler(cls, prompts)))
    assert before < 0.9 and after > before + 0.08


def test_the_model_side_imports_no_simulator_tasks_or_eval():
    """DESIGN layering: vlarm.vlm may import text and vision only; the benchmark builder lives in vlarm.eval.qa."""
    import subprocess
    import sys

    code = ("import sys, vlarm.vlm.qa.dataset, vlarm.vlm.qa.model, vlarm.vlm.qa.train, vlarm.vlm.qa.inference; "
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('vlarm.') and m.count('.') >= 1}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    layers = set(eval(out))                                   # noqa: S307 - our own printed list
    assert "vlm" in layers and layers.isdisjoint({"sim", "tasks", "envs", "data", "eval", "policies"}), layers
