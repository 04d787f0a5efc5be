"""Training loop for the pick-and-place policies (Transporter Sec. 4, CLIPort Sec. 4 training protocol).

``train(TrainConfig(...))`` reads demonstration frames through the ``vlarm.data.EpisodeDataset`` interface (of one
task, or of several at once: ``TrainConfig(tasks=[...])`` trains one policy on a
:class:`vlarm.data.multitask.MultiTaskDataset` with CLIPort's multi-task protocol: the same number of demos per
task, a task drawn uniformly for every sample, pooled normalisation statistics),
turns their world poses into pixel labels, applies Ravens' SE(2) rotation augmentation, and optimises pick +
place
cross-entropy with AdamW. Frozen parts are computed once: instruction embeddings per string, and the frozen
image backbone's features per frame, which are then warped with the same SE(2) transform as the image
(feature-space
augmentation; exact for translations, an approximation for rotations since the backbone is not rotation equivariant).

Output layout under ``out_dir``::

    train_log.csv                          step, loss, pick_loss, place_loss, seconds (wall, training steps),
                                           process_cpu_seconds (CPU time of the run so far, all threads, summed
                                           over resumed processes)
    checkpoints/step_000500/               config.json, model.safetensors,
    checkpoints/last/                      training_state.safetensors, training_state.json

A rerun with ``resume=True`` continues from the newest *complete* checkpoint (normally ``checkpoints/last``;
optimizer and RNG state included), so a kill at any moment loses at most the steps since the last save: every
directory is written as ``<name>.tmp`` and swapped in with renames only (``<name>`` -> ``<name>.old``,
``<name>.tmp`` -> ``<name>``), ``training_state.json`` is always the last file written, and on resume the log is
cut back to the checkpoint's step (its header restored if a kill came before the first row).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vlarm.policies.augmentation import sample_perturbation, transform_pixels, warp_images
from vlarm.policies.base import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, Policy, batch_to, resolve_device
from vlarm.policies.factory import make_policy
from vlarm.policies.pick_place import PickPlacePolicy
from vlarm.policies.processing import frame_to_labels, normalization_from_stats
from vlarm.weights import load_weights, save_weights

logger = logging.getLogger(__name__)

LOG_NAME = "train_log.csv"
STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.safetensors"
CHECKPOINT_FILES = (CONFIG_NAME, WEIGHTS_NAME, STATE_TENSORS, STATE_JSON)
#: Learning-rate schedules of :class:`RunConfig` (``--lr-schedule``).
LR_SCHEDULES = ("constant", "cosine")
#: ``TrainConfig.task`` (and the run name) of a multi-task run.
MULTI_TASK = "multi"
LOG_HEADER = ("step", "loss", "pick_loss", "place_loss", "seconds", "process_cpu_seconds")
# Directories under checkpoints/ that may hold a checkpoint: last, step_NNNNNN and their .tmp/.old swap copies.
_CHECKPOINT_DIR = re.compile(r"^(last|step_\d+)(\.tmp|\.old)?$")


@dataclass
class RunConfig:
    """Settings every imitation-learning run shares (pick-and-place policies: :class:`TrainConfig`; RT-1:
    :class:`vlarm.policies.rt1.training.RT1TrainConfig`).

    Attributes:
        policy: registered policy name.
        task: task name, recorded in the training state and, as ``tasks``, in the policy's config; ``"multi"`` for
            a multi-task run.
        tasks: the tasks of a multi-task run (empty for single-task training).
        demos: number of demonstration episodes to train on (the first ``demos``; per task when multi-task).
        steps: total optimisation steps (a resumed run stops at the same total).
        batch_size: samples per step (frames; RT-1: windows of ``history`` frames).
        lr: AdamW learning rate (the peak, under a schedule).
        lr_schedule: ``"constant"`` (``lr`` throughout) or ``"cosine"`` (Loshchilov & Hutter, ICLR 2017, SGDR without
            restarts: ``lr`` decayed along a half cosine to 0 at step ``steps``, after ``warmup_steps`` of linear
            warm-up); :meth:`lr_at` gives the rate of each step, a pure function of the step, so a resumed run
            continues on the same curve.
        warmup_steps: steps of linear warm-up from ``lr / warmup_steps`` to ``lr`` (0: none; any schedule).
        weight_decay: AdamW weight decay.
        out_dir: output directory (log + checkpoints).
        save_every: checkpoint period in steps (a final checkpoint is always written).
        log_every: period in steps of a ``train_log.csv`` row (mean over the period).
        seed: seeds weight init, sampling and augmentation; the same seed gives the same run.
        resume: continue from ``out_dir/checkpoints/last`` when it exists.
        threads: torch intra-op threads; 0 = automatic (:func:`auto_threads`: all cores on an idle machine,
            1 when other processes already keep the cores busy, where 2 threads run up to 10x slower).
        policy_overrides: config fields passed to ``make_policy`` (e.g. ``{"widths": [8, 16, 32, 64]}``).
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"`` or ``"cuda"``; data stays in CPU memory
            and each batch is moved to the device.
        progress: show a tqdm progress bar.
    """

    policy: str = "cliport"
    task: str | None = None
    tasks: list[str] = field(default_factory=list)
    demos: int = 100
    steps: int = 10000
    batch_size: int = 4
    lr: float = 5e-4
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 1e-4
    out_dir: str | Path = "outputs/train"
    save_every: int = 1000
    log_every: int = 50
    seed: int = 0
    resume: bool = True
    threads: int = 0
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        """Validate numbers.

        Raises:
            ValueError: naming the first count or period below 1, a non-finite or non-positive lr, a negative
                weight decay or thread count, an unknown ``lr_schedule`` (naming the valid ones), or ``warmup_steps``
                outside ``[0, steps)``.
        """
        self.tasks = [str(t) for t in self.tasks]
        for name in ("demos", "steps", "batch_size", "save_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and math.isfinite(self.weight_decay)):
            raise ValueError(f"lr and weight_decay must be finite numbers, got {self.lr}, {self.weight_decay}")
        if self.lr <= 0 or self.weight_decay < 0 or self.threads < 0:
            raise ValueError(f"need lr > 0, weight_decay >= 0, threads >= 0; got {self.lr}, {self.weight_decay}, "
                             f"{self.threads}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr schedule {self.lr_schedule!r}; valid schedules: {', '.join(LR_SCHEDULES)}")
        if not 0 <= int(self.warmup_steps) < int(self.steps):
            raise ValueError(f"warmup_steps must be in [0, steps={self.steps}), got {self.warmup_steps}")

    def lr_at(self, step: int) -> float:
        """The learning rate of optimisation step ``step`` (0-based: the step that takes the run from ``step`` to
        ``step + 1``), under ``lr_schedule`` and ``warmup_steps``.

        Returns:
            A float in ``(0, lr]``: ``lr * (step + 1) / warmup_steps`` during warm-up; then ``lr`` (constant) or
            ``lr * (1 + cos(pi * t)) / 2`` with ``t = (step - warmup_steps) / (steps - warmup_steps)`` (cosine;
            ``step`` past ``steps`` keeps the last step's rate).
        """
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.lr
        span = self.steps - self.warmup_steps
        t = min(step - self.warmup_steps, span - 1) / span
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * t))

    def set_lr(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every parameter group of ``optimizer`` to :meth:`lr_at` ``(step)``; returns that rate."""
        lr = self.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def torch_threads(self) -> int:
        """The torch intra-op thread count to train with: ``threads``, or :func:`auto_threads` when it is 0."""
        return int(self.threads) if self.threads > 0 else auto_threads()


@dataclass
class TrainConfig(RunConfig):
    """A pick-and-place policy's training run (CLIPort trains with lr 1e-4, batch 1, 200k steps; this loop is
    tuned for CPU): :class:`RunConfig`'s settings and these.

    Attributes:
        policy: ``"cliport"`` or ``"transporter"``.
        data_dir: dataset root; if ``data_dir / task`` exists it is used instead. Multi-task: one root per task
            (a list, in the order of ``tasks``) or one root holding a folder per task
            (:func:`vlarm.data.multitask.resolve_task_dirs`).
        task: task name (selects the sub-folder); ``"multi"`` for a multi-task run (set from ``tasks``).
        tasks: multi-task training (CLIPort, Shridhar et al. CoRL 2021, Sec. 4): two or more task names, one dataset
            each; empty for single-task training. Recorded in the policy's config.
        augment: apply random SE(2) augmentation (Ravens ``perturb``).
        theta_sigma: std of the augmentation rotation in radians (Ravens: 60 degrees).
        translation_sigma: std of the augmentation translation in pixels.
        cache_features: precompute frozen backbone features once per frame (warped per step) instead of
            running the backbone on every augmented image.
        color_permutation: probability per frame of showing the spatial stream its colours with the RGB channels
            permuted (see :meth:`FrameStore.batch`); 0 disables it.
        normalization: input statistics of a new policy: ``"dataset"`` (the training dataset's own
            ``meta/stats.json``, stored in the policy's config as LeRobot does) or ``"ravens"`` (Ravens'
            constants, mean 0.189 / std 0.073 for colour, which do not match vlarm's renders).
    """

    data_dir: str | Path | list[str | Path] = "data"
    augment: bool = True
    theta_sigma: float = math.radians(60.0)
    translation_sigma: float = 20.0
    cache_features: bool = True
    normalization: str = "dataset"
    color_permutation: float = 0.0

    def __post_init__(self) -> None:
        """Validate numbers and the task / tasks / data_dir combination.

        Raises:
            ValueError: see :meth:`RunConfig.__post_init__`; ``tasks`` with fewer than two or repeated names, or
                alongside another ``task`` than ``"multi"``; ``task="multi"`` without ``tasks``; several
                ``data_dir`` without ``tasks``; a colour-permutation probability outside [0, 1]; an unknown
                normalisation.
        """
        super().__post_init__()
        if self.tasks:
            if len(self.tasks) < 2 or len(set(self.tasks)) != len(self.tasks):
                raise ValueError(f"multi-task training needs two or more different tasks, got {self.tasks}; train "
                                 "one task with task=<name>")
            if self.task not in (None, MULTI_TASK):
                raise ValueError(f"pass either task={self.task!r} (single-task) or tasks={self.tasks} (multi-task)")
            self.task = MULTI_TASK
        elif self.task == MULTI_TASK:
            raise ValueError(f"task={MULTI_TASK!r} needs the list of tasks (tasks=[...])")
        elif isinstance(self.data_dir, list | tuple):
            raise ValueError(f"several data directories ({len(self.data_dir)}) need tasks=[...], one task each")
        if not 0.0 <= self.color_permutation <= 1.0:
            raise ValueError(f"color_permutation is a probability in [0, 1], got {self.color_permutation}")
        if self.normalization not in ("dataset", "ravens"):
            raise ValueError(f"normalization must be 'dataset' or 'ravens', got {self.normalization!r}")


#: The five non-identity orders of the RGB channels (colour-permutation augmentation).
_PERMUTATIONS = tuple(p for p in itertools.permutations(range(3)) if p != (0, 1, 2))


class FrameStore:
    """All training frames in memory, with labels, instruction embeddings and cached frozen features.

    Args:
        dataset: object with ``len()`` and ``__getitem__`` returning frame dicts (``EpisodeDataset`` interface).
        policy: the policy being trained (provides ``embed_instructions`` / ``frozen_features``).
        cache_features: precompute frozen backbone features (float16) for every frame (warped with the
            augmentation: exact for shifts, approximate under rotation); False runs the backbone on every augmented
            image. Grounding maps are always cached.
    """

    def __init__(self, dataset: Any, policy: PickPlacePolicy, cache_features: bool = True):
        frames = [dataset[i] for i in range(len(dataset))]
        if not frames:
            raise ValueError("the dataset has no frames to train on")
        shape = tuple(policy.config.image_shape)
        self.colormap = torch.from_numpy(np.stack([np.asarray(f["colormap"], dtype=np.uint8) for f in frames]))
        self.heightmap = torch.from_numpy(np.stack([np.asarray(f["heightmap"], dtype=np.float32) for f in frames]))
        if tuple(self.heightmap.shape[1:]) != shape:
            raise ValueError(f"frames are {tuple(self.heightmap.shape[1:])}, the policy expects {shape}")
        labels = [frame_to_labels(f, shape) for f in frames]
        self.pick = np.stack([lab["pick_pixel"] for lab in labels])
        self.place = np.stack([lab["place_pixel"] for lab in labels])
        self.rotation = np.array([lab["place_rotation"] for lab in labels], dtype=np.float32)
        self.instructions = [str(f.get("instruction", "")) for f in frames]
        emb = policy.embed_instructions(self.instructions)
        self.lang = emb.detach().float().cpu() if emb is not None else None
        self.features: list[torch.Tensor] | None = None
        if cache_features:
            chunks = []
            for start in range(0, len(frames), 8):
                feats = policy.frozen_features(self.colormap[start : start + 8].to(policy.device))
                if feats is None:
                    break
                chunks.append([f.half().cpu() for f in feats])
            if chunks:
                self.features = [torch.cat(level) for level in zip(*chunks, strict=True)]
        # Phrase relevance maps of a VLM semantic stream depend on the frame and its instruction only; they are
        # constant on each object, so warping them with the augmentation is (up to resampling) exact: always cached.
        self.grounding: torch.Tensor | None = None
        maps = [
            policy.grounding_maps(self.colormap[s : s + 8], self.heightmap[s : s + 8], self.instructions[s : s + 8])
            for s in range(0, len(frames), 8)
        ]
        if maps[0] is not None:
            self.grounding = torch.cat(maps).half()

    def __len__(self) -> int:
        """Number of frames."""
        return len(self.instructions)

    def batch(
        self,
        indices: np.ndarray,
        rng: np.random.Generator | None,
        theta_sigma: float,
        translation_sigma: float,
        color_permutation: float = 0.0,
    ) -> dict:
        """Assemble a training batch (see ``PickPlacePolicy.forward``), augmented when ``rng`` is given.

        Args:
            indices: ``(B,)`` frame indices.
            rng: augmentation generator (None: no augmentation).
            theta_sigma: std of the SE(2) rotation, radians.
            translation_sigma: std of the SE(2) translation, pixels.
            color_permutation: probability per frame of permuting the RGB channels of the colour the *spatial*
                stream sees (a random non-identity permutation), so raw colour stops being a route to the labels
                and the policy has to follow the semantic stream; the backbone and the grounding maps keep the
                true colours (``"semantic_colormap"`` in the batch).
        """
        idx = torch.as_tensor(indices, dtype=torch.long)
        shape = tuple(self.heightmap.shape[1:])
        pick, place = self.pick[indices], self.place[indices]
        colormap, heightmap = self.colormap[idx], self.heightmap[idx]
        feats = [f[idx].float() for f in self.features] if self.features is not None else None
        grounding = self.grounding[idx].float() if self.grounding is not None else None
        if rng is not None:
            transforms = np.stack(
                [
                    sample_perturbation(np.stack([pick[i], place[i]]), shape, rng, theta_sigma, translation_sigma)
                    for i in range(len(indices))
                ]
            )
            images = torch.cat([colormap.permute(0, 3, 1, 2).float(), heightmap[:, None]], dim=1)
            images = warp_images(images, transforms, shape, mode="nearest")
            colormap = images[:, :3].round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
            heightmap = images[:, 3].contiguous()
            if feats is not None:
                feats = [warp_images(f, transforms, shape, mode="bilinear") for f in feats]
            if grounding is not None:
                grounding = warp_images(grounding, transforms, shape, mode="nearest")
            pick = np.stack([transform_pixels(pick[i], transforms[i])[0] for i in range(len(indices))])
            place = np.stack([transform_pixels(place[i], transforms[i])[0] for i in range(len(indices))])
        semantic_colormap = colormap
        if rng is not None and color_permutation > 0:
            colormap = colormap.clone()
            for i in range(len(indices)):
                if rng.random() < color_permutation:
                    colormap[i] = colormap[i][..., list(_PERMUTATIONS[rng.integers(len(_PERMUTATIONS))])]
        batch = {
            "colormap": colormap,
            "heightmap": heightmap,
            "pick_pixel": torch.as_tensor(pick, dtype=torch.long),
            "place_pixel": torch.as_tensor(place, dtype=torch.long),
            "place_rotation": torch.as_tensor(self.rotation[indices]),
            "instruction": [self.instructions[i] for i in indices],
        }
        if semantic_colormap is not colormap:
            batch["semantic_colormap"] = semantic_colormap
        if self.lang is not None:
            batch["lang_embedding"] = self.lang[idx]
        if feats is not None:
            batch["backbone_features"] = feats
        if grounding is not None:
            batch["grounding_maps"] = grounding
        return batch


# ---------------------------------------------------------------------------- checkpoints
def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors = {}
    for idx, entries in state["state"].items():
        for name, value in entries.items():
            tensors[f"optimizer.{idx}.{name}"] = torch.as_tensor(value).detach().contiguous().clone()
    return tensors, state["param_groups"]


def replace_dir(tmp: Path, directory: Path) -> Path:
    """Make the finished directory ``tmp`` become ``directory`` by renames only, so that a kill at any moment
    leaves a complete copy under one of ``directory``, ``<directory>.old`` or ``tmp``.

    POSIX cannot rename over a non-empty directory, so the old one is first renamed to ``<directory>.old`` and
    removed only after ``tmp`` is in place (the ``rmtree(directory); os.replace(tmp, directory)`` this replaces
    left neither name complete if killed in the rmtree).

    Args:
        tmp: a complete directory on the same file system.
        directory: destination; an existing one is replaced.

    Returns:
        ``directory``.

    Raises:
        OSError: a rename failed (e.g. ``tmp`` is missing).
    """
    old = directory.with_name(directory.name + ".old")
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)  # a stale copy from an earlier kill; ``directory`` is complete
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def copy_checkpoint(source: Path, directory: Path) -> Path:
    """Copy a checkpoint directory crash-safely: into ``<directory>.tmp`` with ``training_state.json`` last (so a
    partial copy is never taken for a complete one), then swapped in by :func:`replace_dir`.

    Returns:
        ``directory``.

    Raises:
        OSError: reading ``source`` or writing next to ``directory`` failed.
    """
    tmp = directory.with_name(directory.name + ".tmp")
    if source.resolve() == directory.resolve():
        return directory
    if source.resolve() == tmp.resolve():
        return replace_dir(tmp, directory)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(STATE_JSON))
    if (source / STATE_JSON).is_file():
        shutil.copy2(source / STATE_JSON, tmp / STATE_JSON)
    return replace_dir(tmp, directory)


