"""RT-1 action tokenizer: range ends, midpoints, clipping (never wrapping), NaN, round trip within half a bin."""

import numpy as np
import pytest

from vlarm.policies.rt1.tokenizer import (
    ACTION_DIMS,
    NUM_BINS,
    bin_width,
    decode_action,
    detokenize,
    encode_action,
    tokenize,
)

LOW = np.array([d.low for d in ACTION_DIMS])
HIGH = np.array([d.high for d in ACTION_DIMS])


def test_range_ends_and_midpoint():
    assert tokenize(LOW).tolist() == [0] * 5
    assert tokenize(HIGH).tolist() == [NUM_BINS - 1] * 5
    mid = tokenize((LOW + HIGH) / 2)
    assert np.all(np.abs(detokenize(mid) - (LOW + HIGH) / 2) <= bin_width() / 2 + 1e-12)
    assert np.all((mid == 127) | (mid == 128))
    np.testing.assert_allclose(detokenize(np.zeros(5, int)), LOW)
    np.testing.assert_allclose(detokenize(np.full(5, NUM_BINS - 1)), HIGH)


def test_values_just_outside_are_clipped_never_wrapped():
    eps = 1e-6 * (HIGH - LOW)
    assert tokenize(LOW - eps).tolist() == [0] * 5
    assert tokenize(HIGH + eps).tolist() == [NUM_BINS - 1] * 5
    assert tokenize(LOW - 1e6).tolist() == [0] * 5
    assert tokenize(HIGH + 1e6).tolist() == [NUM_BINS - 1] * 5
    assert tokenize(np.full(5, np.inf)).tolist() == [NUM_BINS - 1] * 5


def test_nan_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        tokenize([0.0, np.nan, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        tokenize([0.0, 0.0])


def test_round_trip_within_half_a_bin():
    rng = np.random.default_rng(0)
    values = rng.uniform(LOW, HIGH, size=(1000, 5))
    err = np.abs(detokenize(tokenize(values)) - values)
    assert np.all(err <= bin_width() / 2 + 1e-12)
    assert err.max() > bin_width().min() / 4        # the bins really are that coarse: not an exact identity


def test_bad_tokens_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        detokenize([0, 0, 0, 0, 256])
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        detokenize([0, 0, -1, 0, 0])
    with pytest.raises(ValueError, match="mode token"):
        decode_action([0, 0, 0, 0, 0, 2])


def test_action_dict_round_trip():
    action = {"translation": np.array([0.01, -0.02, 0.03], np.float32), "yaw": np.array([-0.1], np.float32),
              "suction": 1, "terminate": 0}
    tokens = encode_action(action)
    assert tokens.shape == (6,) and tokens[-1] == 0
    back = decode_action(tokens)
    assert back["suction"] == 1 and back["terminate"] == 0
    assert np.all(np.abs(back["translation"] - action["translation"]) <= bin_width()[:3] / 2 + 1e-7)
    assert decode_action(encode_action({**action, "suction": 0, "terminate": 1}))["terminate"] == 1
    assert decode_action(encode_action({**action, "suction": 0}))["suction"] == 0
