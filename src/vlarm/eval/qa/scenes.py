"""Scenes of the attribute-question benchmark: what is on the table, and the views that see it.

A scene holds 3-4 objects, each of a different *kind* (one block, at most one bowl, kit shapes from
:mod:`vlarm.sim.shapes`) and a different colour, so every object can be named by its kind ("the block") or by its
colour ("the red object"). Each object is small or large; a block may have one side face painted another colour
(a thin plate on that face, its own PyBullet body so that its visibility can be measured), and a dark wall may stand
between the front camera and one object. Both make some attributes visible from only some views: the multiview
motive of MIAVLM (the MIAVLM paper, "Issues": single-view insufficiency). The painted face is usually turned away
from the front camera (``face_hidden_probability``) and its colour does not depend on the block's, so the front
view alone cannot answer it and no prior gives it away.

Attribute values are drawn with skewed frequencies and kind-dependent preferences, fixed by the benchmark seed, so
that POPE's (Li et al. 2023, Sec. 3.2) *popular* (frequent) and *adversarial* (co-occurring) negatives differ from
random ones.

Views: the robot's three cameras (:func:`vlarm.sim.cameras.default_cameras` at ``camera_scale``: CLIPort's front,
left and right poses and intrinsics, unchanged), each cropped to ``image_size`` pixels around the projection of the
scene centre, then ``sampled_views`` look-at cameras around the table (stratified azimuth, random elevation and
distance). View 0, the front camera, is the "original" view of the MIAVLM paper's single-view mode.

World conventions (the robot's point of view, its base at the origin looking along +x): "behind" = larger x
(farther from the robot), "in front of" = smaller x, "left of" = larger y, "right of" = smaller y.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from vlarm.tasks.attributes import COLORS, EVAL_COLORS, KIT_SHAPES, TRAIN_COLORS

#: Kit shapes that stay legible at 64 px (a subset of CLIPort's training shapes) and unseen ones (evaluation shapes).
SEEN_SHAPES: tuple[str, ...] = ("triangle", "square", "plus", "diamond", "star", "circle")
UNSEEN_SHAPES: tuple[str, ...] = ("letter L", "ring", "heart")
#: Sizes and the object dimension they set: block edge, shape footprint diameter, bowl outer radius (metres).
SIZES: tuple[str, ...] = ("small", "large")
BLOCK_EDGE = {"small": 0.04, "large": 0.06}
SHAPE_DIAMETER = {"small": 0.065, "large": 0.095}
BOWL_RADIUS = {"small": 0.045, "large": 0.065}
#: Thickness of kit shapes here (metres): thicker than Ravens' 1.5 cm so that side views see them.
SHAPE_THICKNESS = 0.02
#: Relations between two objects in the robot's frame (module docstring) and their opposites.
RELATIONS: tuple[str, ...] = ("left of", "right of", "in front of", "behind")
OPPOSITE = {"left of": "right of", "right of": "left of", "in front of": "behind", "behind": "in front of"}
#: A relation holds when the centres differ by more than this along its axis (metres); below it, it is ambiguous.
RELATION_MARGIN = 0.05
#: Centre of the region objects are placed in (world x, y metres) and its half extent (metres).
REGION_CENTER = (0.5, 0.0)
REGION_HALF = 0.13
#: The occluding wall: height and thickness (metres), its gap to the object it hides and its colour (dark slate, far
#: from every colour of the palette). 18 cm hides an object up to 6 cm tall from CLIPort's front camera.
OCCLUDER_HEIGHT, OCCLUDER_THICKNESS, OCCLUDER_GAP = 0.18, 0.02, 0.01
OCCLUDER_RGB = (0.16, 0.16, 0.19)
#: Value groups of a benchmark: ``seen`` (training and test scenes) and ``unseen`` (the unseen-values test set).
VALUE_GROUPS = ("seen", "unseen")


def value_lists(group: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(colours, kit shapes)`` a value group draws from: ``seen`` CLIPort's TRAIN colours and :data:`SEEN_SHAPES`,
    ``unseen`` the EVAL colours (:mod:`vlarm.tasks.attributes`) and :data:`UNSEEN_SHAPES`.

    Raises:
        ValueError: for an unknown group (naming :data:`VALUE_GROUPS`).
    """
    if group not in VALUE_GROUPS:
        raise ValueError(f"unknown value group {group!r}; valid: {', '.join(VALUE_GROUPS)}")
    return (TRAIN_COLORS, SEEN_SHAPES) if group == "seen" else (EVAL_COLORS, UNSEEN_SHAPES)


