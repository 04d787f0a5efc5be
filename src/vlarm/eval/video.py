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
        caption: optional text burned into the top of every frame (e.g. the instruction).
    """

    def __init__(self, camera: CameraConfig, scale: float = 0.5, caption: str = ""):
        self.camera = camera.scaled(scale)
        self.frames: list[np.ndarray] = []
        self.caption = caption

    def __call__(self, scene) -> None:
        """Capture one frame of ``scene`` (usable as ``Scene.frame_callback``)."""
        rgb, _, _ = render(scene.client, self.camera)
        self.frames.append(rgb)

    def write(self, path: str | Path, fps: int = 10) -> Path:
        """Write the frames to ``path`` (``.mp4`` or ``.gif``); returns the path.

        Raises:
            ValueError: if there are no frames or the suffix is not .mp4/.gif.
        """
        import imageio.v2 as imageio

        path = Path(path)
        if not self.frames:
            raise ValueError("no frames were recorded")
        if path.suffix not in (".mp4", ".gif"):
            raise ValueError(f"video path must end in .mp4 or .gif, got {path.name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = [_caption(f, self.caption) for f in self.frames]
        if path.suffix == ".mp4":
            imageio.mimwrite(path, frames, fps=fps, macro_block_size=16, quality=7)
        else:
            imageio.mimwrite(path, frames, duration=1000 / fps, loop=0)
        return path


def _caption(frame: np.ndarray, text: str) -> np.ndarray:
    if not text:
        return frame
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, img.width, 14], fill=(0, 0, 0))
    draw.text((4, 1), text, fill=(255, 255, 255))
    return np.asarray(img)
