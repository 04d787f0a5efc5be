"""The ``vlarm`` command: thin wrappers that parse flags and call library functions.

Errors a user can fix (unknown task, colour, split, missing checkpoint or dataset) are printed as one clear
message with exit code 2, never as a traceback.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="vlarm: language-conditioned robot manipulation in simulation.")
# Wide consoles: results lines are long and logs are often redirected to files (80 columns would wrap them).
console = Console(width=160) if not Console().is_terminal else Console()
err_console = Console(stderr=True, width=160) if not Console(stderr=True).is_terminal else Console(stderr=True)

#: The small CLIPort checkpoint shipped with the repository (see README: how it was trained).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[3] / "checkpoints" / "cliport-vlm-put-block-in-bowl"


def _check_seed(seed: int) -> int:
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    return seed


def _check_video(path: Path | None) -> Path | None:
    if path is not None and path.suffix not in (".mp4", ".gif"):
        raise ValueError(f"--video must end in .mp4 or .gif, got {path.name}")
    return path


def _check_positive(**values: float) -> None:
    """Raise ``ValueError`` naming the first flag whose value is not > 0 (flags given as ``name=value``)."""
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {value}")


def _check_dir(path: Path | None, flag: str) -> None:
    """Fail before any work if ``path`` (a directory to create or reuse) or one of its parents is a file."""
    if path is None:
        return
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise NotADirectoryError(f"{flag} {path}: {p} is a file, not a directory")
            return


def _user_errors(fn):
    """Turn user-fixable errors into a one-line message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from gymnasium.error import Error as GymError

        from vlarm.data import DatasetError
        from vlarm.policies.base import CheckpointError

        try:
            return fn(*args, **kwargs)
        except (ValueError, OSError, GymError, DatasetError, CheckpointError) as err:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            hint = {"collect": " (rerun the same command to resume: finished episodes are kept)",
                    "train": " (rerun the same command to resume from the last saved checkpoint)"}.get(fn.__name__, "")
            err_console.print(f"[yellow]interrupted[/]{hint}")
            raise typer.Exit(code=130) from None

    return wrapper


@app.command()
@_user_errors
def tasks() -> None:
    """List the registered tasks and their gymnasium ids."""
    from vlarm.envs import env_id
    from vlarm.tasks import list_tasks, make_task

    table = Table(title="vlarm tasks")
    table.add_column("task", no_wrap=True, min_width=max(map(len, list_tasks())))
    table.add_column("gymnasium id", overflow="fold")
    table.add_column("instruction template")
    for name in list_tasks():
        table.add_row(name, env_id(name), make_task(name).lang_template)
    console.print(table)


@app.command()
@_user_errors
def collect(
    task: Annotated[str, typer.Option(help="task name (see `vlarm tasks`)")],
    out: Annotated[Path, typer.Option(help="dataset directory (created, or resumed if it exists)")],
    split: Annotated[str, typer.Option(help="train, val or test")] = "train",
    episodes: Annotated[int, typer.Option(help="successful episodes wanted")] = 100,
    camera_scale: Annotated[float, typer.Option(help="camera resolution relative to 480x640")] = 1.0,
) -> None:
    """Collect oracle demonstrations (keeps reward > 0.99; resumable)."""
    from vlarm.data.collect import collect as run_collect

    _check_positive(episodes=episodes, camera_scale=camera_scale)
    _check_dir(out, "--out")

    report = run_collect(task, split, episodes, out, camera_scale=camera_scale)
    console.print(f"[green]{report.episodes} episodes[/] in {out} ({report.new_episodes} new, "
                  f"{report.rejected} rejected, {report.episodes_per_minute:.1f} episodes/min)")