@dataclass(frozen=True)
class ObjectSpec:
    """One object of a scene.

    Attributes:
        kind: ``"block"``, ``"bowl"`` or a kit shape name (``"star"``).
        color: colour name of :data:`vlarm.tasks.attributes.COLORS`.
        size: ``"small"`` or ``"large"``.
        position: ``(x, y)`` world position of its centre on the table, metres.
        yaw: rotation about +z, radians.
        face_color: colour of the one painted side face (blocks only), or None.
        face_side: which side face is painted, 0-3 (the face whose outward normal is at ``yaw + side * pi / 2``).
    """

    kind: str
    color: str
    size: str
    position: tuple[float, float]
    yaw: float
    face_color: str | None = None
    face_side: int = 0

    @property
    def radius(self) -> float:
        """Footprint radius in metres (half diagonal for a block)."""
        if self.kind == "block":
            return BLOCK_EDGE[self.size] / math.sqrt(2)
        if self.kind == "bowl":
            return BOWL_RADIUS[self.size]
        return SHAPE_DIAMETER[self.size] / 2


@dataclass(frozen=True)
class SceneSpec:
    """What a scene holds; the benchmark's questions are computed from it alone.

    Attributes:
        index: scene index in the benchmark.
        group: value group (:data:`VALUE_GROUPS`).
        objects: the objects, kinds and colours pairwise distinct.
        occluder: ``(x, y, yaw, width)`` of the dark wall standing between the front camera and one object (metres,
            radians; :data:`OCCLUDER_HEIGHT` tall, :data:`OCCLUDER_THICKNESS` thick), or None. It is scenery, never
            asked about.
    """

    index: int
    group: str
    objects: tuple[ObjectSpec, ...] = field(default_factory=tuple)
    occluder: tuple[float, float, float, float] | None = None

    def to_dict(self) -> dict:
        """JSON-ready form (inverse: :meth:`from_dict`)."""
        return {"index": self.index, "group": self.group, "objects": [asdict(o) for o in self.objects],
                "occluder": None if self.occluder is None else list(self.occluder)}

    @classmethod
    def from_dict(cls, data: dict) -> SceneSpec:
        """Rebuild a spec written by :meth:`to_dict`."""
        objects = tuple(ObjectSpec(**{**o, "position": tuple(o["position"])}) for o in data["objects"])
        occluder = data.get("occluder")
        return cls(int(data["index"]), data["group"], objects, None if occluder is None else tuple(occluder))

    def by_kind(self, kind: str) -> ObjectSpec | None:
        """The object of this kind, or None."""
        return next((o for o in self.objects if o.kind == kind), None)

    def by_color(self, color: str) -> ObjectSpec | None:
        """The object of this (main) colour, or None."""
        return next((o for o in self.objects if o.color == color), None)


def relations_between(a: ObjectSpec, b: ObjectSpec, margin: float = RELATION_MARGIN) -> tuple[set[str], set[str]]:
    """Relations of ``a`` to ``b`` that clearly hold and clearly do not.

    Args:
        a: the subject object ("the block" in "is the block left of the bowl?").
        b: the reference object.
        margin: centres must differ by more than this along a relation's axis (metres).

    Returns:
        ``(true, false)`` sets of :data:`RELATIONS`; a relation in neither is ambiguous (within ``margin``).
    """
    dx, dy = a.position[0] - b.position[0], a.position[1] - b.position[1]
    true = set()
    if dy > margin:
        true.add("left of")
    if dy < -margin:
        true.add("right of")
    if dx > margin:
        true.add("behind")
    if dx < -margin:
        true.add("in front of")
    return true, {OPPOSITE[r] for r in true}


