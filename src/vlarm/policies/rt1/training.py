"""Training RT-1 on closed-loop oracle trajectories (Brohan et al., RSS 2023, Sec. 3 and Appendix C.3: behaviour
cloning, cross-entropy on action tokens over 6-frame windows; multi-task by mixing the tasks' trajectories).

The run layout, checkpoints and crash-safe resume are those of the pick-and-place policies
(:mod:`vlarm.policies.training`: the same helpers write and restore them), so ``vlarm select`` and ``vlarm eval``
treat an RT-1 run like any other. ``train_log.csv`` has RT-1's own columns (:data:`RT1_LOG_HEADER`): the token
cross-entropy and token accuracy averaged over the ``log_every`` steps of each row (the progress bar shows the same
means), wall seconds and CPU seconds.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vlarm.data.trajectories import Trajectories, ee_action_dict
from vlarm.policies.base import CheckpointError, Policy, resolve_device
from vlarm.policies.factory import make_policy
from vlarm.policies.rt1.tokenizer import encode_action
from vlarm.policies.training import (
    LOG_NAME,
    RunConfig,
    _check_same_run,
    copy_checkpoint,
    find_resume_checkpoint,
    load_training_state,
    prepare_log,
    save_checkpoint,
    trained_enough,
)

logger = logging.getLogger(__name__)
#: Columns of an RT-1 run's ``train_log.csv`` (logs written before it had them put the accuracy under ``pick_loss``).
RT1_LOG_HEADER = ("step", "loss", "token_accuracy", "seconds", "process_cpu_seconds")


@dataclass
class RT1TrainConfig(RunConfig):
    """Settings of an RT-1 run: :class:`vlarm.policies.training.RunConfig`'s (with RT-1's CPU defaults below) and
    the trajectory datasets.

    Attributes:
        data_dirs: one trajectory dataset per task (:func:`vlarm.data.trajectories.collect_trajectories`).
        demos: episodes per dataset (the first ``demos``; RT-1's "data per task").
        batch_size: windows per step (each ``history`` frames).
        lr: AdamW learning rate (RT-1: 1e-4).
        task, tasks: filled from the data (the tasks of the trajectories).
    """

    policy: str = "rt1"
    data_dirs: list[str] = field(default_factory=list)
    demos: int = 10
    steps: int = 500
    lr: float = 3e-4
    out_dir: str | Path = "runs/rt1"
    save_every: int = 100
    log_every: int = 10
    threads: int = 1

    def __post_init__(self) -> None:
        """Raises ValueError for no data, or see :meth:`RunConfig.__post_init__`."""
        super().__post_init__()
        self.data_dirs = [str(d) for d in self.data_dirs]
        if not self.data_dirs:
            raise ValueError("RT-1 training needs at least one trajectory dataset (data_dirs)")


class WindowSampler:
    """Draws training windows: a task uniformly, then a frame of it uniformly, with its ``history`` frames
    (padded at an episode start by repeating the first frame), as batches for :meth:`RT1Policy.forward`.

    With the policy's ``frozen_blocks > 0`` it first runs the frozen part of the FiLM-EfficientNet once on every
    frame (with the frame's own instruction) and keeps the result as float16 (e.g. 80 x 6 x 8 values per frame at
    ``frozen_blocks=8``, ``token_stride=16``, 96 x 128 images: ~7.5 KB); batches then carry ``features`` in place
    of ``images`` and a training step skips the frozen blocks.
    """

    def __init__(self, data: Trajectories, policy: Policy, progress: bool = False, chunk: int = 256):
        self.data = data
        self.history = policy.config.history
        self.tokens = np.stack([encode_action(ee_action_dict(a)) for a in data.actions])
        texts = sorted(set(data.instructions))
        emb = policy.embed_instructions(texts).cpu()
        self.text = {t: emb[i] for i, t in enumerate(texts)}
        episode_task = np.asarray(data.tasks)
        self.frames_of_task = {}
        for task in sorted(set(data.tasks)):
            eps = np.flatnonzero(episode_task == task)
            self.frames_of_task[task] = np.concatenate([np.arange(data.starts[e], data.starts[e] + data.lengths[e])
                                                        for e in eps])
        self.features = self._frozen_features(policy, progress, chunk) if policy.config.frozen_blocks else None

    def _frozen_features(self, policy: Policy, progress: bool, chunk: int) -> torch.Tensor:
        """``(F, C, h, w)`` float16 frozen features of every frame (class docstring)."""
        data, encoder = self.data, policy.net.image_encoder
        parts = []
        with torch.no_grad():
            for lo in tqdm(range(0, len(data.images), chunk), desc="rt1 frozen features", disable=not progress):
                images = torch.from_numpy(data.images[lo: lo + chunk]).to(policy.device).permute(0, 3, 1, 2).float()
                text = torch.stack([self.text[t] for t in data.instructions[lo: lo + chunk]])   # each frame's own
                parts.append(encoder.frozen_features(images, text.to(policy.device)).half().cpu())
        return torch.cat(parts)

    def batch(self, rng: np.random.Generator, size: int) -> dict:
        """``size`` windows: ``images`` (B, T, H, W, 3) uint8 (or ``features`` (B, T, C, h, w) float16), ``text``
        (B, D), ``tokens`` (B, T, 6), ``valid`` (B, T) bool and, when the data has them, ``state`` (B, T, 8) float32."""
        tasks = sorted(self.frames_of_task)
        return self.windows([int(rng.choice(self.frames_of_task[tasks[rng.integers(len(tasks))]]))
                             for _ in range(size)])

    def windows(self, ends: list[int]) -> dict:
        """The windows ending at frames ``ends`` (indices into the trajectories), as :meth:`batch` returns them."""
        windows = [self.data.window(e, self.history) for e in ends]
        idx = np.stack([w[0] for w in windows])
        frames = {"images": torch.from_numpy(self.data.images[idx])} if self.features is None \
            else {"features": self.features[torch.from_numpy(idx)]}
        batch = {**frames, "tokens": torch.from_numpy(self.tokens[idx]),
                 "valid": torch.from_numpy(np.stack([w[1] for w in windows])),
                 "text": torch.stack([self.text[self.data.instructions[e]] for e in ends])}
        if self.data.states is not None:
            batch["state"] = torch.from_numpy(self.data.states[idx])
        return batch


@torch.no_grad()
def heldout_token_metrics(policy: Policy, data: Trajectories, batch_size: int = 32, progress: bool = False) -> dict:
    """Teacher-forced action-token metrics of ``policy`` on trajectories it did not train on (e.g. val-split expert
    trajectories): a low-variance validation signal next to closed-loop success (RT-1 trains on exactly this
    cross-entropy, Brohan et al. 2023, Sec. 3).

    Every frame is scored once, as the last frame of its ``history`` window (the one acting would use); the earlier
    frames of the window are context only.

    Args:
        policy: an RT-1 policy (put in eval mode for the call; restored after).
        data: trajectories, any split (``vlarm collect --action-mode ee_delta --split val``).
        batch_size: windows per forward pass.
        progress: a tqdm bar.

    Returns:
        ``{"loss": mean cross-entropy per action token (nats), "token_accuracy": fraction of action tokens
        predicted exactly (argmax), "frames": frames scored, "episode_loss": the mean over each episode's frames
        (a list in episode order, for intervals and paired comparisons over episodes)}``.

    Raises:
        ValueError: ``batch_size < 1`` or trajectories without frames.
    """
    if batch_size < 1 or len(data.images) == 0:
        raise ValueError(f"need batch_size >= 1 and at least one frame, got {batch_size} and {len(data.images)}")
    was_training = policy.training
    policy.eval()
    sampler = WindowSampler(data, policy, progress=progress)
    frames = len(data.images)
    loss, correct = np.zeros(frames), np.zeros(frames)
    try:
        for lo in tqdm(range(0, frames, batch_size), desc="held-out tokens", disable=not progress):
            ends = list(range(lo, min(lo + batch_size, frames)))
            per_token, hit = policy.token_metrics(sampler.windows(ends))
            loss[ends] = per_token[:, -1].mean(-1).cpu().numpy()        # each frame once, as its window's last
            correct[ends] = hit[:, -1].float().mean(-1).cpu().numpy()
    finally:
        policy.train(was_training)
    episode_loss = [float(loss[s: s + n].mean()) for s, n in zip(data.starts, data.lengths, strict=True)]
    return {"loss": float(loss.mean()), "token_accuracy": float(correct.mean()), "frames": frames,
            "episode_loss": episode_loss}


def train_rt1(config: RT1TrainConfig, data: Trajectories | None = None) -> Path:
    """Train RT-1; returns ``out_dir/checkpoints/last`` (loadable with ``vlarm.policies.load_policy``).

    Args:
        config: :class:`RT1TrainConfig`.
        data: trajectories in memory (default: the first ``demos`` episodes of each of ``config.data_dirs``).

    Raises:
        ValueError: non-train data, a run with other settings in ``out_dir``, a complete checkpoint with
            ``resume=False``, or a diverged loss. CheckpointError: only incomplete checkpoints in ``out_dir``.
    """
    cpu_start = time.process_time()
    torch.set_num_threads(config.torch_threads())
    if data is None:
        data = Trajectories.concat([Trajectories.open(d, config.demos) for d in config.data_dirs])
    if data.split != "train":
        raise ValueError(f"the trajectories are {data.split}-split episodes; train on the train split only")
    tasks = sorted(set(data.tasks))
    config.tasks, config.task = tasks, (tasks[0] if len(tasks) == 1 else "multi")
    out_dir, rng = Path(config.out_dir), np.random.default_rng(config.seed)
    ckpt_dir = out_dir / "checkpoints"
    last_dir = ckpt_dir / "last"
    resume_dir, incomplete = find_resume_checkpoint(ckpt_dir)
    if resume_dir is not None and not config.resume:
        raise ValueError(f"{out_dir} already holds a training run; pass resume=True or a new out_dir")
    if resume_dir is None and incomplete:
        raise CheckpointError(f"{ckpt_dir} holds no complete checkpoint; move it away or pass a new out_dir")
    torch.manual_seed(config.seed)
    if resume_dir is not None:
        _check_same_run(resume_dir, config)
        if resume_dir != last_dir:
            copy_checkpoint(resume_dir, last_dir)
        policy = Policy.from_pretrained(last_dir)
    else:
        policy = make_policy("rt1", **{"tasks": tuple(tasks), "renderer": data.renderer, **config.policy_overrides})
    if policy.config.state_token and data.states is None:
        raise ValueError("the policy has a state token (state_token=True) but the trajectories carry no "
                         "observation.state")
    if tuple(data.images.shape[1:3]) != tuple(policy.config.image_size):
        raise ValueError(f"the trajectories have {data.images.shape[1:3]} images, the policy expects "
                         f"{policy.config.image_size}")
    policy.to(resolve_device(config.device)).train()
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay)
    step, seconds, cpu_base = 0, 0.0, 0.0
    if resume_dir is not None:
        state = load_training_state(last_dir, optimizer, rng)
        step, seconds = int(state["step"]), float(state["seconds"])
        cpu_base = float(state.get("process_cpu_seconds", 0.0))
    if trained_enough(out_dir, step, config):
        return last_dir
    sampler = WindowSampler(data, policy, progress=config.progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    prepare_log(out_dir / LOG_NAME, step, RT1_LOG_HEADER, aliases={"token_accuracy": "pick_loss"})
    window: list[dict] = []
    bar = tqdm(total=config.steps, initial=step, desc="train rt1", disable=not config.progress)
    with (out_dir / LOG_NAME).open("a", newline="") as log_file:
        writer = csv.writer(log_file)
        while step < config.steps:
            start = time.perf_counter()
            loss, info = policy(sampler.batch(rng, config.batch_size))
            if not torch.isfinite(loss):
                raise ValueError(f"training diverged at step {step + 1} (loss {loss.item()}); lower lr ({config.lr})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            config.set_lr(optimizer, step)
            optimizer.step()
            step += 1
            seconds += time.perf_counter() - start
            window.append(info)
            bar.update(1)
            cpu = cpu_base + time.process_time() - cpu_start
            if step % config.log_every == 0 or step == config.steps:
                loss_mean, accuracy_mean = (np.mean([w[k] for w in window]) for k in ("loss", "token_accuracy"))
                writer.writerow([step, f"{loss_mean:.5f}", f"{accuracy_mean:.5f}", f"{seconds:.2f}", f"{cpu:.1f}"])
                log_file.flush()
                bar.set_postfix(loss=f"{loss_mean:.3f}", acc=f"{accuracy_mean:.3f}")   # the row's period means
                window = []
            if step % config.save_every == 0 or step == config.steps:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                step_dir = save_checkpoint(ckpt_dir / f"step_{step:06d}", policy, optimizer, step, rng, seconds,
                                           config, process_cpu_seconds=cpu)
                copy_checkpoint(step_dir, last_dir)
    bar.close()
    return last_dir


__all__ = ["RT1_LOG_HEADER", "RT1TrainConfig", "WindowSampler", "heldout_token_metrics", "train_rt1"]
