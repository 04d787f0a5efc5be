"""The ``vlarm`` command: thin wrappers that parse flags and call library functions.

Errors a user can fix (unknown task, colour, split, missing checkpoint or dataset) are printed as one clear
message with exit code 2, never as a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vlarm.checks import FEWSHOT_METHODS, VLM_EVAL_DATASETS, check_output
from vlarm.cli.common import check_dir as _check_dir
from vlarm.cli.common import console
from vlarm.cli.common import user_errors as _user_errors

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="vlarm: language-conditioned robot manipulation in simulation.")

#: The small CLIPort checkpoint shipped with the repository (see README: how it was trained).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[3] / "checkpoints" / "cliport-vlm-put-block-in-bowl"
#: Task family -> the policy `vlarm run` uses for it when neither --checkpoint nor --policy is given.
DEFAULT_CHECKPOINTS: dict[str, Path] = {"put-block-in-bowl": DEFAULT_CHECKPOINT}


def _check_seed(seed: int) -> int:
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    return seed


def _check_video(path: Path | None) -> Path | None:
    """Fail before any work unless ``path`` is a writable .mp4/.gif file path."""
    return check_output(path, "--video", suffixes=(".mp4", ".gif"))


def _check_positive(**values: float) -> None:
    """Raise ``ValueError`` naming the first flag whose value is not > 0 (flags given as ``name=value``)."""
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {value}")


#: ``--camera-scale`` of the commands that run a policy (eval, select): None renders at the policy's own scale.
_PolicyCameraScale = Annotated[float | None, typer.Option(
    "--camera-scale", help="camera resolution relative to 480x640 (default: the scale the policy learned from, else "
    "1.0; another scale is a robustness test and is warned about)")]


@app.command()
@_user_errors
def tasks() -> None:
    """List the task families, their variants, gymnasium ids and an example instruction of each family."""
    from vlarm.envs import env_id
    from vlarm.tasks import family_example, list_families, make_task

    names = [n for variants in list_families().values() for n in variants]
    example = names[0]
    table = Table(title="vlarm tasks (vlarm run routes an instruction to its family)",
                  caption=f"gymnasium ids: vlarm/<task>-v0 (pick-and-place, e.g. {env_id(example)}) and "
                          "vlarm/<task>-ee-v0 (closed-loop ee_delta, for the pick-and-place families)")
    table.add_column("family / example instruction", overflow="fold")
    table.add_column("task", no_wrap=True, min_width=max(map(len, names)))   # whole, so it can be copied
    table.add_column("instruction template", overflow="fold")
    for family, variants in list_families().items():
        for i, name in enumerate(variants):
            first = f"[bold]{family}[/]\n\"{escape(family_example(family))}\"" if i == 0 else ""
            table.add_row(first, name, escape(make_task(name).lang_template))
        table.add_section()
    console.print(table)


@app.command()
@_user_errors
def collect(
    task: Annotated[str, typer.Option(help="task name (see `vlarm tasks`)")],
    out: Annotated[Path, typer.Option(help="dataset directory (created, or resumed if it exists)")],
    split: Annotated[str, typer.Option(help="train, val or test")] = "train",
    episodes: Annotated[int, typer.Option(help="successful episodes wanted")] = 100,
    camera_scale: Annotated[float, typer.Option(help="camera resolution relative to 480x640")] = 1.0,
    renderer: Annotated[str, typer.Option(
        help="tiny (PyBullet's TinyRenderer), egl (its EGL plugin: ~1.4x faster per core, but its images depend on "
             "the simulator's history) or auto (EGL where it loads; a resumed dataset keeps its own); recorded in the "
             "dataset and in policies trained on it")] = "tiny",
    workers: Annotated[int, typer.Option(help="Ray workers rolling out episodes, each with its own simulator (the "
                                              "dataset is byte-identical for any number; 1: no Ray)")] = 1,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster for the workers: auto (started here with `ray start --head`), HOST:6379, or "
             "ray://HOST:10001; default: a local Ray when --workers > 1")] = None,
    action_mode: Annotated[str, typer.Option(
        help="pick_place (one-shot poses, CLIPort/Transporter) or ee_delta (10 Hz closed-loop expert trajectories "
             "of the front camera at 96x128, for RT-1; one process)")] = "pick_place",
    expert_noise: Annotated[float, typer.Option(
        help="ee_delta only: DART noise, metres (std per translation axis) added to the expert's executed moves "
             "while the labels stay its clean commands (0: the clean expert)")] = 0.0,
) -> None:
    """Collect oracle demonstrations (keeps reward > 0.99; resumable, also with --workers)."""
    from vlarm.data.collect import collect as run_collect
    from vlarm.sim.cameras import check_renderer

    _check_positive(episodes=episodes, camera_scale=camera_scale, workers=workers)
    check_renderer(renderer, auto=True)
    if action_mode == "ee_delta":
        from vlarm.data.trajectories import collect_trajectories

        _check_dir(out, "--out")
        report = collect_trajectories(task, split, episodes, out, camera_scale=camera_scale,
                                      expert_noise=expert_noise, renderer=renderer)
        console.print(f"[green]{report['episodes']} ee_delta trajectories[/] ({report['frames']} frames at 10 Hz) in "
                      f"{out}; {len(report['failed_seeds'])} seeds failed")
        return
    if action_mode != "pick_place":
        raise ValueError(f"--action-mode must be pick_place or ee_delta, got {action_mode!r}")
    if expert_noise:
        raise ValueError("--expert-noise applies to --action-mode ee_delta only (the pick-and-place oracle acts in "
                         "one shot)")
    _check_dir(out, "--out")

    report = run_collect(task, split, episodes, out, camera_scale=camera_scale, renderer=renderer, workers=workers,
                         address=address)
    console.print(f"[green]{report.episodes} episodes[/] in {out} ({report.new_episodes} new, "
                  f"{report.rejected} rejected, {report.episodes_per_minute:.1f} episodes/min)")


@app.command()
@_user_errors
def train(
    policy: Annotated[str, typer.Option(help="transporter, cliport or rt1")],
    task: Annotated[list[str], typer.Option(
        help="task name; repeat it to train one multi-task policy on several tasks (the instruction tells them "
             "apart), or pass 'multi' to train on the tasks the --data datasets record")],
    data: Annotated[list[Path], typer.Option(
        help="dataset directory from `vlarm collect`; multi-task: one per --task (same order), or one folder "
             "holding a dataset folder per task")],
    demos: Annotated[int, typer.Option(help="number of demonstrations to train on (multi-task: per task)")] = 100,
    steps: Annotated[int | None, typer.Option(help="optimisation steps (default: the config's)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="frames per step")] = None,
    lr: Annotated[float | None, typer.Option(help="learning rate (the peak, under --lr-schedule cosine)")] = None,
    lr_schedule: Annotated[str | None, typer.Option(
        help="constant (default) or cosine: decayed along a half cosine to 0 at --steps")] = None,
    warmup_steps: Annotated[int | None, typer.Option(help="steps of linear learning-rate warm-up (default 0)")]
    = None,
    out: Annotated[Path | None, typer.Option(
        help="output directory (default runs/<policy>-<task>-<demos>; multi-task runs/<policy>-multi-<demos>)")]
    = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    save_every: Annotated[int | None, typer.Option(help="checkpoint period in steps")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads (0: automatic)")] = None,
    semantic_vlm: Annotated[str | None, typer.Option(
        help="cliport only: a dual encoder (vlarm vlm checkpoint or name) used as the semantic stream")] = None,
    grounding_fusion: Annotated[str | None, typer.Option(
        help="with --semantic-vlm: relevance maps enter the 'semantic' decoder only (default), or 'both' streams")]
    = None,
    grounding_score: Annotated[str | None, typer.Option(
        help="with --semantic-vlm: 'relative' (default: relative to the best-matching object), 'softmax' (each "
             "object classified among the phrase and every '<colour> <kind>' the VLM was trained on) or "
             "'calibrated' (sigmoid(a * cos + b), needs --grounding-calibration)")] = None,
    grounding_calibration: Annotated[Path | None, typer.Option(
        help="with --grounding-score calibrated: a JSON {a, b} from benchmarks/calibrate_grounding.py")] = None,
    normalization: Annotated[str, typer.Option(
        help="input statistics: 'dataset' (the data's meta/stats.json, stored with the policy) or 'ravens' "
             "(Ravens' constants)")] = "dataset",
    color_permutation: Annotated[float, typer.Option(
        help="probability per frame of permuting the RGB channels the spatial stream sees (0: off)")] = 0.0,
    cache_features: Annotated[bool, typer.Option(
        help="cache frozen backbone features per frame (warped under augmentation; approximate for rotations)")]
    = True,
    device: Annotated[str, typer.Option(help="auto (CUDA when available, else the CPU), cpu or cuda")] = "auto",
    policy_option: Annotated[list[str] | None, typer.Option(
        help="KEY=VALUE: set a field of the new policy's config (repeatable; VALUE typed by the field: true/false, "
             "numbers, strings, JSON lists), e.g. rt1's state_token=true, token_stride=16, position_embedding=true, "
             "frozen_blocks=8")]
    = None,
) -> None:
    """Train a policy by imitation on one task or several (multi-task); resumes from OUT/checkpoints/last if present.

    Multi-task (CLIPort's protocol): --demos demonstrations of every task, each step's frames drawn task-first
    (uniformly over tasks), normalisation statistics pooled with equal weight per task; the policy records its tasks.
    """
    from vlarm.policies import available_policies
    from vlarm.policies.factory import parse_policy_options
    from vlarm.policies.training import MULTI_TASK, TrainConfig
    from vlarm.policies.training import train as run_train
    from vlarm.tasks import make_task

    multi = len(task) > 1 or task == [MULTI_TASK]
    if MULTI_TASK in task and len(task) > 1:
        raise ValueError(f"--task {MULTI_TASK} takes the tasks from the datasets: pass it alone, or name every task")
    if not multi and len(data) > 1:
        raise ValueError(f"{len(data)} --data directories for one --task: repeat --task once per dataset (multi-task), "
                         f"or pass --task {MULTI_TASK}")
    for name in task:
        if name != MULTI_TASK:
            make_task(name)
    if policy not in available_policies():
        raise ValueError(f"unknown policy {policy!r}; valid policies: {', '.join(available_policies())}")
    _check_positive(demos=demos, steps=steps, batch_size=batch_size, lr=lr, save_every=save_every)
    if policy == "rt1":   # closed-loop trajectories (`vlarm collect --action-mode ee_delta`), one dataset per task
        pick_place_only = {"--semantic-vlm": semantic_vlm is not None,
                           "--grounding-fusion": grounding_fusion is not None,
                           "--grounding-score": grounding_score is not None,
                           "--grounding-calibration": grounding_calibration is not None,
                           "--normalization": normalization != "dataset", "--color-permutation": color_permutation != 0,
                           "--no-cache-features": not cache_features}
        if given := [flag for flag, set_ in pick_place_only.items() if set_]:
            raise ValueError(f"{', '.join(given)} {'is a' if len(given) == 1 else 'are'} pick-and-place training "
                             f"option{'s' if len(given) > 1 else ''} (cliport, transporter); rt1 takes its settings "
                             f"through --policy-option (e.g. state_token=true, frozen_blocks=8)")
        from vlarm.data.trajectories import recorded_task
        from vlarm.policies.rt1.training import RT1TrainConfig, train_rt1

        _check_device(device)
        flags = dict(steps=steps, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, warmup_steps=warmup_steps,
                     save_every=save_every, threads=threads)
        config = RT1TrainConfig(data_dirs=[str(d) for d in data], demos=demos, seed=seed, device=device,
                                out_dir=out or Path("runs") / f"rt1-{'-'.join(task)}-{demos}",
                                policy_overrides=parse_policy_options(policy, policy_option or []),
                                **{k: v for k, v in flags.items() if v is not None})
        if MULTI_TASK not in task:
            if len(task) != len(data):
                raise ValueError(f"{len(task)} --task for {len(data)} --data: pass one --task per trajectory "
                                 f"dataset (same order), or --task {MULTI_TASK}")
            for name, root in zip(task, data, strict=True):
                if (recorded := recorded_task(root)) != name:
                    raise ValueError(f"{root} holds trajectories of {recorded!r}, not {name!r}; pass --task "
                                     f"{recorded} or a dataset collected for this task")
        console.print(f"[green]done[/]: checkpoint {train_rt1(config)}")
        return
    if threads is not None and threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: automatic), got {threads}")
    _check_seed(seed)
    _check_dir(out or Path("runs"), "--out")   # the default goes under runs/
    if grounding_fusion is not None and semantic_vlm is None:
        raise ValueError("--grounding-fusion only applies with --semantic-vlm")
    if (grounding_score is not None or grounding_calibration is not None) and semantic_vlm is None:
        raise ValueError("--grounding-score and --grounding-calibration only apply with --semantic-vlm")
    flags = dict(steps=steps, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, warmup_steps=warmup_steps,
                 save_every=save_every, threads=threads)
    overrides = {k: v for k, v in flags.items() if v is not None}
    if policy_option:
        overrides["policy_overrides"] = parse_policy_options(policy, policy_option)
    if semantic_vlm is not None:
        if policy != "cliport":
            raise ValueError(f"--semantic-vlm needs --policy cliport (the {policy} policy has no semantic stream)")
        from vlarm.vlm.config import list_models

        if semantic_vlm not in list_models() and not Path(semantic_vlm).is_dir():
            raise FileNotFoundError(f"--semantic-vlm {semantic_vlm}: no such checkpoint directory; pass one written "
                                    f"by `vlarm vlm train` (or a local CLIP/SigLIP) or one of {list_models()}")
        overrides["policy_overrides"] = {**overrides.get("policy_overrides", {}), "grounding_model": semantic_vlm,
                                         "text_encoder": "vlm", "grounding_fusion": grounding_fusion or "semantic"}
        overrides["policy_overrides"].update(_grounding_settings(semantic_vlm, grounding_score, grounding_calibration))
    if multi:
        from vlarm.data.multitask import MultiTaskDataset, recorded_tasks

        tasks, data = recorded_tasks(data) if task == [MULTI_TASK] else (task, data)
        for name in tasks:
            make_task(name)
        MultiTaskDataset.open(tasks, data)  # recorded tasks and shared observation settings, before any work
        data_dir, single = list(data), None
    else:
        from vlarm.data import EpisodeDataset

        tasks, data_dir, single = [], data[0], task[0]
        recorded = EpisodeDataset(data_dir).dataset_info.benchmark_task
        if recorded != single:
            raise ValueError(f"{data_dir} holds demonstrations of {recorded!r}, not {single!r}; pass --task {recorded} "
                             "or a dataset collected for this task")
    out = out or Path("runs") / f"{policy}-{single or MULTI_TASK}-{demos}"
    if normalization not in ("dataset", "ravens"):
        raise ValueError(f"--normalization must be 'dataset' or 'ravens', got {normalization!r}")
    if not 0.0 <= color_permutation <= 1.0:
        raise ValueError(f"--color-permutation is a probability in [0, 1], got {color_permutation}")
    _check_device(device)
    config = TrainConfig(policy=policy, task=single, tasks=tasks, data_dir=data_dir, demos=demos, out_dir=out,
                         seed=seed, device=device, normalization=normalization, color_permutation=color_permutation,
                         cache_features=cache_features, **overrides)
    final = run_train(config)
    console.print(f"[green]done[/]: checkpoint {final}")


def _grounding_settings(vlm: str, score: str | None, calibration: Path | None) -> dict:
    """Policy config fields for ``--grounding-score`` / ``--grounding-calibration``.

    Raises:
        ValueError: an unknown score, a calibration file without the calibrated score (or the reverse), or a
            softmax score with a VLM whose checkpoint does not list the colours and kinds it was trained on.
    """
    score = score or ("calibrated" if calibration is not None else "relative")
    if score not in ("relative", "calibrated", "softmax"):
        raise ValueError(f"--grounding-score must be relative, calibrated or softmax, got {score!r}")
    if (score == "calibrated") != (calibration is not None):
        raise ValueError("--grounding-score calibrated and --grounding-calibration FILE go together")
    if score == "calibrated":
        return {"grounding_score": score, "grounding_calibration": _read_calibration(calibration)}
    if score == "softmax":
        from vlarm.vlm.checkpoint import caption_vocabulary

        if not Path(vlm).is_dir():
            raise ValueError(f"--grounding-score softmax needs a VLM checkpoint directory that lists the colours and "
                             f"kinds it was trained on; {vlm} is not one")
        try:
            vocabulary = caption_vocabulary(vlm)
        except ValueError as err:
            raise ValueError(f"--grounding-score softmax: {err}") from None
        return {"grounding_score": score, "grounding_vocabulary": vocabulary}
    return {"grounding_score": score}


def _check_device(name: str):
    """``--device`` as a ``torch.device`` (ValueError naming the valid values, or that CUDA is missing)."""
    from vlarm.policies.base import resolve_device

    return resolve_device(name)


def _read_calibration(path: Path) -> tuple[float, float]:
    """``(a, b)`` from a grounding-calibration JSON file (``{"a": float, "b": float, ...}``).

    Raises:
        FileNotFoundError: no such file; ValueError: not JSON, or ``a``/``b`` missing or not finite numbers.
    """
    import math

    if not path.is_file():
        raise FileNotFoundError(f"--grounding-calibration {path}: no such file (write one with "
                                "`python benchmarks/calibrate_grounding.py --out FILE`)")
    try:
        data = json.loads(path.read_text())
        a, b = float(data["a"]), float(data["b"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"--grounding-calibration {path}: expected JSON with numbers 'a' and 'b' ({err})") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"--grounding-calibration {path}: a and b must be finite, got {a}, {b}")
    return a, b


def _agent_factory(policy: str | None, checkpoint: Path | None):
    policy = policy.strip().lower() if policy is not None else None
    if policy not in (None, "oracle"):
        raise ValueError(f"--policy accepts only 'oracle' (got {policy!r}); pass a trained policy with --checkpoint")
    if policy == "oracle" and checkpoint is not None:
        raise ValueError("pass either --policy oracle or --checkpoint, not both")
    if policy == "oracle":
        from vlarm.eval import OracleAgent

        return "oracle", OracleAgent
    from vlarm.policies import load_policy

    path = checkpoint or DEFAULT_CHECKPOINT
    agent = load_policy(path)
    agent.eval()
    return str(path), lambda env: agent


@app.command(name="eval")
@_user_errors
def evaluate(
    task: Annotated[list[str], typer.Option(
        help="task name (repeat the flag for several: each is evaluated in turn, into --out/<task>)")],
    checkpoint: Annotated[Path | None, typer.Option(
        help="policy checkpoint directory (without it and --policy: the shipped CLIPort)")] = None,
    policy: Annotated[str | None, typer.Option(help="`oracle` to evaluate the scripted oracle")] = None,
    split: Annotated[str, typer.Option(help="val or test")] = "test",
    episodes: Annotated[int, typer.Option(help="number of seeded episodes")] = 100,
    out: Annotated[Path | None, typer.Option(help="directory for results.json / results.md / videos")] = None,
    videos: Annotated[int, typer.Option(help="record the first N episodes")] = 0,
    camera_scale: _PolicyCameraScale = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when available, else the CPU), cpu or cuda")] = "auto",
    workers: Annotated[int, typer.Option(help="Ray workers running episodes, each with its own simulator and agent "
                                              "(same per-episode results for any number; 1: no Ray)")] = 1,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster for the workers: auto (started here with `ray start --head`), HOST:6379, or "
             "ray://HOST:10001; default: a local Ray when --workers > 1")] = None,
) -> None:
    """Evaluate a checkpoint (or the oracle) with CLIPort's protocol: score (0-100) and success rate."""
    from vlarm.eval import evaluate as run_eval
    from vlarm.eval.rollout import CheckpointAgentFactory, agent_trained_tasks, untrained_family
    from vlarm.tasks import make_task, task_family

    tasks = list(dict.fromkeys(task))
    for name in tasks:
        make_task(name)
    if split not in ("val", "test"):
        raise ValueError(f"--split must be val or test, got {split!r} (train seeds are the ones demonstrations are "
                         "collected on)")
    _check_positive(episodes=episodes, camera_scale=camera_scale, workers=workers)
    if videos < 0:
        raise ValueError(f"--videos must be >= 0, got {videos}")
    _check_dir(out or Path("runs") / "eval", "--out")   # the default goes under runs/eval/
    _check_device(device)
    label, factory = _agent_factory(policy, checkpoint)   # loads (and so checks) a checkpoint here, before Ray
    trained = () if label == "oracle" else agent_trained_tasks(factory(None))
    if (workers > 1 or address is not None) and label != "oracle":
        factory = CheckpointAgentFactory(label)   # each worker loads its own copy from the path
    for name in tasks:
        task_out = (out / name if len(tasks) > 1 else out) if out is not None \
            else Path("runs") / "eval" / f"{Path(label).name}-{name}-{split}"
        results = run_eval(factory, name, split, episodes, task_out, videos=videos, camera_scale=camera_scale,
                           label=label, device=device, workers=workers, address=address, trained_tasks=trained)
        console.print(f"policy: {label}", soft_wrap=True)
        console.print(_results_table(results, f"{name}, {split} split"))
        if trained and untrained_family(trained, name):   # logged too, but inside the progress bar's output
            console.print(f"[yellow]note:[/] the policy was trained on {', '.join(trained)}, not on the "
                          f"{task_family(name)} family: this measures generalisation outside its training tasks",
                          soft_wrap=True)
        console.print(f"results: {task_out / 'results.json'} and results.md", soft_wrap=True)


def _xyz(pose) -> str:
    """A pose's position as ``[x, y, z]`` in metres, always 4 decimals (0.04 prints as 0.0400)."""
    return "[" + ", ".join(f"{v:.4f}" for v in pose[:3]) + "]"


def _results_table(results: dict, title: str) -> Table:
    """Pooled and per-novelty score / success rate with 95% intervals, as a rich table."""
    from vlarm.eval.rollout import summary_rows
    from vlarm.stats import format_ci

    table = Table(title=escape(title), caption="brackets: 95% interval (bootstrap score, Wilson success)")
    for col in ("goal attributes novel", "episodes", "score", "success rate (%)"):
        table.add_column(col, justify="right")
    for name, part in summary_rows(results):
        table.add_row(name, str(part["episodes"]), format_ci(part["score"], part["score_ci"]),
                      format_ci(part["success_rate"], part["success_ci"]))
    return table


@app.command()
@_user_errors
def select(
    runs: Annotated[list[Path], typer.Argument(help="training run directories and/or checkpoint directories")],
    task: Annotated[list[str], typer.Option(help="task(s) to select on (repeat the flag); criterion: mean val score")],
    episodes: Annotated[int, typer.Option(help="val episodes per task and checkpoint")] = 50,
    every: Annotated[int, typer.Option(help="evaluate every N-th saved checkpoint of a run (the last always)")] = 1,
    out: Annotated[Path, typer.Option(help="directory for selection.json / selection.md (rerun to resume)")]
    = Path("runs/select"),
    camera_scale: _PolicyCameraScale = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when available, else the CPU), cpu or cuda")] = "auto",
) -> None:
    """Choose a checkpoint (or variant) on the val split only; then evaluate the chosen one on test, once."""
    from vlarm.eval.selection import select_checkpoint, selection_rows
    from vlarm.tasks import make_task

    for t in task:
        make_task(t)
    _check_positive(episodes=episodes, every=every, camera_scale=camera_scale)
    _check_dir(out, "--out")
    _check_device(device)
    selection = select_checkpoint(runs, task, episodes, out, every=every, camera_scale=camera_scale, device=device)
    table = Table(title=f"val split, {episodes} episodes per task")
    table.add_column("checkpoint")
    table.add_column("step", justify="right")
    for t in task:
        table.add_column(f"{t} score", justify="right")
    table.add_column("mean", justify="right")
    for checkpoint, step, cells, mean in selection_rows(selection):
        table.add_row(escape(checkpoint), step, *cells, mean)
    console.print(table)
    best = selection["best"]["checkpoint"]
    scale = f" --camera-scale {camera_scale:g}" if camera_scale is not None else ""
    ties = sum(r["mean_score"] == selection["best"]["mean_score"] for r in selection["candidates"])
    tie = f" ({ties} candidates tie at the best mean val score; the first listed is chosen)" if ties > 1 else ""
    tasks = " ".join(f"--task {t}" for t in dict.fromkeys(task))
    console.print(f"chosen on val: {escape(best)}{tie}\nnext, once: vlarm eval --checkpoint {escape(best)} {tasks} "
                  f"--split test{scale}", soft_wrap=True)
    console.print(f"selection: {out / 'selection.json'}")


