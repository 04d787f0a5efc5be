"""Few-shot transfer of a frozen dual encoder behind one API: :func:`fit_fewshot`.

Methods (REFERENCE.md Sec. 6), all on top of frozen, L2-normalised image features:

- ``zero-shot``: template-ensemble classifier, no training (CLIP, Radford et al. 2021, Sec. 3.1.4).
- ``linear-probe``: logistic regression, C chosen on validation data (CLIP Sec. 3.2).
- ``coop``: learned context vectors in the text encoder's word-embedding space, shared by all classes, class
  name at the end (Zhou et al. 2022, "Learning to Prompt for Vision-Language Models", Sec. 3.2; SGD lr 0.002).
- ``cocoop``: CoOp plus a meta-net (Linear-ReLU-Linear, bottleneck D/16) that adds an image-conditioned token
  to every context vector (Zhou et al. 2022, "Conditional Prompt Learning", Sec. 3.2).
- ``clip-adapter``: Linear(c, c/4)-ReLU-Linear(c/4, c)-ReLU on image features, residual ratio 0.2
  (Gao et al. 2021, "CLIP-Adapter", Sec. 3.2, Eq. 2-3).
- ``tip-adapter``: training-free cache model, ``logits = s f W + alpha exp(-beta (1 - f K^T)) V``
(Zhang et al.
  2022, "Tip-Adapter", Sec. 3.1, Eq. 3-5); ``tip-adapter-f`` fine-tunes the keys K (Sec. 3.2).

Every hyper-parameter that is searched (linear-probe C, Tip-Adapter alpha and beta) is chosen on the
validation features only; test data never enters :func:`fit_fewshot`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from vlarm.checks import FEWSHOT_METHODS
from vlarm.vlm.evaluate import DEFAULT_TEMPLATES, linear_probe, zero_shot_classifier
from vlarm.vlm.model import DualEncoder

METHODS = FEWSHOT_METHODS  # one list for the library and the CLI (vlarm.checks has no heavy imports)


@dataclass
class FewShotConfig:
    """Hyper-parameters of all transfer methods (defaults from the papers, scaled down for CPU).

    Attributes:
        seed: seeds torch for parameter init and batch order.
        n_ctx: number of learned context vectors (CoOp: 16, or 4 initialised from ``ctx_init``).
        ctx_init: words whose embeddings initialise the context when their token count equals ``n_ctx``
            ("" or a mismatch gives N(0, 0.02) init, as in CoOp).
        coop_lr / coop_epochs / coop_batch: SGD (momentum 0.9, cosine schedule) for CoOp and CoCoOp.
        coop_max_steps / cocoop_max_steps: if set, a fixed step budget replacing the epoch count.
        cocoop_batch: images per CoCoOp step (each costs C text-encoder passes).
        adapter_ratio: CLIP-Adapter residual ratio (0.2).
        adapter_lr / adapter_epochs: AdamW for CLIP-Adapter on cached features.
        tip_lr / tip_epochs: AdamW for Tip-Adapter-F keys (paper: 1e-3, 20 epochs).
        alpha_grid / beta_grid: Tip-Adapter search grids (validation only).
        probe_c_grid: linear-probe C grid (validation only).
        templates: prompt templates for the zero-shot classifier.
    """

    seed: int = 0
    n_ctx: int = 4
    ctx_init: str = "a photo of a"
    coop_lr: float = 0.002
    coop_epochs: int = 50
    coop_max_steps: int | None = None
    coop_batch: int = 32
    cocoop_batch: int = 8
    cocoop_epochs: int = 10
    cocoop_max_steps: int | None = None
    adapter_ratio: float = 0.2
    adapter_lr: float = 1e-3
    adapter_epochs: int = 100
    tip_lr: float = 1e-3
    tip_epochs: int = 20
    alpha_grid: Sequence[float] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
    beta_grid: Sequence[float] = (0.5, 1.0, 2.0, 3.5, 5.5, 7.5, 10.0, 15.0, 25.0)
    probe_c_grid: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0)
    templates: Sequence[str] = DEFAULT_TEMPLATES
    progress: bool = False
    extra: dict = field(default_factory=dict)


class FewShotClassifier(nn.Module):
    """A fitted transfer method: ``forward(image_features (N, D) normalised) -> logits (N, C)``.

    Attributes:
        method: the method name.
        info: chosen hyper-parameters and training summaries (JSON-serialisable).
    """

    def __init__(self, method: str):
        super().__init__()
        self.method = method
        self.info: dict = {}

    @torch.no_grad()
    def predict(self, image_features: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Logits for ``(N, D)`` features in batches, without gradients; returns ``(N, C)`` float32."""
        self.eval()
        return torch.cat([self(image_features[i : i + batch_size]) for i in range(0, len(image_features), batch_size)])


