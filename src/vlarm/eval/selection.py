"""Checkpoint and variant selection on the validation split only.

Nothing in a reported result may be chosen by looking at test scores: not the training step, not the variant,
not a hyper-parameter (the field's protocol; CLIPort, Shridhar et al. CoRL 2021, Sec. 4.2 selects on validation
episodes and reports test once). :func:`select_checkpoint` evaluates every candidate (each saved step of one or
more training runs, or single checkpoints) on the *val* seeds of one or more tasks, the same seeds for every
candidate, and names the one with the best mean val score; the caller then evaluates that one on test, once.
Per-candidate results are written as they finish, so an interrupted selection resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from vlarm.eval.rollout import CheckpointAgentFactory, evaluate, read_results, write_results
from vlarm.policies.base import env_options_at_scale
from vlarm.stats import format_ci
from vlarm.tasks.attributes import check_episode_count

STEP_DIR = re.compile(r"^step_(\d+)$")
SELECTION_JSON = "selection.json"
SELECTION_MD = "selection.md"


@dataclass(frozen=True)
class Candidate:
    """One checkpoint that selection may choose: ``path`` to the checkpoint directory, the ``run`` it belongs to
    (its training run directory, or the checkpoint itself) and its training ``step`` (None if unknown)."""

    path: Path
    run: Path
    step: int | None

    @property
    def key(self) -> str:
        """A file-name-safe identifier: readable, and unique per checkpoint directory (a short hash of its absolute
        path, so ``a_b`` and ``a/b`` never share a cache)."""
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(self.run).strip("/"))[-60:]
        tag = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:8]
        return f"{name}__{tag}" + (f"__step_{self.step:06d}" if self.step is not None else "")

    def fingerprint(self) -> str:
        """:func:`checkpoint_fingerprint` of this checkpoint."""
        return checkpoint_fingerprint(self.path)


def checkpoint_fingerprint(path: str | Path) -> str:
    """SHA-256 of a checkpoint's ``config.json`` and ``model.safetensors``: results cached for a checkpoint
    (selection on val, a grid's test stage) are reused only for the same files, so a retrained or replaced checkpoint
    at the same path is evaluated again.

    Raises:
        FileNotFoundError: a file is missing.
    """
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        with open(Path(path) / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _complete(directory: Path) -> bool:
    return (directory / "config.json").is_file() and (directory / "model.safetensors").is_file()


def list_candidates(paths: list[str | Path], every: int = 1) -> list[Candidate]:
    """Checkpoints to choose among.

    Args:
        paths: training run directories (every complete ``checkpoints/step_NNNNNN`` is a candidate) or checkpoint
            directories (``config.json`` + ``model.safetensors``).
        every: keep only steps divisible by ``every`` checkpoint periods: with checkpoints every 500 steps,
            ``every=2`` keeps steps 1000, 2000, ... (the last step of a run is always kept).

    Returns:
        Candidates in the order given, each run's steps ascending.

    Raises:
        FileNotFoundError: a path that is neither a run nor a checkpoint, or a run with no complete checkpoint.
        ValueError: ``every < 1``.
    """
    if every < 1:
        raise ValueError(f"--every must be >= 1, got {every}")
    out: list[Candidate] = []
    for raw in paths:
        path = Path(raw)
        ckpt_dir = path / "checkpoints"
        if ckpt_dir.is_dir():
            steps = sorted((int(m[1]), d) for d in ckpt_dir.iterdir()
                           if d.is_dir() and (m := STEP_DIR.match(d.name)) and _complete(d))
            if not steps:
                raise FileNotFoundError(f"{path}: no complete checkpoints/step_NNNNNN directories to select from")
            period = steps[0][0] if len(steps) == 1 else steps[1][0] - steps[0][0]
            last = steps[-1][0]
            out += [Candidate(d, path, s) for s, d in steps if s == last or (s // max(period, 1)) % every == 0]
        elif _complete(path):   # a checkpoint; a run's step directory keeps its run and step
            m = STEP_DIR.match(path.name)
            in_run = m is not None and path.parent.name == "checkpoints"
            out.append(Candidate(path, path.parent.parent if in_run else path, int(m[1]) if in_run else None))
        else:
            raise FileNotFoundError(f"{path}: neither a training run (with checkpoints/step_NNNNNN) nor a checkpoint "
                                    "directory (config.json + model.safetensors)")
    unique: dict[Path, Candidate] = {}
    for cand in out:   # the same checkpoint named twice is one candidate
        unique.setdefault(cand.path.resolve(), cand)
    return list(unique.values())


def select_checkpoint(
    paths: list[str | Path],
    tasks: list[str],
    episodes: int,
    out_dir: str | Path,
    every: int = 1,
    camera_scale: float | None = None,
    progress: bool = True,
    device: str = "auto",
) -> dict:
    """Evaluate every candidate on the val split of each task and choose the best mean val score.

    Args:
        paths: training runs and/or checkpoints (see :func:`list_candidates`).
        tasks: task names; the criterion is the mean of the candidate's val scores over these tasks.
        episodes: val episodes per task and candidate (seeds ``split_seed("val", 0..episodes-1)``, the same for
            every candidate).
        out_dir: where ``<candidate>/<task>/results.json``, ``selection.json`` and ``selection.md`` go; results
            already there for the same checkpoint files (SHA-256), episode count and camera scale are reused
            (resume).
        every: see :func:`list_candidates`.
        camera_scale: camera resolution relative to 480x640; None: each candidate's own (the scale it learned
            from, :func:`vlarm.eval.rollout.evaluate`).
        progress: progress bars.
        device: where the policies run (auto, cpu, cuda).

    Returns:
        ``{"split": "val", "tasks", "episodes", "criterion", "candidates": [...], "best": {...}}``; each candidate
        row has ``checkpoint``, ``run``, ``step``, ``per_task`` (score, intervals, success per task) and
        ``mean_score``. Ties go to the earlier candidate (fewer steps).

    Raises:
        ValueError: no tasks, ``episodes < 1``; FileNotFoundError: see :func:`list_candidates`.
    """
    if not tasks:
        raise ValueError("pass at least one --task to select on")
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    check_episode_count("val", episodes)
    from vlarm.policies import load_policy

    candidates = list_candidates(paths, every)
    out = Path(out_dir)
    rows = []
    bar = tqdm(candidates, desc="select on val", unit="ckpt", disable=not progress)
    for cand in bar:
        bar.set_postfix_str(cand.key)
        per_task, policy, fingerprint = {}, None, cand.fingerprint()
        scale = camera_scale if camera_scale is not None else \
            env_options_at_scale(CheckpointAgentFactory(str(cand.path)).env_options)["camera_scale"]   # its own
        for task in tasks:
            task_dir = out / cand.key / task
            results = read_results(task_dir, episodes=episodes, split="val", camera_scale=scale,
                                   fingerprint=fingerprint)
            if results is None:
                policy = policy or load_policy(cand.path)
                results = evaluate(lambda env, p=policy: p, task, "val", episodes, None, camera_scale=scale,
                                   progress=False, label=str(cand.path), device=device)
                results["fingerprint"] = fingerprint
                write_results(results, task_dir)
            per_task[task] = {k: results[k] for k in ("episodes", "score", "score_ci", "success_rate", "success_ci")}
        mean_score = sum(v["score"] for v in per_task.values()) / len(per_task)
        rows.append({"checkpoint": str(cand.path), "run": str(cand.run), "step": cand.step, "per_task": per_task,
                     "mean_score": mean_score})
    best = max(rows, key=lambda r: r["mean_score"])  # max keeps the first of equal scores
    selection = {"split": "val", "tasks": list(tasks), "episodes": episodes,
                 "criterion": "mean val score over tasks", "candidates": rows, "best": best}
    out.mkdir(parents=True, exist_ok=True)
    (out / SELECTION_JSON).write_text(json.dumps(selection, indent=2) + "\n")
    (out / SELECTION_MD).write_text(selection_markdown(selection))
    return selection


def selection_rows(selection: dict) -> list[tuple[str, str, list[str], str]]:
    """``(checkpoint, step, per-task val score cells, mean)`` per candidate, the chosen one marked, for any report."""
    rows = []
    for row in selection["candidates"]:
        mark = " (chosen)" if row == selection["best"] else ""
        cells = [format_ci(row["per_task"][t]["score"], row["per_task"][t]["score_ci"]) for t in selection["tasks"]]
        step = str(row["step"]) if row["step"] is not None else "-"
        rows.append((row["checkpoint"] + mark, step, cells, f"{row['mean_score']:.1f}"))
    return rows


def selection_markdown(selection: dict) -> str:
    """A Markdown table of every candidate's val figures (95% intervals), the chosen one marked."""
    tasks = selection["tasks"]
    head = "| checkpoint | step | " + " | ".join(f"{t} val score" for t in tasks) + " | mean |"
    lines = [f"# Selection on val ({selection['episodes']} episodes per task)", "",
             f"Criterion: {selection['criterion']}. Chosen: `{selection['best']['checkpoint']}`.", "",
             head, "|---|---:|" + "---:|" * (len(tasks) + 1)]
    for checkpoint, step, cells, mean in selection_rows(selection):
        lines.append(f"| `{checkpoint}` | {step} | {' | '.join(cells)} | {mean} |")
    return "\n".join(lines) + "\n"