# --------------------------------------------------------------------------------------------------- priors
@dataclass(frozen=True)
class AttributePrior:
    """Skewed value frequencies and kind-dependent preferences of a benchmark (fixed by its seed).

    ``p(colour | kind) ~ popularity(colour) * affinity[kind, colour]``; the painted face's colour follows the
    popularity alone (any colour but the block's: a face colour the block's colour predicted could be answered
    without seeing the face); kit shapes follow a popularity of their own. Without these every value would be
    equally frequent and POPE's popular / adversarial negatives would be random ones.

    Attributes:
        colors: colour names, in the order of the weight arrays.
        kinds: object kinds (block, bowl, kit shapes).
        color_popularity: ``(len(colors),)`` float64 weights.
        kind_affinity: ``(len(kinds), len(colors))`` float64 weights.
        shape_popularity: ``(len(kinds) - 2,)`` float64 weights of the kit shapes (``kinds[2:]``).
        large_probability: kind -> probability that an object of that kind is large.
    """

    colors: tuple[str, ...]
    kinds: tuple[str, ...]
    color_popularity: np.ndarray
    kind_affinity: np.ndarray
    shape_popularity: np.ndarray
    large_probability: dict[str, float]

    @classmethod
    def make(cls, colors: tuple[str, ...], shapes: tuple[str, ...], seed: int) -> AttributePrior:
        """Draw a prior for these values from ``seed`` (Zipf-like popularity, Dirichlet(0.5) preferences)."""
        rng = np.random.default_rng([seed, 7_919])
        kinds = ("block", "bowl", *shapes)
        zipf = 1.0 / np.arange(1, len(colors) + 1) ** 0.9
        popularity = zipf[rng.permutation(len(colors))]
        affinity = 0.25 + rng.dirichlet(np.full(len(colors), 0.5), len(kinds)) * len(colors)
        shape_pop = (1.0 / np.arange(1, len(shapes) + 1) ** 0.7)[rng.permutation(len(shapes))]
        large = {"block": 0.35, "bowl": 0.5, **{s: 0.6 for s in shapes}}
        return cls(tuple(colors), kinds, popularity, affinity, shape_pop, large)

    def color_weights(self, kind: str, exclude: set[str]) -> np.ndarray:
        """Normalised ``(len(colors),)`` probabilities of an object colour given its kind, 0 for ``exclude``."""
        w = self.color_popularity * self.kind_affinity[self.kinds.index(kind)]
        return _normalise(w, [c in exclude for c in self.colors])

    def face_weights(self, block_color: str) -> np.ndarray:
        """Normalised probabilities of the painted face's colour: the popularity, never the block's own colour."""
        return _normalise(self.color_popularity, [c == block_color for c in self.colors])


def _normalise(weights: np.ndarray, excluded: list[bool]) -> np.ndarray:
    w = np.where(np.asarray(excluded), 0.0, weights)
    if w.sum() <= 0:
        raise ValueError("no value left to draw (every value excluded)")
    return w / w.sum()


