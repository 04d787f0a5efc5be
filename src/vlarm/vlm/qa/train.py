"""Training MIAVLM (and its baselines) on the attribute-question benchmark, with or without negative instructions.

The MIAVLM paper (Sec. "Negative instructions"; REFERENCE.md Sec. 5) tunes with questions whose answer is "No"
added to the positive ones, to remove the yes-bias; its ablation trains without them (HoOA 0.665 -> 0.787). Its
training: LM loss, Adam, lr 1e-3, cosine annealing, 20 epochs. Here, per batch of scenes:

* every positive question of the scenes (label yes);
* *existence negatives* (both settings): for each positive, a question from another training scene about an object
  this scene does not hold (label no). They stand for the generic "No" data a pretrained model has seen, and teach
  it to check that the object exists, but never that an attribute is wrong (HoOE, not HoOA);
* *negative instructions* (with them only): for each positive, its negative twin from one of the three POPE settings,
  drawn at random each epoch (label no).

The loss is binary cross-entropy on the "yes" logit (the LM loss restricted to the two answers), with the negatives
weighted so that yes and no carry equal total weight.

Against MAP's view weights collapsing onto one view (seen at 20 epochs: every weight on the front camera, so nine
views answered like one), two optional regularisers, ours, not the paper's: *view dropout* leaves each view of a
training scene out with probability ``view_dropout`` (at least one kept; MAP's softmax then runs over the views
kept, which it allows for any number of views), so no single view can be relied on; and an *entropy bonus*
subtracts ``view_entropy`` times the mean entropy of the weights (divided by ``log n``, so 1 means uniform) from the
loss. After every epoch the model, optimiser and progress are
written to ``OUT/checkpoint`` (a new directory swapped in by renames, so a kill leaves a complete one); a rerun with
the same configuration resumes from it. No checkpoint is selected on test data: the last epoch is the model.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vlarm.vlm.qa.dataset import NEGATIVE_SETTINGS, QABenchmark
from vlarm.vlm.qa.inference import benchmark_view_inputs
from vlarm.vlm.qa.model import (
    FUSIONS,
    MIAVLM,
    QUESTION_ENCODERS,
    MIAVLMConfig,
    QuestionFeaturizer,
    build_vocabulary,
    view_set,
)

CHECKPOINT_DIR = "checkpoint"
MODEL_WEIGHTS = "model.safetensors"
MODEL_CONFIG = "config.json"
OPTIMIZER_WEIGHTS = "optimizer.safetensors"
TRAIN_STATE = "train_state.json"


@dataclass
class QATrainConfig:
    """A training run (recorded in the checkpoint; a resume with other values is refused).

    Attributes:
        benchmark: benchmark directory (``vlarm vlm qa build``).
        out: output directory (``OUT/checkpoint`` holds the model and the training state).
        fusion: the model, one of :data:`vlarm.vlm.qa.model.FUSIONS` (``map`` = MIAVLM).
        views: view set, ``"1"`` (front camera) or ``"1+8"`` (all nine views).
        negative_instructions: add each positive's negative twin (module docstring).
        question_encoder: ``minilm`` or ``words``.
        epochs: passes over the training scenes (paper: 20).
        lr: Adam learning rate, annealed to 0 on a cosine (paper: 1e-3).
        batch_scenes: scenes per batch (all their questions train together).
        seed: seed of initialisation, data order and negative draws.
        view_dropout: probability of leaving each view of a training scene out (``map`` and ``mean`` fusion only).
        view_entropy: weight of the view-weight entropy bonus (``map`` fusion only).
        model: overrides of :class:`vlarm.vlm.qa.model.MIAVLMConfig` fields (e.g. ``{"width": 32}``).

    Raises:
        ValueError: an unknown fusion, view set or question encoder, or a count/rate out of range.
    """

    benchmark: str
    out: str
    fusion: str = "map"
    views: str = "1+8"
    negative_instructions: bool = True
    question_encoder: str = "minilm"
    epochs: int = 20
    lr: float = 1e-3
    batch_scenes: int = 8
    seed: int = 0
    view_dropout: float = 0.0
    view_entropy: float = 0.0
    model: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate the fields (see the class docstring)."""
        self.benchmark, self.out = str(self.benchmark), str(self.out)
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; valid: {', '.join(FUSIONS)}")
        if self.question_encoder not in QUESTION_ENCODERS:
            raise ValueError(f"unknown question encoder {self.question_encoder!r}; valid: "
                             f"{', '.join(QUESTION_ENCODERS)}")
        view_set(self.views)
        if self.epochs < 1 or self.batch_scenes < 1:
            raise ValueError(f"epochs and batch_scenes must be >= 1, got {self.epochs} and {self.batch_scenes}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.view_dropout < 1:
            raise ValueError(f"view_dropout must be in [0, 1), got {self.view_dropout}")
        if self.view_dropout > 0 and self.fusion not in ("map", "mean"):
            raise ValueError(f"view_dropout needs fusion map or mean (they take any subset of views), not "
                             f"{self.fusion!r}")
        if self.view_entropy < 0 or (self.view_entropy > 0 and self.fusion != "map"):
            raise ValueError(f"view_entropy must be >= 0, and 0 unless fusion is map; got {self.view_entropy} with "
                             f"{self.fusion!r}")


def _replace_dir(tmp: Path, directory: Path) -> None:
    """Swap a finished ``tmp`` directory in for ``directory`` by renames (a kill leaves one complete copy)."""
    old = directory.with_name(directory.name + ".old")
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def save_model(model: MIAVLM, directory: str | Path, extra: dict | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (:func:`vlarm.weights.save_weights`) into ``directory``.

    Args:
        model: the model.
        directory: destination (created).
        extra: more JSON-ready entries for ``config.json`` (e.g. ``{"train": ...}``).

    Returns:
        ``directory`` as a ``Path``.
    """
    from vlarm.weights import save_weights

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(model.state_dict(), directory / MODEL_WEIGHTS, metadata={"type": "miavlm"})
    (directory / MODEL_CONFIG).write_text(json.dumps({"model": model.config.to_dict(), **(extra or {})}, indent=1))
    return directory


def load_model(directory: str | Path) -> MIAVLM:
    """Load a model saved by :func:`save_model` or a training output directory (its ``checkpoint``), in eval mode.

    Raises:
        ValueError: no ``config.json`` there, or a config that does not fit the weights.
        vlarm.weights.WeightsError: missing, damaged or non-finite weights.
    """
    from vlarm.weights import load_weights

    directory = Path(directory)
    if (directory / CHECKPOINT_DIR / MODEL_CONFIG).is_file():
        directory = directory / CHECKPOINT_DIR
    if not (directory / MODEL_CONFIG).is_file():
        raise ValueError(f"{directory} holds no MIAVLM model (no {MODEL_CONFIG}); train one with `vlarm vlm qa train`")
    config = MIAVLMConfig(**json.loads((directory / MODEL_CONFIG).read_text())["model"])
    model = MIAVLM(config)
    state, _ = load_weights(directory / MODEL_WEIGHTS)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{directory}: weights do not fit {MODEL_CONFIG} ({str(err).splitlines()[0]})") from err
    return model.eval()


def _save_checkpoint(out: Path, model: MIAVLM, optimizer: torch.optim.Optimizer, epoch: int, step: int,
                     config: QATrainConfig, log: dict) -> None:
    from vlarm.weights import save_weights

    tmp = out / (CHECKPOINT_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp, extra={"train": asdict(config)})
    state = optimizer.state_dict()
    tensors = {f"state.{i}.{k}": torch.as_tensor(v).detach().clone().contiguous()
               for i, entries in state["state"].items() for k, v in entries.items()}
    save_weights(tensors, tmp / OPTIMIZER_WEIGHTS)
    (tmp / TRAIN_STATE).write_text(json.dumps({"epoch": epoch, "step": step, "param_groups": state["param_groups"],
                                               "config": asdict(config), "last_epoch": log}, indent=1))
    _replace_dir(tmp, out / CHECKPOINT_DIR)


def _resume(out: Path, config: QATrainConfig, model: MIAVLM, optimizer: torch.optim.Optimizer) -> tuple[int, int]:
    """Load ``OUT/checkpoint`` into model and optimiser; returns ``(epochs done, steps done)`` ((0, 0) if none)."""
    from vlarm.weights import load_weights

    ckpt = out / CHECKPOINT_DIR
    if not (ckpt / TRAIN_STATE).is_file():
        return 0, 0
    state = json.loads((ckpt / TRAIN_STATE).read_text())
    if state["config"] != asdict(config):
        raise ValueError(f"{ckpt} was trained with another configuration ({state['config']}); asked for "
                         f"{asdict(config)}: use another --out or the same settings")
    model.load_state_dict(load_weights(ckpt / MODEL_WEIGHTS)[0])
    tensors, _ = load_weights(ckpt / OPTIMIZER_WEIGHTS)
    opt_state: dict = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        opt_state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    return int(state["epoch"]), int(state["step"])


def names_absent_object(objects: list[dict], record: dict) -> bool:
    """True when a question record names an object the scene does not hold (its answer is "no" for lack of the object).

    Args:
        objects: the scene's objects (:meth:`vlarm.vlm.qa.dataset.QABenchmark.scene_objects`), ``kind`` and ``color``
            each.
        record: a question record (``type``, ``subject``: a kind, or a colour for ``shape`` questions; ``other``: the
            reference kind of a relation, else None).
    """
    kinds, colors = {o["kind"] for o in objects}, {o["color"] for o in objects}
    subject_there = record["subject"] in (colors if record["type"] == "shape" else kinds)
    return not subject_there or (record["other"] is not None and record["other"] not in kinds)


def view_mask(rng: np.random.Generator, scenes: int, views: int, dropout: float) -> torch.Tensor:
    """``(scenes, views)`` bool mask keeping each view with probability ``1 - dropout``; a scene left with none keeps
    one view drawn uniformly."""
    keep = rng.random((scenes, views)) >= dropout
    for row in np.flatnonzero(~keep.any(axis=1)):
        keep[row, rng.integers(views)] = True
    return torch.from_numpy(keep)


def view_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Mean entropy of ``(B, n)`` view weights (rows summing to 1) over ``log n``: 1 for uniform, 0 for one view."""
    n = weights.shape[1]
    if n < 2:
        return weights.new_zeros(())
    return -(weights * weights.clamp_min(1e-12).log()).sum(1).mean() / math.log(n)


class TrainingQuestions:
    """The questions of each training batch (module docstring).

    Args:
        bench: the benchmark.
        objects: every scene's objects, by index (:meth:`vlarm.vlm.qa.dataset.QABenchmark.scene_objects`).
        negative_instructions: include the positives' negative twins.
    """

    def __init__(self, bench: QABenchmark, objects: list[list[dict]], negative_instructions: bool):
        self.objects = objects
        self.negative_instructions = negative_instructions
        records = bench.questions("train")
        self.positives: dict[int, list[dict]] = {}
        self.negatives: dict[str, dict[str, dict]] = {}
        for r in records:
            if r["polarity"] == "positive":
                self.positives.setdefault(r["scene"], []).append(r)
            else:
                self.negatives.setdefault(r["pair"], {})[r["setting"]] = r
        self.pool = [r for rs in self.positives.values() for r in rs]
        self.scenes = np.array(sorted(self.positives), dtype=np.int64)

    def batch(self, scenes: list[int], rng: np.random.Generator) -> tuple[list[str], list[int], list[float], int]:
        """Questions about ``scenes``.

        Returns:
            ``(texts, labels, scene positions, n_existence)``: question strings, 1/0 labels, the position in
            ``scenes`` of each question's scene, and how many are existence negatives.
        """
        texts, labels, where = [], [], []
        n_existence = 0
        for k, index in enumerate(scenes):
            for r in self.positives.get(index, []):
                texts.append(r["question"])
                labels.append(1.0)
                where.append(k)
                if self.negative_instructions:
                    neg = self.negatives[r["pair"]][NEGATIVE_SETTINGS[int(rng.integers(len(NEGATIVE_SETTINGS)))]]
                    texts.append(neg["question"])
                    labels.append(0.0)
                    where.append(k)
                for _ in range(10):
                    other = self.pool[int(rng.integers(len(self.pool)))]
                    if other["scene"] != index and names_absent_object(self.objects[index], other):
                        texts.append(other["question"])
                        labels.append(0.0)
                        where.append(k)
                        n_existence += 1
                        break
        return texts, labels, where, n_existence


def build_model(config: QATrainConfig, bench: QABenchmark) -> MIAVLM:
    """The untrained model a training configuration describes (vocabulary from every benchmark question string of the
    train split, image size from the benchmark).

    Raises:
        ValueError: the view set needs more views than the benchmark renders.
    """
    views = view_set(config.views)
    if max(views) >= bench.n_views:
        raise ValueError(f"view set {config.views!r} needs {max(views) + 1} views; the benchmark has "
                         f"{bench.n_views}: build one with more --sampled-views")
    vocab = build_vocabulary([r["question"] for r in bench.questions("train")])
    cfg = MIAVLMConfig(**{"fusion": config.fusion, "views": views, "image_size": bench.image_size,
                          "question_encoder": config.question_encoder,
                          "vocabulary": vocab if config.question_encoder == "words" else (), **config.model})
    return MIAVLM(cfg)


def train(config: QATrainConfig, progress: bool = True) -> dict:
    """Train (or resume) a model on a benchmark's train split.

    Args:
        config: the run.
        progress: show a progress bar over epochs.

    Returns:
        ``{"checkpoint": path, "epochs": done, "log": [per-epoch dicts: epoch, loss, train accuracy, mean view
        weight of each view over the epoch's scenes (dropped views count 0), CPU seconds]}``; the log is also appended
        to ``OUT/log.jsonl``.

    Raises:
        ValueError: a benchmark problem (see :class:`vlarm.vlm.qa.dataset.QABenchmark`), or an ``OUT`` trained with
            another configuration.
    """
    from tqdm.auto import tqdm

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    bench = QABenchmark(config.benchmark)
    torch.manual_seed(config.seed)
    model = build_model(config, bench)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    start, step = _resume(out, config, model, optimizer)
    data = TrainingQuestions(bench, bench.scene_objects(), config.negative_instructions)
    inputs = benchmark_view_inputs(model, bench, progress)
    featurize = QuestionFeaturizer(model.config)
    steps_per_epoch = math.ceil(len(data.scenes) / config.batch_scenes)
    total = steps_per_epoch * config.epochs
    log = []
    for epoch in tqdm(range(start, config.epochs), desc="train epochs", disable=not progress):
        t0 = time.process_time()
        rng = np.random.default_rng([config.seed, epoch])
        torch.manual_seed(config.seed * 100_003 + epoch)
        model.train()
        order = rng.permutation(data.scenes)
        losses, correct, seen, weight_sums = [], 0, 0, torch.zeros(inputs.shape[1])
        for b in range(steps_per_epoch):
            scenes = [int(s) for s in order[b * config.batch_scenes:(b + 1) * config.batch_scenes]]
            texts, labels, where, _ = data.batch(scenes, rng)
            feats, mask = featurize(texts)
            y = torch.tensor(labels)
            n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
            weight = torch.where(y > 0, 1.0, n_pos / max(n_neg, 1.0))
            for group in optimizer.param_groups:
                group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            keep = (view_mask(rng, len(scenes), inputs.shape[1], config.view_dropout)
                    if config.view_dropout > 0 else None)
            visual, weights = model.encode_views(inputs=inputs[scenes], view_mask=keep)
            logits = model.answer_logits(visual[torch.tensor(where)], feats, mask)
            loss = F.binary_cross_entropy_with_logits(logits, y, weight=weight, reduction="sum") / (2 * n_pos)
            if config.view_entropy > 0:
                loss = loss - config.view_entropy * view_entropy(weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            losses.append(loss.item())
            if weights is not None:
                weight_sums += weights.detach().sum(0)
            correct += int(((logits > 0).float() == y).sum())
            seen += len(y)
        entry = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "train_accuracy": correct / max(seen, 1),
                 "view_weights": (None if model.config.fusion == "concat"
                                  else [round(float(w), 4) for w in weight_sums / len(data.scenes)]),
                 "cpu_seconds": time.process_time() - t0}
        log.append(entry)
        _save_checkpoint(out, model, optimizer, epoch + 1, step, config, entry)
        with (out / "log.jsonl").open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
    return {"checkpoint": str(out / CHECKPOINT_DIR), "epochs": config.epochs, "log": log}