def checkpoint_step(directory: Path) -> int | None:
    """The training step of a complete resumable checkpoint, or ``None`` if ``directory`` is not one.

    Complete means every file of :data:`CHECKPOINT_FILES` is present, ``config.json`` is valid JSON and
    ``training_state.json`` (written last by :func:`save_checkpoint`) is a JSON object with an integer ``step``.
    """
    if not all((directory / name).is_file() for name in CHECKPOINT_FILES):
        return None
    try:
        json.loads((directory / CONFIG_NAME).read_text())
        state = json.loads((directory / STATE_JSON).read_text())
        return int(state["step"]) if isinstance(state, dict) and isinstance(state.get("step"), int) else None
    except (OSError, ValueError):
        return None


def find_resume_checkpoint(ckpt_dir: Path) -> tuple[Path | None, list[Path]]:
    """The newest complete checkpoint under ``ckpt_dir`` (``last``, ``step_NNNNNN``, or a complete ``.tmp`` /
    ``.old`` copy left by a kill during a swap), judged by :func:`checkpoint_step`.

    At equal steps ``last`` is preferred, then ``step_NNNNNN``, then the swap copies.

    Returns:
        ``(best or None, incomplete)``: ``incomplete`` lists the ``last`` / ``step_NNNNNN`` directories (not the
        ``.tmp`` / ``.old`` ones) that are not complete.
    """
    if not ckpt_dir.is_dir():
        return None, []
    ranked, incomplete = [], []
    for path in sorted(ckpt_dir.iterdir()):
        match = _CHECKPOINT_DIR.match(path.name)
        if not match or not path.is_dir():
            continue
        step = checkpoint_step(path)
        if step is None:
            if not match.group(2):
                incomplete.append(path)
            continue
        rank = {".tmp": 1, ".old": 0}.get(match.group(2) or "", 3 if match.group(1) == "last" else 2)
        ranked.append((step, rank, path))
    return (max(ranked)[2] if ranked else None), incomplete


