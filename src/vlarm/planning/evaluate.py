"""Evaluation of the planner (SayCan, Ahn et al. 2022, Sec. 5): plan success and execution success per instruction
family, with 95% Wilson intervals, for SayCan and its ablations.

* plan success: the planner's skills, executed by the scripted oracle (:class:`~.episode.OracleExecutor`), leave
  a final state that satisfies the instruction's checker;
* execution success: the same with the learned policy executing every skill (:class:`~.episode.PolicyExecutor`).

Methods (:data:`METHODS`): ``saycan`` (LM x detection affordance x policy value when a policy is given),
``no-vf`` (LM alone), ``generative`` (LM writes a step, nearest skill by MiniLM), ``bc-use`` (MiniLM nearest skill,
one step, no LM) and ``oracle-affordance`` (LM x simulator-truth affordance). Instruction ``i`` of the set always
plays test seed ``split_seed("test", i)``. Rows are appended to ``rows.jsonl`` as they finish, so a rerun resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from vlarm.planning.affordances import ConstantAffordance, DetectionAffordance, OracleAffordance
from vlarm.planning.instructions import FAMILIES, INSTRUCTIONS, Instruction
from vlarm.planning.saycan import GenerativePlanner, PlannerConfig, SayCanPlanner, SentenceMatchPlanner
from vlarm.stats import format_ci, wilson_interval
from vlarm.tasks.attributes import split_seed

METHODS: tuple[str, ...] = ("saycan", "no-vf", "generative", "bc-use", "oracle-affordance")
EXECUTORS: tuple[str, ...] = ("oracle", "policy")
#: SayCan's PaLM numbers on its 101 instructions (Ahn et al. 2022, Table 2 and Sec. 5.3), percent.
PAPER = {"saycan": {"plan": 84, "execution": 74}, "no-vf": {"plan": 67}, "generative": {"plan": 74},
         "bc-use": {"plan": None, "note": "60 on single primitives, 0 otherwise"}}


def check_methods(methods: Sequence[str]) -> list[str]:
    """Return ``methods`` if every one is known.

    Raises:
        ValueError: naming the unknown ones and the valid ones.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown planner methods {unknown}; valid: {', '.join(METHODS)}")
    return list(methods)


def build_planner(method: str, scorer=None, encoder=None, value=None, config: PlannerConfig | None = None):
    """The planner of a method (module docstring).

    Args:
        method: one of :data:`METHODS`.
        scorer: a language-model scorer (all but ``bc-use``).
        encoder: a sentence encoder (``generative``, ``bc-use``).
        value: a :class:`~.affordances.PolicyValue` (``saycan`` only; None: detection affordance alone).
        config: planner settings.

    Raises:
        ValueError: an unknown method, or a missing scorer/encoder it needs.
    """
    check_methods([method])
    if method in ("saycan", "no-vf", "generative", "oracle-affordance") and scorer is None:
        raise ValueError(f"method {method!r} needs a language model")
    if method in ("generative", "bc-use") and encoder is None:
        raise ValueError(f"method {method!r} needs a sentence encoder")
    if method == "saycan":
        return SayCanPlanner(scorer, DetectionAffordance(), value, config, name=method)
    if method == "no-vf":
        return SayCanPlanner(scorer, ConstantAffordance(), None, config, name=method)
    if method == "oracle-affordance":
        return SayCanPlanner(scorer, OracleAffordance(), None, config, name=method)
    if method == "generative":
        return GenerativePlanner(scorer, encoder, config)
    return SentenceMatchPlanner(encoder, DetectionAffordance(), config)


def instruction_seed(instruction: Instruction) -> int:
    """The test seed an instruction always plays: ``split_seed("test", its index in INSTRUCTIONS)``."""
    return split_seed("test", INSTRUCTIONS.index(instruction))