class _Linear(FewShotClassifier):
    def __init__(self, method: str, weight: torch.Tensor, scale: float, bias: torch.Tensor | None = None):
        super().__init__(method)
        self.register_buffer("weight", weight)  # (D, C)
        self.register_buffer("bias", bias if bias is not None else torch.zeros(weight.shape[1]))
        self.scale = scale

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` L2-normalised image features -> ``(B, C)`` float logits."""
        return self.scale * feats @ self.weight + self.bias


class PromptLearner(nn.Module):
    """CoOp's unified context: ``[SOS] v_1 ... v_M CLASSNAME . [EOS]`` with shared learnable ``v_m``.

    Args:
        model: a dual encoder with ``supports_prompt_learning``.
        tokenizer: its tokenizer (BERT-style: one leading special token).
        classnames: C class names.
        n_ctx: M, the number of context vectors.
        ctx_init: initialisation words (used only when they tokenise to exactly M tokens).
        cond_dim: if > 0, a CoCoOp meta-net maps a ``(B, cond_dim)`` image feature to a ``(B, W)`` shift.
    """

    def __init__(
        self,
        model: DualEncoder,
        tokenizer,
        classnames: Sequence[str],
        n_ctx: int,
        ctx_init: str,
        cond_dim: int = 0,
    ):
        super().__init__()
        if not getattr(model, "supports_prompt_learning", False):
            raise NotImplementedError(
                f"{type(model).__name__} does not expose token embeddings; CoOp/CoCoOp need a lit or scratch model"
            )
        self.model = [model]  # a list keeps the frozen model out of this module's parameters
        hf = tokenizer.hf
        placeholder = "x"
        prompts = [" ".join([placeholder] * n_ctx) + f" {name}." for name in classnames]
        tok = tokenizer(prompts)
        ids, mask = tok["input_ids"], tok["attention_mask"]
        ph_id = hf.convert_tokens_to_ids(placeholder)
        start = int((ids[0] == ph_id).nonzero()[0])
        if not bool((ids[:, start : start + n_ctx] == ph_id).all()):
            raise RuntimeError("could not locate the context placeholder tokens in the tokenised prompts")
        self.start, self.n_ctx = start, n_ctx
        self.register_buffer("input_ids", ids)
        self.register_buffer("attention_mask", mask)
        with torch.no_grad():
            base = model.token_embedding(ids).detach()
        self.register_buffer("base_embeds", base)
        width = base.shape[-1]
        init_ids = hf(ctx_init, add_special_tokens=False)["input_ids"] if ctx_init else []
        if len(init_ids) == n_ctx:
            with torch.no_grad():
                ctx = model.token_embedding(torch.tensor([init_ids]))[0].clone()
            self.info = {"ctx_init": ctx_init}
        else:
            ctx = torch.randn(n_ctx, width) * 0.02
            self.info = {"ctx_init": "random"}
        self.ctx = nn.Parameter(ctx)
        self.meta_net = None
        if cond_dim > 0:
            hidden = max(1, cond_dim // 16)
            self.meta_net = nn.Sequential(nn.Linear(cond_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, width))

    def text_features(self, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised class embeddings ``(C, D)`` for the shared context (or a given ``(M, W)`` context)."""
        ctx = self.ctx if ctx is None else ctx
        n_cls = self.base_embeds.shape[0]
        emb = self.base_embeds.clone()
        emb[:, self.start : self.start + self.n_ctx] = ctx.unsqueeze(0).expand(n_cls, -1, -1)
        return F.normalize(self.model[0].encode_text_embeds(emb, self.attention_mask), dim=-1)

    def conditional_text_features(self, image_features: torch.Tensor) -> torch.Tensor:
        """CoCoOp: ``(B, D)`` image features -> ``(B, C, D)`` normalised per-image class embeddings."""
        shift = self.meta_net(image_features)  # (B, W)
        n_img, n_cls = image_features.shape[0], self.base_embeds.shape[0]
        ctx = self.ctx.unsqueeze(0) + shift.unsqueeze(1)  # (B, M, W)
        emb = self.base_embeds.unsqueeze(0).repeat(n_img, 1, 1, 1)  # (B, C, L, W)
        emb[:, :, self.start : self.start + self.n_ctx] = ctx.unsqueeze(1).expand(-1, n_cls, -1, -1)
        mask = self.attention_mask.unsqueeze(0).expand(n_img, -1, -1)
        flat = self.model[0].encode_text_embeds(emb.flatten(0, 1), mask.flatten(0, 1))
        return F.normalize(flat, dim=-1).view(n_img, n_cls, -1)


class CoOpClassifier(FewShotClassifier):
    """CoOp / CoCoOp classifier: logits = s * f . t_c (t_c from the learned prompts)."""

    def __init__(self, method: str, prompts: PromptLearner, scale: float):
        super().__init__(method)
        self.prompts = prompts
        self.scale = scale
        self._cached: torch.Tensor | None = None

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` L2-normalised image features -> ``(B, C)`` float logits."""
        if self.prompts.meta_net is not None:
            text = self.prompts.conditional_text_features(feats)  # (B, C, D)
            return self.scale * torch.einsum("bd,bcd->bc", feats, text)
        if not self.training and self._cached is not None:
            text = self._cached
        else:
            text = self.prompts.text_features()
            self._cached = None if self.training else text.detach()
        return self.scale * feats @ text.t()

    def train(self, mode: bool = True):
        """Switch mode and drop the cached class embeddings (they change while training)."""
        self._cached = None
        return super().train(mode)


class ClipAdapterClassifier(FewShotClassifier):
    """CLIP-Adapter on the visual side: ``f' = r A(f) + (1 - r) f``, logits = s * normalize(f') W."""

    def __init__(self, weight: torch.Tensor, scale: float, ratio: float, reduction: int = 4):
        super().__init__("clip-adapter")
        dim = weight.shape[0]
        self.register_buffer("weight", weight)
        self.adapter = nn.Sequential(
            nn.Linear(dim, dim // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(dim // reduction, dim, bias=False),
            nn.ReLU(inplace=True),
        )
        self.ratio, self.scale = ratio, scale

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` L2-normalised image features -> ``(B, C)`` float logits."""
        mixed = self.ratio * self.adapter(feats) + (1 - self.ratio) * feats
        return self.scale * F.normalize(mixed, dim=-1) @ self.weight