@app.command()
@_user_errors
def benchmark(
    grid: Annotated[Path, typer.Argument(help="grid file (JSON), e.g. benchmarks/grids/table1-cpu.json")],
    out: Annotated[Path, typer.Option(help="output directory (rerun to resume; finished cells are kept)")]
    = Path("runs/table1"),
    report_only: Annotated[bool, typer.Option(help="only rewrite the report from the cells already finished")]
    = False,
) -> None:
    """Collect, train, select on val, test once and write a CLIPort Table-1 style report for a grid of cells."""
    from vlarm.eval.benchmark import Grid, grid_markdown, run_grid, write_report

    spec = Grid.from_json(grid)
    _check_dir(out, "--out")
    if report_only:
        records = [json.loads(p.read_text()) for c in spec.cells if (p := out / c.name / "cell.json").is_file()]
        if not records:
            raise FileNotFoundError(f"no finished cells under {out}; run without --report-only first")
        write_report(records, out, spec.description)
    else:
        records = run_grid(spec, out)
    console.print(grid_markdown(records), soft_wrap=True)
    console.print(f"report: {out / 'table1.md'} (plots: {out / 'plots'})")


@app.command()
@_user_errors
def run(
    instruction: Annotated[str, typer.Argument(help='e.g. "put the red blocks in a green bowl"')],
    checkpoint: Annotated[Path | None, typer.Option(help="policy checkpoint (default: the shipped CLIPort)")] = None,
    policy: Annotated[str | None, typer.Option(help="`oracle` to run the scripted oracle instead")] = None,
    task: Annotated[str | None, typer.Option(
        help="task that grounds the instruction (default: the task whose grammar grounds it)")] = None,
    seed: Annotated[int, typer.Option(help="episode index into the test split (never a training layout)")] = 0,
    video: Annotated[Path | None, typer.Option(help="write a video (.mp4 or .gif)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the episode record as JSON")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when available, else the CPU), cpu or cuda")] = "auto",
    planner: Annotated[str | None, typer.Option(
        help="saycan: plan a long-horizon instruction on SayCan's tabletop (LM x affordance), executing each skill "
             "with the skill policy (--policy oracle: scripted); or an ablation: no-vf, generative, bc-use, "
             "oracle-affordance")] = None,
) -> None:
    """Carry out an instruction in simulation and report the plan, reward and success."""
    from vlarm.trust.safety import refuse_if_unsafe

    refuse_if_unsafe(instruction)   # the safety filter first, before routing or loading anything
    if planner is not None:   # long-horizon instructions go to SayCan (issue 9), not to one CLIPort task
        from vlarm.cli.planning import run_planned

        run_planned(instruction, seed=seed, video=video, json_out=json_out, checkpoint=checkpoint, policy=policy,
                    device=device, method=planner)
        return
    from dataclasses import asdict

    from vlarm.envs import make_env
    from vlarm.eval import rollout
    from vlarm.eval.rollout import agent_trained_tasks, untrained_family
    from vlarm.tasks import make_task
    from vlarm.tasks.attributes import split_seed
    from vlarm.tasks.language import words_of
    from vlarm.tasks.routing import RoutingError, route

    if task is None:   # fail fast, before loading anything heavy
        try:
            routed = route(instruction)
        except RoutingError as err:
            raise RoutingError(f"{err}. A long-horizon instruction (e.g. 'put all the blocks in the bowls with "
                               "matching colors') runs with the planner: add --planner saycan") from None
        task = routed.task
    else:
        make_task(task).parse_instruction(instruction)
    family = make_task(task).family
    if policy is None and checkpoint is None:
        if family not in DEFAULT_CHECKPOINTS:
            raise ValueError(f"no policy for {family!r} ships with vlarm (shipped: {', '.join(DEFAULT_CHECKPOINTS)}); "
                             f"pass --policy oracle to watch the scripted expert, or --checkpoint with a policy "
                             f"trained on {task} (`vlarm train`)")
        checkpoint = DEFAULT_CHECKPOINTS[family]
    _check_seed(seed)
    _check_video(video)
    check_output(json_out, "--json", suffixes=(".json",))
    _check_device(device)
    from vlarm.eval.rollout import factory_env_options

    label, factory = _agent_factory(policy, checkpoint)
    # the video renders its own frames; the policy's images are rendered as it learned them (its renderer)
    env = make_env(task, split="test", render_terminal=False, **factory_env_options(factory))
    agent = factory(env)
    if hasattr(agent, "to"):
        agent.to(_check_device(device))
    episode_seed = split_seed("test", seed)   # --seed indexes the test split, so the default is no training layout
    console.print(f"[bold]instruction:[/] {escape(instruction)}   [dim](task: {task}, policy: {escape(label)}, test "
                  f"episode {seed}, seed {episode_seed})[/]", soft_wrap=True)

    trained = agent_trained_tasks(agent)
    if trained and untrained_family(trained, task):
        console.print(f"[yellow]warning:[/] the policy was trained on {', '.join(trained)}, not on the {family} "
                      "family: expect it to fail (pass --policy oracle to watch the scripted expert)", soft_wrap=True)

    shown = [" ".join(words_of(instruction))]   # the instruction the user last saw
    first, second = env.task.pose_names
    gain = "placed" if second == "place at" else "progress"

    def on_step(i, step, info):
        if not len(step.pick_pose):   # a closed-loop control step (RT-1): no poses; the summary line tells the rest
            return
        if step.primitive_failure is not None:
            status = f"[red]{step.primitive_failure}[/]"
        else:
            status = gain if step.reward > 0 else ("undid progress" if step.reward < 0 else "executed, no progress")
        acted_on = " ".join(words_of(step.instruction)) if step.instruction else shown[0]
        if acted_on != shown[0]:   # a sequential task's next step, or the template a paraphrase was read as: once
            console.print(f"  step {i + 1} instruction: {escape(step.instruction)}", soft_wrap=True)
            shown[0] = acted_on
        console.print(f"  step {i + 1}: {first} {_xyz(step.pick_pose)}  ->  {second} {_xyz(step.place_pose)}  "
                      f"reward {step.reward:+.2f}  ({status})")

    record = rollout(env, agent, episode_seed, "test", instruction=instruction, video_path=video, on_step=on_step)
    env.close()
    # the episode ran to its end even if its video could not be written: report it, then the failed write
    write_errors = [f"--video: {record.video_error}"] if record.video_error else []
    verdict = "[green]success[/]" if record.success else "[red]not completed[/]"
    n = len(record.steps)
    console.print(f"total reward {record.total_reward:.2f}: {verdict} in {n} step{'s' if n != 1 else ''}")
    if record.video:
        console.print(f"video: {record.video}")
    if json_out:
        try:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps({"task": task, **asdict(record)}, indent=2))
            console.print(f"episode record: {escape(str(json_out))}", soft_wrap=True)
        except OSError as err:
            write_errors.append(f"--json {json_out}: could not write it ({err.strerror or err})")
    if write_errors:
        raise OSError("; ".join(write_errors))


