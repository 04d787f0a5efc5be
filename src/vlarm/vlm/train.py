"""Contrastive training of a dual encoder (CLIP Sec. 2.3-2.5; LiT Sec. 3).

AdamW (beta2 0.98, eps 1e-6, no weight decay on gains, biases and the temperature), linear warm-up then cosine
decay, symmetric InfoNCE with the temperature clamped at 100 after every step, a tqdm bar, checkpoints every N
steps and at the end, and exact resume (model, optimiser, schedule, data order). When a tower is locked its
outputs never change, so with ``cache_features`` they are computed once per image / unique caption and the
training steps only run the heads (LiT Sec. 3: locked towers make pre-computation possible).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vlarm.vlm.checkpoint import CheckpointError, load_state_file, read_checkpoint_meta, save_checkpoint
from vlarm.vlm.loss import ClipLoss, clamp_logit_scale_
from vlarm.vlm.model import DualEncoder
from vlarm.vlm.transforms import ImageTransform


@dataclass
class TrainConfig:
    """Contrastive training hyper-parameters.

    Attributes:
        epochs: passes over the data.
        batch_size: pairs per step (the number of negatives is batch_size - 1 per direction).
        lr: peak learning rate after warm-up.
        weight_decay: AdamW decay on weight matrices (open_clip default 0.2).
        warmup_steps: linear warm-up length in steps.
        betas / eps: AdamW moments (CLIP: 0.9, 0.98, 1e-6).
        cache_features: cache outputs of locked towers (needs a model with ``image_locked``/``text_locked``).
        checkpoint_every: steps between checkpoints (0: only at the end).
        seed: seeds init-independent randomness (data order per epoch).
        max_steps: stop after this many steps in total (None: all epochs).
        encode_batch: batch size used when filling the feature cache.
        progress: show tqdm bars.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.2
    warmup_steps: int = 50
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    cache_features: bool = True
    checkpoint_every: int = 0
    seed: int = 0
    max_steps: int | None = None
    encode_batch: int = 128
    progress: bool = True


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        steps: optimiser steps taken in total (including those before a resume).
        losses: per-step losses of this run.
        pairs_per_second: training pairs processed per wall-clock second in this run's steps (excluding cache
            building).
        cache_seconds: time spent filling feature caches (0 without caching).
        checkpoint: directory of the last checkpoint written (or None).
    """

    steps: int
    losses: list[float]
    pairs_per_second: float
    cache_seconds: float
    checkpoint: str | None


def cosine_with_warmup(step: int, warmup: int, total: int) -> float:
    """Learning-rate multiplier: ``step / warmup`` during warm-up, then ``0.5 (1 + cos(pi t))`` with ``t`` the
    fraction of post-warm-up steps done (SGDR, Loshchilov & Hutter 2017, without restarts). In [0, 1]."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def _param_groups(model: DualEncoder, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "logit_scale" in name or "bias" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _save_trainer_state(directory: Path, optimizer, step: int, epoch: int, cfg: TrainConfig) -> None:
    from vlarm.weights import save_weights

    state = optimizer.state_dict()
    tensors = {}
    for idx, pstate in state["state"].items():
        for key, val in pstate.items():
            tensors[f"state.{idx}.{key}"] = torch.as_tensor(val).detach().clone().contiguous()
    save_weights(tensors, directory / "optimizer.safetensors")
    meta = {
        "step": step,
        "epoch": epoch,
        "param_groups": state["param_groups"],
        "config": dataclasses.asdict(cfg),
    }
    (directory / "trainer_state.json").write_text(json.dumps(meta, indent=2) + "\n")


