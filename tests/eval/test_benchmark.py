"""The benchmark grid (issue 8 item 5): cells, resume, the Table-1 report and its plots."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vlarm.eval.benchmark import Cell, Grid, grid_markdown, plot_grid, run_grid

TINY_TRANSPORTER = {"policy_overrides": {"widths": [4, 8, 8, 8], "transport_dim": 4, "n_rotations": 4},
                    "batch_size": 1, "threads": 1}


def _record(method_policy, tasks, demos, test):
    cell = Cell(method_policy, tasks, demos, 10)
    return {"cell": {**cell.__dict__}, "method": cell.method, "checkpoint": "runs/x/checkpoints/step_000010",
            "val": {}, "test": test, "cpu_seconds": {"collect": 60.0, "train": 120.0, "select": 30.0, "test": 30.0}}


def _summary(score, episodes=100, novel=None):
    return {"episodes": episodes, "score": score, "score_ci": [score - 5, score + 5], "success_rate": score,
            "success_ci": [score - 6, score + 6],
            "by_novelty": {"all": novel or {"episodes": 0, "score": None, "score_ci": None}}}


def test_cell_validates_and_names_itself():
    cell = Cell("cliport", ["put-block-in-bowl-seen-colors"], 10, 500,
                eval_tasks=["put-block-in-bowl-seen-colors", "put-block-in-bowl-unseen-colors"])
    assert cell.name == "cliport-put-block-in-bowl-seen-colors-10demos-500steps" and not cell.multi_task
    assert cell.method == "CLIPort (single-task)"
    multi = Cell("cliport", ["put-block-in-bowl-seen-colors", "put-block-in-bowl-full"], 10, 500)
    assert multi.multi_task and multi.method == "CLIPort (multi-task)" and multi.eval_tasks == multi.tasks
    with pytest.raises(ValueError, match="valid tasks"):
        Cell("cliport", ["stack-the-bowls"], 10, 500)
    with pytest.raises(ValueError, match="valid policies"):
        Cell("rt9", ["put-block-in-bowl-seen-colors"], 10, 500)
    with pytest.raises(ValueError, match="demos and steps"):
        Cell("cliport", ["put-block-in-bowl-seen-colors"], 0, 500)


def test_grid_file_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks/grids"):
        Grid.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"cells": [{"policy": "cliport", "tasks": ["put-block-in-bowl-seen-colors"],
                                          "demos": 1, "steps": 1, "colour": "red"}]}))
    with pytest.raises(ValueError, match="not a valid grid file"):
        Grid.from_json(bad)


def test_markdown_rows_are_tasks_columns_method_by_demos_with_the_paper_alongside(tmp_path):
    seen, unseen = "put-block-in-bowl-seen-colors", "put-block-in-bowl-unseen-colors"
    records = [
        _record("cliport", [seen], 10, {seen: _summary(70.0), unseen: _summary(30.0, novel={
            "episodes": 27, "score": 20.0, "score_ci": [10.0, 30.0]})}),
        _record("cliport", [seen], 100, {seen: _summary(95.0)}),
        _record("transporter", [seen], 100, {seen: _summary(60.0)}),
    ]
    text = grid_markdown(records, "a grid")
    header = next(line for line in text.splitlines() if line.startswith("| task |"))
    assert header.split(" | ")[1:] == ["CLIPort (single-task), 10 demos", "CLIPort (single-task), 100 demos",
                                       "Transporter-only, 100 demos |"]
    seen_row = next(line for line in text.splitlines() if line.startswith(f"| {seen} |"))
    assert "70.0 [65.0, 75.0] n=100 (paper: 68.3)" in seen_row and "(paper: 62.7)" in seen_row
    unseen_row = next(line for line in text.splitlines() if line.startswith(f"| {unseen} |"))
    assert "all-novel 20.0 [10.0, 30.0] n=27, some-novel - n=0, none-novel - n=0" in unseen_row
    assert unseen_row.count("| - (paper") == 2 and "novel" not in seen_row
    assert "1.0 / 2.0 / 0.5 / 0.5" in text   # CPU-minutes per stage
    paths = plot_grid(records, tmp_path / "plots")
    assert sorted(p.name for p in paths) == [f"{seen}.png", f"{unseen}.png"] and all(p.stat().st_size for p in paths)


def test_a_tiny_grid_runs_end_to_end_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = Grid(cells=[Cell("transporter", ["put-block-in-bowl-seen-colors"], 1, 2,
                            eval_tasks=["put-block-in-bowl-seen-colors", "put-block-in-bowl-unseen-colors"],
                            train_options=TINY_TRANSPORTER)],
                val_episodes=1, test_episodes=1, save_every=1, camera_scale=0.25, data_root=str(tmp_path / "data"))
    records = run_grid(grid, tmp_path / "out", progress=False)
    record = records[0]
    assert set(record["test"]) == {"put-block-in-bowl-seen-colors", "put-block-in-bowl-unseen-colors"}
    assert record["checkpoint"].startswith(str(tmp_path / "out" / record["cell"]["name"] / "run"))
    assert set(record["cpu_seconds"]) == {"collect", "train", "select", "test"}
    assert (tmp_path / "out" / "table1.md").is_file() and (tmp_path / "out" / "plots").is_dir()
    # a second run reads the finished cell back instead of redoing it
    real_train = sys.modules["vlarm.eval.benchmark"]._train
    monkeypatch.setattr("vlarm.eval.benchmark._train", lambda *a, **k: pytest.fail("retrained a finished cell"))
    assert run_grid(grid, tmp_path / "out", progress=False)[0] == record
    monkeypatch.setattr("vlarm.eval.benchmark._train", real_train)   # resumes: its checkpoints are all there
    # a run cut off during the test stage keeps the tasks it finished and the CPU of the stages before it
    cell_dir = tmp_path / "out" / record["cell"]["name"]
    (cell_dir / "cell.json").unlink()
    unseen = cell_dir / "test" / "put-block-in-bowl-unseen-colors" / "results.json"
    unseen.unlink()
    tested = []
    rollout_module = sys.modules["vlarm.eval.rollout"]   # (the package's `rollout` attribute is the function)
    real_evaluate = rollout_module.evaluate
    monkeypatch.setattr(rollout_module, "evaluate", lambda *a, **k: tested.append(a[1]) or real_evaluate(*a, **k))
    again = run_grid(grid, tmp_path / "out", progress=False)[0]
    assert tested == ["put-block-in-bowl-unseen-colors"]   # the seen variant's finished test was read back
    assert again["test"]["put-block-in-bowl-seen-colors"] == record["test"]["put-block-in-bowl-seen-colors"]
    assert again["test"] == record["test"]   # the same seeds and checkpoint give the same episodes
    for stage in ("collect", "train", "select"):   # the first run's CPU, not the resumed run's near-zero
        assert again["cpu_seconds"][stage] >= record["cpu_seconds"][stage]
    # a checkpoint replaced at the same path (other files) is tested again, not read back
    (cell_dir / "cell.json").unlink()
    config = Path(record["checkpoint"]) / "config.json"
    config.write_text(config.read_text() + "\n")
    tested.clear()
    run_grid(grid, tmp_path / "out", progress=False)
    assert sorted(tested) == ["put-block-in-bowl-seen-colors", "put-block-in-bowl-unseen-colors"]