def sample_scene(index: int, group: str, rng: np.random.Generator, prior: AttributePrior, n_objects: int,
                 face_probability: float, front_camera_xy: tuple[float, float] = (1.0, 0.0),
                 face_hidden_probability: float = 0.0, occluder_probability: float = 0.0) -> SceneSpec:
    """Draw a scene: one block, a bowl with probability 0.6, kit shapes for the rest; distinct kinds and colours.

    Args:
        index: the scene's index (stored in the spec).
        group: value group of ``prior`` (:data:`VALUE_GROUPS`).
        rng: the scene's own generator (the same seed gives the same scene).
        prior: value frequencies of the group.
        n_objects: number of objects, 2 to ``len(prior.colors)``.
        face_probability: probability that the block has a painted side face.
        front_camera_xy: world ``(x, y)`` of the front camera (view 0), metres.
        face_hidden_probability: probability that the painted face is the side turned away from the front camera
            (its outward normal within 45 degrees of the direction from that camera; never visible in view 0);
            otherwise the side is drawn uniformly.
        occluder_probability: probability of a wall between the front camera and one object (drawn uniformly among
            those for which the wall clears every other object; none when no object allows it).

    Returns:
        A :class:`SceneSpec` whose objects do not overlap (centres at least the sum of their radii plus 1 cm apart)
        and lie in the square of half side :data:`REGION_HALF` around :data:`REGION_CENTER`.

    Raises:
        ValueError: ``n_objects`` out of range, or no collision-free layout found in 200 tries.
    """
    shapes = prior.kinds[2:]
    if not 2 <= n_objects <= min(len(prior.colors), len(shapes) + 2):
        raise ValueError(f"a scene holds 2 to {min(len(prior.colors), len(shapes) + 2)} objects, got {n_objects}")
    kinds = ["block"]
    if rng.random() < 0.6:
        kinds.append("bowl")
    p_shape = prior.shape_popularity / prior.shape_popularity.sum()
    picked = rng.choice(len(shapes), size=n_objects - len(kinds), replace=False, p=p_shape)
    kinds += [shapes[i] for i in picked]
    used: set[str] = set()
    drafts = []
    for kind in kinds:
        color = prior.colors[rng.choice(len(prior.colors), p=prior.color_weights(kind, used))]
        used.add(color)
        size = "large" if rng.random() < prior.large_probability[kind] else "small"
        face = None
        if kind == "block" and rng.random() < face_probability:
            face = prior.colors[rng.choice(len(prior.colors), p=prior.face_weights(color))]
        drafts.append((kind, color, size, face))
    radii = [ObjectSpec(k, c, s, (0.0, 0.0), 0.0).radius for k, c, s, _ in drafts]
    positions = _layout(rng, radii)
    objects = []
    for (kind, color, size, face), pos in zip(drafts, positions, strict=True):
        yaw = float(rng.uniform(0, 2 * np.pi))
        side = int(rng.integers(4))
        if face is not None and rng.random() < face_hidden_probability:
            side = hidden_side(pos, yaw, front_camera_xy)
        objects.append(ObjectSpec(kind, color, size, pos, yaw, face, side))
    occluder = None
    if rng.random() < occluder_probability:
        occluder = _place_occluder(rng, objects, front_camera_xy)
    return SceneSpec(index, group, tuple(objects), occluder)


def hidden_side(position: tuple[float, float], yaw: float, camera_xy: tuple[float, float]) -> int:
    """The side face (0-3, :class:`ObjectSpec` convention) of a block at ``position`` with ``yaw`` whose outward
    normal points most directly away from a camera at ``camera_xy`` (world metres): a face it cannot see."""
    away = math.atan2(position[1] - camera_xy[1], position[0] - camera_xy[0])
    return int(np.argmax([math.cos(yaw + k * math.pi / 2 - away) for k in range(4)]))


def occluder_pose(target: ObjectSpec, camera_xy: tuple[float, float]) -> tuple[float, float, float, float]:
    """``(x, y, yaw, width)`` of a wall that hides ``target`` from a camera at ``camera_xy``: on the line from the
    object to the camera, :data:`OCCLUDER_GAP` beyond its footprint, facing the camera, 2 cm wider than the object
    (metres, radians)."""
    ux, uy = camera_xy[0] - target.position[0], camera_xy[1] - target.position[1]
    norm = math.hypot(ux, uy)
    ux, uy = ux / norm, uy / norm
    d = target.radius + OCCLUDER_GAP + OCCLUDER_THICKNESS / 2
    return (target.position[0] + d * ux, target.position[1] + d * uy, math.atan2(uy, ux), 2 * target.radius + 0.02)


def _place_occluder(rng: np.random.Generator, objects: list[ObjectSpec],
                    camera_xy: tuple[float, float]) -> tuple[float, float, float, float] | None:
    """A wall hiding a random object that clears every other one (1 cm), or None."""
    for i in rng.permutation(len(objects)):
        pose = occluder_pose(objects[i], camera_xy)
        reach = math.hypot(pose[3] / 2, OCCLUDER_THICKNESS / 2)
        if all(math.dist(pose[:2], o.position) > o.radius + reach + 0.01 for j, o in enumerate(objects) if j != i):
            return pose
    return None


