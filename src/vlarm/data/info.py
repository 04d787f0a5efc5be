"""``meta/info.json``: the dataset's declared features, counts and path templates (LeRobot v3.0).

The layout of a vlarm dataset root follows LeRobot's ``codebase_version`` "v3.0" (lerobot 0.4.x)::

    meta/info.json                              DatasetInfo below
    meta/stats.json                             per-feature min/max/mean/std/count and q01/q10/q50/q90/q99
    meta/tasks.parquet                          task string (index) -> task_index
    meta/episodes/chunk-000/file-000.parquet    one row per episode
    meta/rejected_seeds.json                    vlarm only: seeds tried and rejected by the collector
    data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet   frames; one file per episode

Episode ``e`` lives in ``chunk_index = e // chunks_size``, ``file_index = e % chunks_size``. Shapes and
dtypes of every feature are declared here, not discovered from the data (see :func:`vlarm_features`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlarm.data.errors import DatasetError

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
REJECTED_PATH = "meta/rejected_seeds.json"
#: The collection splits of the CLIPort protocol (REFERENCE.md section 2).
SPLITS = ("train", "val", "test")

#: CLIPort heightmap / colormap size ``(H, W)``: 320 x 160 pixels at 3.125 mm (REFERENCE.md section 2).
DEFAULT_IMAGE_SHAPE = (320, 160)

# Feature keys, named as LeRobot names them.
COLOR_KEY = "observation.images.color"
HEIGHTMAP_KEY = "observation.heightmap"
STATE_KEY = "observation.state"
ACTION_KEY = "action"
REWARD_KEY = "next.reward"
DONE_KEY = "next.done"
INDEX_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")

POSE_NAMES = ["x", "y", "z", "qx", "qy", "qz", "qw"]
ACTION_NAMES = [f"pick.{n}" for n in POSE_NAMES] + [f"place.{n}" for n in POSE_NAMES]

_DTYPES = {"image", "video", "string", "bool", "uint8", "int32", "int64", "float32", "float64"}

#: What fixes the look of an observation, as recorded in ``info.json``: the task variant and split (scene
#: sampling, colours), the colour map / heightmap size, and how the cameras rendered (resolution relative to
#: CLIPort's 480x640, renderer, every camera's parameters). Resuming a collection with other values is refused.
OBSERVATION_SETTINGS = ("benchmark_task", "split", "image_shape", "camera_scale", "renderer", "cameras")
#: The subset of :data:`OBSERVATION_SETTINGS` that datasets written before it was recorded lack (``None``).
OPTIONAL_OBSERVATION_FIELDS = ("camera_scale", "renderer", "cameras")
_CAMERA_KEYS = ("image_size", "focal_length", "position", "rotation", "z_range")
REQUIRED_FEATURES = (COLOR_KEY, HEIGHTMAP_KEY, STATE_KEY, ACTION_KEY, REWARD_KEY, DONE_KEY, *INDEX_KEYS)


def vlarm_features(image_shape: tuple[int, int] = DEFAULT_IMAGE_SHAPE) -> dict[str, dict[str, Any]]:
    """Return the feature declarations of a vlarm pick-and-place dataset.

    Args:
        image_shape: ``(H, W)`` of the colour map and heightmap in pixels (CLIPort: 320 x 160).

    Returns:
        ``{key: {"dtype", "shape", "names", "description"}}`` in LeRobot's ``info.json`` form:

        - ``observation.images.color``: ``image`` (H, W, 3) uint8 RGB top-down colour map, stored as a
          PNG ``{bytes, path}`` struct (LeRobot's image convention).
        - ``observation.heightmap``: float32 (H, W), metres above the table, stored exactly as a nested
          fixed-size float32 list (zstd, byte-stream-split), i.e. lossless.
        - ``observation.state``: float32 (7,), end-effector pose ``x y z`` (m) + quaternion ``xyzw``.
        - ``action``: float32 (14,), pick pose (7) then place pose (7), same units.
        - ``next.reward`` float32, ``next.done`` bool, ``timestamp`` float32 (s, = frame_index / fps),
          ``frame_index`` / ``episode_index`` / ``index`` (global frame) / ``task_index`` int64.
    """
    h, w = (int(s) for s in image_shape)
    scalar = {"shape": [1], "names": None}
    return {
        COLOR_KEY: {
            "dtype": "image",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
            "description": "top-down RGB colour map, uint8, PNG",
        },
        HEIGHTMAP_KEY: {
            "dtype": "float32",
            "shape": [h, w],
            "names": ["height", "width"],
            "description": "top-down heightmap, metres above the table, float32 exact",
        },
        STATE_KEY: {
            "dtype": "float32",
            "shape": [7],
            "names": list(POSE_NAMES),
            "description": "end-effector pose: position (m) + quaternion xyzw",
        },
        ACTION_KEY: {
            "dtype": "float32",
            "shape": [14],
            "names": list(ACTION_NAMES),
            "description": "pick pose (7) + place pose (7): position (m) + quaternion xyzw",
        },
        REWARD_KEY: {"dtype": "float32", **scalar, "description": "step reward (partial credit)"},
        DONE_KEY: {"dtype": "bool", **scalar, "description": "episode ends after this step"},
        "timestamp": {"dtype": "float32", **scalar, "description": "frame_index / fps, seconds"},
        "frame_index": {"dtype": "int64", **scalar},
        "episode_index": {"dtype": "int64", **scalar},
        "index": {"dtype": "int64", **scalar},
        "task_index": {"dtype": "int64", **scalar},
    }


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass
class DatasetInfo:
    """Validated contents of ``meta/info.json`` (LeRobot v3.0 keys plus vlarm's own).

    Construction validates every field and raises :class:`DatasetError` listing all problems found.
    Unknown keys read from a file are kept in ``extra`` and written back unchanged.

    Attributes:
        fps: frames per second; one pick-and-place step is one frame, so vlarm uses 1.
        features: feature declarations, see :func:`vlarm_features`.
        benchmark_task: vlarm task variant the episodes come from, e.g. "put-block-in-bowl-seen-colors".
        split: collection split, one of "train", "val", "test".
        total_episodes / total_frames / total_tasks: counts over the whole dataset.
        chunks_size: data files per ``data/chunk-XXX`` directory.
        splits: LeRobot's episode ranges, ``{split: "start:stop"}``.
        codebase_version: always "v3.0".
        robot_type: free text, may be None.
        data_path / video_path: path templates relative to the root; ``video_path`` is None (images
            live in the parquet files, not in mp4 videos).
        data_files_size_in_mb / video_files_size_in_mb: LeRobot's file roll-over sizes (informative;
            vlarm writes one data file per episode so that every write is atomic).
        camera_scale: camera resolution relative to CLIPort's 480x640 (``vlarm collect --camera-scale``);
            ``None`` (key absent) in datasets written before vlarm recorded it.
        renderer: name of the renderer of the camera images (``"tiny"``: PyBullet's CPU TinyRenderer, see
            ``vlarm.sim.cameras.RENDERER``); ``None`` when not recorded.
        cameras: ``{name: {"image_size": [H, W] px, "focal_length": px, "position": [x, y, z] m,
            "rotation": XYZ Euler rad, "z_range": [near, far] m}}``; ``None`` when not recorded.
    """

    fps: int
    features: dict[str, dict[str, Any]]
    benchmark_task: str
    split: str
    total_episodes: int = 0
    total_frames: int = 0
    total_tasks: int = 0
    chunks_size: int = DEFAULT_CHUNKS_SIZE
    splits: dict[str, str] = field(default_factory=dict)
    codebase_version: str = CODEBASE_VERSION
    robot_type: str | None = None
    data_path: str = DATA_PATH
    video_path: str | None = None
    data_files_size_in_mb: int = 100
    video_files_size_in_mb: int = 500
    camera_scale: float | None = None
    renderer: str | None = None
    cameras: dict[str, dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise DatasetError("invalid dataset info: " + "; ".join(problems))

    # ------------------------------------------------------------------ validation
    def problems(self) -> list[str]:
        """Return a list of human-readable problems with the fields (empty when valid)."""
        p: list[str] = []
        if self.codebase_version != CODEBASE_VERSION:
            p.append(f"codebase_version is {self.codebase_version!r}, expected {CODEBASE_VERSION!r}")
        if not _is_int(self.fps) or self.fps <= 0:
            p.append(f"fps must be a positive integer, got {self.fps!r}")
        for name in ("total_episodes", "total_frames", "total_tasks"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                p.append(f"{name} must be a non-negative integer, got {v!r}")
        if not _is_int(self.chunks_size) or self.chunks_size <= 0:
            p.append(f"chunks_size must be a positive integer, got {self.chunks_size!r}")
        if not isinstance(self.benchmark_task, str) or not self.benchmark_task:
            p.append(f"benchmark_task must be a non-empty string, got {self.benchmark_task!r}")
        if self.split not in SPLITS:
            p.append(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.robot_type is not None and not isinstance(self.robot_type, str):
            p.append(f"robot_type must be a string or null, got {self.robot_type!r}")
        p.extend(self._path_problems())
        p.extend(self._feature_problems())
        p.extend(self._split_problems())
        p.extend(self._observation_problems())
        return p

    def _observation_problems(self) -> list[str]:
        p = []
        scale = self.camera_scale
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)
                                  or not math.isfinite(scale) or scale <= 0):
            p.append(f"camera_scale must be a finite number > 0 or null, got {scale!r}")
        if self.renderer is not None and (not isinstance(self.renderer, str) or not self.renderer):
            p.append(f"renderer must be a non-empty string or null, got {self.renderer!r}")
        if self.cameras is None:
            return p
        if not isinstance(self.cameras, dict) or not self.cameras:
            return [*p, f"cameras must be a non-empty mapping of name -> camera or null, got {self.cameras!r}"]
        for name, cam in self.cameras.items():
            missing = [k for k in _CAMERA_KEYS if not isinstance(cam, dict) or k not in cam]
            if missing:
                p.append(f"cameras[{name!r}] lacks {missing} (needs {list(_CAMERA_KEYS)})")
            elif not (isinstance(cam["image_size"], list | tuple) and len(cam["image_size"]) == 2
                      and all(_is_int(v) and v > 0 for v in cam["image_size"])):
                p.append(f"cameras[{name!r}].image_size must be [H, W] positive integers, got {cam['image_size']!r}")
        return p

    def _path_problems(self) -> list[str]:
        p = []
        if not isinstance(self.data_path, str) or not self.data_path.endswith(".parquet"):
            p.append(f"data_path must be a '.parquet' path template, got {self.data_path!r}")
        else:
            try:
                a = self.data_path.format(chunk_index=0, file_index=0)
                b = self.data_path.format(chunk_index=1, file_index=2)
            except (KeyError, IndexError, ValueError) as e:
                p.append(f"data_path template {self.data_path!r} does not format: {e!r}")
            else:
                if a == b:
                    p.append(f"data_path {self.data_path!r} must use {{chunk_index}} and {{file_index}}")
        if self.video_path is not None and not isinstance(self.video_path, str):
            p.append(f"video_path must be a string template or null, got {self.video_path!r}")
        return p

    def _feature_problems(self) -> list[str]:
        if not isinstance(self.features, dict) or not self.features:
            return [f"features must be a non-empty mapping, got {type(self.features).__name__}"]
        p = []
        for key, ft in self.features.items():
            if not isinstance(ft, dict):
                p.append(f"feature {key!r} must be a mapping, got {type(ft).__name__}")
                continue
            if ft.get("dtype") not in _DTYPES:
                p.append(f"feature {key!r} has dtype {ft.get('dtype')!r}, expected one of {sorted(_DTYPES)}")
            shape = ft.get("shape")
            if (
                not isinstance(shape, list | tuple)
                or not shape
                or not all(_is_int(s) and s > 0 for s in shape)
            ):
                p.append(f"feature {key!r} has shape {shape!r}, expected a list of positive integers")
                continue
            if "names" not in ft:
                p.append(f"feature {key!r} lacks 'names' (use null when unnamed)")
                continue
            names = ft["names"]
            if isinstance(names, list):
                want = shape[0] if len(shape) == 1 else len(shape)
                if len(names) != want:
                    p.append(
                        f"feature {key!r} has {len(names)} names for shape {list(shape)}, expected {want}"
                    )
            elif names is not None and not isinstance(names, dict):
                p.append(f"feature {key!r} names must be a list, a mapping or null, got {names!r}")
        missing = [k for k in REQUIRED_FEATURES if k not in self.features]
        if missing:
            p.append(f"features lack required keys {missing}")
            return p
        color, height = self.features[COLOR_KEY], self.features[HEIGHTMAP_KEY]
        if color.get("dtype") != "image" or len(color.get("shape", [])) != 3 or color["shape"][2] != 3:
            p.append(f"{COLOR_KEY} must be an 'image' of shape [H, W, 3], got {color}")
        elif list(height.get("shape", [])) != list(color["shape"][:2]):
            p.append(f"{HEIGHTMAP_KEY} shape {height.get('shape')} must equal {COLOR_KEY} [H, W]")
        for key, shape in ((STATE_KEY, [7]), (ACTION_KEY, [14])):
            if list(self.features[key].get("shape", [])) != shape:
                p.append(f"{key} must have shape {shape}, got {self.features[key].get('shape')}")
        return p

    def _split_problems(self) -> list[str]:
        if not isinstance(self.splits, dict):
            return [f"splits must be a mapping of name -> 'start:stop', got {self.splits!r}"]
        p = []
        for name, rng in self.splits.items():
            try:
                start, stop = (int(s) for s in str(rng).split(":"))
            except ValueError:
                p.append(f"splits[{name!r}] = {rng!r} is not 'start:stop'")
                continue
            if not 0 <= start <= stop <= (self.total_episodes if _is_int(self.total_episodes) else 0):
                p.append(f"splits[{name!r}] = {rng!r} is outside 0:{self.total_episodes}")
        return p

    # ------------------------------------------------------------------ conversion
    @property
    def image_shape(self) -> tuple[int, int]:
        """``(H, W)`` of the colour map and heightmap, pixels."""
        h, w, _ = self.features[COLOR_KEY]["shape"]
        return int(h), int(w)

    def episode_data_path(self, episode_index: int) -> str:
        """Relative path of the data file holding ``episode_index`` (one file per episode)."""
        chunk, file = divmod(int(episode_index), self.chunks_size)
        return self.data_path.format(chunk_index=chunk, file_index=file)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready mapping, keys in LeRobot's order, vlarm's keys and ``extra`` last."""
        d = {
            "codebase_version": self.codebase_version,
            "robot_type": self.robot_type,
            "total_episodes": self.total_episodes,
            "total_frames": self.total_frames,
            "total_tasks": self.total_tasks,
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_files_size_in_mb,
            "video_files_size_in_mb": self.video_files_size_in_mb,
            "fps": self.fps,
            "splits": dict(self.splits),
            "data_path": self.data_path,
            "video_path": self.video_path,
            "features": self.features,
            "benchmark_task": self.benchmark_task,
            "split": self.split,
        }
        for name in OPTIONAL_OBSERVATION_FIELDS:  # absent, not null, when unknown: such files stay as they were
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        d.update(self.extra)
        return d

    def observation_settings(self) -> dict[str, Any]:
        """The recorded :data:`OBSERVATION_SETTINGS` as JSON values (``image_shape`` as ``[H, W]``; ``None`` for
        what a dataset written before vlarm recorded it does not say)."""
        values = {name: getattr(self, name) for name in OBSERVATION_SETTINGS if name != "image_shape"}
        values["image_shape"] = list(self.image_shape)
        return json.loads(json.dumps(values))

    def observation_differences(self, requested: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        """Compare the recorded observation settings with ``requested`` (a subset of
        :data:`OBSERVATION_SETTINGS`; tuples and lists compare equal, as do ``1`` and ``1.0``).

        Returns:
            ``[(name, recorded, requested)]`` for each differing setting, in :data:`OBSERVATION_SETTINGS` order;
            ``recorded`` is ``None`` where the dataset does not record it (it cannot be verified).

        Raises:
            KeyError: ``requested`` names something outside :data:`OBSERVATION_SETTINGS`.
        """
        unknown = sorted(set(requested) - set(OBSERVATION_SETTINGS))
        if unknown:
            raise KeyError(f"unknown observation settings {unknown}; known: {list(OBSERVATION_SETTINGS)}")
        recorded = self.observation_settings()
        asked = json.loads(json.dumps(requested))
        return [(k, recorded[k], asked[k]) for k in OBSERVATION_SETTINGS if k in asked and recorded[k] != asked[k]]

    @classmethod
    def from_dict(cls, d: Any) -> DatasetInfo:
        """Build and validate from a mapping as read from ``info.json``.

        Raises:
            DatasetError: ``d`` is not a mapping, lacks required keys, or has invalid values.
        """
        if not isinstance(d, dict):
            raise DatasetError(f"invalid dataset info: expected a JSON object, got {type(d).__name__}")
        required = (
            "codebase_version",
            "fps",
            "features",
            "total_episodes",
            "total_frames",
            "total_tasks",
            "chunks_size",
            "data_path",
            "splits",
            "benchmark_task",
            "split",
        )
        missing = [k for k in required if k not in d]
        if missing:
            raise DatasetError(f"invalid dataset info: missing keys {missing}")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(
            **{k: v for k, v in d.items() if k in known},
            extra={k: v for k, v in d.items() if k not in known},
        )

    @classmethod
    def from_json(cls, path: Path) -> DatasetInfo:
        """Read and validate ``meta/info.json``.

        Raises:
            DatasetError: the file is missing, is not valid JSON, fails validation, or describes ``ee_delta``
                trajectories (:mod:`vlarm.data.trajectories`); the message names the file and what to do.
        """
        path = Path(path)
        if not path.is_file():
            raise DatasetError(
                f"{path}: missing. This is not a vlarm/LeRobot v3.0 dataset root, or collection never "
                "finished an episode. Check the path, or collect into it with `vlarm collect --out DIR`."
            )
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DatasetError(
                f"{path}: unreadable or not valid JSON ({e}). Reopen the root with EpisodeWriter to "
                "rebuild the meta files from the data files."
            ) from e
        if isinstance(d, dict) and d.get("action_mode", "pick_place") != "pick_place":
            raise ActionModeError(f"{path.parent.parent} holds {d['action_mode']!r} trajectories (closed-loop, for "
                                  "--policy rt1), not pick-and-place demonstrations; the two modes are never "
                                  "mixed: use it with --policy rt1, or pass another directory")
        try:
            return cls.from_dict(d)
        except DatasetError as e:
            raise DatasetError(
                f"{path}: {e}. Fix the file, or reopen the root with EpisodeWriter to rebuild it."
            ) from None


class ActionModeError(DatasetError):
    """A dataset of the other action mode (``ee_delta`` trajectories where pick-and-place demonstrations go)."""


#: The ``vlarm collect`` option that sets each observation setting (the others come from the code).
COLLECT_FLAGS = {"benchmark_task": "--task", "split": "--split", "camera_scale": "--camera-scale",
                 "renderer": "--renderer"}


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _camera_differences(recorded: dict, requested: dict) -> list[tuple[str, Any, Any]]:
    """``(label, recorded, requested)`` per differing camera field, e.g. ``("camera 'front' z_range", ...)``."""
    out = []
    for name in sorted(set(recorded) | set(requested)):
        if name not in recorded or name not in requested:
            out.append((f"camera {name!r}", "present" if name in recorded else "absent",
                        "present" if name in requested else "absent"))
            continue
        for key in sorted(set(recorded[name]) | set(requested[name])):
            if recorded[name].get(key) != requested[name].get(key):
                out.append((f"camera {name!r} {key}", recorded[name].get(key), requested[name].get(key)))
    return out


def collection_renderer(requested: str, root: str | Path) -> str:
    """The renderer to collect into ``root`` with: ``requested``, except that ``"auto"`` keeps the renderer a
    dataset already at ``root`` records (so resuming never mixes renderers; a fresh dataset gets EGL where it loads,
    see :class:`vlarm.sim.Scene`). An unreadable ``meta/info.json`` leaves ``"auto"`` (the writer reports it)."""
    if requested != "auto":
        return requested
    try:
        recorded = json.loads((Path(root) / INFO_PATH).read_text()).get("renderer")
    except (OSError, ValueError, AttributeError):
        return requested
    return recorded if isinstance(recorded, str) and recorded else requested


def check_observation_settings(root: Path, requested: dict[str, Any]) -> None:
    """Refuse to add episodes to ``root`` unless its recorded observation settings equal ``requested``.

    A root without episode files is new (nothing to mix) and always accepted.

    Args:
        root: dataset directory.
        requested: the run's observation settings (``vlarm.data.collect.observation_settings``).

    Raises:
        DatasetError: a setting differs (naming the recorded and the requested value, and the option to pass);
            or ``root`` holds episodes whose settings cannot be verified (``meta/info.json`` missing, unreadable,
            or written before vlarm recorded camera settings).
    """
    root = Path(root)
    if not any(root.glob("data/chunk-*/file-*.parquet")):
        return
    path = root / INFO_PATH
    try:
        info = DatasetInfo.from_json(path)
    except ActionModeError:
        raise
    except DatasetError as err:
        raise DatasetError(f"{root} holds episodes but {INFO_PATH} cannot be read ({err}), so this run cannot "
                           "verify they were collected with the same camera settings: restore the file, or pass "
                           "a new --out") from None
    diffs = info.observation_differences(requested)
    unknown = [name for name, recorded, _ in diffs if recorded is None and name in OPTIONAL_OBSERVATION_FIELDS]
    if unknown:
        raise DatasetError(f"{root} was collected before vlarm recorded {', '.join(unknown)} in {INFO_PATH}, so this "
                           f"run (camera_scale {requested['camera_scale']}, renderer {requested['renderer']!r}) "
                           "cannot verify its images match; pass a new --out (the dataset itself still loads)")
    if not diffs:
        return
    named = {name for name, _, _ in diffs}
    items = []
    for name, recorded, asked in diffs:
        if name == "cameras":
            if "camera_scale" not in named:  # a scale change already explains every camera's new size
                items.extend(_camera_differences(recorded, asked))
        else:
            items.append((name, recorded, asked))
    flags = [COLLECT_FLAGS[name] for name in COLLECT_FLAGS if name in named]
    fix = (f"pass the same {' and '.join(flags)} to resume" if flags
           else "resume with the vlarm version that collected it (these settings are not options)")
    raise DatasetError(f"{root} was collected with {' and '.join(f'{n} {_describe(r)}' for n, r, _ in items)}; "
                       f"this run asks for {' and '.join(_describe(a) for _, _, a in items)}: {fix} or a new --out")
