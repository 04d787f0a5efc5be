"""The command line fails early, in one line, naming the flag, and says what to do (issue 7, item 6)."""

import errno
import functools
import json
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlarm.checks import FEWSHOT_METHODS, VLM_EVAL_DATASETS, check_output
from vlarm.cli.main import app
from vlarm.tasks import family_example, list_families

runner = CliRunner()
TASK = "put-block-in-bowl-seen-colors"
linux = pytest.mark.skipif(sys.platform != "linux", reason="uses /proc and /sys")


class HeavyWork(AssertionError):
    """Raised by stand-ins of everything slow: a check that should have failed first let the command through."""


@pytest.fixture()
def no_heavy_work(monkeypatch):
    """Every slow entry point the commands reach raises :class:`HeavyWork` instead of running."""
    import vlarm.data.collect
    import vlarm.envs
    import vlarm.eval
    import vlarm.policies
    import vlarm.policies.training
    import vlarm.vlm.commands as commands

    def heavy(*args, **kwargs):
        raise HeavyWork("heavy work started before the arguments were checked")

    for module, name in [(vlarm.envs, "make_env"), (vlarm.eval, "evaluate"), (vlarm.policies, "load_policy"),
                         (vlarm.data.collect, "collect"), (vlarm.policies.training, "train"),
                         (commands, "create_model_and_transforms")]:
        monkeypatch.setattr(module, name, heavy)
    return heavy


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    out = result.output.strip()
    assert out.startswith("error: ") and "\n" not in out and "Traceback" not in out, out
    for fragment in fragments:
        assert fragment in out, (fragment, out)
    return out


