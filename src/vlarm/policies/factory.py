"""Policy registry and factory (LeRobot ``make_policy``; open_clip's single entry point).

``make_policy("cliport", widths=(8, 16, 32, 64))`` builds a policy from its registered name and config
overrides; ``load_policy(path)`` loads any checkpoint written by ``save_pretrained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlarm.policies.base import POLICY_REGISTRY, Policy
from vlarm.policies.cliport.modeling_cliport import CLIPortPolicy  # noqa: F401 - registers "cliport"
from vlarm.policies.processing import NORMALIZATION_FIELDS
from vlarm.policies.rt1.modeling import RT1Policy  # noqa: F401 - registers "rt1"
from vlarm.policies.transporter.modeling_transporter import TransporterPolicy  # noqa: F401 - registers

"transporter"


def available_policies() -> list[str]:
    """Sorted names of the registered policies (e.g. ``["cliport", "transporter"]``)."""
    return sorted(POLICY_REGISTRY)


def make_config(name: str, **overrides: Any) -> Any:
    """Build the config dataclass of policy ``name`` with ``overrides`` applied.

    Raises:
        ValueError: unknown policy name (lists the valid ones); TypeError: unknown config field.
    """
    if name not in POLICY_REGISTRY:
        raise ValueError(f"unknown policy {name!r}; available policies: {', '.join(available_policies())}")
    return POLICY_REGISTRY[name].config_class(**overrides)


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
#: Config fields training fills from the data; ``--policy-option`` may not contradict them.
RECORDED_FIELDS = ("tasks", "renderer", "action_mode")


def _option_value(key: str, raw: str, hint: Any) -> Any:
    """``raw`` converted to the type of config field ``key`` (``hint``).

    Raises:
        ValueError: a value that is not of that type (e.g. ``state_token=maybe``).
    """
    import json

    text = raw.strip()
    if hint is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"--policy-option {key}={raw}: {key} is true or false")
    if hint in (int, float):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        wrong = isinstance(value, bool) or not isinstance(value, int | float)
        if wrong or (hint is int and not isinstance(value, int)):
            raise ValueError(f"--policy-option {key}={raw}: {key} is {'an integer' if hint is int else 'a number'}")
        return value
    if hint is str:
        return text
    try:   # tuples, lists, optional fields: JSON (e.g. [96, 128], null)
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"--policy-option {key}={raw}: give {key} as JSON, e.g. [1, 2] or null") from None


def parse_policy_options(name: str, options: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (the CLI's ``--policy-option``) as config overrides of policy ``name``, each VALUE
    converted to its field's type: booleans from true/false (also 1/0, yes/no, on/off), integers and numbers as
    written, strings as they are, anything else as JSON (``[96, 128]``).

    Raises:
        ValueError: an unknown policy, an option without ``=``, a KEY that is not a field of the policy's config
            (naming the fields), one training records (:data:`RECORDED_FIELDS`) or an input statistic
            (:data:`NORMALIZATION_FIELDS`), or a VALUE not of the field's
            type.
    """
    import dataclasses
    import typing

    if name not in POLICY_REGISTRY:
        raise ValueError(f"unknown policy {name!r}; available policies: {', '.join(available_policies())}")
    config_class = POLICY_REGISTRY[name].config_class
    hints = typing.get_type_hints(config_class)
    fields = {f.name for f in dataclasses.fields(config_class)}
    out: dict[str, Any] = {}
    for option in options:
        key, sep, raw = option.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--policy-option takes KEY=VALUE, got {option!r}")
        if key not in fields:
            raise ValueError(f"--policy-option {key}: not a {name} config field; fields: {', '.join(sorted(fields))}")
        if key in RECORDED_FIELDS:
            raise ValueError(f"--policy-option {key}: training records it from the data (tasks, renderer, action "
                             "mode); it cannot be set")
        if key in NORMALIZATION_FIELDS:
            raise ValueError(f"--policy-option {key}: the input statistics come from --normalization (dataset: the "
                             "data's meta/stats.json; ravens: Ravens' constants); they cannot be set one by one")
        out[key] = _option_value(key, raw, hints.get(key))
    return out


def make_policy(name: str, **overrides: Any) -> Policy:
    """Build a freshly initialised policy by registry name.

    Args:
        name: one of :func:`available_policies`.
        **overrides: config fields (see ``TransporterConfig`` / ``CLIPortConfig``).

    Returns:
        The policy (an ``nn.Module`` in training mode).

    Raises:
        ValueError: unknown name, listing the valid names. TypeError: unknown config field.
    """
    config = make_config(name, **overrides)
    return POLICY_REGISTRY[name](config)


def load_policy(path: str | Path, **overrides: Any) -> Policy:
    """Load a policy checkpoint directory (``config.json`` + ``model.safetensors``), whatever its type.

    Raises:
        CheckpointError: missing or corrupt files, unknown type, mismatched tensors.
    """
    return Policy.from_pretrained(path, **overrides)
