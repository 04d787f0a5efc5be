"""``vlarm trust report``: robustness, adversarial inputs, fairness, privacy and instruction safety in one report.

Each section is a function ``section(cfg) -> Section`` that measures one thing at the scale ``cfg`` asks for, writes
its figures under ``cfg.out / "figures"`` and returns Markdown (tables with 95% intervals and sample counts, each
figure with the command that re-makes it) plus the raw numbers; :func:`write_report` runs the sections asked for
and writes ``report.md`` and ``report.json``. A section can be re-run alone (``vlarm trust report --section ...``)
and merges into the existing ``report.json``.

Data: the policy is scored on episodes of ``cfg.task`` (seeds of ``cfg.split``); the VLM on object crops from the
same kind of scenes; heads trained here (adversarial training, re-weighting, DP) learn on *train*-split scenes and
are evaluated on ``cfg.split`` scenes; membership inference uses train-split samples as members and
``cfg.split`` samples as non-members.
"""

from __future__ import annotations

import json
import resource
import shlex
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from vlarm.stats import format_ci

SECTIONS = ("robustness", "adversarial", "fairness", "privacy", "safety")
#: SGD learning rate of DP head training (momentum 0.9), chosen on val crops among 0.02 / 0.005 / 0.001 at
#: epsilon 8 (accuracy 65 / 75 / 82 % vs 75 % zero-shot, 154 train and 106 val crops): the noise on 256 x 1280
#: weights swamps the pretrained head at larger rates. Adam 1e-2 trains the non-private head.
DP_LR = 0.001


@dataclass
class TrustConfig:
    """What ``vlarm trust report`` measures and at what scale (every default is the CLI's default).

    Attributes:
        checkpoint: policy checkpoint directory (``select_action`` agent; a pick-and-place policy for attacks).
        vlm: dual-encoder checkpoint (default: the policy's ``grounding_model`` copy, else
            ``checkpoints/lit-sim-all-colors``).
        task: benchmark task of the policy measurements.
        out: output directory.
        split: split of the evaluation seeds (``val`` to explore, ``test`` to report).
        episodes: policy episodes per robustness cell / fairness / text injection.
        steps: pick-and-places per episode (1: first step only).
        vlm_scenes: scenes per VLM robustness cell (several crops each).
        families: robustness families (:data:`vlarm.trust.robustness.FAMILIES`).
        eps: L-inf budgets in grey levels (of 255).
        attack_images: VLM test crops attacked.
        attack_observations: policy observations attacked.
        pgd_steps / square_queries: attack iterations.
        train_scenes: train-split scenes for the heads trained here.
        dp_epsilons: target epsilons of DP training (delta 1e-5).
        seed: every random choice.
    """

    checkpoint: str
    out: str
    vlm: str | None = None
    task: str = "put-block-in-bowl-seen-colors"
    split: str = "test"
    episodes: int = 10
    steps: int = 1
    vlm_scenes: int = 12
    families: tuple[str, ...] = ("unseen_attributes", "distractors", "table_texture", "lighting", "camera_jitter",
                                 "depth_noise", "occlusion")
    eps: tuple[int, ...] = (2, 4, 8)
    attack_images: int = 60
    attack_observations: int = 5
    pgd_steps: int = 10
    square_queries: int = 100
    train_scenes: int = 40
    dp_epsilons: tuple[float, ...] = (1.0, 8.0)
    seed: int = 0

    def command(self, section: str) -> str:
        """The ``vlarm trust report`` command that re-makes one section with these settings."""
        parts = ["vlarm", "trust", "report", "--checkpoint", self.checkpoint, "--out", self.out, "--section", section]
        defaults = TrustConfig(self.checkpoint, self.out)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("checkpoint", "out") or value == getattr(defaults, f.name):
                continue
            flag = "--" + {"families": "family", "eps": "eps"}.get(f.name, f.name).replace("_", "-")
            for v in (value if isinstance(value, tuple) else (value,)):
                parts += [flag, str(v)]
        return shlex.join(parts)


@dataclass
class Section:
    """One report section: its Markdown, raw numbers and CPU seconds."""

    name: str
    markdown: str
    data: dict = field(default_factory=dict)
    cpu_seconds: float = 0.0


