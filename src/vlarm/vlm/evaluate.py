"""CLIP_benchmark-style evaluation: zero-shot classification, retrieval Recall@K and linear probes.

Conventions (REFERENCE.md Sec. 6): the class embedding is the L2-normalised mean of the normalised
embeddings of several prompt templates (CLIP, Radford et al. 2021, Sec. 3.1.4); zero-shot reports top-1,
top-5 and mean per-class recall; retrieval reports image->text and text->image Recall@1/5/10 ("at least one
correct in the top k"); the linear probe is L2-regularised logistic regression on frozen, normalised image
features (CLIP Sec. 3.2, App. A.3), its C chosen on validation data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vlarm.vlm.model import DualEncoder

#: Small default template set for generic objects (a subset in the spirit of CLIP's 80 ImageNet prompts).
DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a close-up photo of a {}.",
)


@torch.no_grad()
def encode_images(
    model: DualEncoder,
    images: torch.Tensor,
    batch_size: int = 64,
    normalize: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """Embed a stack of preprocessed images in batches.

    Args:
        model: a dual encoder (put in eval mode here).
        images: ``(N, 3, S, S)`` float32, already transformed.
        batch_size: images per forward pass.
        normalize: L2-normalise the output.
        progress: show a tqdm bar.

    Returns:
        ``(N, D)`` float32 embeddings.
    """
    model.eval()
    chunks = range(0, images.shape[0], batch_size)
    out = [
        model.encode_image(images[i : i + batch_size], normalize=normalize)
        for i in tqdm(chunks, desc="encode images", disable=not progress)
    ]
    return torch.cat(out) if out else torch.zeros(0, 0)


@torch.no_grad()
def encode_texts(model: DualEncoder, tokenizer, texts: Sequence[str], batch_size: int = 128) -> torch.Tensor:
    """Embed N strings; returns ``(N, D)`` float32 L2-normalised embeddings."""
    model.eval()
    out = [
        model.encode_text(tokenizer(list(texts[i : i + batch_size])), normalize=True)
        for i in range(0, len(texts), batch_size)
    ]
    return torch.cat(out)


@torch.no_grad()
def zero_shot_classifier(
    model: DualEncoder, tokenizer, classnames: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> torch.Tensor:
    """Build zero-shot class weights from a prompt-template ensemble (CLIP Sec. 3.1.4).

    Each class embedding is ``normalize(mean_t normalize(encode_text(template_t.format(class))))``.

    Args:
        model: a dual encoder.
        tokenizer: its tokenizer.
        classnames: C class names.
        templates: T format strings, each with one ``{}``.

    Returns:
        ``(D, C)`` float32 matrix of unit-norm class embeddings (columns).

    Raises:
        ValueError: if there are no classes or no templates, or a template lacks ``{}``.
    """
    if not classnames or not templates:
        raise ValueError("need at least one class name and one template")
    if any("{}" not in t for t in templates):
        raise ValueError(f"every template needs a '{{}}' placeholder: {list(templates)}")
    texts = [t.format(c) for c in classnames for t in templates]
    emb = encode_texts(model, tokenizer, texts).view(len(classnames), len(templates), -1)
    return F.normalize(emb.mean(dim=1), dim=-1).t().contiguous()


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Top-1, top-5 and mean per-class recall (balanced accuracy), as fractions in [0, 1].

    Args:
        logits: ``(N, C)`` float scores.
        labels: ``(N,)`` int64 true classes.

    Returns:
        ``{"top1", "top5", "mean_per_class_recall"}``; top-5 becomes top-C when C < 5. Classes absent from
        ``labels`` are left out of the per-class mean.
    """
    labels = labels.long()
    k = min(5, logits.shape[1])
    topk = logits.topk(k, dim=1).indices
    top1 = (topk[:, 0] == labels).float().mean().item()
    top5 = (topk == labels[:, None]).any(dim=1).float().mean().item()
    pred = topk[:, 0]
    recalls = [(pred[labels == c] == c).float().mean().item() for c in labels.unique().tolist()]
    return {"top1": top1, "top5": top5, "mean_per_class_recall": float(np.mean(recalls))}


