import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vlarm.vlm.evaluate import (
    classification_metrics,
    linear_probe,
    retrieval_metrics,
    zero_shot_classifier,
    zero_shot_metrics,
)


class _StubModel(nn.Module):
    """encode_text looks embeddings up by the exact text (tokenizer is the identity)."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def encode_text(self, texts, normalize=False):
        out = torch.stack([self.table[t] for t in texts])
        return F.normalize(out, dim=-1) if normalize else out


def test_zero_shot_classifier_is_normalised_template_mean():
    table = {
        "a {}": None,
        "a cat": torch.tensor([2.0, 0.0, 0.0]),
        "photo of cat": torch.tensor([0.0, 3.0, 0.0]),
        "a dog": torch.tensor([0.0, 0.0, 1.0]),
        "photo of dog": torch.tensor([0.0, 0.0, 5.0]),
    }
    model = _StubModel(table)
    w = zero_shot_classifier(model, lambda texts: texts, ["cat", "dog"], ["a {}", "photo of {}"])
    assert w.shape == (3, 2)
    # cat: mean of unit vectors e0 and e1 -> (1/2, 1/2, 0), normalised -> (1/sqrt2, 1/sqrt2, 0)
    assert torch.allclose(w[:, 0], torch.tensor([2**-0.5, 2**-0.5, 0.0]), atol=1e-6)
    assert torch.allclose(w[:, 1], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    img = F.normalize(torch.tensor([[1.0, 0.9, 0.1], [0.0, 0.1, 1.0]]), dim=-1)
    metrics = zero_shot_metrics(img, w, torch.tensor([0, 1]))
    assert metrics["top1"] == 1.0 and metrics["mean_per_class_recall"] == 1.0
    with pytest.raises(ValueError):
        zero_shot_classifier(model, lambda t: t, ["cat"], ["no placeholder"])


def test_classification_metrics_by_hand():
    logits = torch.tensor([[3.0, 2, 1, 0, -1, -2], [0.0, 1, 2, 3, 4, 5], [5.0, 4, 3, 2, 1, 0], [0, 0, 0, 0, 0, 1.0]])
    labels = torch.tensor([0, 0, 5, 5])
    m = classification_metrics(logits, labels)
    assert m["top1"] == 0.5  # rows 0 and 3 correct
    assert m["top5"] == 0.5  # row 1: class 0 ranked 6th; row 2: class 5 ranked 6th
    assert m["mean_per_class_recall"] == 0.5


def test_retrieval_recall_toy_case():
    # 3 images on the axes; texts: t0 -> img0 exactly, t1 closer to img2 than img1, t2 -> img2.
    img = torch.eye(3)
    txt = F.normalize(torch.tensor([[1.0, 0, 0], [0, 0.6, 0.8], [0.0, 0, 1]]), dim=-1)
    m = retrieval_metrics(img, txt, ks=(1, 2))
    assert m["image_retrieval_recall@1"] == pytest.approx(2 / 3)  # t1 retrieves img2 first
    assert m["image_retrieval_recall@2"] == 1.0
    # image queries: img0 -> t0; img1 -> t1 (only text with y); img2 -> t2 (1.0 > 0.8)
    assert m["text_retrieval_recall@1"] == 1.0
    # several captions per image: both t1 and t2 belong to image 2 -> every query right at k = 1
    m2 = retrieval_metrics(img[[0, 2]], txt, text_to_image=[0, 1, 1], ks=(1,))
    assert m2["image_retrieval_recall@1"] == 1.0 and m2["text_retrieval_recall@1"] == 1.0


def test_linear_probe_chooses_c_on_validation():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 8, generator=g) * 3
    y = torch.arange(3).repeat(20)
    x = centers[y] + torch.randn(60, 8, generator=g)
    clf, info = linear_probe(x[:45], y[:45], x[45:], y[45:], c_grid=(0.01, 1.0))
    assert info["C"] in (0.01, 1.0) and info["val_accuracy"] > 0.8
    xn = F.normalize(x, dim=-1).numpy()
    assert (clf.predict(xn) == y.numpy()).mean() > 0.8