def save_checkpoint(
    directory: Path,
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    step: int,
    rng: np.random.Generator,
    seconds: float,
    config: TrainConfig,
    process_cpu_seconds: float = 0.0,
) -> Path:
    """Write a resumable checkpoint (policy + optimizer + RNG state) atomically into ``directory``.

    Everything is written into ``<directory>.tmp`` (``training_state.json`` last), then swapped in with
    :func:`replace_dir`, so ``directory`` is never seen half-written.

    Args:
        directory: destination (``checkpoints/step_NNNNNN``).
        policy: the policy (``save_pretrained``: config + trainable weights).
        optimizer: its optimizer (state tensors and param groups).
        rng: the loop's numpy generator (torch's global RNG state is saved too).
        step: optimisation steps done.
        seconds: wall-clock seconds spent in training steps so far (all resumed processes).
        config: the run's settings (stored for :func:`_check_same_run`).
        process_cpu_seconds: CPU seconds of the run so far (all threads, all resumed processes).

    Returns:
        ``directory``.
    """
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp)
    tensors, groups = _optimizer_tensors(optimizer)
    tensors["torch_rng_state"] = torch.get_rng_state()
    save_weights(tensors, tmp / STATE_TENSORS)
    state = {
        "step": step,
        "seconds": seconds,
        "process_cpu_seconds": process_cpu_seconds,
        "numpy_rng_state": rng.bit_generator.state,
        "param_groups": groups,
        "train_config": dataclasses.asdict(config),
    }
    (tmp / STATE_JSON).write_text(json.dumps(state, indent=2, default=str) + "\n")
    return replace_dir(tmp, directory)