# ---------------------------------------------------------------------------------------------------- helpers
def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _figure(cfg: TrustConfig, name: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(cfg.out) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return plt, path


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _fig_md(cfg: TrustConfig, path: Path, section: str) -> str:
    rel = path.relative_to(Path(cfg.out))
    return f"![{path.stem}]({rel})\n\nFigure made by: `{cfg.command(section)}`\n"


def load_policy_agent(cfg: TrustConfig):
    """The policy of ``cfg.checkpoint`` in eval mode on the CPU (CheckpointError if unreadable)."""
    from vlarm.policies import load_policy

    policy = load_policy(cfg.checkpoint)
    policy.eval()
    return policy


def vlm_path(cfg: TrustConfig) -> str:
    """The VLM measured: ``cfg.vlm``, else the policy's grounding-model copy, else the shipped LiT checkpoint."""
    if cfg.vlm:
        return cfg.vlm
    own = Path(cfg.checkpoint) / "grounding_model"
    if own.is_dir():
        return str(own)
    return str(Path(__file__).resolve().parents[3] / "checkpoints" / "lit-sim-all-colors")


def vlm_classes(path: str) -> list[str]:
    """``"<colour> <kind>"`` classes the VLM was trained on (its checkpoint's ``extra``), else the palette."""
    from vlarm.tasks.attributes import ALL_COLORS

    meta = Path(path) / "vlm_config.json"
    extra = json.loads(meta.read_text()).get("extra", {}) if meta.is_file() else {}
    colors = extra.get("colors") or list(ALL_COLORS)
    kinds = extra.get("kinds") or ["block", "bowl"]
    return [f"{c} {k}" for c in colors for k in kinds]


def _labels(names: list[str], classes: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[n] for n in names], dtype=np.int64)


def _crops(cfg: TrustConfig, classes: list[str], split: str, scenes: int, family: str = "distractors",
           level: int = 0):
    from vlarm.trust.robustness import vlm_crops

    task = cfg.task.replace("-seen-colors", "-full").replace("-unseen-colors", "-full")
    x, names, colours = vlm_crops(task, family, level, scenes, split=split, seed=cfg.seed)
    keep = [i for i, n in enumerate(names) if n in classes]
    return x[keep], _labels([names[i] for i in keep], classes), [colours[i] for i in keep], [names[i] for i in keep]


