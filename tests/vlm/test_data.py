import numpy as np
import pytest

from vlarm.vlm.data import CsvImageCaptionDataset, load_fashion_mnist


def test_fashion_mnist_missing_gives_install_hint(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist("test", root=tmp_path)
    with pytest.raises(ValueError):
        load_fashion_mnist("validation", root=tmp_path)


def test_fashion_mnist_reads_idx_files(tmp_path):
    import gzip

    imgs = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as fh:
        fh.write((2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (2, 28, 28)) + imgs.tobytes())
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write((2049).to_bytes(4, "big") + (2).to_bytes(4, "big") + bytes([3, 9]))
    x, y = load_fashion_mnist("test", root=tmp_path)
    assert x.shape == (2, 28, 28) and np.array_equal(x, imgs) and y.tolist() == [3, 9]


def test_csv_dataset_open_clip_format(tmp_path, toy_pairs):
    from PIL import Image

    imgs, caps = toy_pairs(3)
    lines = ["filepath\ttitle"]
    for i, (img, cap) in enumerate(zip(imgs, caps, strict=True)):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png\t{cap}")
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    ds = CsvImageCaptionDataset(tmp_path / "train.csv")
    img, cap = ds[1]
    assert len(ds) == 3 and cap == caps[1] and np.array_equal(img, imgs[1])
    with pytest.raises(ValueError, match="caption"):
        CsvImageCaptionDataset(tmp_path / "train.csv", caption_key="caption")
