import json

import numpy as np
import pytest
import torch

from vlarm.vlm.qa import train as qa_train
from vlarm.vlm.qa.benchmark import BenchmarkConfig, QABenchmark, build_benchmark
from vlarm.vlm.qa.inference import evaluate, time_per_question
from vlarm.vlm.qa.questions import Query
from vlarm.vlm.qa.train import (
    QATrainConfig,
    TrainingQuestions,
    load_model,
    names_absent_object,
    save_model,
    train,
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
    specs = bench.scene_specs()
    rng = np.random.default_rng(0)
    by_text = {r["question"]: r for r in bench.records}
    for ni in (False, True):
        data = TrainingQuestions(bench, specs, negative_instructions=ni)
        scenes = [int(s) for s in data.scenes[:3]]
        texts, labels, where, n_existence = data.batch(scenes, rng)
        n_pos = sum(labels)
        assert n_pos == sum(len(data.positives[s]) for s in scenes) and n_existence > 0
        attribute_negatives = 0
        for text, label, k in zip(texts, labels, where, strict=True):
            r = by_text[text]
            query = Query(r["type"], r["subject"], r["value"], r["other"])
            if label == 0 and not names_absent_object(specs[scenes[k]], query):
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
    assert set(res["predictions"]) == {r["id"] for r in QABenchmark(bench_dir).records if r["split"] != "unseen"}
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
    small = tmp_path / "few-views"
    build_benchmark(small, BenchmarkConfig(scenes=2, unseen_scenes=0, test_every=2, sampled_views=1,
                                           image_size=16, camera_scale=0.2), progress=False)
    with pytest.raises(ValueError, match="needs 9 views; the benchmark has 4"):
        train(config(small, tmp_path / "run"), progress=False)


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