def zero_shot_metrics(image_features: torch.Tensor, classifier: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Zero-shot classification metrics from ``(N, D)`` normalised image features and a ``(D, C)``
    classifier (see :func:`zero_shot_classifier`); returns :func:`classification_metrics`."""
    return classification_metrics(image_features @ classifier, labels)


def retrieval_metrics(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_to_image: torch.Tensor | Sequence[int] | None = None,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Image->text and text->image Recall@K.

    Recall@K for a query is 1 if at least one of its correct items is among the K most similar, else 0;
    the metric is the mean over queries (CLIP_benchmark's definition).

    Args:
        image_features: ``(N_img, D)`` float, L2-normalised.
        text_features: ``(N_txt, D)`` float, L2-normalised.
        text_to_image: ``(N_txt,)`` int index of each caption's image (several captions may share one image);
            default ``arange`` (one caption per image, N_txt == N_img).
        ks: the K values.

    Returns:
        ``{"image_retrieval_recall@K", "text_retrieval_recall@K"}`` for each K, fractions in [0, 1]
        (image retrieval = text query finds the image; text retrieval = image query finds a caption).

    Raises:
        ValueError: on mismatched sizes.
    """
    n_img, n_txt = image_features.shape[0], text_features.shape[0]
    if text_to_image is None:
        if n_img != n_txt:
            raise ValueError(f"{n_img} images and {n_txt} texts: pass text_to_image")
        text_to_image = torch.arange(n_txt)
    text_to_image = torch.as_tensor(text_to_image, dtype=torch.long)
    if text_to_image.shape != (n_txt,):
        raise ValueError(f"text_to_image must have shape ({n_txt},), got {tuple(text_to_image.shape)}")
    sim = text_features @ image_features.t()  # (N_txt, N_img)
    positive = torch.zeros(n_txt, n_img, dtype=torch.bool)
    positive[torch.arange(n_txt), text_to_image] = True
    out = {}
    for k in ks:
        kt = min(k, n_img)
        top_img = sim.topk(kt, dim=1).indices
        out[f"image_retrieval_recall@{k}"] = positive.gather(1, top_img).any(1).float().mean().item()
        ki = min(k, n_txt)
        top_txt = sim.t().topk(ki, dim=1).indices
        out[f"text_retrieval_recall@{k}"] = positive.t().gather(1, top_txt).any(1).float().mean().item()
    return out


def linear_probe(
    train_features: np.ndarray | torch.Tensor,
    train_labels: np.ndarray | torch.Tensor,
    val_features: np.ndarray | torch.Tensor | None = None,
    val_labels: np.ndarray | torch.Tensor | None = None,
    c_grid: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0),
    max_iter: int = 1000,
    seed: int = 0,
):
    """Fit a logistic-regression probe on frozen, L2-normalised features (CLIP Sec. 3.2, App. A.3).

    The inverse regularisation strength C is chosen on ``(val_features, val_labels)``; without validation
    data C = 1. The chosen probe is then refit on train + val.

    Args:
        train_features: ``(N, D)`` float features (normalised here).
        train_labels: ``(N,)`` int labels.
        val_features: ``(M, D)`` float validation features, or None.
        val_labels: ``(M,)`` int validation labels, or None.
        c_grid: candidate C values.
        max_iter: L-BFGS iterations.
        seed: random state.

    Returns:
        ``(classifier, info)``: a fitted ``sklearn.linear_model.LogisticRegression`` whose
        ``decision_function`` expects normalised features, and ``{"C": chosen, "val_accuracy": ...}``.
    """
    from sklearn.linear_model import LogisticRegression

    def norm(x):
        x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)

    def arr(y):
        return np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y).astype(np.int64)

    xtr, ytr = norm(train_features), arr(train_labels)
    best_c, best_acc = 1.0, float("nan")
    if val_features is not None and val_labels is not None and len(c_grid) > 1:
        xva, yva = norm(val_features), arr(val_labels)
        best_acc = -1.0
        for c in c_grid:
            clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed).fit(xtr, ytr)
            acc = float((clf.predict(xva) == yva).mean())
            if acc > best_acc:
                best_c, best_acc = c, acc
        xtr, ytr = np.concatenate([xtr, xva]), np.concatenate([ytr, yva])
    clf = LogisticRegression(C=best_c, max_iter=max_iter, random_state=seed).fit(xtr, ytr)
    return clf, {"C": best_c, "val_accuracy": best_acc}
