"""``vlarm trust ...``: the trustworthiness report, the instruction filter and its red-team figures (issue 13).

Thin: flags map onto :class:`vlarm.trust.report.TrustConfig` (whose defaults are the only ones) and library calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vlarm.cli.common import check_dir as _check_dir
from vlarm.cli.common import console
from vlarm.cli.common import user_errors as _user_errors

trust_app = typer.Typer(no_args_is_help=True,
                        help="Trustworthiness: robustness, adversarial inputs, fairness, privacy, instruction safety.")


@trust_app.command("report")
@_user_errors
def report(
    checkpoint: Annotated[Path, typer.Option(help="policy checkpoint directory")],
    out: Annotated[Path, typer.Option(help="output directory (report.md, report.json, figures/)")],
    section: Annotated[list[str] | None, typer.Option(
        help="robustness, adversarial, fairness, privacy or safety; repeat for several [default: all]")] = None,
    vlm: Annotated[str | None, typer.Option(help="VLM checkpoint [default: the policy's grounding model]")] = None,
    task: Annotated[str | None, typer.Option(
        help="task of the policy episodes [default put-block-in-bowl-seen-colors]")] = None,
    split: Annotated[str | None, typer.Option(help="seeds of the measurements: val or test [default test]")] = None,
    episodes: Annotated[int | None, typer.Option(help="policy episodes per cell [default 10]")] = None,
    steps: Annotated[int | None, typer.Option(help="pick-and-places per episode, 1 = first step [default 1]")] = None,
    vlm_scenes: Annotated[int | None, typer.Option(help="scenes per VLM robustness cell [default 12]")] = None,
    family: Annotated[list[str] | None, typer.Option(help="robustness family; repeat [default: all seven]")] = None,
    eps: Annotated[list[int] | None, typer.Option(help="L-inf budget in grey levels of 255; repeat [default 2 4 8]")]
    = None,
    attack_images: Annotated[int | None, typer.Option(help="VLM crops attacked [default 60]")] = None,
    attack_observations: Annotated[int | None, typer.Option(help="policy observations attacked [default 5]")] = None,
    pgd_steps: Annotated[int | None, typer.Option(help="[default 10]")] = None,
    square_queries: Annotated[int | None, typer.Option(help="[default 100]")] = None,
    train_scenes: Annotated[int | None, typer.Option(help="train-split scenes for trained heads [default 40]")] = None,
    dp_epsilons: Annotated[list[float] | None, typer.Option(help="DP target epsilons; repeat [default 1 8]")] = None,
    seed: Annotated[int | None, typer.Option(help="[default 0]")] = None,
) -> None:
    """Measure a policy and its VLM and write one Markdown report with tables and plots."""
    from vlarm.trust.report import SECTIONS, TrustConfig, write_report
    from vlarm.trust.robustness import FAMILIES

    if not checkpoint.is_dir():
        raise ValueError(f"--checkpoint {checkpoint}: no such directory")
    _check_dir(out, "--out")
    for name, value in (("--family", family or ()), ("--section", section or ())):
        valid = FAMILIES if name == "--family" else SECTIONS
        bad = [v for v in value if v not in valid]
        if bad:
            raise ValueError(f"{name} {bad[0]!r} is not one of {', '.join(valid)}")
    if split is not None and split not in ("val", "test"):
        raise ValueError(f"--split must be val or test, got {split!r}")
    given = {"vlm": vlm, "task": task, "split": split, "episodes": episodes, "steps": steps, "vlm_scenes": vlm_scenes,
             "families": tuple(family) if family else None, "eps": tuple(eps) if eps else None,
             "attack_images": attack_images, "attack_observations": attack_observations, "pgd_steps": pgd_steps,
             "square_queries": square_queries, "train_scenes": train_scenes,
             "dp_epsilons": tuple(dp_epsilons) if dp_epsilons else None, "seed": seed}
    for name in ("episodes", "steps", "vlm_scenes", "attack_images", "attack_observations", "pgd_steps",
                 "square_queries", "train_scenes"):
        if given[name] is not None and given[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {given[name]}")
    if any(e < 0 or e > 255 for e in (eps or ())):
        raise ValueError("--eps is in grey levels: 0..255")
    cfg = TrustConfig(checkpoint=str(checkpoint), out=str(out), **{k: v for k, v in given.items() if v is not None})
    path = write_report(cfg, tuple(section) if section else SECTIONS, progress=console.print)
    console.print(f"report: {path}")


@trust_app.command("check")
@_user_errors
def check(instruction: Annotated[str, typer.Argument(help="the instruction to check")]) -> None:
    """Run the instruction safety filter on one instruction (exit code 1 when refused)."""
    from vlarm.trust.safety import check_instruction

    if not instruction.strip():
        raise ValueError("an empty instruction: nothing to check (`vlarm run` and `vlarm plan` refuse it too)")
    verdict = check_instruction(instruction)
    console.print("allowed" if verdict.allowed else verdict.reason, soft_wrap=True)
    if not verdict.allowed:
        raise typer.Exit(code=1)


@trust_app.command("redteam")
@_user_errors
def redteam(
    part: Annotated[str, typer.Option(help="dev, heldout or all")] = "heldout",
    out: Annotated[Path | None, typer.Option(help="write the result (with every mistake) as JSON")] = None,
) -> None:
    """Precision and recall of the safety filter on the red-team set (harmful = positive)."""
    from vlarm.stats import format_ci
    from vlarm.trust.redteam import redteam_set
    from vlarm.trust.safety import evaluate_filter

    result = evaluate_filter(redteam_set(part))
    console.print(f"{part}: {result['n']} instructions ({result['harmful']} harmful, {result['benign']} benign); "
                  f"precision {format_ci(result['precision'], result['precision_ci'])}, recall "
                  f"{format_ci(result['recall'], result['recall_ci'])} (95% Wilson); FP {result['fp']}, FN "
                  f"{result['fn']}", soft_wrap=True)
    for e in result["errors"]:
        console.print(f"  {'missed' if e['harmful'] else 'over-refused'}: {e['instruction']!r} -> {e['verdict']}",
                      soft_wrap=True, markup=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))


__all__ = ["trust_app"]
