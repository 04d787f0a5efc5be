"""`vlarm eval` intervals, `vlarm select` on val, `vlarm run --seed` off the training layouts (issue 7 item 1)."""

import json
import re

import torch
from typer.testing import CliRunner

from vlarm.cli.main import app
from vlarm.policies import make_policy

runner = CliRunner()
TASK = "put-block-in-bowl-unseen-colors"


def test_eval_prints_intervals_and_the_novelty_breakdown(tmp_path):
    result = runner.invoke(app, ["eval", "--task", TASK, "--policy", "oracle", "--split", "val", "--episodes", "2",
                                 "--camera-scale", "0.25", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "pooled" in result.output and "100.0 [100.0, 100.0]" in result.output
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["split"] == "val" and [e["seed"] for e in saved["per_episode"]] == [1, 3]
    assert set(saved["by_novelty"]) == {"all", "some", "none"}


def test_eval_outside_the_training_family_says_so_and_records_the_training_tasks(tmp_path):
    ckpt = tmp_path / "ckpt"
    make_policy("transporter", widths=(4, 8, 8, 8), transport_dim=4, n_rotations=8, tasks=(TASK,)).save_pretrained(ckpt)
    args = ["eval", "--checkpoint", str(ckpt), "--split", "val", "--episodes", "1", "--camera-scale", "0.25"]
    other = runner.invoke(app, [*args, "--task", "packing-shapes", "--out", str(tmp_path / "a")])
    assert other.exit_code == 0, other.output
    assert f"note: the policy was trained on {TASK}, not on the packing-shapes family" in other.output
    assert json.loads((tmp_path / "a" / "results.json").read_text())["trained_tasks"] == [TASK]
    assert f"Policy trained on: {TASK}." in (tmp_path / "a" / "results.md").read_text()
    # its own task and another variant of its family (held-out colours): no note; each task into --out/<task>
    both = runner.invoke(app, [*args, "--task", TASK, "--task", "put-block-in-bowl-seen-colors",
                               "--out", str(tmp_path / "b")])
    assert both.exit_code == 0, both.output
    assert "note:" not in both.output
    for name in (TASK, "put-block-in-bowl-seen-colors"):
        assert json.loads((tmp_path / "b" / name / "results.json").read_text())["task"] == name
        assert f"{name}, val split" in both.output


def test_select_names_the_best_on_val_and_the_test_command(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2):
        torch.manual_seed(step)
        make_policy("transporter", widths=(4, 8, 8, 8), transport_dim=4, n_rotations=8).save_pretrained(
            run / "checkpoints" / f"step_{step:06d}")
    result = runner.invoke(app, ["select", str(run), "--task", TASK, "--episodes", "1", "--camera-scale", "0.25",
                                 "--out", str(tmp_path / "sel")])
    assert result.exit_code == 0, result.output
    selection = json.loads((tmp_path / "sel" / "selection.json").read_text())
    best = selection["best"]["checkpoint"]
    text = " ".join(result.output.split())
    assert "chosen on val" in text and f"--task {TASK} --split test" in text
    assert best.endswith(("step_000001", "step_000002"))
    scores = [r["mean_score"] for r in selection["candidates"]]
    tie = "2 candidates tie at the best mean val score; the first listed is chosen"
    assert (tie in text) == (scores[0] == scores[1])
    bad = runner.invoke(app, ["select", str(tmp_path / "nothing"), "--task", TASK])
    assert bad.exit_code == 2 and "neither a training run" in bad.output


def test_run_seed_indexes_the_test_split(tmp_path):
    out = tmp_path / "ep.json"
    result = runner.invoke(app, ["run", "put the red blocks in a green bowl", "--policy", "oracle", "--json", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["seed"] == 10001 and "test episode 0" in result.output     # never a training layout (even seed)


def test_run_shows_the_template_a_paraphrase_was_read_as_once():
    result = runner.invoke(app, ["run", "please place the red cubes into the green bowl", "--policy", "oracle"])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert [line for line in lines if "step" in line and "instruction:" in line] == [
        "step 1 instruction: put the red blocks in a green bowl"]
    assert "step 2: pick at" in result.output                       # a second step, acting on the same text
    coordinates = re.findall(r"(?:pick|place) at \[([^\]]*)\]", result.output)
    assert len(coordinates) == 4 and all(re.fullmatch(r"-?\d\.\d{4}", v) for c in coordinates for v in c.split(", "))
    typed = runner.invoke(app, ["run", "put the red blocks in a green bowl", "--policy", "oracle"])
    assert typed.exit_code == 0 and "step 1 instruction" not in typed.output


def test_positions_print_with_four_decimals_always():
    from vlarm.cli.main import _xyz

    assert _xyz([0.4141, 0.4047, 0.04, 0.0, 0.0, 0.0, 1.0]) == "[0.4141, 0.4047, 0.0400]"
