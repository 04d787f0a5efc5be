"""End to end on tiny settings: one oracle demo on disk -> a small CLIPort trained on it -> evaluated in the env."""

import csv

from vlarm.data.collect import collect
from vlarm.eval import evaluate
from vlarm.policies import load_policy
from vlarm.policies.training import TrainConfig, train

TASK = "put-block-in-bowl-seen-colors"
SMALL = {"widths": (4, 8, 8, 8), "semantic_widths": (4, 8, 8, 8), "n_rotations": 8, "transport_dim": 4}


def test_collect_train_eval_on_one_demo(tmp_path):
    data = tmp_path / "data"
    collect(TASK, "train", 1, data, camera_scale=0.5, progress=False)
    config = TrainConfig(policy="cliport", task=TASK, data_dir=data, demos=1, steps=60, batch_size=1, lr=2e-3,
                         out_dir=tmp_path / "run", save_every=60, log_every=10, augment=False, threads=1,
                         policy_overrides=SMALL, progress=False)
    last = train(config)
    rows = list(csv.DictReader((tmp_path / "run" / "train_log.csv").open()))
    first, final = float(rows[0]["loss"]), float(rows[-1]["loss"])
    assert final < 0.5 * first, (first, final)
    policy = load_policy(last)
    assert policy.config.camera_scale == 0.5   # recorded from the data: evaluation renders at it by default
    results = evaluate(lambda env: policy, TASK, "test", 1, tmp_path / "eval", progress=False)
    assert results["episodes"] == 1 and results["camera_scale"] == 0.5 and 0.0 <= results["score"] <= 100.0
    assert results["per_episode"][0]["steps"]   # the policy acted at least once
