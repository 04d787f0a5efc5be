"""``vlarm plan`` / ``vlarm run --planner saycan`` and ``vlarm eval-planner``: SayCan on the tabletop (issue 9).

Thin: parses flags, loads the parts (language model, VLM perception, skill policy) and calls :mod:`vlarm.planning`.
Heavy imports happen inside the functions, so ``vlarm --help`` stays fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vlarm.checks import check_output
from vlarm.cli.common import console, err_console

REPO = Path(__file__).resolve().parents[3]
#: Every planner method (kept in step with vlarm.planning.evaluate.METHODS, without importing torch here).
ALL_METHODS = ("saycan", "no-vf", "generative", "bc-use", "oracle-affordance")
#: The CLIPort policy trained on oracle demonstrations of the SayCan skills (benchmarks/RESULTS.md, issue 9).
DEFAULT_SKILL_POLICY = REPO / "checkpoints" / "cliport-saycan-skills"
#: Fallback when the skill policy is absent: the shipped put-block-in-bowl policy (knows block -> bowl only).
FALLBACK_POLICY = REPO / "checkpoints" / "cliport-vlm-put-block-in-bowl"




def load_skill_policy(checkpoint: Path | None, policy: str | None, device: str = "auto"):
    """``(policy or None, label)``: ``--policy oracle`` -> (None, "oracle"); else the checkpoint (default: the SayCan
    skill policy, or the shipped put-block-in-bowl policy when that is absent, with a warning).

    Raises:
        ValueError: an unknown ``--policy``; vlarm.policies.CheckpointError: a damaged checkpoint.
    """
    if policy is not None:
        if policy.lower() != "oracle":
            raise ValueError(f"--policy takes 'oracle' (the scripted skills), got {policy!r}; pass a checkpoint with "
                             "--checkpoint")
        return None, "oracle"
    from vlarm.policies import load_policy, resolve_device

    path = checkpoint or (DEFAULT_SKILL_POLICY if DEFAULT_SKILL_POLICY.is_dir() else FALLBACK_POLICY)
    if checkpoint is None and path == FALLBACK_POLICY:
        err_console.print(f"[yellow]warning:[/] no SayCan skill policy at {DEFAULT_SKILL_POLICY}; executing with "
                            f"{FALLBACK_POLICY.name}, which knows 'put the X blocks in a Y bowl' only")
    agent = load_policy(str(path))
    agent.eval()
    agent.to(resolve_device(device))
    return agent, str(path)


def load_planner(method: str = "saycan", lm: str | None = None, policy=None, explain: bool = False,
                 max_steps: int = 8, value: bool = True, threads: int | None = None):
    """Build a planner and report the language model's source (``lm`` None: ``$VLARM_PLANNER_LM`` if set, else
    Gemma-3-270M).

    Returns:
        ``(planner, description)``.
    """
    from vlarm.planning.affordances import PolicyValue
    from vlarm.planning.evaluate import build_planner, check_methods
    from vlarm.planning.saycan import PlannerConfig

    check_methods([method])
    scorer = encoder = None
    notes = []
    if method != "bc-use":
        from vlarm.planning.lm import load_language_model
        from vlarm.planning.scorer import CausalLMScorer

        loaded = load_language_model(lm or os.environ.get("VLARM_PLANNER_LM") or None, threads=threads)
        scorer = CausalLMScorer(loaded.model, loaded.tokenizer, source=loaded.source)
        notes.append(f"LM: {loaded.source}, loaded in {loaded.seconds:.1f} s")
    if method in ("generative", "bc-use"):
        from vlarm.text import load_sentence_encoder

        encoder = load_sentence_encoder()
        notes.append(f"sentence encoder: {encoder.source}")
    use_value = value and policy is not None and method == "saycan"
    planner = build_planner(method, scorer, encoder, PolicyValue(policy) if use_value else None,
                            PlannerConfig(max_steps=max_steps, explain=explain))
    notes.append("affordance: " + {"saycan": "VLM detection" + (" x policy value" if use_value else ""),
                                   "no-vf": "none", "oracle-affordance": "simulator oracle",
                                   "generative": "none", "bc-use": "VLM detection"}[method])
    return planner, "; ".join(notes)


def _print_step(console, index: int, decision, step) -> None:
    if decision.generated:
        console.print(f"  step {index + 1}: the LM wrote {escape(repr(decision.generated))}")
    if decision.options:
        table = Table(title=f"step {index + 1}: top options", title_justify="left", show_edge=False)
        for col in ("option", "LM", "affordance", "value", "combined"):
            table.add_column(col, justify="left" if col == "option" else "right")
        for o in decision.options:
            mark = "[bold green]>[/] " if o.skill == decision.skill else "  "
            value = "-" if o.value is None else f"{o.value:.3f}"
            table.add_row(mark + escape(o.skill.text), f"{o.lm:.3f}", f"{o.affordance:.3f}", value,
                          f"{o.combined:.4f}")
        console.print(table)
    status = "" if decision.skill.is_done else (f"  [red]failed: {escape(step.failure)}[/]" if step.failure else
                                                "  executed")
    console.print(f"  step {index + 1}: [bold]{escape(decision.skill.text)}[/]{status}  "
                  f"[dim](decided in {step.seconds_plan:.2f} s)[/]", soft_wrap=True)


def run_planned(instruction: str, seed: int = 0, video: Path | None = None, json_out: Path | None = None,
                checkpoint: Path | None = None, policy: str | None = None, device: str = "auto",
                lm: str | None = None, method: str = "saycan", explain: bool = False, max_steps: int = 8,
                camera_scale: float | None = None, threads: int | None = None):
    """Plan and carry out a long-horizon instruction on SayCan's tabletop (test layout ``seed``), printing each
    step's top options and scores; returns the :class:`~vlarm.planning.episode.EpisodeResult`. ``threads``: torch
    CPU threads (None: torch's default, every core; on an idle two-core machine a step takes ~0.6 s with two threads
    and ~0.95 s with one, but one thread is faster when other jobs hold the cores: benchmarks/RESULTS.md).

    The instruction safety filter (:func:`vlarm.trust.safety.refuse_if_unsafe`) runs first, so every way into the
    planner (``vlarm plan``, ``vlarm run --planner saycan``) refuses what ``vlarm run`` refuses.

    Raises:
        ValueError: bad flags (unknown method or policy, bad paths), or an instruction the safety filter refuses.
    """
    from dataclasses import asdict

    from vlarm.planning.episode import OracleExecutor, PlanRunner, PolicyExecutor
    from vlarm.trust.safety import refuse_if_unsafe

    refuse_if_unsafe(instruction)   # before perceiving or loading the language model
    from vlarm.planning.perception import Perception
    from vlarm.tasks.attributes import split_seed

    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    if max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {max_steps}")
    check_output(video, "--video", suffixes=(".mp4", ".gif"))
    check_output(json_out, "--json", suffixes=(".json",))
    agent, label = load_skill_policy(checkpoint, policy, device)
    planner, notes = load_planner(method, lm, agent, explain, max_steps, threads=threads)
    executor = OracleExecutor() if agent is None else PolicyExecutor(agent, label)
    episode_seed = split_seed("test", seed)
    console.print(f"[bold]instruction:[/] {escape(instruction)}   [dim](planner: {method}; {escape(notes)}; skills "
                  f"executed by: {escape(label)}; SayCan tabletop, test episode {seed}, seed {episode_seed})[/]",
                  soft_wrap=True)
    runner = PlanRunner(planner, Perception.from_pretrained(), executor, camera_scale=camera_scale)
    try:
        result = runner.run(instruction, episode_seed, video_path=video,
                            on_step=lambda i, d, s: _print_step(console, i, d, s))
    finally:
        runner.close()
    console.print(f"seen on the table: {', '.join(result.seen) or 'nothing'}")
    if result.explanation:
        console.print(f"explanation: {escape(result.explanation)}")
    if result.stop == "refused":
        console.print(f"[yellow]{escape(result.message)}[/]")
    else:
        n = sum(1 for s in result.steps if s.skill != "done()")
        console.print(f"stopped: {result.stop} after {n} skill{'s' if n != 1 else ''} "
                      f"({sum(1 for s in result.steps if s.failure)} failed)")
    if result.video:
        console.print(f"video: {result.video}")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(asdict(result), indent=2, default=str))
        console.print(f"episode record: {escape(str(json_out))}")
    return result


def plan(
    instruction: Annotated[str, typer.Argument(help='e.g. "put all the blocks in the bowls with matching colors"')],
    seed: Annotated[int, typer.Option(help="SayCan tabletop layout: index into the test split")] = 0,
    video: Annotated[Path | None, typer.Option(help="write a video (.mp4 or .gif)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the episode record as JSON")] = None,
    checkpoint: Annotated[Path | None, typer.Option(
        help="skill policy (default: checkpoints/cliport-saycan-skills)")] = None,
    policy: Annotated[str | None, typer.Option(help="`oracle`: scripted skills instead of a policy")] = None,
    lm: Annotated[str | None, typer.Option(help="local causal-LM directory (default: Gemma-3-270M)")] = None,
    method: Annotated[str, typer.Option(help="saycan, no-vf, generative, bc-use or oracle-affordance")] = "saycan",
    explain: Annotated[bool, typer.Option(help="the LM writes an explanation line first (chain of thought)")] = False,
    max_steps: Annotated[int, typer.Option(help="skills executed at most")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (the skill policy)")] = "auto",
    threads: Annotated[int, typer.Option(help="torch CPU threads (0: every core, fastest on an idle machine; 1 is "
                                              "faster when other jobs hold the cores)")] = 0,
) -> None:
    """Plan a long-horizon instruction with SayCan (LM x affordance) and execute each skill (= run --planner saycan)."""
    if threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: every core), got {threads}")
    run_planned(instruction, seed=seed, video=video, json_out=json_out, checkpoint=checkpoint, policy=policy,
                device=device, lm=lm, method=method, explain=explain, max_steps=max_steps, threads=threads or None)


def eval_planner(
    out: Annotated[Path, typer.Option(help="output folder (rows.jsonl, results.json, results.md); a rerun resumes")],
    methods: Annotated[str, typer.Option(help="comma-separated: saycan, no-vf, generative, bc-use, "
                                              "oracle-affordance")] = ",".join(ALL_METHODS),
    executor: Annotated[str, typer.Option(help="oracle (plan success) or policy (execution success)")] = "oracle",
    part: Annotated[str, typer.Option(help="all, tuning or held-out")] = "all",
    family: Annotated[list[str] | None, typer.Option(help="instruction family (repeat; default: all ten)")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many instructions per family")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="skill policy (execution and SayCan's value)")] = None,
    value: Annotated[bool, typer.Option(help="SayCan's policy-value term (needs a skill policy)")] = True,
    lm: Annotated[str | None, typer.Option(help="local causal-LM directory (default: Gemma-3-270M)")] = None,
    explain: Annotated[bool, typer.Option(help="chain of thought: an explanation line first")] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (the skill policy)")] = "auto",
) -> None:
    """Plan success (oracle executes each skill) or execution success (the policy does) per instruction family, with
    95% intervals, for SayCan and its ablations."""
    from vlarm.planning.episode import OracleExecutor, PlanRunner, PolicyExecutor
    from vlarm.planning.evaluate import EXECUTORS, check_methods, evaluate_planner
    from vlarm.planning.instructions import select_instructions
    from vlarm.planning.perception import Perception

    names = check_methods([m.strip() for m in methods.split(",") if m.strip()])
    if executor not in EXECUTORS:
        raise ValueError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    instructions = select_instructions(family, part)
    if limit is not None:
        counts: dict[str, int] = {}
        kept = []
        for ins in instructions:
            if counts.get(ins.family, 0) < limit:
                kept.append(ins)
                counts[ins.family] = counts.get(ins.family, 0) + 1
        instructions = kept
    check_output(out, "--out", kind="dir")
    need_policy = executor == "policy" or (value and "saycan" in names)
    agent, label = load_skill_policy(checkpoint, None, device) if need_policy else (None, "oracle")
    perception = Perception.from_pretrained()
    runners, shared_lm = {}, None
    for method in names:
        planner, notes = load_planner(method, lm, agent, explain, value=value, threads=threads) \
            if shared_lm is None or method == "bc-use" else _reuse(method, shared_lm, agent, explain, value)
        if method != "bc-use" and shared_lm is None:
            shared_lm = planner
        console.print(f"{method}: {escape(notes)}", soft_wrap=True)
        ex = OracleExecutor() if executor == "oracle" else PolicyExecutor(agent, label)
        runners[method] = PlanRunner(planner, perception, ex)
    try:
        summary = evaluate_planner(runners, instructions, executor, out)
    finally:
        for r in runners.values():
            r.close()
    from vlarm.planning.evaluate import results_markdown

    console.print(results_markdown(summary))
    console.print(f"results: {out / 'results.md'}")


def _reuse(method: str, planner, agent, explain: bool, value: bool):
    """A planner for ``method`` sharing the language model (and encoder) of an existing one."""
    from vlarm.planning.affordances import PolicyValue
    from vlarm.planning.evaluate import build_planner
    from vlarm.planning.saycan import PlannerConfig

    scorer = planner.scorer
    encoder = getattr(planner, "encoder", None)
    if method == "generative" and encoder is None:
        from vlarm.text import load_sentence_encoder

        encoder = load_sentence_encoder()
    use_value = value and agent is not None and method == "saycan"
    built = build_planner(method, scorer, encoder, PolicyValue(agent) if use_value else None,
                          PlannerConfig(max_steps=planner.config.max_steps, explain=explain))
    return built, f"LM: {scorer.source} (shared)" + ("; affordance x policy value" if use_value else "")


__all__ = ["DEFAULT_SKILL_POLICY", "eval_planner", "load_planner", "load_skill_policy", "plan", "run_planned"]
