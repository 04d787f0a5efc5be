"""Plain functions behind ``vlarm vlm train | eval | fewshot | detect | captions`` (the typer CLI only maps flags onto
them).

Each returns a JSON-serialisable dict and, when given an output directory, writes it there as JSON.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from vlarm.checks import FEWSHOT_METHODS, VLM_EVAL_DATASETS, check_choice, check_output, check_range
from vlarm.vlm.config import list_models
from vlarm.vlm.data import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_TEMPLATES,
    CsvImageCaptionDataset,
    load_fashion_mnist,
)
from vlarm.vlm.evaluate import (
    classification_metrics,
    encode_images,
    encode_texts,
    linear_probe,
    retrieval_metrics,
    zero_shot_classifier,
)
from vlarm.vlm.factory import create_model_and_transforms
from vlarm.vlm.fewshot import FewShotConfig, fit_fewshot, sample_few_shot
from vlarm.vlm.train import TrainConfig, latest_checkpoint, train

#: Fashion-MNIST images per class in each split (the limits of --per-class, --shots, --linear-probe-per-class).
FASHION_TEST_PER_CLASS, FASHION_TRAIN_PER_CLASS = 1000, 6000
#: What `vlarm vlm detect` says when it has no localiser (none is shipped with the repository).
NO_DETECTOR_HINT = ("no localiser is shipped; build one with `python benchmarks/vlm_detector.py --save "
                    "outputs/vlm_detector` and pass --detector outputs/vlm_detector/detector --teacher "
                    "outputs/vlm_detector/teacher")


def _check_model(model: str, flag: str = "--model") -> str:
    """Fail before loading anything unless ``model`` is a built-in name or an existing path."""
    if str(model) not in list_models() and not Path(str(model)).expanduser().exists():
        raise FileNotFoundError(f"{flag} {model}: neither a built-in model ({', '.join(list_models())}) nor an "
                                "existing checkpoint directory")
    return model


def _check_csv(data_csv: Path | None, flag: str = "--data") -> Path:
    """Fail before loading anything unless ``data_csv`` is an existing file."""
    if data_csv is None:
        raise ValueError(f"{flag} is required here: pass an open_clip-style CSV (tab-separated filepath and title "
                         "columns, e.g. from `vlarm vlm captions`)")
    if not Path(data_csv).is_file():
        raise FileNotFoundError(f"{flag} {data_csv}: no such file; pass an open_clip-style CSV "
                                "(tab-separated filepath and title columns)")
    return Path(data_csv)


def _write(result: dict, output: Path | None, name: str) -> dict:
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
        (Path(output) / name).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def vlm_train(
    data_csv: Path,
    output_dir: Path,
    model: str = "lit-effnet-minilm",
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    warmup_steps: int = 50,
    cache_features: bool = True,
    checkpoint_every: int = 0,
    resume: bool = False,
    image_size: int | None = None,
    unlocked_text_layers: int | None = None,
    seed: int = 0,
) -> dict:
    """Train a dual encoder on an open_clip-style CSV (tab-separated ``filepath``/``title`` columns).

    Args:
        data_csv: the image-caption CSV.
        output_dir: receives ``checkpoints/step-N/``, ``log.jsonl`` and ``train_result.json``.
        model: a built-in name (see ``list_models``) or a checkpoint directory to continue from.
        epochs: passes over the data.
        batch_size: pairs per step.
        lr: peak learning rate.
        warmup_steps: linear warm-up steps.
        cache_features: cache locked-tower outputs (LiT).
        checkpoint_every: steps between checkpoints (0: only at the end).
        resume: continue from the newest checkpoint in ``output_dir``.
        image_size: input side override for built-in models (None keeps the config's).
        unlocked_text_layers: LiT text layers to train (None keeps the config's 0).
        seed: seeds head initialisation and data order.

    Returns:
        ``{"steps", "final_loss", "pairs_per_second", "cache_seconds", "checkpoint"}``.
    """
    # Cheap checks first (flags, files, output directory); the model loads last.
    _check_model(model)
    for flag, value in (("--epochs", epochs), ("--batch-size", batch_size), ("--lr", lr)):
        if value <= 0:
            raise ValueError(f"{flag} must be > 0, got {value}")
    for flag, value in (("--warmup-steps", warmup_steps), ("--checkpoint-every", checkpoint_every), ("--seed", seed)):
        check_range(flag, value, 0)
    if image_size is not None:
        check_range("--image-size", image_size, 1)
    if unlocked_text_layers is not None:
        check_range("--unlocked-text-layers", unlocked_text_layers, 0)
    check_output(output_dir, "--out", kind="dir")
    if resume and latest_checkpoint(output_dir) is None:
        raise FileNotFoundError(f"--resume: no checkpoint to resume from in {output_dir}; drop --resume to start "
                                "a new run there")
    dataset = CsvImageCaptionDataset(_check_csv(data_csv))
    if len(dataset) < 2:
        raise ValueError(f"--data {data_csv} holds {len(dataset)} image-caption pair(s); contrastive training "
                         "needs at least 2")
    overrides = {
        k: v
        for k, v in {"image_size": image_size, "unlocked_text_layers": unlocked_text_layers}.items()
        if v is not None
    }
    torch.manual_seed(seed)
    net, transform, tok = create_model_and_transforms(model, **overrides)
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=warmup_steps,
        cache_features=cache_features,
        checkpoint_every=checkpoint_every,
        seed=seed,
    )
    res = train(net, tok, transform, dataset, cfg, output_dir=output_dir, resume=resume)
    out = {
        "steps": res.steps,
        "final_loss": res.losses[-1] if res.losses else None,
        "pairs_per_second": res.pairs_per_second,
        "cache_seconds": res.cache_seconds,
        "checkpoint": res.checkpoint,
        "config": dataclasses.asdict(cfg),
    }
    return _write(out, output_dir, "train_result.json")


def _fashion_subset(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_fashion_mnist("test")
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)])
    return x[idx], y[idx]


def vlm_eval(
    model: str,
    dataset: str = "fashion-mnist",
    data_csv: Path | None = None,
    per_class: int = 100,
    linear_probe_per_class: int = 0,
    output_dir: Path | None = None,
    seed: int = 0,
) -> dict:
    """Evaluate a dual encoder (CLIP_benchmark metrics).

    Args:
        model: built-in name or checkpoint directory (vlarm, Hugging Face CLIP/SigLIP, open_clip).
        dataset: one of :data:`vlarm.checks.VLM_EVAL_DATASETS`: ``"fashion-mnist"`` (zero-shot top-1/top-5/mean
            per-class recall on ``per_class`` test images per class) or ``"retrieval"`` (image<->text
            Recall@1/5/10 on ``data_csv``).
        data_csv: open_clip CSV for retrieval.
        per_class: Fashion-MNIST test images per class.
        linear_probe_per_class: if > 0, also fit a logistic-regression probe on that many train images
        per class.
        output_dir: where ``eval_result.json`` goes (None: not written).
        seed: subsampling seed.

    Returns:
        A dict of metrics (fractions in [0, 1]).

    Raises:
        ValueError: unknown ``dataset``, a value out of range (the message names the flag).
        FileNotFoundError: retrieval without an existing ``data_csv``, missing Fashion-MNIST files, or an
            unknown ``model``.
    """
    # Cheap checks and data loading first (seconds); the model loads last (~15 s for LiT).
    check_choice(dataset, VLM_EVAL_DATASETS, "--dataset")
    _check_model(model)
    check_range("--seed", seed, 0)
    check_output(output_dir, "--out", kind="dir")
    if dataset == "fashion-mnist":
        check_range("--per-class", per_class, 1, FASHION_TEST_PER_CLASS)
        check_range("--linear-probe-per-class", linear_probe_per_class, 0, FASHION_TRAIN_PER_CLASS * 4 // 5)
        x, y = _fashion_subset(per_class, seed)
        if linear_probe_per_class > 0:
            tx, ty = load_fashion_mnist("train")
    else:
        ds = CsvImageCaptionDataset(_check_csv(data_csv))
    net, transform, tok = create_model_and_transforms(model)
    if dataset == "fashion-mnist":
        feats = encode_images(net, torch.stack([transform(im) for im in x]), progress=True)
        weights = zero_shot_classifier(net, tok, FASHION_MNIST_CLASSES, FASHION_MNIST_TEMPLATES)
        out: dict = {"zero_shot": classification_metrics(feats @ weights, torch.as_tensor(y))}
        if linear_probe_per_class > 0:
            rng = np.random.default_rng(seed)
            tr = sample_few_shot(ty, linear_probe_per_class, rng)
            va = sample_few_shot(ty, max(1, linear_probe_per_class // 4), rng, exclude=tr)
            enc = lambda ids: encode_images(net, torch.stack([transform(im) for im in tx[ids]]))  # noqa: E731
            clf, info = linear_probe(enc(tr), ty[tr], enc(va), ty[va])
            logits = torch.as_tensor(clf.decision_function(feats.numpy().astype(np.float64)))
            out["linear_probe"] = {**classification_metrics(logits, torch.as_tensor(y)), **info}
    else:
        # Captions that repeat belong to every image that carries them; use the first as the ground truth.
        feats = encode_images(net, torch.stack([transform(ds[i][0]) for i in range(len(ds))]), progress=True)
        text = encode_texts(net, tok, ds.captions)
        out = {"retrieval": retrieval_metrics(feats, text)}
    out["model"] = str(model)
    return _write(out, output_dir, "eval_result.json")


def vlm_fewshot(
    model: str,
    method: str = "tip-adapter",
    shots: int = 16,
    seeds: tuple[int, ...] = (0, 1, 2),
    per_class: int = 100,
    output_dir: Path | None = None,
) -> dict:
    """K-shot transfer on Fashion-MNIST with one method, averaged over seeds.

    Training and validation shots (min(K, 4) per class) come from the train split; the score is top-1 on
    ``per_class`` test images per class. See :func:`vlarm.vlm.fewshot.fit_fewshot` for the methods.

    Returns:
        ``{"method", "shots", "top1_mean", "top1_std", "per_seed": [...]}``.

    Raises:
        ValueError: an unknown ``method`` or a value out of range (the message names the flag).
        FileNotFoundError: missing Fashion-MNIST files or an unknown ``model``.
    """
    # Cheap checks and data loading first (seconds); the model loads last (~15 s for LiT).
    check_choice(method, FEWSHOT_METHODS, "--method")
    _check_model(model)
    check_range("--shots", shots, 1, FASHION_TRAIN_PER_CLASS - 4)
    check_range("--per-class", per_class, 1, FASHION_TEST_PER_CLASS)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    check_output(output_dir, "--out", kind="dir")
    x_test, y_test = _fashion_subset(per_class, 0)
    tx, ty = load_fashion_mnist("train")
    net, transform, tok = create_model_and_transforms(model)
    test_f = encode_images(net, torch.stack([transform(im) for im in x_test]), progress=True)
    weights = zero_shot_classifier(net, tok, FASHION_MNIST_CLASSES, FASHION_MNIST_TEMPLATES)
    accs = []
    for seed in seeds:
        rng = np.random.default_rng([seed, shots])
        tr = sample_few_shot(ty, shots, rng)
        va = sample_few_shot(ty, min(shots, 4), rng, exclude=tr)
        enc = lambda ids: encode_images(net, torch.stack([transform(im) for im in tx[ids]]))  # noqa: E731
        clf = fit_fewshot(
            method,
            net,
            tok,
            FASHION_MNIST_CLASSES,
            enc(tr),
            torch.as_tensor(ty[tr]),
            enc(va),
            torch.as_tensor(ty[va]),
            FewShotConfig(seed=seed, templates=FASHION_MNIST_TEMPLATES),
            zero_shot_weights=weights,
        )
        accs.append(classification_metrics(clf.predict(test_f), torch.as_tensor(y_test))["top1"])
    out = {
        "model": str(model),
        "method": method,
        "shots": shots,
        "top1_mean": float(np.mean(accs)),
        "top1_std": float(np.std(accs)),
        "per_seed": accs,
    }
    return _write(out, output_dir, f"fewshot_{method}_{shots}shot.json")


def vlm_detect(image: Path, text: str, detector_dir: Path | None, teacher: str, output: Path | None = None) -> dict:
    """Locate ``text`` (e.g. "the red block") in a top-down colour-map image with a distilled localiser.

    Args:
        image: PNG/JPEG of a top-down colour map (H and W divisible by 4, e.g. a 320 x 320 scene image of
            :mod:`vlarm.vlm.sim_captions`).
        text: the query phrase.
        detector_dir: directory written by :func:`vlarm.vlm.detector.save_detector` (None: refused with a
            message saying how to build one, since none is shipped).
        teacher: the dual encoder it was distilled from (checkpoint directory or built-in name).
        output: optional path for a PNG of the heatmap overlaid on the image.

    Returns:
        ``{"row", "col", "score", "text"}``; ``score > 0`` means the text beats the background there.

    Raises:
        FileNotFoundError: no localiser (the message says how to build one), a missing image or teacher.
        ValueError: an empty ``text`` or an ``output`` that is not .png/.jpg.
    """
    from PIL import Image

    from vlarm.vlm.detector import load_detector, locate

    if detector_dir is None:
        raise FileNotFoundError(NO_DETECTOR_HINT)
    if not (Path(detector_dir) / "detector_config.json").is_file():
        raise FileNotFoundError(f"--detector {detector_dir}: no localiser there (no detector_config.json); "
                                + NO_DETECTOR_HINT)
    if not Path(image).is_file():
        raise FileNotFoundError(f"image {image}: no such file; pass a top-down colour-map PNG/JPEG")
    if not text.strip():
        raise ValueError('the text to find is empty; pass a phrase such as "the red block"')
    _check_model(teacher, "--teacher")
    check_output(output, "--out", suffixes=(".png", ".jpg", ".jpeg"))
    det = load_detector(detector_dir)
    net, _, tok = create_model_and_transforms(teacher)
    img = np.asarray(Image.open(image).convert("RGB"))
    (row, col), score, hm = locate(det, net, tok, img, text)
    if output is not None:
        heat = hm.clamp(min=0).numpy()
        heat = (255 * heat / max(float(heat.max()), 1e-6)).astype(np.uint8)
        overlay = (0.5 * img + 0.5 * np.stack([heat, np.zeros_like(heat), np.zeros_like(heat)], -1)).astype(np.uint8)
        overlay[max(0, row - 2) : row + 3, max(0, col - 2) : col + 3] = (255, 255, 0)
        Image.fromarray(overlay).save(output)
    return {"row": int(row), "col": int(col), "score": score, "text": text}


def vlm_captions(scenes: int, out: Path, seed: int = 0, name: str = "train", camera_scale: float = 0.5,
                 progress: bool = True) -> dict:
    """Render simulator image-caption pairs into an open_clip training CSV (:mod:`vlarm.vlm.sim_captions`).

    Each scene (2-5 blocks and bowls in the TRAIN colours) gives one object crop per object and one whole-scene
    image; images are PNGs under ``out/name/`` and the CSV's ``filepath`` column holds their absolute paths, so
    open_clip's trainer can run from any directory: ``python -m open_clip_train.main --train-data out/name.csv
    --csv-img-key filepath --csv-caption-key title ...``; ``vlarm vlm train --data out/name.csv`` reads it too.

    Args:
        scenes: scenes to render (>= 1).
        out: output folder (created).
        seed: the only source of randomness; the same seed writes the same pairs.
        name: split name, the CSV's stem (letters, digits, ``-`` and ``_``).
        camera_scale: camera resolution relative to 480x640 (0.5 renders 4x faster; (0, 1]).
        progress: show a progress bar.

    Returns:
        ``{"csv", "images", "crops", "scenes", "seed"}`` (the CSV as an absolute path); also written as
        ``out/name.meta.json`` with the rendering config.

    Raises:
        ValueError: ``scenes`` < 1, ``seed`` < 0, ``camera_scale`` outside (0, 1] or a bad ``name`` (the message
            names the flag).
        NotADirectoryError / PermissionError: ``out`` cannot be written.
    """
    import re

    from vlarm.vlm.sim_captions import CaptionConfig, render_samples, write_caption_csv

    check_range("--scenes", scenes, 1)
    check_range("--seed", seed, 0)
    if not 0 < camera_scale <= 1:
        raise ValueError(f"--camera-scale must be in (0, 1], got {camera_scale}")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"--name must be letters, digits, '-' or '_' (it names the CSV and a folder), got {name!r}")
    check_output(out, "--out", kind="dir")
    config = CaptionConfig(n_scenes=int(scenes), seed=int(seed), camera_scale=float(camera_scale))
    samples = render_samples(config, progress=progress)
    csv_path = write_caption_csv(samples, out, name, config)
    crops = sum(s.kind == "crop" for s in samples)
    return {"csv": str(csv_path), "images": len(samples), "crops": crops, "scenes": len(samples) - crops,
            "seed": int(seed)}