def load_training_state(directory: Path, optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> dict:
    """Restore optimizer and RNG state from a checkpoint directory; returns the JSON state (``step``,
    ``seconds``).

    Raises:
        CheckpointError: missing or unreadable state files.
    """
    json_path, tensor_path = directory / STATE_JSON, directory / STATE_TENSORS
    try:
        state = json.loads(json_path.read_text())
        tensors, _ = load_weights(tensor_path)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{directory}: unreadable training state ({err})") from err
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    torch.set_rng_state(tensors["torch_rng_state"])
    rng.bit_generator.state = state["numpy_rng_state"]
    return state


def prepare_log(log_path: Path, step: int, header: tuple[str, ...] = LOG_HEADER,
                aliases: dict[str, str] | None = None) -> float | None:
    """Make ``train_log.csv`` fit a run that continues after ``step``: the header first, then only the rows with
    steps ``1..step`` in strictly increasing order (rows logged after the checkpoint, by a process killed before
    its next save, are dropped; so are torn or unparsable lines). Rewritten atomically (``.tmp`` + rename).

    Args:
        log_path: the run's ``train_log.csv`` (need not exist).
        step: the checkpoint's step (0 for a fresh run: header only).
        header: the run's columns (:data:`LOG_HEADER`; RT-1 has its own); the last is ``process_cpu_seconds``.
        aliases: ``{column: older name}`` read from logs written under another header.

    Returns:
        ``process_cpu_seconds`` of the last row kept, or ``None`` (no row kept, or the column is empty), which
        resumes the CPU count of checkpoints written before the training state recorded it.
    """
    rows: list[list[str]] = []
    if log_path.is_file():
        with log_path.open(newline="") as f:
            lines = list(csv.reader(f))
        columns = list(header)
        if lines and lines[0] and lines[0][0] == "step":
            columns, lines = lines[0], lines[1:]
        last = 0
        for line in lines:
            if len(line) != len(columns):
                continue
            record = dict(zip(columns, line, strict=True))
            try:
                row_step = int(record["step"])
            except (KeyError, ValueError):
                continue
            if last < row_step <= step:
                rows.append([record.get(name, record.get((aliases or {}).get(name, ""), "")) for name in header])
                last = row_step
    tmp = log_path.with_name(log_path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, log_path)
    try:
        return float(rows[-1][-1]) if rows else None
    except ValueError:
        return None


def auto_threads() -> int:
    """Torch threads for this machine now: ``os.cpu_count()`` if the 1-minute load average leaves the cores free,
    else 1 (oversubscribed OpenMP threads spin-wait; measured 10-20x slower steps on a busy 2-core machine)."""
    cores = os.cpu_count() or 1
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return cores if busy < 0.5 else max(1, min(cores, int(cores - busy)))


def _resolve_data_dir(config: TrainConfig) -> Path:
    root = Path(config.data_dir)
    if config.task and (root / config.task).is_dir():
        return root / config.task
    return root


def _open_dataset(config: TrainConfig) -> Any:
    """The training data ``config`` names: an ``EpisodeDataset``, or a ``MultiTaskDataset`` when ``config.tasks``.

    Raises:
        ValueError, vlarm.data.DatasetError: see :meth:`vlarm.data.multitask.MultiTaskDataset.open`.
    """
    if config.tasks:
        from vlarm.data.multitask import MultiTaskDataset

        dirs = config.data_dir if isinstance(config.data_dir, list | tuple) else [config.data_dir]
        return MultiTaskDataset.open(config.tasks, dirs)
    from vlarm.data import EpisodeDataset

    return EpisodeDataset(_resolve_data_dir(config))


def trained_tasks(config: TrainConfig, dataset: Any) -> tuple[str, ...]:
    """The tasks a new policy is trained on, recorded in its config (``PickPlaceConfig.tasks``): ``config.tasks``
    (multi-task), else ``config.task``, else the task the dataset records, else none (``()``, e.g. a synthetic
    dataset)."""
    if config.tasks:
        return tuple(config.tasks)
    if config.task:
        return (config.task,)
    recorded = getattr(getattr(dataset, "dataset_info", None), "benchmark_task", None)
    return (recorded,) if recorded else ()


def trained_observation(dataset: Any) -> dict:
    """How a dataset's images were rendered, recorded in a new policy's config (``PickPlaceConfig.renderer`` and
    ``camera_scale``) so that evaluation renders the same way.

    Returns:
        ``{"renderer": ..., "camera_scale": ...}`` from the dataset's ``meta/info.json`` (a multi-task dataset's
        parts are checked equal when opened; its first part's): ``renderer`` else ``"tiny"`` and ``camera_scale``
        else None (datasets written before the fields existed, synthetic data).
    """
    from vlarm.sim.cameras import RENDERER

    parts = getattr(dataset, "datasets", None) or [dataset]
    info = getattr(parts[0], "dataset_info", None)
    return {"renderer": getattr(info, "renderer", None) or RENDERER,
            "camera_scale": getattr(info, "camera_scale", None)}


def _check_same_run(last_dir: Path, config: RunConfig) -> None:
    """Refuse to resume a run whose stored settings differ from ``config`` in what defines the model and data
    (the settings ``config``'s class has: RT-1 runs have no augmentation or normalisation settings).

    Raises:
        ValueError: listing each differing setting (stored vs requested) and how to start a fresh run instead.
    """
    try:
        stored = json.loads((last_dir / STATE_JSON).read_text()).get("train_config", {})
    except (OSError, json.JSONDecodeError):
        return  # unreadable state is reported by load_training_state
    keys = [k for k in ("policy", "task", "tasks", "demos", "batch_size", "lr", "lr_schedule", "warmup_steps", "seed",
                        "policy_overrides", "normalization", "color_permutation", "cache_features")
            if hasattr(config, k)]
    decaying = config.lr_schedule != "constant" or stored.get("lr_schedule", "constant") != "constant"
    if decaying:   # a decaying rate is a curve over the run's length
        keys.append("steps")
    requested = json.loads(json.dumps({k: getattr(config, k) for k in keys}, default=str))
    if "policy_overrides" in stored and "policy_overrides" in requested:
        stored["policy_overrides"] = _non_default(config.policy, stored["policy_overrides"])
        requested["policy_overrides"] = _non_default(config.policy, requested["policy_overrides"])
    diffs = [f"{k}: {stored[k]!r} in the run, {requested[k]!r} now" for k in keys
             if k in stored and stored[k] != requested[k]]
    if diffs:
        why = " (a decaying learning rate is a curve over the run's --steps)" if decaying and any(
            d.startswith("steps:") for d in diffs) else ""
        raise ValueError(f"{last_dir.parent.parent} holds a run with other settings ({'; '.join(diffs)}){why}; pass "
                         "the same settings to resume it, or a new --out to start a fresh run")


def trained_enough(out_dir: Path, step: int, config: RunConfig) -> bool:
    """Whether a resumed run is already at ``config.steps`` or beyond (then says so: nothing is trained)."""
    if step < config.steps:
        return False
    how = "pass a larger --steps to continue" if config.lr_schedule == "constant" else \
        f"its {config.lr_schedule} learning rate has decayed over its --steps; train longer under a new --out"
    logger.warning("%s is already at step %d >= steps=%d: nothing to train (%s)", out_dir, step, config.steps, how)
    return True


def _non_default(policy: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` (JSON values) without the fields that equal the policy config's default, so a resume that
    spells out a default (``--policy-option state_token=false``) matches a run that left it out."""
    from vlarm.policies.base import POLICY_REGISTRY

    config_class = getattr(POLICY_REGISTRY.get(policy), "config_class", None)
    if config_class is None:
        return overrides
    defaults = json.loads(json.dumps(dataclasses.asdict(config_class()), default=str))
    return {k: v for k, v in overrides.items() if k not in defaults or defaults[k] != v}


def _normalization_overrides(config: TrainConfig, dataset: Any) -> dict[str, Any]:
    """Policy config fields for the input statistics that ``config.normalization`` asks for.

    Raises:
        ValueError: ``"dataset"`` normalisation on a dataset without usable ``stats``.
    """
    if config.normalization == "ravens":
        return {}
    stats = getattr(dataset, "stats", None)
    if stats is None:
        raise ValueError("normalization='dataset' needs a dataset with meta/stats.json; pass normalization='ravens'")
    return normalization_from_stats(stats)


def train(config: TrainConfig, dataset: Any | None = None) -> Path:
    """Train a pick-and-place policy; returns the path of the final checkpoint (``out_dir/checkpoints/last``).

    Args:
        config: :class:`TrainConfig`.
        dataset: optional object with the ``EpisodeDataset`` interface (``select_episodes``, ``len``,
            ``[i]``); by default ``vlarm.data.EpisodeDataset`` over ``config.data_dir`` (``/ config.task`` if present),
            or with ``config.tasks`` a :class:`vlarm.data.multitask.MultiTaskDataset` of one dataset per task. A
            dataset with ``sample_frames(rng, n)`` chooses each step's frames (multi-task: a task uniformly, then a
            frame); otherwise frames are drawn uniformly. ``episodes_per_task``, when present, bounds ``demos``.

    With ``config.resume`` the run continues from the newest complete checkpoint (:func:`find_resume_checkpoint`),
    restores it as ``checkpoints/last`` if a kill left that missing or older, and cuts ``train_log.csv`` back to
    its step (:func:`prepare_log`); ``process_cpu_seconds`` continues from the value stored in the checkpoint.

    Returns:
        ``Path`` of the last checkpoint directory, loadable with ``vlarm.policies.load_policy``.

    The new policy's config records the tasks it learns (:func:`trained_tasks`).

    Raises:
        ValueError: empty dataset or image size mismatch; a val/test-split dataset; non-finite settings; task
            datasets that record other tasks or other observation settings (multi-task); a loss
            that turns NaN/inf (training diverged, the message names the step); a run with other settings in
            ``out_dir``; a complete checkpoint in ``out_dir`` with ``resume=False``.
        CheckpointError: unreadable resume checkpoint; ``checkpoints/`` holds only incomplete checkpoints.
    """
    cpu_start = time.process_time()
    threads = config.torch_threads()
    torch.set_num_threads(threads)
    logger.info("training with %d torch threads", threads)
    out_dir = Path(config.out_dir)
    ckpt_dir = out_dir / "checkpoints"
    last_dir = ckpt_dir / "last"
    if dataset is None:
        dataset = _open_dataset(config)
    split = getattr(dataset, "split", None) or getattr(getattr(dataset, "dataset_info", None), "split", "train")
    if split != "train":
        raise ValueError(f"the dataset holds {split}-split episodes; policies learn from train-split demonstrations "
                         f"only (val chooses checkpoints, test is read once): collect with --split train")
    if hasattr(dataset, "select_episodes"):
        available = int(getattr(dataset, "episodes_per_task", dataset.num_episodes))
        if int(config.demos) > available:
            logger.warning("asked for %d demos%s, the dataset has %d: using %d", config.demos,
                           " per task" if config.tasks else "", available, available)
            config = dataclasses.replace(config, demos=available)  # record what was used
        dataset = dataset.select_episodes(int(config.demos))
    sample_frames = getattr(dataset, "sample_frames", None)  # multi-task: balanced across tasks

    rng = np.random.default_rng(config.seed)
    resume_dir, incomplete = find_resume_checkpoint(ckpt_dir)
    if resume_dir is not None and not config.resume:
        raise ValueError(f"{out_dir} already holds a training run (checkpoint {resume_dir.name}); pass resume=True "
                         "to continue it, or a new out_dir to start a fresh run")
    if resume_dir is None and incomplete:
        raise CheckpointError(f"{ckpt_dir} holds no complete checkpoint ({', '.join(p.name for p in incomplete)} "
                              f"lack files of {list(CHECKPOINT_FILES)}); move {ckpt_dir} away to start the run "
                              "again from step 0, or pass a new out_dir")
    resuming = resume_dir is not None
    torch.manual_seed(config.seed)
    if resuming:
        _check_same_run(resume_dir, config)
        if resume_dir != last_dir:  # a kill during a save: put the newest complete checkpoint back in place
            logger.warning("resuming from %s (checkpoints/last is missing or older)", resume_dir)
            copy_checkpoint(resume_dir, last_dir)
        policy = Policy.from_pretrained(last_dir)
    else:
        policy = make_policy(config.policy, **_normalization_overrides(config, dataset),
                             **{"tasks": trained_tasks(config, dataset), **trained_observation(dataset),
                                **config.policy_overrides})
    device = resolve_device(config.device)
    policy.to(device).train()
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    step, seconds, cpu_base = 0, 0.0, 0.0
    if resuming:
        state = load_training_state(last_dir, optimizer, rng)
        step, seconds = int(state["step"]), float(state["seconds"])
    if trained_enough(out_dir, step, config):
        return last_dir

    store = FrameStore(dataset, policy, cache_features=config.cache_features)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / LOG_NAME
    logged_cpu = prepare_log(log_path, step)
    if resuming:
        cpu_base = float(state.get("process_cpu_seconds", logged_cpu or 0.0))

    def run_cpu_seconds() -> float:
        return cpu_base + time.process_time() - cpu_start

    log_file = log_path.open("a", newline="")
    writer = csv.writer(log_file)
    window: list[dict] = []
    bar = tqdm(
        total=config.steps,
        initial=step,
        desc=f"train {policy.name}",
        disable=not config.progress,
        dynamic_ncols=True,
    )
    try:
        while step < config.steps:
            start = time.perf_counter()
            if sample_frames is not None:
                indices = sample_frames(rng, config.batch_size)
            else:
                indices = rng.integers(0, len(store), size=config.batch_size)
            batch = store.batch(indices, rng if config.augment else None, config.theta_sigma, config.translation_sigma,
                                config.color_permutation)
            if device.type != "cpu":
                batch = batch_to(batch, device)
            loss, info = policy(batch)
            if not torch.isfinite(loss):
                raise ValueError(
                    f"training diverged at step {step + 1}: the loss is {loss.item()}; lower --lr (now {config.lr}) "
                    f"and start again, or resume from the last checkpoint before it ({last_dir})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            config.set_lr(optimizer, step)
            optimizer.step()
            step += 1
            seconds += time.perf_counter() - start
            window.append(info)
            bar.update(1)
            if step % config.log_every == 0 or step == config.steps:
                mean = {k: float(np.mean([w[k] for w in window])) for k in ("loss", "pick_loss", "place_loss")}
                writer.writerow(
                    [
                        step,
                        f"{mean['loss']:.5f}",
                        f"{mean['pick_loss']:.5f}",
                        f"{mean['place_loss']:.5f}",
                        f"{seconds:.2f}",
                        f"{run_cpu_seconds():.1f}",
                    ]
                )
                log_file.flush()
                bar.set_postfix(
                    loss=f"{mean['loss']:.3f}",
                    pick=f"{mean['pick_loss']:.3f}",
                    place=f"{mean['place_loss']:.3f}",
                )
                window = []
            if step % config.save_every == 0 or step == config.steps:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                step_dir = save_checkpoint(ckpt_dir / f"step_{step:06d}", policy, optimizer, step, rng, seconds, config,
                                           process_cpu_seconds=run_cpu_seconds())
                copy_checkpoint(step_dir, last_dir)
    finally:
        bar.close()
        log_file.close()
    return last_dir
