"""Zero-shot, linear-probe and K-shot transfer curves on real Fashion-MNIST images (issue 3, item 5).

Protocol (REFERENCE.md Sec. 6):
1. The LiT model (locked EfficientNet-Lite0 + locked MiniLM, trained projection heads) gets its heads trained
   contrastively on ``--pretrain-images`` Fashion-MNIST *train* images with templated captions naming only the
   ``--pretrain-classes`` ("half": t-shirt/top, pullover, coat, sandal, bag). These images are disjoint
   from the
   few-shot pool and from the test subset. Zero-shot accuracy is therefore reported on all classes and
   separately on the classes the heads never saw named ("unseen").
2. For each seed and K in 1/2/4/8/16: K training shots per class and min(K, 4) validation shots per class are
   drawn from a separate pool of train images; every method is fitted on them (hyper-parameters chosen on the
   validation shots only) and scored on a fixed, class-balanced subsample of the test split.
3. Results (mean and std over seeds) go to ``benchmarks/vlm_results/fewshot_fashion_mnist.{json,md,png}``.

Run: ``MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824
HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/vlm_fewshot.py`` (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from vlarm.vlm import create_model_and_transforms
from vlarm.vlm.data import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_TEMPLATES,
    ArrayImageCaptionDataset,
    load_fashion_mnist,
)
from vlarm.vlm.evaluate import classification_metrics, zero_shot_classifier
from vlarm.vlm.fewshot import METHODS, FewShotConfig, fit_fewshot, sample_few_shot
from vlarm.vlm.train import TrainConfig, train

#: Caption templates for head training; deliberately different from the evaluation templates.
PRETRAIN_TEMPLATES = (
    "{}",
    "a {}",
    "an image showing a {}",
    "a product photo of a {}",
    "there is a {} here",
    "a small grey picture of a {}",
    "this is a {}",
    "a {} on a black background",
)
SEEN_HALF = (0, 2, 4, 5, 8)
RESULTS = Path(__file__).parent / "vlm_results"


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` random examples of every class."""
    return np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in np.unique(labels)]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--pretrain-images", type=int, default=2000)
    ap.add_argument("--pretrain-classes", choices=("half", "all"), default="half")
    ap.add_argument("--pool-per-class", type=int, default=100)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--shots", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--cache-dir", type=Path, default=Path("outputs/vlm_cache"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster on a shared 2-core box)")
    ap.add_argument("--head-epochs", type=int, default=10)
    ap.add_argument("--coop-steps", type=int, default=60)
    ap.add_argument("--cocoop-steps", type=int, default=20)
    ap.add_argument(
        "--cocoop-test-per-class",
        type=int,
        default=20,
        help="CoCoOp runs the text encoder once per test image and class, so it is scored on a subset",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.time()
    torch.manual_seed(0)

    train_x, train_y = load_fashion_mnist("train")
    test_x, test_y = load_fashion_mnist("test")
    rng = np.random.default_rng(1234)
    # Disjoint slices of the train split: head pre-training images and the few-shot pool.
    order = rng.permutation(len(train_y))
    seen = SEEN_HALF if args.pretrain_classes == "half" else tuple(range(10))
    pre_candidates = order[: len(order) // 2]
    pre_idx = pre_candidates[np.isin(train_y[pre_candidates], seen)][: args.pretrain_images]
    pool_part = order[len(order) // 2 :]
    pool_idx = pool_part[balanced_subset(train_y[pool_part], args.pool_per_class, rng)]
    test_idx = balanced_subset(test_y, args.test_per_class, rng)

    model, transform, tok = create_model_and_transforms("lit-effnet-minilm", image_size=args.image_size)
    cache = args.cache_dir / f"fmnist_s{args.image_size}"
    captions = [
        PRETRAIN_TEMPLATES[i % len(PRETRAIN_TEMPLATES)].format(FASHION_MNIST_CLASSES[train_y[j]])
        for i, j in enumerate(pre_idx)
    ]
    ds = ArrayImageCaptionDataset(train_x[pre_idx], captions)
    t0 = time.time()
    result = train(
        model,
        tok,
        transform,
        ds,
        TrainConfig(epochs=args.head_epochs, batch_size=128, lr=2e-3, warmup_steps=20, progress=True),
        image_tower_features=features_tower(
            model, transform, train_x[pre_idx], cache, f"tower_pre_{args.pretrain_classes}_{len(pre_idx)}"
        ),
    )
    head_seconds = time.time() - t0
    print(
        f"head training: {result.steps} steps, final loss {result.losses[-1]:.3f}, "
        f"cache {result.cache_seconds:.1f}s, {result.pairs_per_second:.0f} pairs/s after caching"
    )

    # Head weights changed, so image features are recomputed from cached *tower* outputs.
    tower_pool = features_tower(
        model, transform, train_x[pool_idx], cache, f"tower_pool_{args.pool_per_class}"
    )
    tower_test = features_tower(
        model, transform, test_x[test_idx], cache, f"tower_test_{args.test_per_class}"
    )
    with torch.no_grad():
        pool_f = torch.nn.functional.normalize(model.image_head(tower_pool), dim=-1)
        test_f = torch.nn.functional.normalize(model.image_head(tower_test), dim=-1)
    pool_y, y_test = train_y[pool_idx], torch.as_tensor(test_y[test_idx])
    weights = zero_shot_classifier(model, tok, FASHION_MNIST_CLASSES, FASHION_MNIST_TEMPLATES)
    zs_logits = test_f @ weights
    zero_shot = classification_metrics(zs_logits, y_test)
    unseen = [c for c in range(10) if c not in seen]
    mask_unseen = torch.isin(y_test, torch.tensor(unseen))
    if unseen:
        zero_shot["top1_unseen_classes"] = classification_metrics(
            zs_logits[mask_unseen], y_test[mask_unseen]
        )["top1"]
        zero_shot["top1_seen_classes"] = classification_metrics(
            zs_logits[~mask_unseen], y_test[~mask_unseen]
        )["top1"]
    print("zero-shot:", zero_shot)

    rows: dict[str, dict[int, list[float]]] = {m: {k: [] for k in args.shots} for m in args.methods}
    infos: dict[str, dict] = {}
    for seed in args.seeds:
        for k in args.shots:
            srng = np.random.default_rng([seed, k])
            tr = sample_few_shot(pool_y, k, srng)
            va = sample_few_shot(pool_y, min(k, 4), srng, exclude=tr)
            cfg = FewShotConfig(
                seed=seed,
                templates=FASHION_MNIST_TEMPLATES,
                coop_max_steps=args.coop_steps,
                cocoop_max_steps=args.cocoop_steps,
                cocoop_batch=4,
            )
            for method in args.methods:
                t1 = time.time()
                clf = fit_fewshot(
                    method,
                    model,
                    tok,
                    FASHION_MNIST_CLASSES,
                    pool_f[tr],
                    torch.as_tensor(pool_y[tr]),
                    pool_f[va],
                    torch.as_tensor(pool_y[va]),
                    cfg,
                    zero_shot_weights=weights,
                )
                if method == "cocoop":  # first n per class of the same test subset (ordered by class)
                    sub = np.concatenate(
                        [np.flatnonzero(y_test.numpy() == c)[: args.cocoop_test_per_class] for c in range(10)]
                    )
                    acc = classification_metrics(clf.predict(test_f[sub]), y_test[sub])["top1"]
                else:
                    acc = classification_metrics(clf.predict(test_f), y_test)["top1"]
                rows[method][k].append(acc)
                infos[f"{method}/k{k}/s{seed}"] = {
                    "top1": acc,
                    "seconds": time.time() - t1,
                    **{kk: v for kk, v in clf.info.items() if kk != "templates"},
                }
                print(
                    f"seed {seed} K={k:2d} {method:14s} top1 {acc:.3f} ({time.time() - t1:.1f}s)", flush=True
                )

    summary = {
        m: {str(k): {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in by_k.items()}
        for m, by_k in rows.items()
    }
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "benchmarks/vlm_fewshot.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
        ),
        "model": "lit-effnet-minilm",
        "image_size": args.image_size,
        "head_pretraining": {
            "images": int(len(pre_idx)),
            "classes_named": [FASHION_MNIST_CLASSES[c] for c in seen],
            "templates": list(PRETRAIN_TEMPLATES),
            "steps": result.steps,
            "final_loss": result.losses[-1],
            "seconds": head_seconds,
        },
        "test_images": int(len(test_idx)),
        "cocoop_test_images": 10 * args.cocoop_test_per_class,
        "coop_steps": args.coop_steps,
        "cocoop_steps": args.cocoop_steps,
        "pool_images": int(len(pool_idx)),
        "seeds": args.seeds,
        "eval_templates": list(FASHION_MNIST_TEMPLATES),
        "zero_shot": zero_shot,
        "fewshot_top1": summary,
        "runs": infos,
        "seconds": time.time() - t_start,
        "machine": platform.platform(),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "fewshot_fashion_mnist.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, args.shots, out / "fewshot_fashion_mnist.md")
    plot(summary, zero_shot["top1"], args.shots, out / "fewshot_fashion_mnist.png")
    print(f"done in {time.time() - t_start:.0f}s -> {out}")


def features_tower(model, transform, images: np.ndarray, cache: Path, tag: str) -> torch.Tensor:
    """Locked image-tower outputs (``(N, 1280)`` pooled EfficientNet-Lite0) of uint8 images, cached on
    disk."""
    from safetensors.torch import load_file, save_file

    path = cache / f"{tag}.safetensors"
    if path.is_file():
        return load_file(str(path))["features"]
    outs = []
    from tqdm.auto import tqdm

    with torch.no_grad():
        for i in tqdm(range(0, len(images), 100), desc=tag):
            outs.append(model.image_tower(torch.stack([transform(im) for im in images[i : i + 100]])))
    feats = torch.cat(outs)
    cache.mkdir(parents=True, exist_ok=True)
    save_file({"features": feats.contiguous()}, str(path))
    return feats


def write_markdown(report: dict, shots, path: Path) -> None:
    """Markdown table of top-1 (%) mean +- std over seeds."""
    zs = report["zero_shot"]
    lines = [
        "# Few-shot transfer on Fashion-MNIST (LiT: EfficientNet-Lite0 + MiniLM, trained heads)",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Heads pre-trained on {report['head_pretraining']['images']} train images captioned with the "
        f"classes "
        f"{', '.join(report['head_pretraining']['classes_named'])}. Test: {report['test_images']} "
        f"balanced test "
        f"images ({report['cocoop_test_images']} for CoCoOp, which needs one text pass per image and class); "
        f"seeds {report['seeds']}; hyper-parameters chosen on min(K, 4) validation shots per class. "
        f"Features: L2-normalised joint-space image embeddings at {report['image_size']} px. CoOp: "
        f"{report['coop_steps']} SGD steps (lr 0.002, 4 context vectors from 'a photo of a'); CoCoOp: "
        f"{report['cocoop_steps']} steps of 4 images.",
        "",
        f"Zero-shot: top-1 {100 * zs['top1']:.1f}%, top-5 {100 * zs['top5']:.1f}%, mean per-class recall "
        f"{100 * zs['mean_per_class_recall']:.1f}%"
        + (
            f"; top-1 on classes named in pre-training {100 * zs['top1_seen_classes']:.1f}%, on the others "
            f"{100 * zs['top1_unseen_classes']:.1f}%"
            if "top1_unseen_classes" in zs
            else ""
        ),
        "",
        "| method | " + " | ".join(f"{k}-shot" for k in shots) + " |",
        "|---|" + "---|" * len(shots),
    ]
    for method, by_k in report["fewshot_top1"].items():
        cells = [f"{100 * by_k[str(k)]['mean']:.1f} ± {100 * by_k[str(k)]['std']:.1f}" for k in shots]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", f"Total time {report['seconds']:.0f} s on {report['machine']}."]
    path.write_text("\n".join(lines) + "\n")


def plot(summary: dict, zero_shot_top1: float, shots, path: Path) -> None:
    """Top-1 vs shots, one line per method, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for method, by_k in summary.items():
        if method == "zero-shot":
            continue
        mean = [100 * by_k[str(k)]["mean"] for k in shots]
        std = [100 * by_k[str(k)]["std"] for k in shots]
        ax.errorbar(shots, mean, yerr=std, marker="o", capsize=3, label=method)
    ax.axhline(100 * zero_shot_top1, color="k", ls="--", label="zero-shot")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(shots), [str(k) for k in shots])
    ax.set_xlabel("shots per class")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Fashion-MNIST few-shot transfer (LiT EffNet-Lite0 + MiniLM)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
