"""A HoOA-style multiview attribute-question benchmark rendered from the simulator, written as files.

HoOA (the MIAVLM paper's benchmark; REFERENCE.md Sec. 5) pairs every positive yes/no question about an attribute of
an object that exists with a negative twin, and splits 9:1 into train and test. Here the images are simulator
scenes (:mod:`vlarm.eval.qa.scenes`) seen from nine views (the robot's three cameras and six sampled around the
table), the questions cover colour, shape, size, relative position and a differently painted face
(:mod:`vlarm.eval.qa.questions`), negatives are drawn the three POPE ways, and a further split holds scenes whose
colours and shapes are unseen in training (CLIPort's EVAL colours, :mod:`vlarm.tasks.attributes`). Of the nine
tenths that are not test scenes, one in nine is a validation scene (settings are chosen there, never on test).

The files (layout and record fields: :mod:`vlarm.vlm.qa.dataset`, which reads them without the simulator) are
written so that a killed build resumes: ``config.json`` first (a rerun with another configuration is refused), each
``scenes/NNNNN.json`` atomically after its images, then ``questions.jsonl`` and ``counts.json`` atomically once
every scene exists.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vlarm.eval.qa.questions import Query, ValueStats, false_values, is_novel, positives
from vlarm.eval.qa.scenes import (
    AttributePrior,
    SceneSpec,
    build_scene,
    render_views,
    sample_scene,
    sampled_cameras,
    value_lists,
)
from vlarm.vlm.qa.dataset import FORMAT_VERSION, NEGATIVE_SETTINGS, QA_SPLITS, QUESTION_TYPES, QABenchmark

#: An object (or painted face) counts as visible in a view from this many pixels.
MIN_VISIBLE_PIXELS = 6
#: Names of the robot's cameras, the first views of every scene (view 0 is the MIAVLM "original" view).
ROBOT_VIEWS: tuple[str, ...] = ("front", "left", "right")
#: World (x, y) of the front camera (:data:`vlarm.sim.cameras.DEFAULT_CAMERAS`, CLIPort's pose), metres; checked
#: against the simulator's cameras by the tests.
FRONT_CAMERA_XY: tuple[float, float] = (1.0, 0.0)


@dataclass(frozen=True)
class BenchmarkConfig:
    """What a benchmark holds; every field is recorded in ``config.json``.

    Attributes:
        scenes: scenes with seen values, split 9:1 (every ``test_every``-th scene is a test scene); of the others,
            the one just before each test scene is a validation scene.
        unseen_scenes: scenes with unseen values (CLIPort's EVAL colours, unseen kit shapes): the ``unseen`` split.
        seed: benchmark seed (scene ``i`` draws from ``numpy.random.default_rng([seed, i])``).
        image_size: side of every view in pixels.
        camera_scale: resolution of the robot's cameras relative to 480x640 before the ``image_size`` crop.
        sampled_views: views sampled around the table after the three robot cameras.
        min_objects: fewest objects in a scene (at least 2).
        max_objects: most objects in a scene (at most 6).
        face_probability: probability that a scene's block has a painted side face.
        face_hidden_probability: probability that the painted face is the side turned away from the front camera.
        occluder_probability: probability of a wall hiding one object from the front camera.
        relations_per_scene: relation questions per scene (fewer when fewer pairs have a clear relation).
        test_every: one scene in this many is a test scene and one a validation scene (10 gives 8:1:1, i.e.
            train + val : test = 9:1).
        renderer: PyBullet renderer, ``"tiny"`` or ``"egl"``.

    Raises:
        ValueError: a field out of range, naming it and its valid range.
    """

    scenes: int = 400
    unseen_scenes: int = 40
    seed: int = 0
    image_size: int = 64
    camera_scale: float = 0.4
    sampled_views: int = 6
    min_objects: int = 3
    max_objects: int = 4
    face_probability: float = 0.6
    face_hidden_probability: float = 0.8
    occluder_probability: float = 0.5
    relations_per_scene: int = 2
    test_every: int = 10
    renderer: str = "tiny"

    def __post_init__(self) -> None:
        """Validate every field (see the class docstring)."""
        from vlarm.sim.cameras import RENDERERS

        checks = [
            (self.scenes >= 2, "scenes must be >= 2 (at least one train and one test scene)"),
            (self.unseen_scenes >= 0, "unseen_scenes must be >= 0"),
            (self.seed >= 0, "seed must be >= 0"),
            (16 <= self.image_size <= 512, "image_size must be in 16-512 pixels"),
            (0 < self.camera_scale <= 2, "camera_scale must be in (0, 2]"),
            (0 <= self.sampled_views <= 32, "sampled_views must be in 0-32"),
            (2 <= self.min_objects <= self.max_objects <= 6, "need 2 <= min_objects <= max_objects <= 6"),
            (0 <= self.face_probability <= 1, "face_probability must be in [0, 1]"),
            (0 <= self.face_hidden_probability <= 1, "face_hidden_probability must be in [0, 1]"),
            (0 <= self.occluder_probability <= 1, "occluder_probability must be in [0, 1]"),
            (self.relations_per_scene >= 0, "relations_per_scene must be >= 0"),
            (3 <= self.test_every <= self.scenes, "test_every must be in 3..scenes (a train, a val and a test scene)"),
            (self.renderer in RENDERERS, f"renderer must be one of {', '.join(RENDERERS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message}; got {asdict(self)}")
        if 480 * self.camera_scale < self.image_size:
            raise ValueError(f"camera_scale {self.camera_scale} renders the robot cameras at "
                             f"{480 * self.camera_scale:.0f} rows, under the {self.image_size}-pixel crop; raise it")

    @property
    def n_views(self) -> int:
        """Views per scene: the three robot cameras plus the sampled ones."""
        return len(ROBOT_VIEWS) + self.sampled_views

    @property
    def n_scenes(self) -> int:
        """All scenes, both value groups."""
        return self.scenes + self.unseen_scenes

    def split_of(self, index: int) -> str:
        """Split of scene ``index``: ``unseen`` from ``scenes`` on, else ``test`` for every ``test_every``-th, ``val``
        for the scene before it, ``train`` for the rest.

        Raises:
            ValueError: index outside ``0 .. n_scenes - 1``.
        """
        if not 0 <= index < self.n_scenes:
            raise ValueError(f"scene index must be in 0-{self.n_scenes - 1}, got {index}")
        if index >= self.scenes:
            return "unseen"
        position = index % self.test_every
        return "test" if position == self.test_every - 1 else "val" if position == self.test_every - 2 else "train"

    def group_of(self, index: int) -> str:
        """Value group (``seen`` / ``unseen``) of scene ``index``."""
        return "unseen" if self.split_of(index) == "unseen" else "seen"


def _prior(config: BenchmarkConfig, group: str) -> AttributePrior:
    return AttributePrior.make(*value_lists(group), seed=config.seed + (0 if group == "seen" else 1))


def scene_spec(config: BenchmarkConfig, index: int) -> tuple[SceneSpec, tuple]:
    """Draw scene ``index`` of a benchmark and its sampled cameras (no rendering).

    Returns:
        ``(spec, sampled_cameras)``; the same config and index always give the same pair.

    Raises:
        ValueError: index out of range.
    """
    group = config.group_of(index)
    rng = np.random.default_rng([config.seed, index])
    n = int(rng.integers(config.min_objects, config.max_objects + 1))
    spec = sample_scene(index, group, rng, _prior(config, group), n, config.face_probability,
                        front_camera_xy=FRONT_CAMERA_XY, face_hidden_probability=config.face_hidden_probability,
                        occluder_probability=config.occluder_probability)
    return spec, sampled_cameras(rng, config.sampled_views, config.image_size)


class SceneRenderer:
    """Renders benchmark scenes in one PyBullet scene that lives as long as this object (close it, or use ``with``).

    Args:
        config: the benchmark's configuration (image size, camera scale, renderer).
    """

    def __init__(self, config: BenchmarkConfig):
        from vlarm.sim import Scene, default_cameras

        self.config = config
        self.robot_cameras = default_cameras(config.camera_scale)
        self.scene = Scene(cameras=self.robot_cameras, renderer=config.renderer)

    def render(self, spec: SceneSpec, sampled: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Build and render a scene.

        Returns:
            ``(images, pixels)``: ``(V, S, S, 3)`` uint8 views (front, left, right, then ``sampled``) and ``(V,
            n_objects + 1)`` int64 visible pixels of each object and of the painted face
            (:func:`vlarm.eval.qa.scenes.render_views`).
        """
        self.scene.reset()
        bodies, face = build_scene(self.scene, spec)
        return render_views(self.scene, self.robot_cameras, sampled, self.config.image_size, bodies, face)

    def close(self) -> None:
        """Disconnect the PyBullet scene."""
        self.scene.close()

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render_scene(config: BenchmarkConfig, index: int) -> tuple[SceneSpec, np.ndarray]:
    """Draw and render scene ``index`` of a benchmark without writing anything (``vlarm vlm qa ask``).

    Returns:
        ``(spec, images)`` with ``(V, S, S, 3)`` uint8 views.

    Raises:
        ValueError: index out of range.
    """
    spec, sampled = scene_spec(config, index)
    with SceneRenderer(config) as renderer:
        images, _ = renderer.render(spec, sampled)
    return spec, images


def view_names(config: BenchmarkConfig) -> list[str]:
    """Names of the views of every scene, in order (``front``, ``left``, ``right``, ``around0`` ...)."""
    return [*ROBOT_VIEWS, *(f"around{k}" for k in range(config.sampled_views))]


def _write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def build_benchmark(out: str | Path, config: BenchmarkConfig, progress: bool = True) -> dict:
    """Render a benchmark into ``out`` (resumable: scenes already written are kept), then write its questions.

    Args:
        out: benchmark directory (created).
        config: what to build.
        progress: show a progress bar.

    Returns:
        The counts written to ``counts.json``.

    Raises:
        ValueError: ``out`` holds a benchmark built with another config (the message names both).
    """
    from PIL import Image
    from tqdm.auto import tqdm

    out = Path(out)
    (out / "scenes").mkdir(parents=True, exist_ok=True)
    recorded = {"format_version": FORMAT_VERSION, **asdict(config), "views": view_names(config)}
    config_path = out / "config.json"
    if config_path.is_file():
        existing = json.loads(config_path.read_text())
        if existing != recorded:
            raise ValueError(f"{out} holds a benchmark built with another config ({existing}); "
                             f"asked for {recorded}: use another directory")
    else:
        _write_json_atomic(config_path, recorded)
    names = view_names(config)
    todo = [i for i in range(config.n_scenes) if not (out / "scenes" / f"{i:05d}.json").is_file()]
    if todo:
        with SceneRenderer(config) as renderer:
            for index in tqdm(todo, desc="render scenes", disable=not progress):
                spec, sampled = scene_spec(config, index)
                images, pixels = renderer.render(spec, sampled)
                img_dir = out / "images" / f"{index:05d}"
                img_dir.mkdir(parents=True, exist_ok=True)
                for v, (name, image) in enumerate(zip(names, images, strict=True)):
                    Image.fromarray(image).save(img_dir / f"{v}_{name}.png")
                cams = [{"name": c.name, **c.to_dict()} for c in (*renderer.robot_cameras, *sampled)]
                _write_json_atomic(out / "scenes" / f"{index:05d}.json",
                                   {"split": config.split_of(index), "spec": spec.to_dict(), "cameras": cams,
                                    "crop_robot_cameras": True, "pixels": pixels.tolist()})
    scenes = load_scenes(out, config)
    records = make_questions(config, scenes)
    tmp = out / "questions.jsonl.tmp"
    with tmp.open("w") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
    os.replace(tmp, out / "questions.jsonl")
    counts = count_questions(config, records)
    _write_json_atomic(out / "counts.json", counts)
    return counts


def load_scenes(out: str | Path, config: BenchmarkConfig) -> list[dict]:
    """Read every ``scenes/*.json`` of a benchmark: ``{"split", "spec": SceneSpec, "pixels": (V, n + 1) int64}``.

    Raises:
        ValueError: a scene file is missing (the build did not finish: rerun it to resume).
    """
    out = Path(out)
    scenes = []
    for index in range(config.n_scenes):
        path = out / "scenes" / f"{index:05d}.json"
        if not path.is_file():
            raise ValueError(f"{path} is missing: the benchmark build did not finish; rerun the build to resume")
        data = json.loads(path.read_text())
        scenes.append({"split": data["split"], "spec": SceneSpec.from_dict(data["spec"]),
                       "pixels": np.asarray(data["pixels"], dtype=np.int64)})
    return scenes


def _visible_views(spec: SceneSpec, query: Query, pixels: np.ndarray) -> list[int]:
    """Views in which what the question is about shows at least :data:`MIN_VISIBLE_PIXELS` pixels."""
    kinds = [o.kind for o in spec.objects]
    if query.type == "face":
        cols = [pixels.shape[1] - 1]
    elif query.type == "shape":
        cols = [[o.color for o in spec.objects].index(query.subject)]
    elif query.type == "relation":
        cols = [kinds.index(query.subject), kinds.index(query.other)]
    else:
        cols = [kinds.index(query.subject)]
    return [int(v) for v in np.flatnonzero((pixels[:, cols] >= MIN_VISIBLE_PIXELS).all(axis=1))]


def make_questions(config: BenchmarkConfig, scenes: list[dict]) -> list[dict]:
    """Every question record of a benchmark (module docstring), positives each followed by their three negatives.

    Negatives use value statistics (:class:`vlarm.eval.qa.questions.ValueStats`) over all scenes of the question's
    value group; a positive without any false value (rare: a relation between two objects whose opposite is
    ambiguous) is left out, so every positive has its negatives.

    Args:
        config: the benchmark's configuration (seed, relations per scene).
        scenes: :func:`load_scenes` output, in scene-index order.

    Returns:
        A list of record dicts.
    """
    stats = {g: ValueStats([s["spec"] for s in scenes if s["spec"].group == g]) for g in ("seen", "unseen")}
    records = []
    for scene in scenes:
        spec, split = scene["spec"], scene["split"]
        colors, shapes = value_lists(spec.group)
        kinds = ("block", "bowl", *shapes)
        rng = np.random.default_rng([config.seed, spec.index, 1])
        for j, query in enumerate(positives(spec, rng, config.relations_per_scene)):
            candidates = false_values(spec, query, colors, kinds)
            if not candidates:
                continue
            pair = f"s{spec.index:05d}-q{j:02d}"
            base = {"pair": pair, "scene": spec.index, "split": split, "type": query.type, "subject": query.subject,
                    "other": query.other, "visible_views": _visible_views(spec, query, scene["pixels"])}
            records.append({"id": f"{pair}-pos", **base, "question": query.text, "label": "yes",
                            "polarity": "positive", "setting": None, "value": query.value,
                            "novel": is_novel(query)})
            for setting in NEGATIVE_SETTINGS:
                negative = query.with_value(stats[spec.group].pick(setting, spec, query, candidates, rng))
                records.append({"id": f"{pair}-{setting}", **base, "question": negative.text, "label": "no",
                                "polarity": "negative", "setting": setting, "value": negative.value,
                                "novel": is_novel(negative)})
    return records


def count_questions(config: BenchmarkConfig, records: list[dict]) -> dict:
    """Counts per split: scenes, positives, negatives per setting, positives per type, novel questions, and the
    share of positives whose subject the front view (view 0) shows / that at least one view shows."""
    out: dict = {"config": asdict(config), "views": view_names(config), "splits": {}}
    for split in QA_SPLITS:
        recs = [r for r in records if r["split"] == split]
        pos = [r for r in recs if r["polarity"] == "positive"]
        out["splits"][split] = {
            "scenes": len({r["scene"] for r in recs}),
            "positives": len(pos),
            "negatives": dict(Counter(r["setting"] for r in recs if r["polarity"] == "negative")),
            "positives_by_type": {t: sum(r["type"] == t for r in pos) for t in QUESTION_TYPES},
            "novel_questions": sum(r["novel"] for r in recs),
            "front_view_shows_subject": _share([0 in r["visible_views"] for r in pos]),
            "front_view_shows_face": _share([0 in r["visible_views"] for r in pos if r["type"] == "face"]),
            "some_view_shows_subject": _share([bool(r["visible_views"]) for r in pos]),
        }
    return out


def _share(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


# --------------------------------------------------------------------------------------------------- reading
def benchmark_config(bench: QABenchmark) -> BenchmarkConfig:
    """The :class:`BenchmarkConfig` a benchmark directory opened with :class:`vlarm.vlm.qa.dataset.QABenchmark` was
    built with."""
    return BenchmarkConfig(**bench.info)


def scene_specs(bench: QABenchmark) -> list[SceneSpec]:
    """Every scene's spec of an opened benchmark, by index."""
    return [SceneSpec.from_dict(bench.scene_file(i)["spec"]) for i in range(bench.n_scenes)]
