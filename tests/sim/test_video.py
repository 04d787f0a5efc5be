import errno
import sys

import numpy as np
import pytest

from vlarm.sim.video import VideoRecorder, VideoWriteError


class _Camera:
    def scaled(self, scale):
        return self


def _recorder(n=4):
    rec = VideoRecorder(_Camera(), caption="put the red blocks in a green bowl")
    rec.frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(n)]
    return rec


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_write_creates_parents_and_keeps_every_frame(tmp_path, suffix):
    import imageio.v2 as imageio

    path = _recorder(5).write(tmp_path / "a" / "b" / f"episode{suffix}")
    assert path.is_file() and path.stat().st_size > 0
    if suffix == ".gif":
        assert len(imageio.mimread(path)) == 5


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc and /sys")
@pytest.mark.parametrize("path", ["/proc/vlarm-x.mp4", "/sys/vlarm-x.gif", "/proc/vlarm-dir/x.mp4"])
def test_unwritable_path_is_one_line_error(path, capfd):
    with pytest.raises(VideoWriteError) as err:
        _recorder().write(path)
    message = str(err.value)
    assert message.startswith(f"could not write the video {path}: ") and "\n" not in message
    assert "ffmpeg" not in capfd.readouterr().err.lower()   # no encoder log dumped on the terminal


def test_write_into_a_directory_is_one_line_error(tmp_path):
    (tmp_path / "v.mp4").mkdir()
    with pytest.raises(VideoWriteError, match="could not write the video .*v.mp4: Is a directory"):
        _recorder().write(tmp_path / "v.mp4")


def test_encoder_failure_keeps_only_its_first_line(tmp_path, monkeypatch):
    import imageio.v2 as imageio

    def broken(*args, **kwargs):
        raise RuntimeError("encoder gave up\n\nFFMPEG COMMAND:\nffmpeg -y ...\n\nFFMPEG STDERR OUTPUT:\n...")

    monkeypatch.setattr(imageio, "mimwrite", broken)
    with pytest.raises(VideoWriteError) as err:
        _recorder().write(tmp_path / "v.mp4")
    assert str(err.value) == f"could not write the video {tmp_path / 'v.mp4'}: encoder gave up"


def test_disk_full_and_silent_encoder_are_errors(tmp_path, monkeypatch):
    import imageio.v2 as imageio

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(imageio, "mimwrite", full)
    with pytest.raises(VideoWriteError, match="No space left on device$"):
        _recorder().write(tmp_path / "v.mp4")
    monkeypatch.setattr(imageio, "mimwrite", lambda *a, **k: None)   # "succeeds" but writes nothing
    with pytest.raises(VideoWriteError, match="the encoder produced no data"):
        _recorder().write(tmp_path / "w.mp4")


def test_bad_suffix_and_no_frames_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="must end in .mp4 or .gif"):
        _recorder().write(tmp_path / "v.avi")
    with pytest.raises(ValueError, match="no frames"):
        _recorder(0).write(tmp_path / "v.mp4")


def test_each_frame_keeps_the_caption_it_was_filmed_under(tmp_path, monkeypatch):
    import vlarm.sim.video as video

    frames = iter(np.zeros((5, 48, 64, 3), np.uint8))
    monkeypatch.setattr(video, "render", lambda client, camera, renderer: (next(frames), None, None))
    burned = []
    caption = video._caption
    monkeypatch.setattr(video, "_caption", lambda frame, text: burned.append(text) or caption(frame, text))
    scene = type("S", (), {"client": 0, "renderer": "tiny"})()
    rec = VideoRecorder(_Camera(), caption="")
    rec(scene)                                    # no caption: the frame is left as filmed
    rec.caption = "put the red block on the lightest brown block"
    rec(scene)
    rec(scene)
    rec.caption = "put the blue block on the middle brown block"   # a sequential task's next step
    rec(scene)
    rec.write(tmp_path / "v.gif")
    assert burned == ["", rec.captions[1], rec.captions[1], "put the blue block on the middle brown block"]
    assert rec.captions[1] == "put the red block on the lightest brown block"
    assert caption(np.zeros((48, 64, 3), np.uint8), "x")[:14].any() and not caption(np.zeros((48, 64, 3), np.uint8),
                                                                                    "").any()