# ---------------------------------------------------------------------------------------------------- sections
def robustness_section(cfg: TrustConfig) -> Section:
    """Score vs severity per family for the policy (episodes) and the VLM (zero-shot crop accuracy)."""
    from vlarm.trust.attacks import predict
    from vlarm.trust.models import VLMClassifier
    from vlarm.trust.robustness import FAMILIES, curve, run_policy, vlm_crops

    policy = load_policy_agent(cfg)
    path = vlm_path(cfg)
    classes = vlm_classes(path)
    clf = VLMClassifier.from_pretrained(path, classes)
    vlm_task = cfg.task.replace("-seen-colors", "-full").replace("-unseen-colors", "-full")
    policy_rows, vlm_rows, by_novelty = [], [], {}
    clean_policy = clean_vlm = None
    for family in cfg.families:
        p_levels, v_levels = {}, {}
        for level in range(len(FAMILIES[family])):
            shared = level == 0 and family != "unseen_attributes"   # every other family's level 0 is one clean run
            if shared and clean_policy is not None:
                p_levels[0] = clean_policy
            else:
                outcomes = run_policy(policy, cfg.task, family, level, cfg.episodes, split=cfg.split, steps=cfg.steps,
                                      seed=cfg.seed)
                p_levels[level] = [o.total_reward for o in outcomes]
                clean_policy = p_levels[0] if shared else clean_policy
                if family == "unseen_attributes" and level == 1:
                    for cls in ("all", "some", "none"):
                        part = [o.total_reward for o in outcomes if o.novelty == cls]
                        if part:
                            by_novelty[cls] = curve(family, {0: part})[0]
            if family == "depth_noise":   # RGB-only VLM: the heightmap does not reach it
                continue
            if shared and clean_vlm is not None:
                v_levels[0] = clean_vlm
                continue
            vt = vlm_task if family != "unseen_attributes" else cfg.task
            x, names, _ = vlm_crops(vt, family, level, cfg.vlm_scenes, split=cfg.split, seed=cfg.seed)
            keep = [i for i, n in enumerate(names) if n in classes]
            v_levels[level] = list(predict(clf, x[keep]) == _labels([names[i] for i in keep], classes))
            clean_vlm = v_levels[0] if shared else clean_vlm
        policy_rows += curve(family, p_levels, "score")
        if v_levels:
            vlm_rows += curve(family, v_levels, "accuracy")
    figs = []
    for rows, what, ylabel in ((policy_rows, "policy", "score (first step)" if cfg.steps == 1 else "score"),
                               (vlm_rows, "vlm", "zero-shot accuracy (%)")):
        plt, fpath = _figure(cfg, f"robustness_{what}")
        fig, ax = plt.subplots(figsize=(7, 4))
        for family in cfg.families:
            fr = [r for r in rows if r["family"] == family]
            if not fr:
                continue
            xs = [r["level"] for r in fr]
            ax.errorbar(xs, [r["value"] for r in fr], yerr=[[r["value"] - r["ci"][0] for r in fr],
                                                          [r["ci"][1] - r["value"] for r in fr]],
                        marker="o", capsize=3, label=family)
        ax.set_xlabel("severity level (0 = clean)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{what}: score vs severity (95% intervals)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(fpath, dpi=110)
        plt.close(fig)
        figs.append(fpath)

    def rows_md(rows):
        return _table(["family", "level", "severity", "n", "value [95% CI]", "relative drop (%)"],
                      [[r["family"], r["level"], r["severity"], r["n"], format_ci(r["value"], r["ci"]),
                        "-" if r["relative_drop"] is None else f"{r['relative_drop']:.1f}"] for r in rows])

    unit = "first pick-and-place" if cfg.steps == 1 else f"up to {cfg.steps} pick-and-places"
    md = [f"Policy `{cfg.checkpoint}` on `{cfg.task}` ({cfg.split} seeds, {cfg.episodes} episodes per cell, score = "
          f"total reward x 100 after the {unit}, 95% bootstrap interval; the same seeds at every level). Level 0 is "
          "clean; for unseen_attributes level 0 is the seen-colour variant and level 1 the unseen-colour variant.",
          "", rows_md(policy_rows), "", _fig_md(cfg, figs[0], "robustness")]
    if by_novelty:
        md += ["Unseen-colour variant by goal novelty: " + "; ".join(
            f"{k} novel {format_ci(v['value'], v['ci'])} (n={v['n']})" for k, v in by_novelty.items()), ""]
    md += [f"VLM `{path}`: zero-shot accuracy over {len(classes)} '<colour> <kind>' classes on object crops of "
           f"{cfg.vlm_scenes} perturbed scenes per level (Wilson interval). depth_noise does not apply (RGB only).",
           "", rows_md(vlm_rows), "", _fig_md(cfg, figs[1], "robustness")]
    return Section("robustness", "\n".join(md), {"policy": policy_rows, "vlm": vlm_rows, "by_novelty": by_novelty})


def _policy_observations(cfg: TrustConfig, n: int):
    """Yield ``(env, info, observation)`` for ``n`` episodes of ``cfg.split`` (the env stays alive per yield),
    rendered as the policy of ``cfg.checkpoint`` learned its images."""
    from vlarm.envs import make_env
    from vlarm.eval.rollout import CheckpointAgentFactory
    from vlarm.tasks.attributes import split_seed

    env = make_env(cfg.task, split=cfg.split, render_terminal=False,
                   **CheckpointAgentFactory(str(cfg.checkpoint)).env_options)
    try:
        for i in range(n):
            obs, info = env.reset(seed=split_seed(cfg.split, i), options={"split": cfg.split})
            yield env, info, {"colormap": obs["colormap"], "heightmap": obs["heightmap"],
                              "instruction": obs["instruction"]}
    finally:
        env.close()


def _on_object(env, heightmap, pixel, kind: str, color: str | None, radius: float) -> bool:
    from vlarm.sim.heightmap import pixel_to_xyz

    xyz = pixel_to_xyz(np.asarray(pixel), heightmap)
    for body, o in env.scene.objects.items():
        if o.kind == kind and (color is None or o.color == color) \
                and np.linalg.norm(env.scene.pose(body)[0][:2] - xyz[:2]) < radius:
            return True
    return False


def _place_pixel(policy, index: int) -> tuple[int, int]:
    """Full-resolution ``(row, col)`` of a flattened place-logit index (rotation, row, col at the correlation
    stride)."""
    c = policy.config
    h, w = c.image_shape[0] // c.transport_stride, c.image_shape[1] // c.transport_stride
    cell = index % (h * w)
    return cell // w * c.transport_stride, cell % w * c.transport_stride


def adversarial_section(cfg: TrustConfig) -> Section:
    """FGSM / PGD / Square on zero-shot classification and on the policy's pick and place heatmaps; PGD
    adversarial training of the VLM's image head as a defence."""
    from vlarm.stats import wilson_interval
    from vlarm.trust.attacks import ATTACKS, attack, predict, robust_accuracy
    from vlarm.trust.models import HeatmapPolicy, VLMClassifier, colormap_to_input
    from vlarm.trust.training import adversarial_fit_head, fit_head, frozen_features, projection_head

    path = vlm_path(cfg)
    classes = vlm_classes(path)
    clf = VLMClassifier.from_pretrained(path, classes)
    x, y, _, _ = _crops(cfg, classes, cfg.split, max(3, cfg.attack_images // 6))
    x, y = x[: cfg.attack_images], y[: cfg.attack_images]
    steps = {"noise": 1, "fgsm": 1, "pgd": cfg.pgd_steps, "square": cfg.square_queries}
    vlm_rows = []
    for method in ATTACKS:
        for e in cfg.eps:
            r = robust_accuracy(clf, x, y, method, e / 255, steps=steps[method], seed=cfg.seed)
            vlm_rows.append(asdict(r) | {"eps_255": e})
    # policy heatmaps
    policy = load_policy_agent(cfg)
    pol_rows = {(m, e, h): [] for m in ATTACKS for e in cfg.eps for h in ("pick", "place")}
    clean_pick, clean_place = [], []
    for env, info, obs in _policy_observations(cfg, cfg.attack_observations):
        goal = {k: v["value"] for k, v in info["goal_attributes"].items()}
        hm = obs["heightmap"]
        pick_model = HeatmapPolicy(policy, obs, "pick")
        x0 = colormap_to_input(obs["colormap"]).numpy()
        y0 = predict(pick_model, x0)
        clean_px = pick_model.cell_to_pixel(int(y0[0]))
        clean_pick.append(_on_object(env, hm, clean_px, "block", goal.get("pick"), 0.03))
        place_model = HeatmapPolicy(policy, obs, "place", pick_pixel=clean_px)
        yp = predict(place_model, x0)
        clean_place.append(_on_object(env, hm, _place_pixel(policy, int(yp[0])), "bowl", goal.get("place"), 0.06))
        for method in ATTACKS:
            for e in cfg.eps:
                adv = attack(pick_model, x0, y0, method, e / 255, steps=min(steps[method], 50), seed=cfg.seed)
                adv = np.round(adv * 255) / 255   # the policy sees uint8 images; stays within budget (eps in levels)
                px = pick_model.cell_to_pixel(int(predict(pick_model, adv)[0]))
                pol_rows[(method, e, "pick")].append(_on_object(env, hm, px, "block", goal.get("pick"), 0.03))
                if method == "square" or e != max(cfg.eps):
                    continue   # place head: white-box attacks at the largest budget (36 rotations are costly)
                adv = attack(place_model, x0, yp, method, e / 255, steps=steps[method], seed=cfg.seed)
                adv = np.round(adv * 255) / 255
                pp = _place_pixel(policy, int(predict(place_model, adv)[0]))
                pol_rows[(method, e, "place")].append(_on_object(env, hm, pp, "bowl", goal.get("place"), 0.06))
    n = len(clean_pick)
    policy_table = [["pick", "clean", "-", format_ci(100 * np.mean(clean_pick), wilson_interval(sum(clean_pick), n))],
                    ["place", "clean", "-", format_ci(100 * np.mean(clean_place),
                                                      wilson_interval(sum(clean_place), n))]]
    policy_data = []
    for (method, e, head), ok in pol_rows.items():
        if not ok:
            continue
        policy_table.append([head, method, f"{e}/255", format_ci(100 * np.mean(ok), wilson_interval(sum(ok), len(ok)))])
        policy_data.append({"head": head, "method": method, "eps_255": e, "n": len(ok), "correct": int(sum(ok))})
    # defence: adversarial training of the image head vs plain fine-tuning (train-split crops)
    xt, yt, _, _ = _crops(cfg, classes, "train", cfg.train_scenes)
    defence = {}
    e_def = max(cfg.eps)
    for name in ("zero-shot", "fine-tuned", "adversarially trained"):
        model = VLMClassifier.from_pretrained(path, classes, train_head=name != "zero-shot")
        if name == "fine-tuned":
            fit_head(projection_head(model), frozen_features(model, xt), yt, epochs=20, lr=1e-3, seed=cfg.seed)
        elif name == "adversarially trained":
            adversarial_fit_head(model, xt, yt, e_def / 255, epochs=5, steps=5, lr=1e-3, seed=cfg.seed)
        r = robust_accuracy(model, x, y, "pgd", e_def / 255, steps=cfg.pgd_steps, seed=cfg.seed)
        defence[name] = asdict(r)
    plt, fpath = _figure(cfg, "adversarial_vlm")
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in ATTACKS:
        rows = [r for r in vlm_rows if r["method"] == method]
        ax.errorbar([0] + [r["eps_255"] for r in rows], [rows[0]["clean_accuracy"]] + [r["adversarial_accuracy"]
                    for r in rows], marker="o", capsize=3, label=f"{method} ({ATTACKS[method]})")
    ax.set_xlabel("L-inf budget (grey levels of 255)")
    ax.set_ylabel("zero-shot accuracy (%)")
    ax.set_title("VLM under attack")
    ax.legend()
    fig.tight_layout()
    fig.savefig(fpath, dpi=110)
    plt.close(fig)
    md = [f"VLM `{path}`, zero-shot over {len(classes)} classes, {len(y)} object crops ({cfg.split} scenes). "
          f"Budgets in pixel units (normalisation inside the attacked model); PGD {cfg.pgd_steps} steps with a random "
          f"start, Square (black-box, scores only) {cfg.square_queries} queries; noise = random signs of size eps (the "
          "control: what any perturbation of that size does); accuracy with 95% Wilson intervals.",
          "", _table(["attack", "eps", "clean acc.", "adversarial acc.", "max |delta| (x255)"],
                     [[r["method"], f"{r['eps_255']}/255", format_ci(r["clean_accuracy"], r["clean_ci"]),
                       format_ci(r["adversarial_accuracy"], r["adversarial_ci"]), f"{255 * r['linf']:.2f}"]
                      for r in vlm_rows]), "", _fig_md(cfg, fpath, "adversarial"),
          f"Policy `{cfg.checkpoint}`: {n} observations of `{cfg.task}`. Pick correct = the argmax pick lies on a "
          "block of the goal's pick colour (within 3 cm); place correct = the place argmax (for the clean pick) lies "
          "in a bowl of "
          "the goal's place colour. The attack pushes the argmax away from the clean one (untargeted cross-entropy on "
          "the heatmap). White-box gradients flow through the RGB-D stream and the frozen backbone; the VLM grounding "
          "maps are recomputed from each image but held constant in the gradient (BPDA); Square sees the whole "
          "policy. Pick attacks use at most 50 iterations.", "",
          _table(["head", "attack", "eps", "correct (%) [95% CI]"], policy_table), "",
          f"Defence: the VLM's image projection head trained on {len(yt)} train-split crops, plainly (20 epochs) or "
          f"with PGD adversarial training (ART AdversarialTrainer, eps {e_def}/255, 5 steps, half the batch "
          f"adversarial, 5 epochs); PGD {e_def}/255 on the same {len(y)} evaluation crops.", "",
          _table(["head", "clean acc.", f"PGD {e_def}/255 acc."],
                 [[k, format_ci(v["clean_accuracy"], v["clean_ci"]), format_ci(v["adversarial_accuracy"],
                                                                                v["adversarial_ci"])]
                  for k, v in defence.items()])]
    return Section("adversarial", "\n".join(md), {"vlm": vlm_rows, "policy": policy_data, "defence": defence,
                                                  "policy_clean": {"pick": int(sum(clean_pick)),
                                                                   "place": int(sum(clean_place)), "n": n}})


PHRASINGS = ("put the {pick} blocks in a {place} bowl", "place the {pick} block into the {place} bowl",
             "please move all {pick} cubes to the {place} bowl", "drop the {pick} blocks inside a {place} bowl")


def fairness_section(cfg: TrustConfig) -> Section:
    """Groups: VLM accuracy by colour and kind; policy first-step score by pick colour, phrasing and table region;
    mitigation: re-weighting a head trained on colour-imbalanced data."""
    from vlarm.tasks.attributes import TRAIN_COLORS
    from vlarm.trust.attacks import predict
    from vlarm.trust.fairness import group_report
    from vlarm.trust.models import VLMClassifier
    from vlarm.trust.training import fit_head, frozen_features, inverse_frequency_weights, projection_head

    path = vlm_path(cfg)
    classes = vlm_classes(path)
    clf = VLMClassifier.from_pretrained(path, classes)
    x, y, colours, names = _crops(cfg, classes, cfg.split, cfg.vlm_scenes * 2)
    pred = predict(clf, x)
    reports = {"vlm colour": group_report(y, pred, colours, "colour"),
               "vlm kind": group_report(y, pred, [n.split()[-1] for n in names], "kind")}
    # policy: the same seeds under each phrasing; groups by pick colour and by where the pick object is
    if not cfg.task.startswith("put-block-in-bowl"):
        raise ValueError(f"the fairness section's policy groups (phrasings of 'put the <c> blocks in a <c> bowl') "
                         f"need a put-block-in-bowl task, got {cfg.task!r}")
    policy = load_policy_agent(cfg)
    outcome, phr, col, region = [], [], [], []
    from vlarm.envs import make_env
    from vlarm.policies.base import agent_env_options
    from vlarm.tasks.attributes import split_seed

    env = make_env(cfg.task, split=cfg.split, render_terminal=False, **agent_env_options(policy))
    try:
        for i in range(cfg.episodes):
            for k, template in enumerate(PHRASINGS):
                obs, info = env.reset(seed=split_seed(cfg.split, i), options={"split": cfg.split})
                goal = {r: a["value"] for r, a in info["goal_attributes"].items()}
                text = template.format(**goal)
                action = policy.select_action({**obs, "instruction": text}, text)
                _, reward, *_ = env.step(action)
                picks = [env.scene.pose(b)[0] for b, o in env.scene.objects.items()
                         if o.kind == "block" and o.color == goal["pick"]]
                outcome.append(float(reward) > 0)
                phr.append(f"P{k + 1}")
                col.append(goal["pick"])
                y_pick = float(np.mean([q[1] for q in picks])) if picks else 0.0
                region.append("left" if y_pick > 0.17 else "right" if y_pick < -0.17 else "centre")
    finally:
        env.close()
    ones = np.ones(len(outcome), int)
    reports["policy phrasing"] = group_report(ones, np.asarray(outcome, int), phr, "phrasing")
    reports["policy pick colour"] = group_report(ones, np.asarray(outcome, int), col, "pick colour")
    reports["policy table region"] = group_report(ones, np.asarray(outcome, int), region, "table region")
    # mitigation: head fine-tuned on train crops where the non-training colours are under-sampled to 15%
    xt, yt, ct, _ = _crops(cfg, classes, "train", cfg.train_scenes)
    rng = np.random.default_rng(cfg.seed)
    keep = np.array([c in TRAIN_COLORS or rng.random() < 0.15 for c in ct])
    xt, yt, ct = xt[keep], yt[keep], [c for c, k in zip(ct, keep, strict=True) if k]
    mitig = {}
    for name in ("unweighted", "re-weighted"):
        model = VLMClassifier.from_pretrained(path, classes, train_head=True)
        weights = inverse_frequency_weights(ct) if name == "re-weighted" else None
        fit_head(projection_head(model), frozen_features(model, xt), yt, epochs=20, lr=1e-3, weights=weights,
                 seed=cfg.seed)
        mitig[name] = group_report(y, predict(model, x), colours, "colour")
    plt, fpath = _figure(cfg, "fairness_colour")
    fig, ax = plt.subplots(figsize=(8, 4))
    groups = sorted(reports["vlm colour"].by_group)
    for j, (name, rep) in enumerate([("zero-shot", reports["vlm colour"])] + list(mitig.items())):
        vals = [rep.by_group.get(g, {}).get("accuracy", np.nan) for g in groups]
        ax.bar(np.arange(len(groups)) + 0.27 * (j - 1), vals, width=0.27, label=name)
    ax.set_xticks(range(len(groups)), groups, rotation=45)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("VLM accuracy by colour (evaluation crops)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(fpath, dpi=110)
    plt.close(fig)

    def summary(name, rep):
        return [name, f"{rep.overall:.1f}", f"{rep.worst_group} "
                f"({rep.by_group[rep.worst_group]['accuracy']:.1f}, n={rep.by_group[rep.worst_group]['n']})",
                format_ci(rep.difference, rep.difference_ci), len(rep.by_group)]

    md = ["Accuracy by group with fairlearn `MetricFrame`; disparity = `MetricFrame.difference()` (largest minus "
          "smallest group, percentage points) with a 95% bootstrap interval (resampled within groups). Policy groups: "
          f"{cfg.episodes} `{cfg.split}` episodes x {len(PHRASINGS)} phrasings, outcome = the first pick-and-place "
          "earns reward; phrasings: " + "; ".join(f"P{k + 1} '{t}'" for k, t in enumerate(PHRASINGS)) + ".", "",
          _table(["grouping", "overall (%)", "worst group", "difference [95% CI]", "groups"],
                 [summary(k, v) for k, v in reports.items()]), "",
          "Mitigation: the VLM's image head fine-tuned on train-split crops in which the colours outside the policy "
          f"training palette are kept with probability 0.15 ({int(keep.sum())} crops), without and with "
          "inverse-frequency re-weighting by colour; evaluated on the same crops as above.", "",
          _table(["head", "overall (%)", "worst group", "difference [95% CI]", "groups"],
                 [summary("zero-shot", reports["vlm colour"])] + [summary(k, v) for k, v in mitig.items()]), "",
          _fig_md(cfg, fpath, "fairness")]
    return Section("fairness", "\n".join(md), {k: asdict(v) for k, v in {**reports, **{
        f"mitigation {k}": v for k, v in mitig.items()}}.items()})


def privacy_section(cfg: TrustConfig) -> Section:
    """Loss-threshold membership inference against a VLM head (plain and DP-trained) and against the policy;
    DP-SGD accuracy cost."""
    from vlarm.trust.attacks import predict
    from vlarm.trust.models import VLMClassifier
    from vlarm.trust.privacy import loss_threshold_attack, policy_frame_losses
    from vlarm.trust.training import DPConfig, fit_head, frozen_features, per_sample_losses, projection_head

    path = vlm_path(cfg)
    classes = vlm_classes(path)
    xm, ym, _, _ = _crops(cfg, classes, "train", cfg.train_scenes)
    xn, yn, _, _ = _crops(cfg, classes, cfg.split, cfg.train_scenes)
    rows = []
    for name, dp in [("non-private", None)] + [(f"DP eps={e:g}", DPConfig(target_epsilon=e)) for e in cfg.dp_epsilons]:
        model = VLMClassifier.from_pretrained(path, classes, train_head=True)
        head = projection_head(model)
        fm, fn = frozen_features(model, xm), frozen_features(model, xn)
        info = fit_head(head, fm, ym, epochs=60, lr=1e-2 if dp is None else DP_LR, batch_size=16, dp=dp, seed=cfg.seed)
        mia = loss_threshold_attack(per_sample_losses(head, fm, ym), per_sample_losses(head, fn, yn))
        acc = 100 * float((predict(model, xn) == yn).mean())
        rows.append({"head": name, "epsilon": info["epsilon"], "delta": info["delta"], "test_accuracy": acc,
                     "n_test": len(yn), **asdict(mia)})
    zs = VLMClassifier.from_pretrained(path, classes)
    zs_acc = 100 * float((predict(zs, xn) == yn).mean())
    # policy: first frames of its training demonstrations vs first frames of held-out episodes (oracle actions)
    from vlarm.data import EpisodeDataset
    from vlarm.envs import make_env
    from vlarm.policies.base import agent_env_options
    from vlarm.tasks.attributes import split_seed

    policy = load_policy_agent(cfg)
    data_dir = Path(__file__).resolve().parents[3] / "data" / f"{cfg.task}-train"
    policy_mia = None
    if data_dir.is_dir():
        ds = EpisodeDataset(data_dir)
        members = [f for f in (ds[i] for i in range(len(ds))) if f["frame_index"] == 0][: cfg.episodes * 3]
        env = make_env(cfg.task, split="val", render_terminal=False, **agent_env_options(policy))
        nonmembers = []
        try:
            for i in range(len(members)):
                obs, _ = env.reset(seed=split_seed("val", i), options={"split": "val"})
                nonmembers.append({**obs, **env.oracle_action()})
        finally:
            env.close()
        policy_mia = asdict(loss_threshold_attack(policy_frame_losses(policy, members),
                                                  policy_frame_losses(policy, nonmembers)))
    md = [f"Loss-threshold membership inference (Yeom et al. 2018): members = {len(ym)} train-split object crops the "
          f"head was trained on (60 epochs), non-members = {len(yn)} `{cfg.split}` crops; AUC 0.5 = no leak. DP-SGD by "
          "Opacus on the image projection head only (frozen EfficientNet tower with batch norm outside the private "
          f"module; delta 1e-5, clipping 1.0). Zero-shot accuracy before any training: {zs_acc:.1f}% (n={len(yn)}).",
          "", _table(["head", "epsilon", "test acc. (%)", "MIA AUC [95% CI]", "advantage", "loss members / others"],
                     [[r["head"], "inf" if r["epsilon"] is None else f"{r['epsilon']:.2f}", f"{r['test_accuracy']:.1f}",
                       f"{r['auc']:.3f} [{r['auc_ci'][0]:.3f}, {r['auc_ci'][1]:.3f}]", f"{r['advantage']:.3f}",
                       f"{r['member_loss']:.3f} / {r['nonmember_loss']:.3f}"] for r in rows])]
    if policy_mia:
        md += ["", f"Policy `{cfg.checkpoint}`: members = first frames of {policy_mia['members']} of its training "
               f"demonstrations, non-members = first frames of {policy_mia['nonmembers']} val episodes "
               "(oracle action); "
               f"loss = pick + place cross-entropy. AUC {policy_mia['auc']:.3f} [{policy_mia['auc_ci'][0]:.3f}, "
               f"{policy_mia['auc_ci'][1]:.3f}], advantage {policy_mia['advantage']:.3f}, mean loss "
               f"{policy_mia['member_loss']:.3f} (members) vs {policy_mia['nonmember_loss']:.3f}."]
    else:
        md += ["", f"Policy membership inference skipped: no training data at {data_dir}."]
    plt, fpath = _figure(cfg, "privacy")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    names = [r["head"] for r in rows] + (["policy"] if policy_mia else [])
    aucs = [r["auc"] for r in rows] + ([policy_mia["auc"]] if policy_mia else [])
    cis = [r["auc_ci"] for r in rows] + ([policy_mia["auc_ci"]] if policy_mia else [])
    ax1.bar(range(len(names)), aucs, yerr=[[a - c[0] for a, c in zip(aucs, cis, strict=True)],
                                          [c[1] - a for a, c in zip(aucs, cis, strict=True)]], capsize=3)
    ax1.axhline(0.5, color="gray", ls="--")
    ax1.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax1.set_ylabel("membership-inference AUC")
    ax2.bar(range(len(rows) + 1), [zs_acc] + [r["test_accuracy"] for r in rows])
    ax2.set_xticks(range(len(rows) + 1), ["zero-shot"] + [r["head"] for r in rows], rotation=20, fontsize=8)
    ax2.set_ylabel(f"accuracy on {cfg.split} crops (%)")
    fig.tight_layout()
    fig.savefig(fpath, dpi=110)
    plt.close(fig)
    md += ["", _fig_md(cfg, fpath, "privacy")]
    return Section("privacy", "\n".join(md), {"vlm_heads": rows, "zero_shot_accuracy": zs_acc, "policy": policy_mia})


def safety_section(cfg: TrustConfig) -> Section:
    """Red-team precision/recall (dev and held-out parts) and the scene-text injection against the policy."""
    from vlarm.trust.redteam import redteam_set
    from vlarm.trust.safety import evaluate_filter
    from vlarm.trust.scene_text import DEFAULT_NOTE, text_injection

    parts = {p: evaluate_filter(redteam_set(p)) for p in ("dev", "heldout")}
    policy = load_policy_agent(cfg)
    inj = text_injection(policy, cfg.task, cfg.episodes, split=cfg.split, seed=cfg.seed)
    md = ["Rule-based filter (`vlarm.trust.safety`), refused = positive. The rules were written from the dev part "
          "only; the held-out part was written after and never used to change a rule.", "",
          _table(["part", "items (harmful / benign)", "precision [95% CI]", "recall [95% CI]", "FP", "FN"],
                 [[p, f"{r['n']} ({r['harmful']} / {r['benign']})", format_ci(r["precision"], r["precision_ci"]),
                   format_ci(r["recall"], r["recall_ci"]), r["fp"], r["fn"]] for p, r in parts.items()]), "",
          "Held-out mistakes: " + ("; ".join(f"'{e['instruction']}' ({'missed' if e['harmful'] else 'refused'})"
                                             for e in parts["heldout"]["errors"]) or "none") + ".", "",
          f"Text in the scene: a white note reading '{DEFAULT_NOTE}' on the "
          f"freest table patch of the top-down image, {inj.episodes} `{cfg.split}` episodes, first pick-and-place with "
          "and without it (paired).", "",
          _table(["", "first-step score [95% CI]"], [["without note", format_ci(inj.clean_score, inj.clean_ci)],
                                                     ["with note", format_ci(inj.note_score, inj.note_ci)]]), "",
          f"Action moved by > 2 cm in {inj.changed_action:.0f}% of episodes; placed into a red bowl (goal bowl not "
          f"red, {inj.eligible} episodes) {inj.followed_note:.0f}% with the note vs {inj.followed_note_clean:.0f}% "
          "without. vlarm has no OCR: the note acts only through pixels; the planner (when it lands) must call "
          "`vlarm.trust.safety.refuse_if_unsafe` on any text it reads."]
    plt, fpath = _figure(cfg, "safety")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for j, (metric, label) in enumerate((("precision", "precision"), ("recall", "recall"))):
        vals = [parts[p][metric] or 0.0 for p in parts]
        cis = [parts[p][f"{metric}_ci"] or [0.0, 0.0] for p in parts]
        ax.bar(np.arange(len(parts)) + 0.35 * j, vals, width=0.35, label=label,
               yerr=[[v - c[0] for v, c in zip(vals, cis, strict=True)], [c[1] - v for v, c in zip(vals, cis,
                                                                                          strict=True)]], capsize=3)
    ax.set_xticks(np.arange(len(parts)) + 0.175, list(parts))
    ax.set_ylabel("% (95% Wilson interval)")
    ax.set_title("instruction filter on the red-team set")
    ax.legend()
    fig.tight_layout()
    fig.savefig(fpath, dpi=110)
    plt.close(fig)
    md += ["", _fig_md(cfg, fpath, "safety")]
    return Section("safety", "\n".join(md), {"redteam": parts, "text_injection": asdict(inj)})


SECTION_FUNCTIONS = {"robustness": robustness_section, "adversarial": adversarial_section,
                     "fairness": fairness_section, "privacy": privacy_section, "safety": safety_section}
TITLES = {"robustness": "1. Robustness", "adversarial": "2. Adversarial inputs", "fairness": "3. Fairness",
          "privacy": "4. Privacy", "safety": "5. Instruction safety"}


def write_report(cfg: TrustConfig, sections: tuple[str, ...] = SECTIONS, progress=print) -> Path:
    """Run ``sections`` and (re)write ``report.md`` and ``report.json`` in ``cfg.out`` (earlier sections kept).

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: an unknown section name (the message lists them).
    """
    unknown = [s for s in sections if s not in SECTION_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown report sections {unknown}; valid: {', '.join(SECTIONS)}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "report.json"
    done = json.loads(store.read_text()) if store.is_file() else {}
    for name in sections:
        start, wall = _cpu(), time.perf_counter()
        progress(f"trust report: {name} ...")
        sec = SECTION_FUNCTIONS[name](cfg)
        done[name] = {"markdown": sec.markdown, "data": sec.data, "cpu_minutes": (_cpu() - start) / 60,
                      "wall_minutes": (time.perf_counter() - wall) / 60, "config": asdict(cfg)}
        store.write_text(json.dumps(done, indent=1, default=str))
        progress(f"trust report: {name} done in {done[name]['cpu_minutes']:.1f} CPU-minutes")
    lines = [f"# Trustworthiness report: `{cfg.checkpoint}`", "",
             "Robustness, adversarial inputs, fairness, privacy and instruction safety (vlarm issue 13). Every table "
             "states its sample count and 95% interval; every figure the command that made it.", ""]
    for name in SECTIONS:
        if name in done:
            d = done[name]
            lines += [f"## {TITLES[name]}", "", d["markdown"], "",
                      f"*{d['cpu_minutes']:.1f} CPU-minutes ({d['wall_minutes']:.1f} min wall).*", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


__all__ = ["SECTIONS", "Section", "TrustConfig", "adversarial_section", "fairness_section", "privacy_section",
           "robustness_section", "safety_section", "vlm_classes", "vlm_path", "write_report"]