def evaluate_planner(runners: dict[str, object], instructions: Sequence[Instruction], executor: str,
                     out_dir: str | Path, progress: bool = True) -> dict:
    """Run every method's runner on every instruction; write ``rows.jsonl``, ``results.json``, ``results.md``.

    Args:
        runners: method -> :class:`~.episode.PlanRunner` (built with the executor named by ``executor``).
        instructions: the instructions to run.
        executor: ``"oracle"`` (plan success) or ``"policy"`` (execution success), recorded in each row.
        out_dir: output folder (rows already there for the same method, executor and instruction are kept).
        progress: a tqdm bar.

    Returns:
        :func:`summarize` of all rows in ``out_dir`` (including earlier runs).

    Raises:
        ValueError: an unknown executor.
    """
    from tqdm.auto import tqdm

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.jsonl"
    rows = read_rows(rows_path)
    done = {(r["method"], r["executor"], r["id"]) for r in rows}
    # instruction-major: the methods that share a language model ask it the same first step (answered from its memo)
    todo = [(m, i) for i in instructions for m in runners if (m, executor, i.id) not in done]
    bar = tqdm(total=len(todo), desc=f"planner eval ({executor})", unit="ep", disable=not progress)
    with rows_path.open("a") as f:
        for method, ins in todo:
            t0 = time.process_time()
            res = runners[method].run(ins.text, instruction_seed(ins), ins.spec, ins.success)
            row = {"method": method, "executor": executor, "id": ins.id, "family": ins.family,
                   "held_out": ins.held_out, "instruction": ins.text, "success": bool(res.success),
                   "stop": res.stop, "message": res.message, "plan": res.plan, "seen": res.seen,
                   "plan_seconds": [s.seconds_plan for s in res.steps], "seconds": res.seconds,
                   "cpu_seconds": time.process_time() - t0, "explanation": res.explanation,
                   "steps": [asdict(s) for s in res.steps]}
            f.write(json.dumps(row) + "\n")
            f.flush()
            rows.append(row)
            bar.update(1)
    bar.close()
    summary = summarize(rows)
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    (out / "results.md").write_text(results_markdown(summary))
    return summary


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a ``rows.jsonl`` (an unfinished last line is ignored)."""
    path = Path(path)
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _rate(rows: list[dict]) -> dict:
    n, k = len(rows), sum(r["success"] for r in rows)
    if n == 0:
        return {"episodes": 0, "success_rate": None, "success_ci": None}
    lo, hi = wilson_interval(k, n)
    return {"episodes": n, "successes": k, "success_rate": 100.0 * k / n, "success_ci": [lo, hi]}


def summarize(rows: list[dict]) -> dict:
    """Success rates with 95% Wilson intervals per (executor, method): overall, tuning part, held-out part and per
    family; plus the mean planner decision time per step and CPU seconds."""
    out: dict = {"units": "percent of instructions whose final state satisfies the checker; 95% Wilson interval",
                 "paper": PAPER, "results": {}}
    keys = sorted({(r["executor"], r["method"]) for r in rows}, key=lambda k: (k[0], METHODS.index(k[1])))
    for executor, method in keys:
        part = [r for r in rows if r["executor"] == executor and r["method"] == method]
        plan_s = [s for r in part for s in r["plan_seconds"]]
        out["results"][f"{executor}/{method}"] = {
            "executor": executor, "method": method, "all": _rate(part),
            "tuning": _rate([r for r in part if not r["held_out"]]),
            "held_out": _rate([r for r in part if r["held_out"]]),
            "families": {f: _rate([r for r in part if r["family"] == f]) for f in FAMILIES},
            "mean_decision_seconds": sum(plan_s) / len(plan_s) if plan_s else None,
            "cpu_minutes": sum(r["cpu_seconds"] for r in part) / 60}
    return out


def results_markdown(summary: dict) -> str:
    """Families x methods table (success % [95% CI], n) per executor."""
    lines = ["Success = the final state satisfies the instruction's checker; % [95% Wilson interval] (episodes).", ""]
    results = summary["results"]
    for executor in EXECUTORS:
        cols = [v for v in results.values() if v["executor"] == executor]
        if not cols:
            continue
        what = "plan success (oracle executes each skill)" if executor == "oracle" else \
            "execution success (the learned policy executes each skill)"
        lines += [f"### {what}", "", "| family | " + " | ".join(c["method"] for c in cols) + " |",
                  "|---|" + "---:|" * len(cols)]
        for name in [*FAMILIES, "all", "tuning", "held_out"]:
            cells = []
            for c in cols:
                r = c["families"].get(name) if name in FAMILIES else c[name]
                cells.append("-" if not r or not r["episodes"] else
                             f"{format_ci(r['success_rate'], r['success_ci'])} ({r['episodes']})")
            label = {"all": "**all**", "tuning": "tuning part", "held_out": "held-out part"}.get(name, name)
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += ["", "| | " + " | ".join(c["method"] for c in cols) + " |", "|---|" + "---:|" * len(cols),
                  "| mean planner decision per step, wall s (methods after the first reuse the LM's answers to "
                  "identical requests) | " + " | ".join(
                      "-" if c["mean_decision_seconds"] is None else f"{c['mean_decision_seconds']:.2f}"
                      for c in cols) + " |",
                  "| CPU-minutes | " + " | ".join(f"{c['cpu_minutes']:.1f}" for c in cols) + " |", ""]
    return "\n".join(lines) + "\n"


__all__ = ["EXECUTORS", "METHODS", "PAPER", "build_planner", "check_methods", "evaluate_planner",
           "instruction_seed", "read_rows", "results_markdown", "summarize"]
