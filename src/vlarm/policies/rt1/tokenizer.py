"""RT-1's action tokenizer (Brohan et al., RSS 2023, Sec. 3 "Action tokenization"; the robotics_transformer
``action_tokenizer``): every continuous action dimension is clipped to a stated range and split into 256 uniform
bins, and one extra token carries the mode (move the arm / terminate the episode).

vlarm's ``ee_delta`` actions (:mod:`vlarm.envs.closed_loop`) have five continuous dimensions (tip translation x,
y, z in metres, yaw in radians, suction as -1 off / +1 on, RT-1's "gripper" dimension) and the mode, so an action
is six tokens. The tool always points down, so RT-1's roll/pitch and its mobile-base dimensions do not exist here.

Bins: value ``v`` in ``[low, high]`` maps to ``round((v - low) / (high - low) * 255)``; token ``k`` maps back to
``low + k * (high - low) / 255``. The ends map to tokens 0 and 255, and decoding a token is off by at most half a
bin (:func:`bin_width` / 2). Values outside the range are clipped to its ends (never wrapped); NaN is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlarm.sim.servo import MAX_TRANSLATION, MAX_YAW

NUM_BINS = 256
#: Mode token values (RT-1's ``terminate_episode`` token: arm / terminate).
MODE_ARM = 0
MODE_TERMINATE = 1
MODES = (MODE_ARM, MODE_TERMINATE)


@dataclass(frozen=True)
class ActionDim:
    """One tokenised action dimension: a name, its unit and its range ``[low, high]``."""

    name: str
    unit: str
    low: float
    high: float


#: The continuous dimensions of an ``ee_delta`` action, in token order (the mode token follows them).
ACTION_DIMS = (
    ActionDim("translation.x", "m", -MAX_TRANSLATION, MAX_TRANSLATION),
    ActionDim("translation.y", "m", -MAX_TRANSLATION, MAX_TRANSLATION),
    ActionDim("translation.z", "m", -MAX_TRANSLATION, MAX_TRANSLATION),
    ActionDim("yaw", "rad", -MAX_YAW, MAX_YAW),
    ActionDim("suction", "-1 off / +1 on", -1.0, 1.0),
)
#: Tokens per action: the continuous dimensions + the mode token.
TOKENS_PER_ACTION = len(ACTION_DIMS) + 1
_LOW = np.array([d.low for d in ACTION_DIMS])
_HIGH = np.array([d.high for d in ACTION_DIMS])


def bin_width() -> np.ndarray:
    """Spacing of the bin values of each continuous dimension, ``(5,)`` float64 in its unit."""
    return (_HIGH - _LOW) / (NUM_BINS - 1)


def tokenize(values) -> np.ndarray:
    """Continuous action values -> bin tokens.

    Args:
        values: ``(..., 5)`` numbers in the units of :data:`ACTION_DIMS`.

    Returns:
        ``(..., 5)`` int64 tokens in ``[0, 255]``.

    Raises:
        ValueError: the last axis is not 5 long, or a value is NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0 or v.shape[-1] != len(ACTION_DIMS):
        raise ValueError(f"expected (..., {len(ACTION_DIMS)}) values ({', '.join(d.name for d in ACTION_DIMS)}), "
                         f"got shape {v.shape}")
    if np.isnan(v).any():
        raise ValueError("cannot tokenise NaN action values")
    unit = (np.clip(v, _LOW, _HIGH) - _LOW) / (_HIGH - _LOW)
    return np.rint(unit * (NUM_BINS - 1)).astype(np.int64)


def detokenize(tokens) -> np.ndarray:
    """Bin tokens -> continuous values (the inverse of :func:`tokenize` up to half a bin).

    Args:
        tokens: ``(..., 5)`` integers in ``[0, 255]``.

    Returns:
        ``(..., 5)`` float64 values in the units of :data:`ACTION_DIMS`.

    Raises:
        ValueError: wrong last axis, or a token outside ``[0, 255]``.
    """
    t = np.asarray(tokens)
    if t.ndim == 0 or t.shape[-1] != len(ACTION_DIMS):
        raise ValueError(f"expected (..., {len(ACTION_DIMS)}) tokens, got shape {t.shape}")
    if not np.issubdtype(t.dtype, np.integer) or t.min(initial=0) < 0 or t.max(initial=0) >= NUM_BINS:
        raise ValueError(f"tokens must be integers in [0, {NUM_BINS - 1}], got {t.tolist()}")
    return _LOW + t.astype(np.float64) * (_HIGH - _LOW) / (NUM_BINS - 1)


def encode_action(action: dict) -> np.ndarray:
    """An ``ee_delta`` action dict -> ``(6,)`` int64 tokens (5 bins + the mode token).

    Raises:
        ValueError: missing keys or NaN values (see :func:`vlarm.envs.closed_loop.parse_ee_action` for the dict).
    """
    try:
        values = [*np.asarray(action["translation"], float).reshape(3), float(np.asarray(action["yaw"]).reshape(-1)[0]),
                  1.0 if int(action["suction"]) else -1.0]
        mode = MODE_TERMINATE if int(action["terminate"]) else MODE_ARM
    except (KeyError, TypeError) as err:
        raise ValueError(f"an ee_delta action needs translation, yaw, suction and terminate ({err})") from err
    return np.concatenate([tokenize(values), [mode]]).astype(np.int64)


def decode_action(tokens) -> dict:
    """``(6,)`` tokens -> an ``ee_delta`` action dict (suction on when its value is > 0).

    Raises:
        ValueError: wrong length, a bin token outside ``[0, 255]`` or a mode token other than 0 (arm) / 1
            (terminate).
    """
    t = np.asarray(tokens).reshape(-1)
    if t.shape != (TOKENS_PER_ACTION,):
        raise ValueError(f"an action is {TOKENS_PER_ACTION} tokens, got {t.shape[0]}")
    if int(t[-1]) not in MODES:
        raise ValueError(f"mode token must be {MODE_ARM} (arm) or {MODE_TERMINATE} (terminate), got {int(t[-1])}")
    v = detokenize(t[:-1])
    return {"translation": v[:3].astype(np.float32), "yaw": v[3:4].astype(np.float32), "suction": int(v[4] > 0),
            "terminate": int(t[-1] == MODE_TERMINATE)}


__all__ = ["ACTION_DIMS", "MODES", "MODE_ARM", "MODE_TERMINATE", "NUM_BINS", "TOKENS_PER_ACTION", "ActionDim",
           "bin_width", "decode_action", "detokenize", "encode_action", "tokenize"]
