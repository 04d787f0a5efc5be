import json
import re
from dataclasses import fields

import pytest
from typer.testing import CliRunner

from vlarm.cli.main import app
from vlarm.eval.qa.benchmark import BenchmarkConfig
from vlarm.vlm.qa.train import QATrainConfig

runner = CliRunner()


def _json(output: str) -> dict:
    return json.loads(output[output.index("{"):])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa-cli")
    bench, run = root / "bench", root / "run"
    res = runner.invoke(app, ["vlm", "qa", "build", "--out", str(bench), "--scenes", "10", "--unseen-scenes", "1",
                              "--image-size", "16", "--camera-scale", "0.2", "--sampled-views", "1"])
    assert res.exit_code == 0, res.output
    counts = _json(res.output)["counts"]
    assert [counts[s]["scenes"] for s in ("train", "val", "test", "unseen")] == [8, 1, 1, 1]
    res = runner.invoke(app, ["vlm", "qa", "train", "--benchmark", str(bench), "--out", str(run), "--views", "1",
                              "--question-encoder", "words", "--epochs", "1", "--no-negative-instructions"])
    assert res.exit_code == 0, res.output
    out = _json(res.output)
    assert out["config"]["negative_instructions"] is False and out["last_epoch"]["epoch"] == 1
    return bench, run


def test_eval_prints_every_setting(trained, tmp_path):
    bench, run = trained
    res = runner.invoke(app, ["vlm", "qa", "eval", "--model", str(run), "--benchmark", str(bench),
                              "--split", "test", "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    for word in ("random", "popular", "adversarial", "hooa", "f1", "yes_ratio"):
        assert word in res.output
    saved = json.loads((tmp_path / "r.json").read_text())
    assert set(saved["test"]["settings"]) == {"random", "popular", "adversarial"} and saved["predictions"]


def test_ask_answers_with_the_truth(trained, tmp_path):
    bench, run = trained
    res = runner.invoke(app, ["vlm", "qa", "ask", "--model", str(run), "--benchmark", str(bench), "--scene", "9",
                              "--views-png", str(tmp_path / "v.png"), "Is the block red?", "Is anything here?",
                              "Is the block magenta?"])
    assert res.exit_code == 0, res.output
    out = _json(res.output)
    block = next(o for o in out["scene"]["objects"] if o["kind"] == "block")
    first, second, third = out["answers"]
    assert first["answer"] in ("Yes", "No") and 0 <= first["p_yes"] <= 1
    assert first["truth"] == ("yes" if block["color"] == "red" else "no")
    assert first["note"] is None
    assert second["truth"] is None and "Is the {kind} {colour}?" in second["note"]     # follows no template
    assert third["truth"] is None and "'magenta' is not a colour here (colours: blue" in third["note"]
    assert (tmp_path / "v.png").is_file() and out["views_read"] == [0]


def test_user_errors_are_one_line(trained, tmp_path):
    bench, run = trained
    res = runner.invoke(app, ["vlm", "qa", "train", "--benchmark", str(bench), "--out", str(tmp_path / "x"),
                              "--views", "2"])
    assert res.exit_code == 2 and "valid: 1, 1+8" in res.output
    res = runner.invoke(app, ["vlm", "qa", "eval", "--model", str(run), "--benchmark", str(bench), "--split", "dev"])
    assert res.exit_code == 2 and "valid: train, val, test, unseen" in res.output
    res = runner.invoke(app, ["vlm", "qa", "ask", "--model", str(tmp_path / "none"), "Is the block red?"])
    assert res.exit_code == 2 and "no MIAVLM model" in res.output
    res = runner.invoke(app, ["vlm", "qa", "build", "--out", str(bench), "--scenes", "11"])
    assert res.exit_code == 2 and "another config" in res.output


@pytest.mark.parametrize("command, dataclass", [("build", BenchmarkConfig), ("train", QATrainConfig)])
def test_help_defaults_are_the_dataclass_defaults(command, dataclass):
    """Options default to None and the dataclass fills them in; the help text's "(default X)" must say the same."""
    import typer.main

    group = typer.main.get_command(app).commands["vlm"].commands["qa"].commands[command]
    defaults = {f.name: f.default for f in fields(dataclass)}
    checked = 0
    for param in group.params:
        m = re.search(r"\(default ([^)]+)\)", param.help or "")
        if m and param.name in defaults:
            assert m.group(1) == str(defaults[param.name]), param.name
            checked += 1
    assert checked >= 5
