import json

import pytest
from typer.testing import CliRunner

from vlarm.cli.main import app

runner = CliRunner()


def test_tasks_lists_registry():
    result = runner.invoke(app, ["tasks"])
    assert result.exit_code == 0 and "put-block-in-bowl-unseen-colors" in result.output
    assert "vlarm/<task>-v0" in " ".join(result.output.split())


def test_unknown_task_is_a_clear_error():
    result = runner.invoke(app, ["eval", "--task", "nope", "--policy", "oracle"])
    assert result.exit_code == 2 and "valid tasks" in result.output and "Traceback" not in result.output


def test_ungroundable_instruction_names_what_was_understood():
    result = runner.invoke(app, ["run", "put the red blocks in a magenta bowl", "--policy", "oracle"])
    assert result.exit_code == 2
    assert "Understood" in result.output and "'magenta'" in result.output and "Traceback" not in result.output


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["eval", "--task", "put-block-in-bowl-seen-colors", "--checkpoint",
                                 str(tmp_path / "missing"), "--episodes", "1"])
    assert result.exit_code == 2 and "missing" in result.output and "Traceback" not in result.output


def test_bad_split_and_missing_dataset(tmp_path):
    result = runner.invoke(app, ["eval", "--task", "put-block-in-bowl-seen-colors", "--policy", "oracle",
                                 "--split", "dev"])
    assert result.exit_code == 2 and "--split must be val or test, got 'dev'" in result.output
    result = runner.invoke(app, ["train", "--policy", "cliport", "--task", "put-block-in-bowl-seen-colors",
                                 "--data", str(tmp_path / "none"), "--steps", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_run_oracle_reports_steps_and_writes_json(tmp_path):
    out = tmp_path / "episode.json"
    result = runner.invoke(app, ["run", "put the red blocks in a green bowl", "--policy", "oracle", "--seed", "1",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "step 1: pick at" in result.output and "success" in result.output
    record = json.loads(out.read_text())
    assert record["instruction"] == "put the red blocks in a green bowl" and record["success"]


def test_run_checks_options_before_any_work(tmp_path):
    cases = [
        (["--seed", "-1", "--policy", "oracle"], "--seed must be >= 0"),
        (["--video", str(tmp_path / "x.avi"), "--policy", "oracle"], "must end in .mp4 or .gif"),
        (["--policy", "foo"], "--policy accepts only 'oracle'"),
        (["--policy", "oracle", "--checkpoint", str(tmp_path)], "not both"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["run", "put the red blocks in a green bowl", *extra])
        assert result.exit_code == 2 and message in result.output, (extra, result.output)


def test_collect_into_a_file_is_a_clear_error(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = runner.invoke(app, ["collect", "--task", "put-block-in-bowl-seen-colors", "--out", str(target),
                                 "--episodes", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_semantic_vlm_option_errors(tmp_path):
    base = ["train", "--task", "put-block-in-bowl-seen-colors", "--data", str(tmp_path / "none")]
    result = runner.invoke(app, [*base, "--policy", "transporter", "--semantic-vlm", "x"])
    assert result.exit_code == 2 and "needs --policy cliport" in result.output
    result = runner.invoke(app, [*base, "--policy", "cliport", "--semantic-vlm", str(tmp_path / "vlm")])
    assert result.exit_code == 2 and "no such checkpoint directory" in result.output


def test_bad_numbers_and_paths_fail_before_any_work(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    train = ["train", "--policy", "cliport", "--task", "put-block-in-bowl-seen-colors", "--data", str(tmp_path)]
    cases = [
        ([*train, "--steps", "0"], "--steps must be > 0"),
        ([*train, "--demos", "0"], "--demos must be > 0"),
        ([*train, "--batch-size", "-3"], "--batch-size must be > 0"),
        ([*train, "--threads", "-1"], "--threads must be >= 0"),
        ([*train, "--grounding-fusion", "both"], "--grounding-fusion only applies with --semantic-vlm"),
        ([*train, "--out", str(afile / "run")], "is a file, not a directory"),
        (["eval", "--task", "put-block-in-bowl-seen-colors", "--policy", "oracle", "--split", "train"],
         "--split must be val or test"),
        (["eval", "--task", "put-block-in-bowl-seen-colors", "--policy", "oracle", "--split", "Test"],
         "--split must be val or test, got 'Test'"),
        (["eval", "--task", "put-block-in-bowl-seen-colors", "--policy", "oracle", "--out", str(afile)],
         "is a file, not a directory"),
        (["collect", "--task", "put-block-in-bowl-seen-colors", "--out", str(tmp_path / "d"), "--camera-scale", "0"],
         "--camera-scale must be > 0"),
        (["run", "put the red blocks in a green bowl", "--policy", "oracle", "--video", str(afile / "x.mp4")],
         "is a file, not a directory"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "\n" not in result.output.strip(), result.output  # one line, even when not a terminal


def test_grounding_score_options(tmp_path):
    from vlarm.cli.main import _grounding_settings

    vlm = "checkpoints/lit-sim-all-colors"
    base = ["train", "--task", "put-block-in-bowl-seen-colors", "--data", str(tmp_path / "none"), "--policy",
            "cliport"]
    result = runner.invoke(app, [*base, "--grounding-score", "softmax"])
    assert result.exit_code == 2 and "only apply with --semantic-vlm" in result.output
    assert _grounding_settings(vlm, None, None) == {"grounding_score": "relative"}
    softmax = _grounding_settings(vlm, "softmax", None)
    assert "orange bowl" in softmax["grounding_vocabulary"] and len(softmax["grounding_vocabulary"]) == 22
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({"a": 5.0, "b": -3.0}))
    expected = {"grounding_score": "calibrated", "grounding_calibration": (5.0, -3.0)}
    assert _grounding_settings(vlm, None, cal) == expected
    for score, path, message in [("calibrated", None, "go together"), ("softmax", cal, "go together"),
                                 ("best", None, "must be relative")]:
        with pytest.raises(ValueError, match=message):
            _grounding_settings(vlm, score, path)
    cal.write_text("{\"a\": 1}")
    with pytest.raises(ValueError, match="numbers 'a' and 'b'"):
        _grounding_settings(vlm, None, cal)