def _load_trainer_state(directory: Path, optimizer) -> tuple[int, int]:
    path = directory / "trainer_state.json"
    if not path.is_file():
        raise FileNotFoundError(f"no trainer state to resume from at {path}")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"corrupt trainer state {path}: {err}") from err
    tensors = load_state_file(directory / "optimizer.safetensors")
    state: dict = {}
    for key, val in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = val
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return int(meta["step"]), int(meta["epoch"])


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest ``checkpoints/step-*`` directory under ``output_dir`` with a trainer state, or None."""
    ckpts = sorted(Path(output_dir).glob("checkpoints/step-*"), key=lambda p: int(p.name.split("-")[1]))
    ckpts = [c for c in ckpts if (c / "trainer_state.json").is_file()]
    return ckpts[-1] if ckpts else None


@torch.no_grad()
def _fill_image_cache(model, dataset, transform, batch, progress) -> torch.Tensor:
    feats = []
    for start in tqdm(range(0, len(dataset), batch), desc="cache image features", disable=not progress, leave=False):
        imgs = torch.stack([transform(dataset[i][0]) for i in range(start, min(len(dataset), start + batch))])
        feats.append(model.image_tower(imgs))
    return torch.cat(feats)


@torch.no_grad()
def _fill_text_cache(model, captions, tokenizer, batch) -> tuple[torch.Tensor, dict[str, int]]:
    unique = sorted(set(captions))
    index = {c: i for i, c in enumerate(unique)}
    feats = [model.text_tower(tokenizer(unique[i : i + batch])) for i in range(0, len(unique), batch)]
    return torch.cat(feats), index


def train(
    model: DualEncoder,
    tokenizer,
    transform: ImageTransform,
    dataset,
    config: TrainConfig | None = None,
    output_dir: str | Path | None = None,
    resume: bool | str | Path = False,
    image_tower_features: torch.Tensor | None = None,
) -> TrainResult:
    """Train a dual encoder contrastively on image-caption pairs.

    Args:
        model: the model (trained in place); locked towers stay frozen.
        tokenizer: its tokenizer.
        transform: its image transform (applied to ``dataset[i][0]``).
        dataset: indexable, ``dataset[i] -> (image, caption)`` (see :mod:`vlarm.vlm.data`); its ``captions``
            attribute, if present, is used to cache text features without loading images.
        config: :class:`TrainConfig` (defaults if None).
        output_dir: where ``checkpoints/step-N/`` and ``log.jsonl`` go (None: nothing is written).
        resume: True to continue from the newest checkpoint in ``output_dir``, or a checkpoint directory.
        image_tower_features: optional precomputed ``(N, F_img)`` outputs of a *locked* image tower for every
            pair (e.g. from an earlier run's disk cache); used instead of filling the cache.

    Returns:
        A :class:`TrainResult`.

    Raises:
        FileNotFoundError / CheckpointError: when resuming from a missing or corrupt checkpoint.
        ValueError: if the dataset is smaller than two pairs.
    """
    cfg = config or TrainConfig()
    n = len(dataset)
    if n < 2:
        raise ValueError(f"contrastive training needs at least 2 pairs, got {n}")
    captions = list(getattr(dataset, "captions", None) or [dataset[i][1] for i in range(n)])
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * steps_per_epoch)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_with_warmup(s, cfg.warmup_steps, total))
    out = Path(output_dir) if output_dir is not None else None
    step = 0
    if resume:
        ckpt = latest_checkpoint(out) if resume is True and out is not None else (Path(resume) if resume else None)
        if ckpt is None or not Path(ckpt).exists():
            raise FileNotFoundError(f"nothing to resume from in {out if resume is True else resume}")
        meta = read_checkpoint_meta(ckpt)
        state = load_state_file(Path(ckpt) / "model.safetensors")
        excluded = tuple(meta.get("excluded_prefixes", []))
        missing = {k for k in model.state_dict() if not k.startswith(excluded)} - set(state)
        if missing:
            raise CheckpointError(f"checkpoint {ckpt} does not match the model: missing {sorted(missing)[:5]}")
        model.load_state_dict(state, strict=False)
        step, _ = _load_trainer_state(Path(ckpt), optimizer)
        sched.last_epoch = step
        for group, lr_mult in zip(
            optimizer.param_groups, [cosine_with_warmup(step, cfg.warmup_steps, total)] * 2, strict=False
        ):
            group["lr"] = cfg.lr * lr_mult

    model.train()
    cache_t0 = time.perf_counter()
    img_cache = txt_cache = None
    txt_index: dict[str, int] = {}
    if image_tower_features is not None:
        if not model.image_locked or len(image_tower_features) != n:
            raise ValueError("image_tower_features needs a locked image tower and one row per pair")
        img_cache = image_tower_features
    elif cfg.cache_features and model.image_locked and step < total:
        img_cache = _fill_image_cache(model, dataset, transform, cfg.encode_batch, cfg.progress)
    if cfg.cache_features and model.text_locked and step < total:
        txt_cache, txt_index = _fill_text_cache(model, captions, tokenizer, cfg.encode_batch)
    cache_seconds = time.perf_counter() - cache_t0 if (img_cache is not None or txt_cache is not None) else 0.0

    loss_fn = ClipLoss()
    losses: list[float] = []
    last_ckpt = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    log = (out / "log.jsonl").open("a") if out is not None else None
    bar = tqdm(total=total, initial=step, desc="train", disable=not cfg.progress)
    t0 = time.perf_counter()
    pairs = 0
    while step < total:
        epoch = step // steps_per_epoch
        # The order of an epoch depends only on (seed, epoch), so a resumed run sees the same batches.
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(n)
        for b in range(step % steps_per_epoch, steps_per_epoch):
            if step >= total:
                break
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if len(idx) < 2:
                step += 1
                continue
            if img_cache is not None:
                img = model.image_head(img_cache[idx])
            else:
                img = model.encode_image(torch.stack([transform(dataset[int(i)][0]) for i in idx]))
            if txt_cache is not None:
                txt = model.text_head(txt_cache[[txt_index[captions[int(i)]] for i in idx]])
            else:
                txt = model.encode_text(tokenizer([captions[int(i)] for i in idx]))
            loss = loss_fn(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), model.logit_scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sched.step()
            clamp_logit_scale_(model.logit_scale)
            step += 1
            pairs += len(idx)
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", scale=f"{model.logit_multiplier:.1f}")
            if log is not None:
                log.write(
                    json.dumps(
                        {
                            "step": step,
                            "epoch": epoch,
                            "loss": losses[-1],
                            "lr": optimizer.param_groups[0]["lr"],
                            "logit_scale": model.logit_multiplier,
                        }
                    )
                    + "\n"
                )
            if out is not None and ((cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == total):
                last_ckpt = out / "checkpoints" / f"step-{step}"
                save_checkpoint(model, last_ckpt, extra={"step": step, "train_config": dataclasses.asdict(cfg)})
                _save_trainer_state(last_ckpt, optimizer, step, epoch, cfg)
    elapsed = time.perf_counter() - t0
    bar.close()
    if log is not None:
        log.close()
    model.eval()
    return TrainResult(
        steps=step,
        losses=losses,
        pairs_per_second=pairs / elapsed if elapsed > 0 else float("nan"),
        cache_seconds=cache_seconds,
        checkpoint=str(last_ckpt) if last_ckpt else None,
    )