def _layout(rng: np.random.Generator, radii: list[float], tries: int = 200) -> list[tuple[float, float]]:
    """Collision-free centres for discs of these radii inside the object region."""
    cx, cy = REGION_CENTER
    for _ in range(tries):
        placed: list[tuple[float, float]] = []
        for r in radii:
            half = REGION_HALF - r
            for _ in range(50):
                xy = (cx + float(rng.uniform(-half, half)), cy + float(rng.uniform(-half, half)))
                if all(math.dist(xy, q) > r + radii[j] + 0.01 for j, q in enumerate(placed)):
                    placed.append(xy)
                    break
            else:
                break
        if len(placed) == len(radii):
            return placed
    raise ValueError(f"no collision-free layout for {len(radii)} objects in {tries} tries")


# --------------------------------------------------------------------------------------------------- cameras
def look_at_camera(name: str, eye, target, image_size: int, focal_length: float):
    """A :class:`vlarm.sim.cameras.CameraConfig` at ``eye`` looking at ``target`` with the world z axis up.

    Args:
        name: camera name.
        eye: ``(x, y, z)`` camera centre, metres.
        target: ``(x, y, z)`` point at the image centre, metres; not straight below or above ``eye``.
        image_size: square image side, pixels.
        focal_length: pixels.

    Returns:
        The camera; its ``rotation_matrix`` has columns right, down, forward (the renderer's convention).

    Raises:
        ValueError: ``eye`` and ``target`` coincide or are vertically aligned.
    """
    import pybullet as p
    from scipy.spatial.transform import Rotation

    from vlarm.sim.cameras import CameraConfig

    eye, target = np.asarray(eye, float), np.asarray(target, float)
    forward = target - eye
    right = np.cross(forward, (0.0, 0.0, 1.0))
    if np.linalg.norm(forward) < 1e-9 or np.linalg.norm(right) < 1e-9 * np.linalg.norm(forward):
        raise ValueError(f"camera {name!r}: eye {eye.tolist()} must not be at or straight above/below the target")
    forward, right = forward / np.linalg.norm(forward), right / np.linalg.norm(right)
    down = np.cross(forward, right)
    quat = Rotation.from_matrix(np.stack([right, down, forward], axis=1)).as_quat()
    euler = p.getEulerFromQuaternion(quat.tolist())
    return CameraConfig(name, image_size=(image_size, image_size), focal_length=float(focal_length),
                        position=tuple(eye.tolist()), rotation=tuple(float(a) for a in euler), z_range=(0.01, 5.0))


