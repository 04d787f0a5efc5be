"""Abstract policy interface and safetensors checkpoints (LeRobot-style; DESIGN.md "Interfaces worth keeping stable").

A checkpoint directory holds ``config.json`` (the policy's dataclass config plus a ``"type"`` field naming the
policy) and ``model.safetensors`` (trainable weights only: frozen pretrained parts such as EfficientNet or
MiniLM are rebuilt on load, so checkpoints stay small). Nothing is ever unpickled. The weights file carries a
SHA-256 digest of its tensors that is verified on load (:mod:`vlarm.weights`), and non-finite weights are refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import types
import typing
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from vlarm.weights import WeightsError, load_weights, save_weights

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

#: name -> policy class, filled by :func:`register_policy`.
POLICY_REGISTRY: dict[str, type[Policy]] = {}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not match the policy (message names the file and the problem)."""


DEVICES = ("auto", "cpu", "cuda")
logger = logging.getLogger(__name__)


def policy_env_options(config) -> dict:
    """:func:`vlarm.envs.make_env` arguments that render what a policy learned from.

    Args:
        config: a policy config (dataclass) or its ``config.json`` as a dict.

    Returns:
        ``{"renderer": ...}``: the renderer the policy records (``"tiny"`` when it records none; an ``"egl"``
        policy gets ``"tiny"`` with a logged warning where EGL does not load, as the two differ by ~16/255 in colour
        and < 1 mm in height, issue 10); ``camera_scale`` when the policy records the scale it learned from
        (pick-and-place policies, :class:`vlarm.policies.pick_place.PickPlaceConfig`); for a closed-loop policy
        (``action_mode`` ``"ee_delta"``, e.g. RT-1) also that mode and the ``image_scale`` rendering its
        ``image_size`` (relative to 480x640).
    """
    from vlarm.sim.cameras import RENDERER, egl_available

    get = config.get if isinstance(config, dict) else (lambda key, default=None: getattr(config, key, default))
    renderer = get("renderer") or RENDERER
    if renderer == "egl" and not egl_available():
        logger.warning("this policy learned from EGL-rendered images but PyBullet's EGL plugin does not load here "
                       "(Debian: apt install libegl-mesa0); rendering with TinyRenderer instead")
        renderer = "tiny"
    options = {"renderer": renderer}
    if get("camera_scale") is not None:
        options["camera_scale"] = float(get("camera_scale"))
    if get("action_mode", "pick_place") == "ee_delta":
        options.update(action_mode="ee_delta", image_scale=float(get("image_size")[0]) / 480.0)
    return options


def env_options_at_scale(options: dict, camera_scale: float | None = None) -> dict:
    """``options`` (from :func:`policy_env_options`) with the camera scale to render at.

    Args:
        options: env arguments; its ``camera_scale``, when present, is the scale the policy learned from.
        camera_scale: the scale asked for (relative to 480x640), or None for the policy's own (1.0 when it records
            none, ``vlarm collect``'s default).

    Returns:
        A new dict with ``camera_scale`` set. Asking for a scale other than the recorded one is allowed (a
        robustness test) and logged as a warning: a pick-and-place policy's heightmap is fused from these cameras'
        point clouds, and at another density it can fail silently (CLIPort trained at 1.0 scores 0 at 0.25).
    """
    recorded = options.get("camera_scale")
    if camera_scale is None:
        return {**options, "camera_scale": 1.0 if recorded is None else float(recorded)}
    if recorded is not None and not math.isclose(float(camera_scale), float(recorded)):
        logger.warning("the policy learned from cameras at scale %g; rendering at --camera-scale %g instead changes "
                       "the heightmap it sees (omit --camera-scale to use the policy's own)", recorded, camera_scale)
    return {**options, "camera_scale": float(camera_scale)}


