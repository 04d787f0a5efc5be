"""SayCan planner speed (issue 9): language-model load time from the local cache, and the planner's decision time
per step with 65 options (4 blocks, 4 bowls, 9 places + done) on the CPU.

    MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824 \
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/saycan_latency.py --threads 2 \
        --out /work/logs/saycan/latency.json

Measures (wall and process CPU seconds): (1) the load (converting the GGUF package first if the cache is empty, and
then a second, cached load), (2) ``--steps`` planner decisions of one episode with the default (tree) scorer (the
few-shot header's KV cache is computed before, once), (3) the same 65 options scored with the batched strategy,
(4) the naive baseline on the same prompt: every option scored alone with a full forward pass over prompt + option
(``--naive-options`` of them, extrapolated to 65).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--naive-options", type=int, default=5)
    parser.add_argument("--lm", default=None, help="local causal-LM directory (default: Gemma-3-270M)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from vlarm.planning.affordances import DetectionAffordance, PlanState
    from vlarm.planning.lm import CONVERTED_NAME, cache_dir, load_language_model
    from vlarm.planning.perception import Detection
    from vlarm.planning.saycan import PlanContext, SayCanPlanner
    from vlarm.planning.scorer import CausalLMScorer
    from vlarm.planning.skills import generate_skills

    report: dict = {"threads": args.threads, "cpu": _cpu_name()}
    had_cache = (cache_dir() / CONVERTED_NAME).is_dir()
    loaded, wall, cpu = _timed(lambda: load_language_model(args.lm))
    report["first_load"] = {"source": loaded.source, "wall_s": wall, "cpu_s": cpu, "cache_existed": had_cache}
    del loaded
    loaded, wall, cpu = _timed(lambda: load_language_model(args.lm))
    report["cached_load"] = {"source": loaded.source, "wall_s": wall, "cpu_s": cpu}
    print("load:", report["first_load"], report["cached_load"], flush=True)

    objects = [f"{c} block" for c in ("blue", "red", "green", "yellow")] + \
              [f"{c} bowl" for c in ("blue", "red", "green", "yellow")]
    skills = generate_skills(objects)
    dets = [Detection(o, 0.9, {o: 0.9}, (0, 0), (0.5, 0.0), np.zeros((2, 2), bool)) for o in objects]
    scorer = CausalLMScorer(loaded.model, loaded.tokenizer, source=loaded.source)
    (planner, wall, cpu) = _timed(lambda: SayCanPlanner(scorer, DetectionAffordance()))
    report["pin_header"] = {"wall_s": wall, "cpu_s": cpu, "tokens": len(loaded.tokenizer(planner.header)["input_ids"])}
    history, steps = [], []
    instruction = "put all the blocks in the bowls with matching colors"
    for _ in range(args.steps):
        ctx = PlanContext(instruction, f"objects = [{', '.join(objects)}]", list(history), skills, PlanState(dets))
        decision, wall, cpu = _timed(lambda ctx=ctx: planner.step(ctx))
        steps.append({"wall_s": wall, "cpu_s": cpu, "chosen": decision.skill.text})
        print("step:", steps[-1], flush=True)
        if decision.skill.is_done:
            break
        history.append(decision.skill)
    report["options"] = len(skills)
    report["steps"] = steps
    report["mean_step_wall_s"] = float(np.mean([s["wall_s"] for s in steps]))

    prompt = planner.prompt(PlanContext(instruction, f"objects = [{', '.join(objects)}]", [], skills,
                                        PlanState(dets)))
    tok = loaded.tokenizer

    def naive(option: str) -> float:
        ids = tok(prompt, add_special_tokens=True)["input_ids"]
        opt = tok(option, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(loaded.model(input_ids=torch.tensor([ids + opt])).logits[0].float(), -1)
        return float(sum(logp[len(ids) + j - 1, t] for j, t in enumerate(opt)))

    batched = CausalLMScorer(loaded.model, loaded.tokenizer, strategy="batched")
    batched.pin_prefix(planner.header)
    batched.score(prompt, ["done()"])   # the prompt's own state, as in a planner step
    _, wall, cpu = _timed(lambda: batched.score(prompt, [s.text for s in skills]))
    report["batched_strategy_step"] = {"wall_s": wall, "cpu_s": cpu}
    print("batched:", report["batched_strategy_step"], flush=True)

    subset = [s.text for s in skills[: args.naive_options]]
    _, wall, cpu = _timed(lambda: [naive(o) for o in subset])
    report["naive_one_at_a_time"] = {"options": len(subset), "wall_s": wall, "cpu_s": cpu,
                                     "extrapolated_wall_s_for_all": wall / len(subset) * len(skills)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