def sampled_cameras(rng: np.random.Generator, n: int, image_size: int) -> tuple:
    """``n`` look-at cameras around the object region: azimuth stratified over the circle (one random angle per
    ``2 pi / n`` sector), elevation 30-65 degrees, 0.5-0.7 m from the region centre, a field of view 0.44 m across
    at that distance.

    Returns:
        A tuple of ``CameraConfig`` named ``around0`` .. ``around{n-1}``, ``image_size`` pixels square.
    """
    target = np.array([*REGION_CENTER, 0.02])
    cams = []
    for k in range(n):
        azimuth = 2 * np.pi * (k + rng.random()) / n
        elevation = np.radians(rng.uniform(30, 65))
        distance = rng.uniform(0.5, 0.7)
        eye = target + distance * np.array([np.cos(elevation) * np.cos(azimuth),
                                            np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
        focal = (image_size / 2) * distance / 0.22
        cams.append(look_at_camera(f"around{k}", eye, target, image_size, focal))
    return tuple(cams)


def crop_origin(camera, image_size: int) -> tuple[int, int]:
    """Top-left ``(row, col)`` of the ``image_size`` square, within the camera's image, centred on the projection of
    the region centre (clipped to the image).

    Raises:
        ValueError: the camera image is smaller than ``image_size`` (raise ``camera_scale``).
    """
    h, w = camera.image_size
    if h < image_size or w < image_size:
        raise ValueError(f"camera {camera.name!r} renders {h}x{w} pixels, less than the {image_size}-pixel crop; "
                         "raise camera_scale or lower image_size")
    cam = camera.rotation_matrix.T @ (np.array([*REGION_CENTER, 0.02]) - np.asarray(camera.position))
    if cam[2] <= 0:
        raise ValueError(f"camera {camera.name!r} does not look at the object region")
    u, v, _ = camera.intrinsics @ (cam / cam[2])
    row, col = int(round(v - image_size / 2)), int(round(u - image_size / 2))
    return int(np.clip(row, 0, h - image_size)), int(np.clip(col, 0, w - image_size))


# --------------------------------------------------------------------------------------------------- rendering
def build_scene(scene, spec: SceneSpec) -> tuple[list[int], int | None]:
    """Place a spec's objects (and its occluding wall) in a reset :class:`vlarm.sim.Scene` (no physics step: they
    rest where placed).

    Args:
        scene: a ``vlarm.sim.Scene`` just after ``reset()``.
        spec: what to place.

    Returns:
        ``(bodies, face_body)``: the PyBullet body id of each object, in ``spec.objects`` order, and of the painted
        face plate (None without one).
    """
    from vlarm.sim.assets import create_bowl, create_box
    from vlarm.sim.shapes import create_shape
    from vlarm.sim.transforms import yaw_to_quat

    bodies, face_body = [], None
    for obj in spec.objects:
        rgb = COLORS[obj.color]
        base = (np.array([obj.position[0], obj.position[1], 0.0]), yaw_to_quat(obj.yaw))
        if obj.kind == "block":
            edge = BLOCK_EDGE[obj.size]
            body = scene.add_block(base, rgb, obj.color, size=edge)
            if obj.face_color is not None:
                angle = obj.yaw + obj.face_side * np.pi / 2
                offset = edge / 2 + 0.0015
                centre = (obj.position[0] + offset * np.cos(angle), obj.position[1] + offset * np.sin(angle), edge / 2)
                face_body = create_box(scene.client, centre, yaw_to_quat(angle), (0.003, 0.85 * edge, 0.85 * edge),
                                       COLORS[obj.face_color], mass=0.0)
        elif obj.kind == "bowl":
            body = create_bowl(scene.client, base[0], base[1], rgb, fixed=True, radius=BOWL_RADIUS[obj.size])
            d = 2 * BOWL_RADIUS[obj.size]
            scene.add_object(body, "bowl", obj.color, (d, d, 0.03), fixed=True)
        else:
            made = create_shape(scene.client, KIT_SHAPES.index(obj.kind), base, rgb, size=SHAPE_DIAMETER[obj.size],
                                height=SHAPE_THICKNESS)
            d = SHAPE_DIAMETER[obj.size]
            body = scene.add_object(made.body, obj.kind, obj.color, (d, d, SHAPE_THICKNESS))
        bodies.append(body)
    if spec.occluder is not None:
        x, y, yaw, width = spec.occluder
        create_box(scene.client, (x, y, OCCLUDER_HEIGHT / 2), yaw_to_quat(yaw),
                   (OCCLUDER_THICKNESS, width, OCCLUDER_HEIGHT), OCCLUDER_RGB, mass=0.0)
    return bodies, face_body


def render_views(scene, robot_cameras: tuple, sampled: tuple, image_size: int, bodies: list[int],
                 face_body: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Render every view of a built scene.

    Args:
        scene: the ``vlarm.sim.Scene`` holding the objects (:func:`build_scene`).
        robot_cameras: the robot's cameras (rendered whole, then cropped by :func:`crop_origin`).
        sampled: look-at cameras of ``image_size`` pixels (:func:`sampled_cameras`).
        image_size: output side in pixels.
        bodies: body ids of the objects.
        face_body: body id of the painted face plate, or None.

    Returns:
        ``(images, pixels)``: ``(V, image_size, image_size, 3)`` uint8 RGB views (robot cameras first) and
        ``(V, len(bodies) + 1)`` int64 visible pixel counts of each object and, in the last column, of the face plate.
    """
    from vlarm.sim.cameras import render

    images, pixels = [], []
    ids = [*bodies, -10 if face_body is None else face_body]
    for cam in (*robot_cameras, *sampled):
        rgb, _, seg = render(scene.client, cam, scene.renderer)
        if cam in robot_cameras:
            r, c = crop_origin(cam, image_size)
            rgb, seg = rgb[r:r + image_size, c:c + image_size], seg[r:r + image_size, c:c + image_size]
        images.append(rgb)
        pixels.append([int((seg == b).sum()) for b in ids])
    return np.stack(images).astype(np.uint8), np.asarray(pixels, dtype=np.int64)
