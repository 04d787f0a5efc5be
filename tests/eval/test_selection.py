"""Checkpoint selection on val only (issue 7 item 1)."""

import json

import pytest
import torch

from vlarm.eval import selection
from vlarm.eval.selection import list_candidates, select_checkpoint
from vlarm.policies import make_policy

TINY_TRANSPORTER = {"widths": (4, 8, 8, 8), "transport_dim": 4, "n_rotations": 8}


def _run(tmp_path, steps, name="run"):
    run = tmp_path / name
    for i, step in enumerate(steps):
        torch.manual_seed(i)
        make_policy("transporter", **TINY_TRANSPORTER).save_pretrained(run / "checkpoints" / f"step_{step:06d}")
    (run / "checkpoints" / "step_000099.tmp").mkdir()                 # an unfinished save is never a candidate
    (run / "checkpoints" / f"step_{steps[-1] + 1:06d}").mkdir()       # nor is a partial step directory
    return run


def test_candidates_every_and_errors(tmp_path):
    run = _run(tmp_path, [500, 1000, 1500, 2000, 2500])
    assert [c.step for c in list_candidates([run])] == [500, 1000, 1500, 2000, 2500]
    assert [c.step for c in list_candidates([run], every=2)] == [1000, 2000, 2500]   # the last is always kept
    single = list_candidates([run / "checkpoints" / "step_001000"])
    assert single[0].step == 1000 and single[0].run == run              # a step directory keeps its run and step
    other = tmp_path / "ckpt"
    make_policy("transporter", **TINY_TRANSPORTER).save_pretrained(other)
    assert list_candidates([other])[0].step is None
    with pytest.raises(FileNotFoundError, match="neither a training run"):
        list_candidates([tmp_path / "nothing"])
    with pytest.raises(ValueError, match="--every"):
        list_candidates([run], every=0)


def test_selection_reads_val_only_chooses_the_best_mean_and_resumes(tmp_path, monkeypatch):
    run = _run(tmp_path, [1, 2, 3])
    scores = {("step_000001", "a"): 40.0, ("step_000001", "b"): 60.0, ("step_000002", "a"): 70.0,
              ("step_000002", "b"): 50.0, ("step_000003", "a"): 65.0, ("step_000003", "b"): 55.0}
    calls = []

    def fake_evaluate(factory, task, split, episodes, out_dir, **kw):
        calls.append((split, task))
        score = scores[(kw["label"].split("/")[-1], task)]
        return {"split": split, "episodes": episodes, "camera_scale": kw["camera_scale"], "score": score,
                "score_ci": [score - 5, score + 5], "success_rate": score, "success_ci": [0.0, 100.0]}

    def fake_write(results, out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(results))

    monkeypatch.setattr(selection, "evaluate", fake_evaluate)
    monkeypatch.setattr(selection, "write_results", fake_write)
    out = tmp_path / "sel"
    result = select_checkpoint([run], ["a", "b"], 10, out, progress=False)
    assert {split for split, _ in calls} == {"val"} and len(calls) == 6
    assert result["best"]["step"] == 2 and result["best"]["mean_score"] == pytest.approx(60.0)
    assert json.loads((out / "selection.json").read_text())["best"]["step"] == 2
    assert "(chosen)" in (out / "selection.md").read_text()
    calls.clear()
    select_checkpoint([run], ["a", "b"], 10, out, progress=False)          # rerun: every result is reused
    assert calls == []
    select_checkpoint([run], ["a", "b"], 12, out, progress=False)          # other episode count: evaluated anew
    assert len(calls) == 6
    calls.clear()
    select_checkpoint([run], ["a", "b"], 12, out, progress=False, camera_scale=0.5)   # other cameras: anew
    assert len(calls) == 6
    calls.clear()
    torch.manual_seed(99)                                                  # step 2 retrained in place: anew
    make_policy("transporter", **TINY_TRANSPORTER).save_pretrained(run / "checkpoints" / "step_000002")
    select_checkpoint([run], ["a", "b"], 12, out, progress=False, camera_scale=0.5)
    assert len(calls) == 2


def test_candidates_are_unique_per_directory(tmp_path):
    a_b, a_slash_b = _run(tmp_path, [1], "a_b"), _run(tmp_path / "a", [1], "b")
    keys = [c.key for c in list_candidates([a_b, a_slash_b])]
    assert len(set(keys)) == 2                                             # "a_b" and "a/b" never share a cache
    assert len(list_candidates([a_b, a_b, a_b / "checkpoints" / "step_000001"])) == 1   # duplicates are one


def test_selection_end_to_end_on_the_simulator(tmp_path):
    run = _run(tmp_path, [1, 2])
    result = select_checkpoint([run], ["put-block-in-bowl-seen-colors"], 1, tmp_path / "sel", camera_scale=0.25,
                               progress=False)
    rows = result["candidates"]
    assert [r["step"] for r in rows] == [1, 2] and result["best"] in rows
    saved = json.loads((tmp_path / "sel" / f"{list_candidates([run])[0].key}" / "put-block-in-bowl-seen-colors"
                        / "results.json").read_text())
    assert saved["split"] == "val" and [e["seed"] for e in saved["per_episode"]] == [1]