def agent_env_options(agent) -> dict:
    """:func:`policy_env_options` of an agent's ``config``; ``{}`` for an agent without one (the oracle, a
    scripted agent: they read the simulator, not images)."""
    config = getattr(agent, "config", None)
    return {} if config is None else policy_env_options(config)


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for a ``--device`` value.

    Args:
        name: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns:
        A ``torch.device``.

    Raises:
        ValueError: an unknown name, or CUDA asked for on a machine without it (the message says to use cpu).
    """
    name = str(name).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: this machine has no CUDA device (or torch is a CPU build); use "
                             "--device cpu or auto")
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; valid: {', '.join(DEVICES)} (or cuda:N)")


def batch_to(batch: dict, device: torch.device) -> dict:
    """A copy of a batch dict with every tensor (and every tensor in a list) moved to ``device``."""
    def move(v):
        if isinstance(v, torch.Tensor):
            return v.to(device, non_blocking=True)
        if isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
            return [t.to(device, non_blocking=True) for t in v]
        return v

    return {k: move(v) for k, v in batch.items()}


def register_policy(cls: type[Policy]) -> type[Policy]:
    """Class decorator: register a :class:`Policy` subclass under ``cls.name``."""
    POLICY_REGISTRY[cls.name] = cls
    return cls


def config_to_dict(config: Any, name: str) -> dict:
    """Dataclass config -> JSON-able dict with ``"type": name`` (tuples become lists)."""
    return {"type": name, **dataclasses.asdict(config)}


def config_from_dict(config_class: type, data: dict, source: str = "config") -> Any:
    """Build a dataclass config from a dict (as read from ``config.json``); list fields become tuples where typed so.

    Raises:
        CheckpointError: on unknown fields (message names ``source``).
    """
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    data = {k: v for k, v in data.items() if k != "type"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CheckpointError(f"{source}: unknown {config_class.__name__} fields {unknown}")
    hints = typing.get_type_hints(config_class)
    kwargs = {}
    for key, value in data.items():
        hint = hints.get(key)
        origin = typing.get_origin(hint)
        if isinstance(value, list) and (origin is tuple or hint is tuple):
            value = tuple(value)
        elif (
            isinstance(value, list)
            and origin in (types.UnionType, typing.Union)
            and any(typing.get_origin(a) is tuple for a in typing.get_args(hint))
        ):
            value = tuple(value)
        kwargs[key] = value
    return config_class(**kwargs)


class Policy(nn.Module, ABC):
    """Base class of every vlarm policy (DESIGN.md; LeRobot's ``PreTrainedPolicy``).

    Subclasses set ``name`` (registry key and the ``"type"`` in ``config.json``) and ``config_class`` (a
    dataclass), and list in ``frozen_prefixes`` the state-dict prefixes of pretrained parts that are rebuilt,
    not saved.
    """

    name: ClassVar[str] = "base"
    config_class: ClassVar[type] = object
    frozen_prefixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    @property
    def device(self) -> torch.device:
        """The device of the policy's parameters (the CPU for a policy without any)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def reset(self) -> None:  # noqa: B027 - optional hook, stateless policies need nothing
        """Clear per-episode state (none for single-step pick-and-place policies)."""

    @abstractmethod
    def select_action(self, observation: dict, instruction: str | None = None) -> dict:
        """Map one observation (and an optional instruction overriding ``observation["instruction"]``) to an action."""

    @abstractmethod
    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Training loss on a batch: returns ``(scalar loss tensor, dict of float diagnostics)``."""

    # ------------------------------------------------------------------ checkpoints
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """State dict without the frozen pretrained parts (``frozen_prefixes``), contiguous tensors."""
        return {
            k: v.detach().contiguous()
            for k, v in self.state_dict().items()
            if not any(k.startswith(p) for p in self.frozen_prefixes)
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (trainable weights only) into ``directory``.

        Returns:
            The directory as a ``Path``.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(config_to_dict(self.config, self.name), indent=2) + "\n")
        save_weights(self.trainable_state_dict(), directory / WEIGHTS_NAME, metadata={"type": self.name})
        return directory

    @classmethod
    def resolve_config(cls, config: Any, directory: Path) -> Any:
        """Hook for :meth:`from_pretrained`: adjust a loaded config to its checkpoint ``directory`` (e.g. make
        paths of files stored next to the weights absolute). The default returns ``config`` unchanged."""
        return config

    @classmethod
    def from_pretrained(cls, directory: str | Path, **overrides: Any) -> Policy:
        """Load a policy saved by :meth:`save_pretrained`.

        Called on :class:`Policy` itself, the class is chosen from ``config.json``'s ``"type"``.

        Args:
            directory: checkpoint directory.
            **overrides: config fields to replace (e.g. ``backbone_pretrained=False`` in tests).

        Raises:
            CheckpointError: missing directory/files, invalid JSON, unknown or mismatched type, unreadable or
                damaged safetensors (digest mismatch, NaN/inf weights), or missing/unexpected/mis-shaped tensors.
        """
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not directory.is_dir():
            raise CheckpointError(f"checkpoint {directory} is a file, not a checkpoint directory (config.json + "
                                  f"model.safetensors)" if directory.exists()
                                  else f"checkpoint directory {directory} does not exist")
        if (directory / "checkpoints" / "last").is_dir():
            raise CheckpointError(
                f"{directory} is a training run; pass its checkpoint, e.g. {directory}/checkpoints/last"
            )
        if (directory / "vlm_config.json").is_file():
            raise CheckpointError(f"{directory} is a vision-language model, not a policy (use it with "
                                  "`vlarm train --semantic-vlm` or `vlarm vlm ...`)")
        for path in (config_path, weights_path):
            if not path.is_file():
                raise CheckpointError(f"{path}: file not found (expected a checkpoint written by save_pretrained)")
        try:
            data = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{config_path}: not valid JSON ({err})") from err
        if not isinstance(data, dict) or "type" not in data:
            raise CheckpointError(f"{config_path}: expected a JSON object with a 'type' field")
        kind = data["type"]
        if cls is Policy:
            from vlarm.policies import factory  # noqa: F401 - registers the policies

            if kind not in POLICY_REGISTRY:
                raise CheckpointError(f"{config_path}: unknown policy type {kind!r}; known: {sorted(POLICY_REGISTRY)}")
            target = POLICY_REGISTRY[kind]
        else:
            target = cls
            if kind != cls.name:
                raise CheckpointError(f"{config_path}: checkpoint is a {kind!r} policy, not {cls.name!r}")
        config = target.resolve_config(config_from_dict(target.config_class, {**data, **overrides},
                                                        source=str(config_path)), directory)
        try:
            state, _ = load_weights(weights_path)
        except WeightsError as err:
            raise CheckpointError(str(err)) from err
        policy = target(config)
        expected = policy.trainable_state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"{weights_path}: tensors do not match the config: "
                f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
            )
        for key, value in expected.items():
            if value.shape != state[key].shape:
                raise CheckpointError(
                    f"{weights_path}: tensor {key!r} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}"
                )
        policy.load_state_dict(state, strict=False)
        policy.eval()
        return policy