@app.command()
@_user_errors
def train(
    policy: Annotated[str, typer.Option(help="transporter or cliport")],
    task: Annotated[str, typer.Option(help="task name")],
    data: Annotated[Path, typer.Option(help="dataset directory from `vlarm collect`")],
    demos: Annotated[int, typer.Option(help="number of demonstrations to train on")] = 100,
    steps: Annotated[int | None, typer.Option(help="optimisation steps (default: the config's)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="frames per step")] = None,
    lr: Annotated[float | None, typer.Option(help="learning rate")] = None,
    out: Annotated[Path | None, typer.Option(help="output directory (default runs/<policy>-<task>-<demos>)")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    save_every: Annotated[int | None, typer.Option(help="checkpoint period in steps")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads (0: automatic)")] = None,
    semantic_vlm: Annotated[str | None, typer.Option(
        help="cliport only: a dual encoder (vlarm vlm checkpoint or name) used as the semantic stream")] = None,
    grounding_fusion: Annotated[str | None, typer.Option(
        help="with --semantic-vlm: relevance maps enter the 'semantic' decoder only (default), or 'both' streams")]
    = None,
    normalization: Annotated[str, typer.Option(
        help="input statistics: 'dataset' (the data's meta/stats.json, stored with the policy) or 'ravens' "
             "(Ravens' constants)")] = "dataset",
) -> None:
    """Train a policy by imitation; resumes from OUT/checkpoints/last if present."""
    from vlarm.policies import available_policies
    from vlarm.policies.training import TrainConfig
    from vlarm.policies.training import train as run_train
    from vlarm.tasks import make_task

    make_task(task)
    if policy not in available_policies():
        raise ValueError(f"unknown policy {policy!r}; valid policies: {', '.join(available_policies())}")
    _check_positive(demos=demos, steps=steps, batch_size=batch_size, lr=lr, save_every=save_every)
    if threads is not None and threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: automatic), got {threads}")
    _check_seed(seed)
    _check_dir(out, "--out")
    if grounding_fusion is not None and semantic_vlm is None:
        raise ValueError("--grounding-fusion only applies with --semantic-vlm")
    flags = dict(steps=steps, batch_size=batch_size, lr=lr, save_every=save_every, threads=threads)
    overrides = {k: v for k, v in flags.items() if v is not None}
    if semantic_vlm is not None:
        if policy != "cliport":
            raise ValueError(f"--semantic-vlm needs --policy cliport (the {policy} policy has no semantic stream)")
        from vlarm.vlm.config import list_models

        if semantic_vlm not in list_models() and not Path(semantic_vlm).is_dir():
            raise FileNotFoundError(f"--semantic-vlm {semantic_vlm}: no such checkpoint directory; pass one written "
                                    f"by `vlarm vlm train` (or a local CLIP/SigLIP) or one of {list_models()}")
        overrides["policy_overrides"] = {"grounding_model": semantic_vlm, "text_encoder": "vlm",
                                         "grounding_fusion": grounding_fusion or "semantic"}
    from vlarm.data import EpisodeDataset

    recorded = EpisodeDataset(data).dataset_info.benchmark_task
    if recorded != task:
        raise ValueError(f"{data} holds demonstrations of {recorded!r}, not {task!r}; pass --task {recorded} "
                         "or a dataset collected for this task")
    out = out or Path("runs") / f"{policy}-{task}-{demos}"
    if normalization not in ("dataset", "ravens"):
        raise ValueError(f"--normalization must be 'dataset' or 'ravens', got {normalization!r}")
    config = TrainConfig(policy=policy, task=task, data_dir=data, demos=demos, out_dir=out, seed=seed,
                         normalization=normalization, **overrides)
    final = run_train(config)
    console.print(f"[green]done[/]: checkpoint {final}")


def _agent_factory(policy: str | None, checkpoint: Path | None):
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
    task: Annotated[str, typer.Option(help="task name")],
    checkpoint: Annotated[Path | None, typer.Option(help="policy checkpoint directory")] = None,
    policy: Annotated[str | None, typer.Option(help="`oracle` to evaluate the scripted oracle")] = None,
    split: Annotated[str, typer.Option(help="val or test")] = "test",
    episodes: Annotated[int, typer.Option(help="number of seeded episodes")] = 100,
    out: Annotated[Path | None, typer.Option(help="directory for results.json / results.md / videos")] = None,
    videos: Annotated[int, typer.Option(help="record the first N episodes")] = 0,
    camera_scale: Annotated[float, typer.Option(help="camera resolution relative to 480x640")] = 1.0,
) -> None:
    """Evaluate a checkpoint (or the oracle) with CLIPort's protocol: score (0-100) and success rate."""
    from vlarm.eval import evaluate as run_eval
    from vlarm.tasks import make_task
    from vlarm.tasks.attributes import check_split

    make_task(task)
    if check_split(split) == "train":
        raise ValueError("--split must be val or test: train seeds are the ones demonstrations are collected on")
    _check_positive(episodes=episodes, camera_scale=camera_scale)
    if videos < 0:
        raise ValueError(f"--videos must be >= 0, got {videos}")
    _check_dir(out, "--out")
    label, factory = _agent_factory(policy, checkpoint)
    out = out or Path("runs") / "eval" / f"{Path(label).name}-{task}-{split}"
    results = run_eval(factory, task, split, episodes, out, videos=videos, camera_scale=camera_scale, label=label)
    console.print(f"policy: {label}", soft_wrap=True)
    table = Table(title=escape(f"{task}, {split} split"))
    for col in ("episodes", "score", "success rate (%)"):
        table.add_column(col, justify="right")
    table.add_row(str(results["episodes"]), f"{results['score']:.1f}", f"{results['success_rate']:.1f}")
    console.print(table)
    console.print(f"results: {out / 'results.json'}")


@app.command()
@_user_errors
def run(
    instruction: Annotated[str, typer.Argument(help='e.g. "put the red blocks in a green bowl"')],
    checkpoint: Annotated[Path | None, typer.Option(help="policy checkpoint (default: the shipped CLIPort)")] = None,
    policy: Annotated[str | None, typer.Option(help="`oracle` to run the scripted oracle instead")] = None,
    task: Annotated[str, typer.Option(help="task that grounds the instruction")] = "put-block-in-bowl-seen-colors",
    seed: Annotated[int, typer.Option(help="scene seed")] = 0,
    video: Annotated[Path | None, typer.Option(help="write a video (.mp4 or .gif)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the episode record as JSON")] = None,
) -> None:
    """Carry out an instruction in simulation and report the plan, reward and success."""
    from dataclasses import asdict

    from vlarm.envs import make_env
    from vlarm.eval import rollout
    from vlarm.tasks import make_task

    make_task(task).parse_instruction(instruction)  # fail fast, before loading anything heavy
    _check_seed(seed)
    _check_video(video)
    _check_dir(video.parent if video else None, "--video")
    _check_dir(json_out.parent if json_out else None, "--json")
    label, factory = _agent_factory(policy, checkpoint)
    env = make_env(task, split="test")
    agent = factory(env)
    console.print(f"[bold]instruction:[/] {instruction}   [dim](policy: {label}, seed {seed})[/]")

    def on_step(i, step, info):
        if step.primitive_failure is not None:
            status = f"[red]{step.primitive_failure}[/]"
        else:
            status = "placed" if step.reward > 0 else "executed, no progress"
        console.print(f"  step {i + 1}: pick at {step.pick_pose[:3]}  ->  place at {step.place_pose[:3]}  "
                      f"reward {step.reward:+.2f}  ({status})")

    record = rollout(env, agent, seed, "test", instruction=instruction, video_path=video, on_step=on_step)
    env.close()
    verdict = "[green]success[/]" if record.success else "[red]not completed[/]"
    n = len(record.steps)
    console.print(f"total reward {record.total_reward:.2f}: {verdict} in {n} step{'s' if n != 1 else ''}")
    if record.video:
        console.print(f"video: {record.video}")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(asdict(record), indent=2))


vlm_app = typer.Typer(no_args_is_help=True, help="Vision-language models: train, evaluate, few-shot, detect.")
app.add_typer(vlm_app, name="vlm")


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
    dataset: Annotated[str, typer.Option(help="fashion-mnist or csv")] = "fashion-mnist",
    data_csv: Annotated[Path | None, typer.Option("--data", help="CSV for --dataset csv")] = None,
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
    method: Annotated[str, typer.Option(help="coop, cocoop, clip-adapter, tip-adapter, tip-adapter-f, linear-probe")]
    = "tip-adapter",
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
    detector: Annotated[Path, typer.Option(help="distilled detector directory")],
    teacher: Annotated[str, typer.Option(help="dual encoder it was distilled from")] = "lit-effnet-minilm",
    out: Annotated[Path | None, typer.Option(help="PNG of the heatmap overlay")] = None,
) -> None:
    """Find a named object by text with the distilled open-vocabulary localiser."""
    from vlarm.vlm.commands import vlm_detect as run

    _print_json(run(image, text, detector, teacher, out))


if __name__ == "__main__":
    app()
