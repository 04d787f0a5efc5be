"""End-effector delta servoing (vlarm.sim.servo): bounded steps, guarded descent, refused input."""

import numpy as np
import pytest

from vlarm.sim import Scene
from vlarm.sim.servo import MAX_TRANSLATION, MAX_YAW, TipServo, tool_quaternion, wrap_angle
from vlarm.sim.transforms import quat_to_yaw


@pytest.fixture(scope="module")
def scene():
    s = Scene(cameras=())
    s.reset()
    yield s
    s.close()


def test_translation_is_clipped_per_step(scene):
    servo = TipServo(scene)
    scene.reset()
    servo.reset()
    servo.step(np.zeros(3), 0.0, False)              # let the welded tool settle under gravity first
    before = np.asarray(scene.arm.tip_pose()[0])
    servo.step([0.5, 0.0, 0.0], 0.0, False)          # asks for 50 cm, gets at most MAX_TRANSLATION
    moved = np.asarray(scene.arm.tip_pose()[0]) - before
    assert 0.5 * MAX_TRANSLATION < moved[0] <= MAX_TRANSLATION + 0.004
    assert abs(moved[1]) < 0.004 and abs(moved[2]) < 0.004


def test_yaw_is_clipped_and_followed(scene):
    servo = TipServo(scene)
    scene.reset()
    servo.reset()
    servo.step(np.zeros(3), 1.0, False)
    assert servo.yaw == pytest.approx(MAX_YAW)
    for _ in range(3):
        servo.step(np.zeros(3), 0.0, False)
    tool_yaw = quat_to_yaw(np.asarray(scene.arm.tip_pose()[1]))
    expected = quat_to_yaw(tool_quaternion(MAX_YAW))
    assert abs(wrap_angle(tool_yaw - expected)) < 0.05


def test_descent_stops_at_contact_on_the_table(scene):
    servo = TipServo(scene)
    scene.reset()
    servo.reset()
    for _ in range(30):
        result = servo.step([0.0, 0.0, -MAX_TRANSLATION], 0.0, False)
        if result.contact:
            break
    assert result.contact
    tip_z = scene.arm.tip_pose()[0][2]
    assert -0.01 < tip_z < 0.02        # resting on the table top, not pushed through it


def test_bad_commands_are_refused(scene):
    servo = TipServo(scene)
    scene.reset()
    servo.reset()
    with pytest.raises(ValueError, match="finite"):
        servo.step([np.nan, 0.0, 0.0], 0.0, False)
    with pytest.raises(ValueError, match="finite"):
        servo.step([0.0, 0.0], 0.0, False)


def test_wrap_angle():
    assert wrap_angle(np.pi) == pytest.approx(-np.pi)
    assert wrap_angle(3 * np.pi / 2) == pytest.approx(-np.pi / 2)
    assert wrap_angle(-0.3) == pytest.approx(-0.3)