class TipAdapterClassifier(FewShotClassifier):
    """Tip-Adapter cache model; ``keys`` is a parameter only for Tip-Adapter-F."""

    def __init__(
        self,
        method: str,
        weight: torch.Tensor,
        scale: float,
        keys: torch.Tensor,
        values: torch.Tensor,
        learn_keys: bool,
    ):
        super().__init__(method)
        self.register_buffer("weight", weight)
        self.register_buffer("values", values)  # (NK, C) one-hot
        if learn_keys:
            self.keys = nn.Parameter(keys.clone())
        else:
            self.register_buffer("keys", keys.clone())
        self.scale = scale
        self.alpha, self.beta = 1.0, 1.0

    def cache_logits(self, feats: torch.Tensor, beta: float | None = None) -> torch.Tensor:
        """``exp(-beta (1 - f K^T)) V``: ``(N, D)`` -> ``(N, C)`` (Tip-Adapter Eq. 4)."""
        beta = self.beta if beta is None else beta
        affinity = feats @ self.keys.t()
        return torch.exp(-beta * (1.0 - affinity)) @ self.values

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` L2-normalised image features -> ``(B, C)`` float logits."""
        return self.scale * feats @ self.weight + self.alpha * self.cache_logits(feats)

    @torch.no_grad()
    def search(self, val_feats: torch.Tensor, val_labels: torch.Tensor, alphas, betas) -> dict:
        """Pick (alpha, beta) maximising validation accuracy; sets them and returns the search summary."""
        zs = self.scale * val_feats @ self.weight
        best = (-1.0, self.alpha, self.beta)
        for beta in betas:
            cache = self.cache_logits(val_feats, beta)
            for alpha in alphas:
                acc = ((zs + alpha * cache).argmax(1) == val_labels).float().mean().item()
                if acc > best[0]:
                    best = (acc, alpha, beta)
        self.alpha, self.beta = float(best[1]), float(best[2])
        return {"alpha": self.alpha, "beta": self.beta, "val_accuracy": best[0]}


def _batches(n: int, batch: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + batch] for i in range(0, n, batch)]


def _train_loop(
    params,
    module: nn.Module,
    feats,
    labels,
    *,
    epochs: int,
    batch: int,
    lr: float,
    opt: str,
    gen: torch.Generator,
    desc: str,
    progress: bool,
    max_steps: int | None = None,
) -> dict:
    params = [p for p in params if p.requires_grad]
    if opt == "sgd":
        optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    else:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    per_epoch = math.ceil(len(feats) / batch)
    if max_steps is not None:  # a fixed step budget, independent of the number of shots
        epochs = math.ceil(max_steps / per_epoch)
    steps = epochs * per_epoch if max_steps is None else max_steps
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    module.train()
    losses = []
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False)
    for _ in range(epochs):
        for idx in _batches(len(feats), batch, gen):
            if len(losses) >= steps:
                break
            loss = F.cross_entropy(module(feats[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
    bar.close()
    module.eval()
    return {
        "steps": steps,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
    }


def fit_fewshot(
    method: str,
    model: DualEncoder,
    tokenizer,
    classnames: Sequence[str],
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor | None = None,
    val_labels: torch.Tensor | None = None,
    config: FewShotConfig | None = None,
    zero_shot_weights: torch.Tensor | None = None,
) -> FewShotClassifier:
    """Fit one transfer method on few-shot features of a frozen dual encoder.

    Args:
        method: one of :data:`METHODS`.
        model: the frozen dual encoder (its parameters are not changed).
        tokenizer: the model's tokenizer.
        classnames: C class names (used in prompts).
        train_features: ``(N, D)`` float32 L2-normalised image features of the K-shot training images.
        train_labels: ``(N,)`` int64 labels in ``[0, C)``.
        val_features: ``(M, D)`` validation features; required for ``linear-probe`` C and Tip-Adapter
        alpha/beta
            search (without them the defaults C = 1, alpha = 1, beta = 5.5 are used).
        val_labels: ``(M,)`` validation labels.
        config: hyper-parameters (defaults: :class:`FewShotConfig`).
        zero_shot_weights: optional precomputed ``(D, C)`` template-ensemble classifier (saves text passes).

    Returns:
        A :class:`FewShotClassifier`; ``clf.predict(features)`` gives ``(N, C)`` logits, ``clf.info``
        the choices.

    Raises:
        ValueError: on an unknown method or inconsistent shapes.
        NotImplementedError: CoOp/CoCoOp on a model without token-embedding access.
    """
    if method not in METHODS:
        raise ValueError(f"unknown few-shot method {method!r}; choose from {METHODS}")
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        return _fit(
            method,
            model,
            tokenizer,
            classnames,
            train_features,
            train_labels,
            val_features,
            val_labels,
            config or FewShotConfig(),
            zero_shot_weights,
        )
    finally:  # the caller's model comes back exactly as it was handed over
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _fit(
    method,
    model,
    tokenizer,
    classnames,
    train_features,
    train_labels,
    val_features,
    val_labels,
    cfg,
    zero_shot_weights,
) -> FewShotClassifier:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_labels = torch.as_tensor(train_labels, dtype=torch.long)
    if train_features.shape[0] != train_labels.shape[0]:
        raise ValueError(f"{train_features.shape[0]} features but {train_labels.shape[0]} labels")
    if val_labels is not None:
        val_labels = torch.as_tensor(val_labels, dtype=torch.long)
    has_val = val_features is not None and val_labels is not None and len(val_labels) > 0
    model.eval()
    scale = model.logit_multiplier
    n_cls = len(classnames)
    weights = zero_shot_weights
    if weights is None and method in ("zero-shot", "clip-adapter", "tip-adapter", "tip-adapter-f"):
        weights = zero_shot_classifier(model, tokenizer, classnames, cfg.templates)

    if method == "zero-shot":
        clf: FewShotClassifier = _Linear(method, weights, scale)
        clf.info = {"templates": list(cfg.templates)}
        return clf
    if method == "linear-probe":
        probe, info = linear_probe(
            train_features,
            train_labels,
            val_features if has_val else None,
            val_labels if has_val else None,
            cfg.probe_c_grid,
            seed=cfg.seed,
        )
        coef = torch.zeros(train_features.shape[1], n_cls)
        bias = torch.zeros(n_cls)
        w = torch.tensor(probe.coef_, dtype=torch.float32)
        b = torch.tensor(probe.intercept_, dtype=torch.float32)
        classes = probe.classes_.tolist()
        if len(classes) == 2 and n_cls >= 2:  # sklearn stores one row for binary problems
            coef[:, classes[1]], bias[classes[1]] = w[0], b[0]
        else:
            coef[:, classes], bias[classes] = w.t(), b
        # The probe was fit on normalised features, which the inputs already are.
        clf = _Linear(method, coef, 1.0, bias)
        clf.info = info
        return clf
    if method in ("coop", "cocoop"):
        cond = train_features.shape[1] if method == "cocoop" else 0
        prompts = PromptLearner(model, tokenizer, classnames, cfg.n_ctx, cfg.ctx_init, cond_dim=cond)
        clf = CoOpClassifier(method, prompts, scale)
        if method == "coop":
            epochs, batch, budget = cfg.coop_epochs, cfg.coop_batch, cfg.coop_max_steps
        else:
            epochs, batch, budget = cfg.cocoop_epochs, cfg.cocoop_batch, cfg.cocoop_max_steps
        summary = _train_loop(
            prompts.parameters(),
            clf,
            train_features,
            train_labels,
            epochs=epochs,
            batch=batch,
            lr=cfg.coop_lr,
            opt="sgd",
            gen=gen,
            desc=method,
            progress=cfg.progress,
            max_steps=budget,
        )
        clf.info = {**prompts.info, "n_ctx": cfg.n_ctx, **summary}
        return clf
    if method == "clip-adapter":
        clf = ClipAdapterClassifier(weights, scale, cfg.adapter_ratio)
        summary = _train_loop(
            clf.adapter.parameters(),
            clf,
            train_features,
            train_labels,
            epochs=cfg.adapter_epochs,
            batch=32,
            lr=cfg.adapter_lr,
            opt="adamw",
            gen=gen,
            desc=method,
            progress=cfg.progress,
        )
        clf.info = {"ratio": cfg.adapter_ratio, **summary}
        return clf
    # Tip-Adapter and Tip-Adapter-F
    values = F.one_hot(train_labels, n_cls).float()
    clf = TipAdapterClassifier(method, weights, scale, train_features, values, learn_keys=method == "tip-adapter-f")
    clf.alpha, clf.beta = 1.0, 5.5
    info: dict = {}
    if has_val:
        info["search"] = clf.search(val_features, val_labels, cfg.alpha_grid, cfg.beta_grid)
    if method == "tip-adapter-f":
        info["train"] = _train_loop(
            [clf.keys],
            clf,
            train_features,
            train_labels,
            epochs=cfg.tip_epochs,
            batch=256,
            lr=cfg.tip_lr,
            opt="adamw",
            gen=gen,
            desc=method,
            progress=cfg.progress,
        )
        if has_val:
            info["search_after_finetune"] = clf.search(val_features, val_labels, cfg.alpha_grid, cfg.beta_grid)
    clf.info = {**info, "alpha": clf.alpha, "beta": clf.beta}
    return clf


def sample_few_shot(
    labels: np.ndarray, shots: int, rng: np.random.Generator, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Indices of ``shots`` examples per class, drawn without replacement.

    Args:
        labels: ``(N,)`` int labels of the pool.
        shots: K examples per class.
        rng: numpy generator (the only source of randomness).
        exclude: optional indices that must not be drawn (e.g. the training shots when drawing validation).

    Returns:
        ``(C * K,)`` int64 indices sorted by class.

    Raises:
        ValueError: if a class has fewer than K available examples.
    """
    allowed = np.ones(len(labels), dtype=bool)
    if exclude is not None:
        allowed[np.asarray(exclude, dtype=np.int64)] = False
    out = []
    for c in np.unique(labels):
        pool = np.flatnonzero((labels == c) & allowed)
        if len(pool) < shots:
            raise ValueError(f"class {c} has {len(pool)} examples, fewer than {shots} shots")
        out.append(rng.choice(pool, size=shots, replace=False))
    return np.concatenate(out).astype(np.int64)


__all__ = [
    "METHODS",
    "ClipAdapterClassifier",
    "CoOpClassifier",
    "FewShotClassifier",
    "FewShotConfig",
    "PromptLearner",
    "TipAdapterClassifier",
    "fit_fewshot",
    "sample_few_shot",
]
