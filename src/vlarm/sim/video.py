"""Episode videos: frames from a camera while the arm moves, written as mp4 (imageio-ffmpeg) or gif."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlarm.sim.cameras import CameraConfig, render


class VideoRecorder:
    """Collects frames from one camera at a reduced resolution.

    Args:
        camera: the camera to film with (its resolution is scaled by ``scale``).
        scale: resolution factor (0.5 of 480x640 renders in ~30 ms with TinyRenderer).
        caption: text burned into the top of the frames captured from now on (e.g. the instruction; sequential
            tasks change it at every step, so each frame shows the instruction it was filmed under).
    """

    def __init__(self, camera: CameraConfig, scale: float = 0.5, caption: str = ""):
        self.camera = camera.scaled(scale)
        self.frames: list[np.ndarray] = []
        self.captions: list[str] = []
        self.caption = caption

    def __call__(self, scene) -> None:
        """Capture one frame of ``scene`` (usable as ``Scene.frame_callback``)."""
        rgb, _, _ = render(scene.client, self.camera, scene.renderer)
        self.frames.append(rgb)
        self.captions.append(self.caption)

    def write(self, path: str | Path, fps: int = 10) -> Path:
        """Write the frames to ``path`` (``.mp4`` or ``.gif``); returns the path.

        Raises:
            ValueError: if there are no frames or the suffix is not .mp4/.gif.
            VideoWriteError: if the file cannot be written (one line naming the path and the reason, not the
                encoder's log).
        """
        import imageio.v2 as imageio

        path = Path(path)
        if not self.frames:
            raise ValueError("no frames were recorded")
        if path.suffix.lower() not in (".mp4", ".gif"):
            raise ValueError(f"video path must end in .mp4 or .gif, got {path.name}")
        captions = self.captions[: len(self.frames)] + [self.caption] * (len(self.frames) - len(self.captions))
        frames = [_caption(f, c) for f, c in zip(self.frames, captions, strict=True)]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Open the file ourselves first: an unwritable path is a clean OSError here rather than an ffmpeg log
            # (or a silently missing file) after encoding.
            with open(path, "wb") as f:
                if path.suffix.lower() == ".gif":
                    imageio.mimwrite(f, frames, format="GIF", duration=1000 / fps, loop=0)
            if path.suffix.lower() == ".mp4":
                imageio.mimwrite(path, frames, fps=fps, macro_block_size=16, quality=7, ffmpeg_log_level="quiet")
        except (OSError, RuntimeError) as err:
            raise VideoWriteError(f"could not write the video {path}: {_reason(err)}") from None
        if not path.is_file() or path.stat().st_size == 0:
            raise VideoWriteError(f"could not write the video {path}: the encoder produced no data")
        return path


class VideoWriteError(OSError):
    """A video could not be written (the episode itself ran; only its video is missing)."""


def _reason(err: Exception) -> str:
    """The first line of an error, without the encoder's multi-line log."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _caption(frame: np.ndarray, text: str) -> np.ndarray:
    if not text:
        return frame
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, img.width, 14], fill=(0, 0, 0))
    draw.text((4, 1), text, fill=(255, 255, 255))
    return np.asarray(img)