# ---------------------------------------------------------------------------------------------- output paths
@pytest.fixture()
def fixtures(tmp_path):
    """Paths the commands need to get as far as their output check."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    detector = tmp_path / "detector"
    detector.mkdir()
    (detector / "detector_config.json").write_text("{}")
    (tmp_path / "scene.png").write_bytes(b"not decoded before the checks")
    return tmp_path


# command args (P: the output path), flag, kind, suffix of a good file name
OUTPUT_FLAGS = [
    (["run", "put the red blocks in a green bowl", "--policy", "oracle", "--video", "P"], "--video", "file", ".mp4"),
    (["run", "put the red blocks in a green bowl", "--policy", "oracle", "--json", "P"], "--json", "file", ".json"),
    (["eval", "--task", TASK, "--policy", "oracle", "--episodes", "1", "--out", "P"], "--out", "dir", ""),
    (["collect", "--task", TASK, "--episodes", "1", "--out", "P"], "--out", "dir", ""),
    (["train", "--policy", "cliport", "--task", TASK, "--data", "{tmp}", "--out", "P"], "--out", "dir", ""),
    (["vlm", "train", "--data", "{tmp}/pairs.csv", "--out", "P"], "--out", "dir", ""),
    (["vlm", "eval", "--model", "lit-effnet-minilm", "--out", "P"], "--out", "dir", ""),
    (["vlm", "fewshot", "--model", "lit-effnet-minilm", "--out", "P"], "--out", "dir", ""),
    (["vlm", "detect", "{tmp}/scene.png", "the red block", "--detector", "{tmp}/detector", "--out", "P"], "--out",
     "file", ".png"),
]
FLAG_IDS = [" ".join(a[:2]) + " " + f for a, f, _, _ in OUTPUT_FLAGS]


def _args(args, tmp, path):
    return [str(path) if a == "P" else a.format(tmp=tmp) for a in args]


@linux
@pytest.mark.parametrize("where", ["/proc", "/sys", "/proc/vlarm-new/deeper"])
@pytest.mark.parametrize("args,flag,kind,suffix", OUTPUT_FLAGS, ids=FLAG_IDS)
def test_unwritable_output_fails_before_any_work(no_heavy_work, fixtures, args, flag, kind, suffix, where):
    path = f"{where}/vlarm-out{suffix}"
    result = runner.invoke(app, _args(args, fixtures, path))
    _one_line_error(result, f"{flag} {path}: cannot create files in", "pass a path in a writable directory")


@pytest.mark.parametrize("args,flag,kind,suffix", OUTPUT_FLAGS, ids=FLAG_IDS)
def test_file_and_directory_mix_ups_fail_before_any_work(no_heavy_work, fixtures, args, flag, kind, suffix):
    if kind == "file":   # an existing directory where a file goes
        path = fixtures / "adir"
        if suffix in (".mp4", ".png"):
            path = fixtures / f"adir{suffix}"
            path.mkdir()
        _one_line_error(runner.invoke(app, _args(args, fixtures, path)), f"{flag} {path}: is a directory")
    else:                # an existing file where a directory goes
        path = fixtures / "afile"
        _one_line_error(runner.invoke(app, _args(args, fixtures, path)), f"{flag} {path}:",
                        "is a file, not a directory")
    # a file standing where a parent directory should be
    path = fixtures / "afile" / "sub" / f"out{suffix}"
    _one_line_error(runner.invoke(app, _args(args, fixtures, path)), f"{flag} {path}:",
                    f"{fixtures / 'afile'} is a file, not a directory")


@pytest.mark.parametrize("args,flag,kind,suffix", OUTPUT_FLAGS, ids=FLAG_IDS)
def test_writable_output_passes_the_check_and_creates_nothing(no_heavy_work, fixtures, args, flag, kind, suffix):
    path = fixtures / "new" / "deeper" / f"out{suffix}"
    result = runner.invoke(app, _args(args, fixtures, path))
    if isinstance(result.exception, HeavyWork):
        assert not (fixtures / "new").exists()   # checking wrote nothing
    else:   # a later cheap check stopped it (e.g. a missing data file): still one line, not about the output
        out = _one_line_error(result)
        assert flag + " " + str(path) not in out, out
    assert not list(fixtures.rglob(".vlarm-write-check-*"))


def test_check_output_on_existing_files_and_devices(tmp_path):
    (tmp_path / "old.json").write_text("keep")
    assert check_output(tmp_path / "old.json", "--json") == tmp_path / "old.json"
    assert (tmp_path / "old.json").read_text() == "keep"   # checked, not truncated
    assert check_output("/dev/null", "--json") == Path("/dev/null")
    assert check_output(None, "--json") is None
    with pytest.raises(ValueError, match="--video must end in .mp4 or .gif, got x.avi"):
        check_output(tmp_path / "x.avi", "--video", suffixes=(".mp4", ".gif"))


# ------------------------------------------------------------------------------- writes failing mid-run
def _cheap_frames(monkeypatch):
    import numpy as np

    import vlarm.sim.video

    def render(client, camera, renderer="tiny"):
        return np.zeros((16, 16, 3), np.uint8), 0, 0

    monkeypatch.setattr(vlarm.sim.video, "render", render)


def _result_lines(output):
    total = re.search(r"total reward (\d\.\d\d): (success|not completed) in (\d+) steps?", output)
    assert total, output
    return float(total[1]), total[2] == "success", int(total[3])


def test_video_write_failing_mid_run_still_prints_the_result(tmp_path, monkeypatch):
    import imageio.v2 as imageio

    _cheap_frames(monkeypatch)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(imageio, "mimwrite", disk_full)
    video, record = tmp_path / "v" / "demo.mp4", tmp_path / "episode.json"
    result = runner.invoke(app, ["run", "put the red blocks in a green bowl", "--policy", "oracle", "--seed", "1",
                                 "--video", str(video), "--json", str(record)])
    assert result.exit_code != 0, result.output
    total, success, n = _result_lines(result.output)
    assert "step 1: pick at" in result.output and not re.search("^video: ", result.output, re.M)
    last = result.output.strip().splitlines()[-1]
    assert last == f"error: --video: could not write the video {video}: No space left on device", result.output
    saved = json.loads(record.read_text())   # the other output is still written
    assert saved["total_reward"] == pytest.approx(total, abs=0.005) and saved["success"] == success
    assert len(saved["steps"]) == n and saved["video"] is None


def test_json_write_failing_mid_run_still_prints_the_result(tmp_path, monkeypatch):
    record = tmp_path / "episode.json"
    original = Path.write_text

    def write_text(self, *args, **kwargs):
        if self == record:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    result = runner.invoke(app, ["run", "put the red blocks in a green bowl", "--policy", "oracle", "--seed", "1",
                                 "--json", str(record)])
    assert result.exit_code != 0
    _result_lines(result.output)
    last = result.output.strip().splitlines()[-1]
    assert last == f"error: --json {record}: could not write it (No space left on device)", result.output


# ------------------------------------------------------------------------------------------ the instruction
@pytest.mark.parametrize("instruction,fragment", [
    ("put blue blocks in yellow bowl", None),
    ("Please place all the blue block onto the yellow bowls.", None),
    ("put the magenta blocks in a green bowl", "pick colour 'magenta' (known colours: blue, red"),
    ("put the red blocks near a green bowl", "preposition 'near'"),
    ("", "an empty instruction"),
    ("z" * 10_000, "\u2026"),
    ("put all the blocks in the bowls with matching colors", "runs with the planner: add --planner saycan"),
])
def test_run_grounds_the_instruction_before_any_work(no_heavy_work, instruction, fragment):
    result = runner.invoke(app, ["run", instruction, "--policy", "oracle"])
    if fragment is None:   # understood: the command goes on to build the scene
        assert isinstance(result.exception, HeavyWork), result.output
    else:
        out = _one_line_error(result, "cannot ground the instruction", fragment)
        families = sum(len(f) + len(family_example(f)) + 8 for f in list_families())   # each family's example
        assert len(out) < 600 + families
        assert len(instruction) <= 100 or instruction[:101] not in out   # a long input is echoed cut short


# ------------------------------------------------------------------------------------------- vlarm vlm ...
def _help_list(command, flag):
    result = runner.invoke(app, ["vlm", command, "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.replace("\u2502", " ").split())   # help boxes wrap; read it as one line
    return re.search(flag + r" <str> one of: ([a-z, -]+[a-z]) \[default", text)[1].split(", ")


def test_vlm_help_and_accepted_values_come_from_one_list():
    from vlarm.vlm.fewshot import METHODS

    assert _help_list("eval", "--dataset") == list(VLM_EVAL_DATASETS)
    assert _help_list("fewshot", "--method") == list(FEWSHOT_METHODS)
    assert set(FEWSHOT_METHODS) == set(METHODS)


@pytest.fixture()
def tiny_fashion(monkeypatch):
    """Fashion-MNIST stand-in (100 images per class) so that commands get past their data checks."""
    import numpy as np

    import vlarm.vlm.commands as commands

    def load(split="train"):
        y = np.repeat(np.arange(10), 100)
        return np.zeros((len(y), 28, 28), np.uint8), y

    monkeypatch.setattr(commands, "load_fashion_mnist", load)


@pytest.mark.parametrize("dataset", VLM_EVAL_DATASETS)
def test_every_listed_dataset_is_accepted(no_heavy_work, tiny_fashion, tmp_path, dataset):
    (tmp_path / "pairs.csv").write_text("filepath\ttitle\na.png\ta red square\n")
    result = runner.invoke(app, ["vlm", "eval", "--model", "lit-effnet-minilm", "--dataset", dataset,
                                 "--data", str(tmp_path / "pairs.csv"), "--per-class", "5"])
    assert isinstance(result.exception, HeavyWork), result.output   # got as far as loading the model


@pytest.mark.parametrize("method", FEWSHOT_METHODS)
def test_every_listed_method_is_accepted(no_heavy_work, tiny_fashion, method):
    result = runner.invoke(app, ["vlm", "fewshot", "--model", "lit-effnet-minilm", "--method", method,
                                 "--shots", "2"])
    assert isinstance(result.exception, HeavyWork), result.output


INTERNAL_NAMES = ("data_csv", "per_class", "linear_probe_per_class", "batch_size", "image_size", "output_dir",
                  "detector_dir", "unlocked_text_layers")


@pytest.mark.parametrize("args,fragments", [
    (["eval", "--model", "lit-effnet-minilm", "--dataset", "csv"],
     ["--dataset must be one of fashion-mnist, retrieval; got 'csv'"]),
    (["eval", "--model", "lit-effnet-minilm", "--dataset", "retrieval"], ["--data is required here"]),
    (["eval", "--model", "lit-effnet-minilm", "--dataset", "retrieval", "--data", "{tmp}/none.csv"],
     ["--data", "none.csv: no such file"]),
    (["eval", "--model", "lit-effnet-minilm", "--per-class", "0"], ["--per-class must be between 1 and 1000, got 0"]),
    (["eval", "--model", "lit-effnet-minilm", "--per-class", "1001"], ["--per-class must be between 1 and 1000"]),
    (["eval", "--model", "lit-effnet-minilm", "--linear-probe-per-class", "-1"], ["--linear-probe-per-class must"]),
    (["eval", "--model", "{tmp}/no-model"], ["--model", "no-model: neither a built-in model (lit-effnet-minilm"]),
    (["fewshot", "--model", "lit-effnet-minilm", "--method", "lora"], ["--method must be one of zero-shot, "]),
    (["fewshot", "--model", "lit-effnet-minilm", "--shots", "0"], ["--shots must be between 1 and 5996, got 0"]),
    (["fewshot", "--model", "{tmp}/no-model"], ["--model", "neither a built-in model"]),
    (["train", "--data", "{tmp}/pairs.csv", "--out", "{tmp}/run", "--epochs", "0"], ["--epochs must be > 0"]),
    (["train", "--data", "{tmp}/pairs.csv", "--out", "{tmp}/run", "--batch-size", "0"], ["--batch-size must be > 0"]),
    (["train", "--data", "{tmp}/pairs.csv", "--out", "{tmp}/run", "--lr", "-1"], ["--lr must be > 0"]),
    (["train", "--data", "{tmp}/none.csv", "--out", "{tmp}/run"], ["--data", "none.csv: no such file"]),
    (["train", "--data", "{tmp}/one.csv", "--out", "{tmp}/run"], ["holds 1 image-caption pair(s)", "at least 2"]),
    (["train", "--data", "{tmp}/pairs.csv", "--out", "{tmp}/run", "--resume"], ["--resume: no checkpoint to resume"]),
    (["train", "--data", "{tmp}/pairs.csv", "--out", "{tmp}/run", "--model", "nope"], ["--model nope: neither"]),
    (["detect", "{tmp}/scene.png", "the red block"],
     ["no localiser is shipped", "python benchmarks/vlm_detector.py", "--detector"]),
    (["detect", "{tmp}/scene.png", "the red block", "--detector", "{tmp}"],
     ["--detector", "no localiser there", "no localiser is shipped", "python benchmarks/vlm_detector.py"]),
    (["detect", "{tmp}/none.png", "the red block", "--detector", "{tmp}/detector"], ["none.png: no such file"]),
    (["detect", "{tmp}/scene.png", "  ", "--detector", "{tmp}/detector"], ["the text to find is empty"]),
    (["detect", "{tmp}/scene.png", "the red block", "--detector", "{tmp}/detector", "--teacher", "nope"],
     ["--teacher nope: neither a built-in model"]),
    (["detect", "{tmp}/scene.png", "the red block", "--detector", "{tmp}/detector", "--out", "{tmp}/o.txt"],
     ["--out must end in .png or .jpg or .jpeg"]),
])
def test_vlm_errors_name_flags_before_the_model_loads(no_heavy_work, fixtures, args, fragments):
    (fixtures / "pairs.csv").write_text("filepath\ttitle\na.png\ta red square\nb.png\ta blue square\n")
    (fixtures / "one.csv").write_text("filepath\ttitle\na.png\ta red square\n")
    out = _one_line_error(runner.invoke(app, ["vlm", *[a.format(tmp=fixtures) for a in args]]), *fragments)
    assert not any(name in out for name in INTERNAL_NAMES), out


def test_vlm_eval_checks_its_data_files_before_loading_the_model(no_heavy_work, tmp_path, monkeypatch):
    import vlarm.vlm.commands as commands

    monkeypatch.setattr(commands, "load_fashion_mnist", functools.partial(commands.load_fashion_mnist, root=tmp_path))
    for command in ("eval", "fewshot"):
        result = runner.invoke(app, ["vlm", command, "--model", "lit-effnet-minilm"])
        _one_line_error(result, "Fashion-MNIST file", "is missing", "apt-get install")


def test_vlm_train_python_api_names_flags(tmp_path):
    from vlarm.vlm.commands import vlm_train

    with pytest.raises(ValueError, match="--image-size must be >= 1, got 0"):
        vlm_train(tmp_path / "pairs.csv", tmp_path / "run", image_size=0)
    with pytest.raises(ValueError, match="--unlocked-text-layers must be >= 0, got -2"):
        vlm_train(tmp_path / "pairs.csv", tmp_path / "run", unlocked_text_layers=-2)


@linux
@pytest.mark.parametrize("args", [
    ["eval", "--task", TASK, "--policy", "oracle", "--episodes", "1"],
    ["train", "--policy", "cliport", "--task", TASK, "--data", "{tmp}"],
])
def test_default_output_directory_is_checked_too(no_heavy_work, fixtures, monkeypatch, args):
    args = [a.format(tmp=fixtures) for a in args]
    monkeypatch.chdir("/proc")   # runs/ would be created here
    _one_line_error(runner.invoke(app, args), "--out runs", "cannot create files in /proc")


@pytest.mark.parametrize("option,fragment", [
    ("state_token", "takes KEY=VALUE"),
    ("no_such_field=1", "--policy-option no_such_field: not a rt1 config field; fields:"),
    ("state_token=maybe", "state_token is true or false"),
    ("token_stride=16.5", "token_stride is an integer"),
    ("dropout=high", "dropout is a number"),
])
def test_policy_options_are_checked_before_any_work(no_heavy_work, tmp_path, option, fragment):
    result = runner.invoke(app, ["train", "--policy", "rt1", "--task", TASK, "--data", str(tmp_path),
                                 "--policy-option", option, "--out", str(tmp_path / "run")])
    _one_line_error(result, fragment)


def test_policy_options_reach_the_policy_config():
    from vlarm.policies.factory import parse_policy_options

    assert parse_policy_options("rt1", ["state_token=true", "token_stride=16"]) == {
        "state_token": True, "token_stride": 16}
    for recorded in ("tasks=[\"x\"]", "renderer=egl", "action_mode=pick_place"):   # training takes them from the data
        with pytest.raises(ValueError, match="training records it from the data"):
            parse_policy_options("rt1", [recorded])
    for stat in ("color_mean=[0.5,0.5,0.5]", "depth_std=1.0"):   # --normalization sets them (it was a traceback)
        for policy in ("cliport", "transporter"):
            with pytest.raises(ValueError, match="come from --normalization"):
                parse_policy_options(policy, [stat])
    for text, value in (("False", False), ("no", False), ("0", False), ("TRUE", True), ("yes", True)):
        assert parse_policy_options("rt1", [f"state_token={text}"]) == {"state_token": value}   # never bool("no")
    assert parse_policy_options("rt1", ["dropout=0.2", "image_size=[64, 64]"]) == {"dropout": 0.2,
                                                                                   "image_size": [64, 64]}


def test_rt1_training_checks_each_task_against_its_trajectories(no_heavy_work, tmp_path):
    (tmp_path / "traj/meta").mkdir(parents=True)
    (tmp_path / "traj/meta/info.json").write_text(json.dumps({"action_mode": "ee_delta", "benchmark_task": TASK}))
    base = ["train", "--policy", "rt1", "--data", str(tmp_path / "traj"), "--out", str(tmp_path / "run")]
    _one_line_error(runner.invoke(app, [*base, "--task", "put-block-in-bowl-unseen-colors"]),
                    f"holds trajectories of '{TASK}', not 'put-block-in-bowl-unseen-colors'; pass --task {TASK}")
    _one_line_error(runner.invoke(app, [*base, "--task", TASK, "--task", "packing-shapes"]),
                    "2 --task for 1 --data")


@pytest.mark.parametrize("flags,named", [
    (["--semantic-vlm", "checkpoints/lit-sim-all-colors"], "--semantic-vlm"),
    (["--grounding-fusion", "both", "--normalization", "ravens"], "--grounding-fusion, --normalization"),
    (["--color-permutation", "0.5"], "--color-permutation"),
    (["--no-cache-features"], "--no-cache-features"),
])
def test_rt1_training_refuses_pick_and_place_options(no_heavy_work, tmp_path, flags, named):
    base = ["train", "--policy", "rt1", "--task", TASK, "--data", str(tmp_path / "traj"), "--out", str(tmp_path / "r")]
    verb = "are pick-and-place training options" if "," in named else "is a pick-and-place training option"
    _one_line_error(runner.invoke(app, [*base, *flags]),
                    f"{named} {verb} (cliport, transporter); rt1 takes its settings through --policy-option")


@pytest.mark.parametrize("flags,message", [
    (["--lr-schedule", "linear"], "unknown lr schedule 'linear'; valid schedules: constant, cosine"),
    (["--warmup-steps", "50", "--steps", "50"], "warmup_steps must be in [0, steps=50), got 50"),
])
def test_training_refuses_a_bad_lr_schedule_before_any_work(no_heavy_work, tmp_path, flags, message):
    (tmp_path / "traj/meta").mkdir(parents=True)
    (tmp_path / "traj/meta/info.json").write_text(json.dumps({"action_mode": "ee_delta", "benchmark_task": TASK}))
    base = ["train", "--policy", "rt1", "--task", TASK, "--data", str(tmp_path / "traj"), "--out", str(tmp_path / "r")]
    _one_line_error(runner.invoke(app, [*base, *flags]), message)
