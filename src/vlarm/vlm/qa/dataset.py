"""Reading an attribute-question benchmark directory: the file format MIAVLM trains and is scored on.

The benchmark is written by :mod:`vlarm.eval.qa.benchmark` (which renders it with the simulator); this module only
reads the files, so the model side needs neither the simulator nor the task definitions (DESIGN: ``vlm`` imports
``text`` and ``vision`` only). Layout of a benchmark directory::

    config.json              the builder's configuration, plus ``format_version`` and ``views`` (view names, in order)
    scenes/00012.json        one per scene: ``split``, ``spec`` (``objects``: kind, colour, size, ... each),
                             cameras, visible pixels of each object (and painted face) per view
    images/00012/0_front.png the views, (image_size, image_size, 3) uint8 RGB PNGs, view index first
    questions.jsonl          one record per question
    counts.json              counts per split, type, polarity and negative setting

A question record: ``id``, ``pair`` (shared by a positive and its negatives), ``scene``, ``split`` (one of
:data:`QA_SPLITS`), ``type`` (one of :data:`QUESTION_TYPES`), ``question``, ``label`` (``yes`` / ``no``),
``polarity`` (``positive`` / ``negative``), ``setting`` (None for positives, else one of :data:`NEGATIVE_SETTINGS`),
``subject`` (the object's kind, or its colour for ``shape`` questions), ``value``, ``other`` (the reference kind
of a relation), ``novel`` (names a value unseen in training) and ``visible_views`` (views that show what the question
is about).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: Version of the directory format; a reader refuses any other.
FORMAT_VERSION = 2
#: Splits: train, validation (for choosing settings) and test scenes with seen values, and unseen-value test scenes.
QA_SPLITS: tuple[str, ...] = ("train", "val", "test", "unseen")
#: Question types (MIAVLM's HoOA asks about attributes of objects that exist).
QUESTION_TYPES: tuple[str, ...] = ("color", "shape", "size", "relation", "face")
#: POPE's three negative-sampling settings (Li et al. 2023, Sec. 3.2).
NEGATIVE_SETTINGS: tuple[str, ...] = ("random", "popular", "adversarial")


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`QA_SPLITS`; raise ValueError naming them otherwise."""
    if split not in QA_SPLITS:
        raise ValueError(f"unknown benchmark split {split!r}; valid: {', '.join(QA_SPLITS)}")
    return split


def check_setting(setting: str) -> str:
    """Return ``setting`` if it is one of :data:`NEGATIVE_SETTINGS`; raise ValueError naming them otherwise."""
    if setting not in NEGATIVE_SETTINGS:
        raise ValueError(f"unknown negative setting {setting!r}; valid: {', '.join(NEGATIVE_SETTINGS)}")
    return setting


class QABenchmark:
    """A benchmark directory opened for training and evaluation (module docstring).

    Args:
        path: the directory (``vlarm vlm qa build``).

    Attributes:
        path: the directory.
        info: its ``config.json`` without ``format_version`` and ``views`` (the builder's configuration fields).
        view_names: names of the views of every scene, in order (view 0 is the front camera).
        records: every question record (``questions.jsonl``).

    Raises:
        ValueError: the directory is not a finished benchmark (no ``config.json`` or ``questions.jsonl``), or of
            another format version; the message says how to get one.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        config_path, questions_path = self.path / "config.json", self.path / "questions.jsonl"
        if not config_path.is_file() or not questions_path.is_file():
            raise ValueError(f"{self.path} is not a finished QA benchmark (needs config.json and questions.jsonl); "
                             "build one with `vlarm vlm qa build --out DIR` (a rerun resumes an unfinished build)")
        data = json.loads(config_path.read_text())
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ValueError(f"{config_path}: benchmark format version {version} is not {FORMAT_VERSION}; rebuild it "
                             "into a new directory with `vlarm vlm qa build`")
        self.view_names: list[str] = list(data.pop("views"))
        self.info: dict = data
        self.records = [json.loads(line) for line in questions_path.read_text().splitlines() if line.strip()]
        self._images: np.ndarray | None = None

    @property
    def image_size(self) -> int:
        """Side of every view in pixels."""
        return int(self.info["image_size"])

    @property
    def n_views(self) -> int:
        """Views per scene."""
        return len(self.view_names)

    @property
    def n_scenes(self) -> int:
        """Scenes of every split (scene indices run 0 .. n_scenes - 1)."""
        return int(self.info["scenes"]) + int(self.info["unseen_scenes"])

    def questions(self, split: str, polarity: str | None = None) -> list[dict]:
        """Records of a split, optionally of one polarity (``"positive"`` / ``"negative"``).

        Raises:
            ValueError: an unknown split or polarity.
        """
        check_split(split)
        if polarity not in (None, "positive", "negative"):
            raise ValueError(f"unknown polarity {polarity!r}; valid: positive, negative")
        return [r for r in self.records if r["split"] == split and polarity in (None, r["polarity"])]

    def eval_set(self, split: str, setting: str) -> list[dict]:
        """A balanced POPE-style evaluation set: every positive of ``split`` and its ``setting`` negative.

        Raises:
            ValueError: an unknown split or setting.
        """
        check_split(split)
        check_setting(setting)
        return [r for r in self.records if r["split"] == split and r["setting"] in (None, setting)]

    def scene_file(self, index: int) -> dict:
        """The parsed ``scenes/NNNNN.json`` of scene ``index``.

        Raises:
            ValueError: index out of range, or the file is missing (an unfinished build: rerun it to resume).
        """
        if not 0 <= index < self.n_scenes:
            raise ValueError(f"scene index must be in 0-{self.n_scenes - 1}, got {index}")
        path = self.path / "scenes" / f"{index:05d}.json"
        if not path.is_file():
            raise ValueError(f"{path} is missing: the benchmark build did not finish; rerun the build to resume")
        return json.loads(path.read_text())

    def scene_objects(self) -> list[list[dict]]:
        """Every scene's objects, by scene index: ``[{"kind", "color", ...}, ...]`` as written in its spec."""
        return [self.scene_file(i)["spec"]["objects"] for i in range(self.n_scenes)]

    def images(self) -> np.ndarray:
        """All views of all scenes: ``(n_scenes, V, S, S, 3)`` uint8 RGB (read once, then cached).

        Raises:
            ValueError: an image is missing (an unfinished build).
        """
        from PIL import Image

        if self._images is None:
            s = self.image_size
            arr = np.zeros((self.n_scenes, self.n_views, s, s, 3), dtype=np.uint8)
            for i in range(self.n_scenes):
                for v, name in enumerate(self.view_names):
                    path = self.path / "images" / f"{i:05d}" / f"{v}_{name}.png"
                    if not path.is_file():
                        raise ValueError(f"{path} is missing: the benchmark build did not finish; rerun it to resume")
                    arr[i, v] = np.asarray(Image.open(path).convert("RGB"))
            self._images = arr
        return self._images