vlm_app = typer.Typer(no_args_is_help=True, help="Vision-language models: train, evaluate, few-shot, detect, captions.")
app.add_typer(vlm_app, name="vlm")
# SayCan planning (issue 9): `vlarm plan` and `vlarm eval-planner` live in vlarm.cli.planning.
from vlarm.cli import planning as _planning  # noqa: E402

app.command("plan")(_user_errors(_planning.plan))
app.command("eval-planner")(_user_errors(_planning.eval_planner))


def _print_json(result: dict) -> None:
    console.print_json(json.dumps(result, default=str))


@vlm_app.command("train")
@_user_errors
def vlm_train(
    data_csv: Annotated[Path, typer.Option("--data", help="open_clip-style CSV (filepath<TAB>title)")],
    out: Annotated[Path, typer.Option(help="output directory")],
    model: Annotated[str, typer.Option(help="lit-effnet-minilm, scratch-vit-tiny or a checkpoint")]
    = "lit-effnet-minilm",
    epochs: Annotated[int, typer.Option()] = 10,
    batch_size: Annotated[int, typer.Option()] = 64,
    lr: Annotated[float, typer.Option()] = 1e-3,
    resume: Annotated[bool, typer.Option(help="continue from the last checkpoint in OUT")] = False,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Contrastive (InfoNCE) training of a dual encoder."""
    from vlarm.vlm.commands import vlm_train as run

    _print_json(run(data_csv, out, model=model, epochs=epochs, batch_size=batch_size, lr=lr, resume=resume, seed=seed))


@vlm_app.command("eval")
@_user_errors
def vlm_eval(
    model: Annotated[str, typer.Option(help="built-in name or checkpoint directory")],
    dataset: Annotated[str, typer.Option(help=f"one of: {', '.join(VLM_EVAL_DATASETS)}")] = VLM_EVAL_DATASETS[0],
    data_csv: Annotated[Path | None, typer.Option("--data", help="image-caption CSV for --dataset retrieval")]
    = None,
    per_class: Annotated[int, typer.Option(help="test images per class")] = 100,
    linear_probe_per_class: Annotated[int, typer.Option(help="train images per class for a linear probe")] = 0,
    out: Annotated[Path | None, typer.Option(help="write results JSON here")] = None,
) -> None:
    """Zero-shot classification, retrieval Recall@K and linear probe (CLIP_benchmark metrics)."""
    from vlarm.vlm.commands import vlm_eval as run

    _print_json(run(model, dataset=dataset, data_csv=data_csv, per_class=per_class,
                    linear_probe_per_class=linear_probe_per_class, output_dir=out))


@vlm_app.command("fewshot")
@_user_errors
def vlm_fewshot(
    model: Annotated[str, typer.Option(help="built-in name or checkpoint directory")],
    method: Annotated[str, typer.Option(help=f"one of: {', '.join(FEWSHOT_METHODS)}")] = "tip-adapter",
    shots: Annotated[int, typer.Option()] = 16,
    out: Annotated[Path | None, typer.Option(help="write results JSON here")] = None,
) -> None:
    """K-shot transfer on Fashion-MNIST, averaged over 3 seeds."""
    from vlarm.vlm.commands import vlm_fewshot as run

    _print_json(run(model, method=method, shots=shots, output_dir=out))


@vlm_app.command("detect")
@_user_errors
def vlm_detect(
    image: Annotated[Path, typer.Argument(help="top-down colour-map image")],
    text: Annotated[str, typer.Argument(help='e.g. "the red block"')],
    detector: Annotated[Path | None, typer.Option(
        help="localiser directory made by benchmarks/vlm_detector.py (none is shipped)")] = None,
    teacher: Annotated[str, typer.Option(help="dual encoder it was distilled from")] = "lit-effnet-minilm",
    out: Annotated[Path | None, typer.Option(help="PNG of the heatmap overlay")] = None,
) -> None:
    """Find a named object by text with the distilled open-vocabulary localiser."""
    from vlarm.vlm.commands import vlm_detect as run

    _print_json(run(image, text, detector, teacher, out))


@vlm_app.command("captions")
@_user_errors
def vlm_captions(
    scenes: Annotated[int, typer.Option(help="scenes to render (each gives one crop per object and one scene image)")],
    out: Annotated[Path, typer.Option(help="output folder: OUT/NAME.csv plus the PNGs")],
    seed: Annotated[int, typer.Option(help="random seed (same seed, same pairs)")] = 0,
    name: Annotated[str, typer.Option(help="split name: the CSV's stem")] = "train",
    camera_scale: Annotated[float, typer.Option(help="camera resolution relative to 480x640")] = 0.5,
) -> None:
    """Render simulator image-caption pairs as an open_clip CSV (absolute image paths, trains from any directory)."""
    from vlarm.vlm.commands import vlm_captions as run

    _print_json(run(scenes, out, seed=seed, name=name, camera_scale=camera_scale))


# Attribute questions from many views (MIAVLM, issue 12): plain functions in vlarm.eval.qa.commands. Options left
# unset take the defaults of BenchmarkConfig / QATrainConfig (one home for them); help shows those defaults as
# "(default X)" (rich would swallow "[default X]" as a markup tag).
qa_app = typer.Typer(no_args_is_help=True,
                     help="Yes/no attribute questions from many views (MIAVLM): build, train, eval, ask.")
vlm_app.add_typer(qa_app, name="qa")


@qa_app.command("build")
@_user_errors
def vlm_qa_build(
    out: Annotated[Path, typer.Option(help="benchmark directory (a rerun resumes it)")],
    scenes: Annotated[int | None, typer.Option(
        help="seen-value scenes, split 8:1:1 train/val/test (default 400)")] = None,
    unseen_scenes: Annotated[int | None, typer.Option(help="unseen-value test scenes (default 40)")] = None,
    seed: Annotated[int | None, typer.Option(help="benchmark seed (default 0)")] = None,
    image_size: Annotated[int | None, typer.Option(help="view side in pixels (default 64)")] = None,
    camera_scale: Annotated[float | None, typer.Option(
        help="robot camera resolution relative to 480x640, before the crop (default 0.4)")] = None,
    sampled_views: Annotated[int | None, typer.Option(help="views sampled around the table (default 6)")] = None,
    face_probability: Annotated[float | None, typer.Option(
        help="probability that the block has a painted side (default 0.6)")] = None,
    face_hidden_probability: Annotated[float | None, typer.Option(
        help="probability that the painted side faces away from the front camera (default 0.8)")] = None,
    occluder_probability: Annotated[float | None, typer.Option(
        help="probability of a wall hiding one object from the front camera (default 0.5)")] = None,
) -> None:
    """Render the HoOA-style benchmark: scenes, nine views each, yes/no questions with POPE negatives."""
    _check_dir(out, "--out")
    from vlarm.eval.qa.commands import qa_build

    _print_json(qa_build(out, scenes=scenes, unseen_scenes=unseen_scenes, seed=seed, image_size=image_size,
                         camera_scale=camera_scale, sampled_views=sampled_views, face_probability=face_probability,
                         face_hidden_probability=face_hidden_probability, occluder_probability=occluder_probability))


@qa_app.command("train")
@_user_errors
def vlm_qa_train(
    benchmark: Annotated[Path, typer.Option(help="benchmark directory (vlarm vlm qa build)")],
    out: Annotated[Path, typer.Option(help="output directory; a rerun with the same options resumes")],
    fusion: Annotated[str | None, typer.Option(
        help="map (MIAVLM), concat (order-sensitive), tile (9in1) or mean (default map)")] = None,
    views: Annotated[str | None, typer.Option(help="1 (front camera) or 1+8 (all nine views) (default 1+8)")] = None,
    negative_instructions: Annotated[bool | None, typer.Option(
        "--negative-instructions/--no-negative-instructions",
        help="train with each positive's negative twin (default: with)")] = None,
    question_encoder: Annotated[str | None, typer.Option(help="minilm or words (default minilm)")] = None,
    epochs: Annotated[int | None, typer.Option(help="(default 20)")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate, cosine-annealed (default 0.001)")] = None,
    batch_scenes: Annotated[int | None, typer.Option(help="scenes per batch (default 8)")] = None,
    seed: Annotated[int | None, typer.Option(help="(default 0)")] = None,
    view_dropout: Annotated[float | None, typer.Option(
        help="probability of leaving each view of a training scene out (map, mean) (default 0.0)")] = None,
    view_entropy: Annotated[float | None, typer.Option(
        help="weight of the view-weight entropy bonus (map) (default 0.0)")] = None,
) -> None:
    """Train MIAVLM or a baseline on the benchmark's train split."""
    _check_dir(out, "--out")
    from vlarm.eval.qa.commands import qa_train

    result = qa_train(benchmark, out, fusion=fusion, views=views, negative_instructions=negative_instructions,
                      question_encoder=question_encoder, epochs=epochs, lr=lr, batch_scenes=batch_scenes, seed=seed,
                      view_dropout=view_dropout, view_entropy=view_entropy)
    _print_json({k: v for k, v in result.items() if k != "log"} | {"last_epoch": (result["log"] or [None])[-1]})


@qa_app.command("eval")
@_user_errors
def vlm_qa_eval(
    model: Annotated[Path, typer.Option(help="model or training output directory")],
    benchmark: Annotated[Path, typer.Option(help="benchmark directory")],
    split: Annotated[list[str] | None, typer.Option(
        help="train, val, test or unseen; repeat for several [default: test and unseen]")] = None,
    out: Annotated[Path | None, typer.Option(help="write the full result (per-question probabilities) as JSON")]
    = None,
) -> None:
    """HoOA, F1, accuracy and yes-ratio with 95% intervals, one balanced set per POPE negative setting."""
    check_output(out, "--out", suffixes=(".json",))
    from vlarm.eval.qa.commands import qa_eval

    result = qa_eval(model, benchmark, tuple(split or ("test", "unseen")), out)
    table = Table(title=f"{escape(str(model))} on {escape(str(benchmark))}",
                  caption="percent; brackets: 95% interval (pairs bootstrapped for HoOA and F1, Wilson otherwise)")
    for column in result["rows"][0]:
        table.add_column(column)
    for row in result["rows"]:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


@qa_app.command("ask")
@_user_errors
def vlm_qa_ask(
    model: Annotated[Path, typer.Option(help="model or training output directory")],
    question: Annotated[list[str], typer.Argument(help='e.g. "Is the block red?"')],
    seed: Annotated[int, typer.Option(help="benchmark seed of the scene (without --benchmark)")] = 0,
    scene: Annotated[int, typer.Option(help="scene index in that benchmark")] = 0,
    benchmark: Annotated[Path | None, typer.Option(help="take the scene configuration from this benchmark")] = None,
    views_png: Annotated[Path | None, typer.Option(help="write the views side by side to this PNG")] = None,
) -> None:
    """Answer yes/no questions about a scene rendered from a seed (with the true answer where it is known)."""
    check_output(views_png, "--views-png", suffixes=(".png",))
    from vlarm.eval.qa.commands import qa_ask

    _print_json(qa_ask(model, question, seed=seed, scene=scene, benchmark=benchmark, views_png=views_png))


from vlarm.cli.trust import trust_app  # noqa: E402 - registered here, next to the other command groups

app.add_typer(trust_app, name="trust")

if __name__ == "__main__":
    app()
