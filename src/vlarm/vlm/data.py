"""Image-caption and labelled-image data for the dual encoders.

- :class:`CsvImageCaptionDataset`: open_clip's CSV format (a tab-separated file with ``filepath`` and
  ``title`` columns); paths may be absolute or relative to the CSV's folder.
- :class:`ArrayImageCaptionDataset`: in-memory uint8 images with captions (tests, Fashion-MNIST).
- :func:`load_fashion_mnist`: the real Fashion-MNIST images from Debian's ``dataset-fashion-mnist`` package
  (Xiao, Rasul & Vollgraf 2017).
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Class names in label order (0-9) as published with the dataset.
FASHION_MNIST_CLASSES = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
#: Prompt templates used for Fashion-MNIST zero-shot classifiers.
FASHION_MNIST_TEMPLATES = (
    "a photo of a {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of the {}, a type of clothing.",
    "a greyscale image of a {}.",
)


class ArrayImageCaptionDataset:
    """In-memory image-caption pairs.

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, C)`` uint8 array.
        captions: N strings.

    ``dataset[i]`` returns ``(image (H, W[, C]) uint8, caption)``.
    """

    def __init__(self, images: np.ndarray, captions: Sequence[str]):
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        self.images = images
        self.captions = list(captions)

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int):
        return self.images[i], self.captions[i]


class CsvImageCaptionDataset:
    """open_clip-compatible CSV of image paths and captions.

    Image paths may be absolute (what :func:`vlarm.vlm.sim_captions.write_caption_csv` writes, and what open_clip
    needs when its trainer runs elsewhere) or relative to the CSV's folder (``~`` is expanded). When an absolute
    path does not exist but the row's ``relpath`` column (relative to the CSV) does, that is used, so a caption
    folder can be moved or copied to another machine.

    Args:
        csv_path: the CSV file.
        image_key / caption_key: column names (open_clip defaults ``filepath`` / ``title``).
        separator: field separator (open_clip default ``\\t``).

    ``dataset[i]`` returns ``(image (H, W, 3) uint8 RGB, caption)``; ``dataset.paths`` are the resolved paths.

    Raises:
        FileNotFoundError: the CSV is missing (on construction), or an image it names is (on access).
        ValueError: a required column is absent (the columns found are listed).
    """

    def __init__(
        self,
        csv_path: str | Path,
        image_key: str = "filepath",
        caption_key: str = "title",
        separator: str = "\t",
    ):
        self.csv_path = Path(csv_path)
        if not self.csv_path.is_file():
            raise FileNotFoundError(f"image-caption CSV {self.csv_path} does not exist")
        with self.csv_path.open(newline="") as fh:
            reader = csv.DictReader(fh, delimiter=separator)
            rows = list(reader)
            fields = reader.fieldnames or []
        for key in (image_key, caption_key):
            if key not in fields:
                raise ValueError(f"{self.csv_path} has no column {key!r}; columns: {fields}")
        self.paths = [self._resolve(r[image_key], r.get("relpath")) for r in rows]
        self.captions = [r[caption_key] for r in rows]

    def _resolve(self, path: str, relpath: str | None) -> str:
        """Absolute path of an image named in the CSV (see the class docstring)."""
        p = Path(path).expanduser()
        if not p.is_absolute():
            return str(self.csv_path.parent / p)
        if not p.exists() and relpath and (self.csv_path.parent / relpath).exists():
            return str(self.csv_path.parent / relpath)
        return str(p)

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int):
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as img:
                return np.asarray(img.convert("RGB")), self.captions[i]
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{self.csv_path}: image {self.paths[i]} (row {i + 1}) does not exist; paths are taken as absolute or "
                "relative to the CSV's folder: move the images back or rewrite the CSV"
            ) from None


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(split: str = "train", root: str | Path = FASHION_MNIST_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST from the Debian package files.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        root: folder with the four ``*-idx*-ubyte.gz`` files.

    Returns:
        ``(images (N, 28, 28) uint8 grey, labels (N,) int64 in [0, 10))``; class names in
        :data:`FASHION_MNIST_CLASSES`.

    Raises:
        FileNotFoundError: the files are missing; the message gives the install command.
        ValueError: on an unknown split.
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    img_path, lab_path = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
    for p in (img_path, lab_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"Fashion-MNIST file {p} is missing; install it with `apt-get install -y dataset-fashion-mnist`"
            )
    images, labels = _read_idx(img_path), _read_idx(lab_path).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"corrupt Fashion-MNIST files in {root}: {len(images)} images, {len(labels)} labels")
    return images, labels
