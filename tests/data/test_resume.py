"""Crash safety: a collection killed at any instant and rerun ends with exactly N distinct, whole episodes."""

from __future__ import annotations

import multiprocessing
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from vlarm.data import DatasetError, EpisodeDataset, EpisodeWriter

from .conftest import SMALL, TASK, make_episode

N = 12

# A stand-in for the collection loop (the real one lives in vlarm.data.collect): seeds 0, 1, 2, ...
# are tried in order, every fifth is "rejected" (reward <= 0.99), until N episodes are on disk.
COLLECT = f'''
import sys
import numpy as np
from vlarm.data import EpisodeWriter

SMALL = {SMALL!r}

def episode(seed):
    rng = np.random.default_rng(seed)
    n = 1 + seed % 3
    return [dict(colormap=rng.integers(0, 256, (*SMALL, 3), dtype=np.uint8),
                 heightmap=rng.uniform(0, 0.28, SMALL).astype(np.float32),
                 state=rng.normal(size=7), pick_pose=rng.normal(size=7), place_pose=rng.normal(size=7),
                 reward=1.0 / n, done=t == n - 1, instruction=f"instruction {{seed % 4}}") for t in range(n)]

def rejected(seed):
    return seed % 5 == 3

def main(root, n, ready=None):
    w = EpisodeWriter(root, "{TASK}", "train", image_shape=SMALL, meta_interval_s=0)
    if ready is not None:
        ready.set()
    seed = 0
    while w.num_episodes < n:
        if seed not in w.completed_seeds() and seed not in w.rejected_seeds():
            if rejected(seed):
                w.reject(seed)
            else:
                w.add_episode(episode(seed), seed=seed, total_reward=1.0)
        seed += 1
    w.close()

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
'''


@pytest.mark.slow
def test_sigkill_anywhere_then_rerun(tmp_path):
    script = tmp_path / "collect.py"
    script.write_text(COLLECT)
    mod = runpy.run_path(str(script))
    root = tmp_path / "ds"
    # Forked children start at once (no re-import); SIGKILL lands while episodes and meta are written.
    ctx = multiprocessing.get_context("fork")
    rng = np.random.default_rng(0)
    kills = 0
    for _ in range(8):
        ready = ctx.Event()
        proc = ctx.Process(target=mod["main"], args=(str(root), N, ready))
        proc.start()
        assert ready.wait(30)
        time.sleep(rng.uniform(0.0, 0.1))
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.join()
    assert kills > 0
    # The rerun is a fresh interpreter, as after a real crash.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, str(script), str(root), str(N)], env=env, check=True, timeout=120)

    expected = [s for s in range(100) if not mod["rejected"](s)][:N]
    ds = EpisodeDataset(root).load()
    assert ds.num_episodes == N and ds.seeds == expected
    for ep, seed in enumerate(ds.seeds):
        for want, have in zip(mod["episode"](seed), ds.episode_frames(ep), strict=True):
            np.testing.assert_array_equal(have["colormap"], want["colormap"])
            np.testing.assert_array_equal(have["heightmap"], want["heightmap"])
    assert not list(root.rglob("*.tmp"))
    w = EpisodeWriter(root, TASK, "train", image_shape=SMALL)
    assert w.completed_seeds() == set(expected)
    assert w.rejected_seeds() <= {s for s in range(100) if mod["rejected"](s)}
    w.close()


def test_resume_after_kill_with_stray_temp_files_and_lagging_meta(tmp_path):
    with EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL) as w:
        for s in (0, 2):
            w.add_episode(make_episode(s), seed=s, total_reward=1.0)
    old_meta = tmp_path.parent / "old_meta"
    shutil.copytree(tmp_path / "meta", old_meta)
    with EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL) as w:
        for s in (4, 6):
            w.add_episode(make_episode(s), seed=s, total_reward=1.0)
    # The state a kill leaves: meta from two episodes ago, half-written temporary files.
    shutil.rmtree(tmp_path / "meta")
    shutil.copytree(old_meta, tmp_path / "meta")
    (tmp_path / "data/chunk-000/.file-004.parquet.4242.tmp").write_bytes(b"PAR1 half a file")
    (tmp_path / "meta/.info.json.4242.tmp").write_text("{")

    with pytest.raises(DatasetError, match="meta lags behind the data"):
        EpisodeDataset(tmp_path)

    w = EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL)
    assert w.completed_seeds() == {0, 2, 4, 6} and w.num_episodes == 4
    assert not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(ValueError, match="already written"):
        w.add_episode(make_episode(4), seed=4, total_reward=1.0)
    w.add_episode(make_episode(8), seed=8, total_reward=1.0)
    w.close()
    ds = EpisodeDataset(tmp_path)
    assert ds.seeds == [0, 2, 4, 6, 8]
    assert ds.info["total_frames"] == len(ds) == sum(len(make_episode(s)) for s in ds.seeds)


def test_meta_lost_entirely_is_rebuilt(tmp_path):
    with EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL) as w:
        for s in (1, 3, 5):
            w.add_episode(make_episode(s), seed=s, total_reward=0.5 + s)
    stats_before = (tmp_path / "meta/stats.json").read_text()
    shutil.rmtree(tmp_path / "meta")
    with pytest.raises(DatasetError, match="info.json: missing"):
        EpisodeDataset(tmp_path)
    EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL).close()
    ds = EpisodeDataset(tmp_path)
    assert ds.seeds == [1, 3, 5] and ds.episodes["total_reward"].tolist() == [1.5, 3.5, 5.5]
    assert (tmp_path / "meta/stats.json").read_text() == stats_before
    assert ds.tasks == [
        "put the red blocks in a gray bowl",
        "put the blue blocks in a gray bowl",
        "put the green blocks in a gray bowl",
    ]


def test_meta_lags_until_close(tmp_path):
    w = EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL, meta_interval_s=3600)
    w.add_episode(make_episode(0), seed=0, total_reward=1.0)
    with pytest.raises(DatasetError, match="lags"):
        EpisodeDataset(tmp_path)
    w.flush()
    assert EpisodeDataset(tmp_path).num_episodes == 1
    w.add_episode(make_episode(1), seed=1, total_reward=1.0)
    w.close()
    assert EpisodeDataset(tmp_path).num_episodes == 2


def test_gap_in_episode_files_is_reported(tmp_path):
    with EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL) as w:
        for s in range(3):
            w.add_episode(make_episode(s), seed=s, total_reward=1.0)
    (tmp_path / "data/chunk-000/file-001.parquet").unlink()
    with pytest.raises(DatasetError, match=r"file-001.parquet: missing, but later episodes \[2\] exist"):
        EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL)
    with pytest.raises(DatasetError, match="file-001.parquet: data file of episode 1 is missing"):
        EpisodeDataset(tmp_path)
