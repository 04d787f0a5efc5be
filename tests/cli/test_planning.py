"""`vlarm plan`, `vlarm run --planner saycan` and `vlarm eval-planner` with a tiny random LM (never Gemma)."""

from __future__ import annotations

import json

import pytest
from tests.planning.tiny_lm import tiny_gemma, tiny_tokenizer
from typer.testing import CliRunner

from vlarm.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-lm")
    tiny_gemma(sliding_window=512).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.mark.parametrize("instruction, expected", [
    ("", "the instruction is empty"),
    ("put the white block in the middle", "there is no white block on the table"),
])
def test_bad_input_is_answered_with_done_not_a_crash(tiny_lm_dir, tmp_path, monkeypatch, instruction, expected):
    out = tmp_path / "episode.json"
    monkeypatch.setenv("VLARM_PLANNER_LM", str(tiny_lm_dir))   # `vlarm run` has no --lm flag
    result = runner.invoke(app, ["run", instruction, "--planner", "saycan", "--policy", "oracle", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert expected in " ".join(result.output.split()) and "Traceback" not in result.output
    record = json.loads(out.read_text())
    assert record["stop"] == "refused" and [s["skill"] for s in record["steps"]] == ["done()"]


def test_plan_prints_scored_options_executes_and_writes_a_video(tiny_lm_dir, tmp_path):
    video = tmp_path / "plan.gif"
    result = runner.invoke(app, ["plan", "stack all the blocks", "--policy", "oracle", "--lm", str(tiny_lm_dir),
                                 "--max-steps", "1", "--video", str(video)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "top options" in text and "LM" in text and "affordance" in text and "combined" in text
    assert "seen on the table:" in text and video.is_file() and video.stat().st_size > 0


def test_bad_flags_are_clear_errors(tmp_path):
    result = runner.invoke(app, ["eval-planner", "--out", str(tmp_path / "o"), "--methods", "saycan,magic"])
    assert result.exit_code == 2 and "valid:" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["eval-planner", "--out", str(tmp_path / "o"), "--part", "secret"])
    assert result.exit_code == 2 and "held-out" in result.output
    result = runner.invoke(app, ["plan", "stack the blocks", "--policy", "magic"])
    assert result.exit_code == 2 and "oracle" in result.output


def test_explain_runs_the_chain_of_thought_line_first(tiny_lm_dir, tmp_path):
    out = tmp_path / "ep.json"
    result = runner.invoke(app, ["plan", "stack all the blocks", "--policy", "oracle", "--lm", str(tiny_lm_dir),
                                 "--max-steps", "1", "--explain", "--json", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert isinstance(record["explanation"], str) and record["stop"] in ("done", "step limit")


@pytest.mark.parametrize("where, message", [("none", "no such directory"), ("empty", "could not load the language")])
def test_a_missing_language_model_is_a_one_line_error_not_a_traceback(tmp_path, where, message):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["plan", "stack all the blocks", "--policy", "oracle", "--lm", str(tmp_path / where)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
