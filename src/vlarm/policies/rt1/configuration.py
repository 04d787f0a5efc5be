"""RT-1 configuration (Brohan et al., RSS 2023, Sec. 3 and Appendix C.3; REFERENCE.md section 4).

Two sizes from the same code: :func:`paper_config` (8 decoder layers, 8 heads of key size 128, feed-forward 512,
embedding 512, 6-frame history, 8 TokenLearner tokens per frame from 81 = 9 x 9 image tokens at 288 x 288; about
30M parameters with EfficientNet-Lite0 in place of the paper's B3) and :class:`RT1Config`'s defaults, the CPU
size (96 x 128 images of the front camera, 2 layers of width 128).
"""

from __future__ import annotations

from dataclasses import dataclass

from vlarm.sim.cameras import RENDERER, check_renderer

#: MBConv blocks of EfficientNet-Lite0 that run for each token stride (all 16 at 32; up to the last stride-16 block,
#: 11, at 16). A test checks it against the network.
BLOCKS_PER_STRIDE = {16: 11, 32: 16}


@dataclass
class RT1Config:
    """Every hyper-parameter of RT-1 with its CPU-size default.

    Attributes:
        image_size: ``(H, W)`` of the camera images fed to the model, pixels (the env's policy camera).
        history: frames per window (RT-1: 6).
        tokens_per_frame: TokenLearner output tokens per frame (RT-1: 8).
        d_model: token embedding width (RT-1: 512).
        layers: decoder layers (RT-1: 8).
        heads: attention heads (RT-1: 8).
        key_size: width of each head's queries/keys/values (RT-1: 128).
        feed_forward: hidden width of the feed-forward blocks (RT-1: 512).
        dropout: dropout rate (RT-1: 0.1).
        token_learner_hidden: hidden width of TokenLearner's attention MLP.
        text_dim: instruction embedding size (MiniLM: 384; RT-1's USE: 512).
        backbone_pretrained: load the ImageNet EfficientNet-Lite0 weights (False only in tests).
        train_backbone: fine-tune the backbone's own weights (FiLM layers always train).
        token_stride: stride of the feature map that becomes the image tokens: 32 (RT-1: EfficientNet's last map,
            9 x 9 at 288 x 288) or 16 (vlarm's CPU option: the map after the last stride-16 block, 6 x 8 = 48 tokens
            at 96 x 128 instead of 3 x 4 = 12; the stride-32 blocks and head are not run).
        frozen_blocks: vlarm's CPU option: the stem, the first ``frozen_blocks`` MBConv blocks and their FiLM
            layers are frozen (0: RT-1, every layer trains). Each training frame has one instruction, so the frozen
            part's output is a fixed function of the frame and training computes it once per frame and caches it
            (:class:`vlarm.policies.rt1.training.WindowSampler`); a step then runs only the later blocks. At most
            ``BLOCKS_PER_STRIDE[token_stride] - 1``.
        position_embedding: vlarm's addition: a learned embedding per image-token position added before
            TokenLearner, whose weighted sums otherwise keep no trace of where in the image a token came from.
        state_token: vlarm's addition, not RT-1's (which sees images only): one more token per frame, a linear
            embedding of the env's ``(8,)`` proprioceptive state (tip xyz metres, quaternion xyzw, holding flag),
            placed after the frame's image tokens. Off in both paper and CPU defaults.
        tasks: tasks the policy was trained on (recorded by training).
        renderer: renderer of the images it learned from (recorded by training from the trajectories; see
            :class:`vlarm.policies.pick_place.PickPlaceConfig`).
        action_mode: the env action mode this policy acts in (always ``"ee_delta"``).
    """

    image_size: tuple[int, int] = (96, 128)
    history: int = 6
    tokens_per_frame: int = 8
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    key_size: int = 32
    feed_forward: int = 256
    dropout: float = 0.1
    token_learner_hidden: int = 64
    text_dim: int = 384
    backbone_pretrained: bool = True
    train_backbone: bool = True
    token_stride: int = 32
    frozen_blocks: int = 0
    position_embedding: bool = False
    state_token: bool = False
    tasks: tuple[str, ...] = ()
    renderer: str = RENDERER
    action_mode: str = "ee_delta"

    def __post_init__(self) -> None:
        """Validate sizes.

        Raises:
            ValueError: naming the first field out of range or not a bool where one is needed, or an unknown
                renderer.
        """
        size = self.image_size
        if not (isinstance(size, list | tuple) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in size)):
            raise ValueError(f"image_size must be two integers (H, W) in pixels, got {size!r}")
        self.image_size = tuple(size)
        self.tasks = tuple(self.tasks)
        for name in ("state_token", "position_embedding", "backbone_pretrained", "train_backbone"):
            if not isinstance(getattr(self, name), bool):   # bool("no") would be True
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.token_stride not in (16, 32):
            raise ValueError(f"token_stride must be 16 or 32, got {self.token_stride}")
        if any(v % self.token_stride for v in self.image_size):
            raise ValueError(f"image_size {self.image_size} must be divisible by token_stride {self.token_stride}")
        check_renderer(self.renderer)
        most = BLOCKS_PER_STRIDE[self.token_stride] - 1
        if isinstance(self.frozen_blocks, bool) or not isinstance(self.frozen_blocks, int) \
                or not 0 <= self.frozen_blocks <= most:
            raise ValueError(f"frozen_blocks must be an integer in [0, {most}] at token_stride "
                             f"{self.token_stride}, got {self.frozen_blocks!r}")
        if len(self.image_size) != 2 or min(self.image_size) < 32:
            raise ValueError(f"image_size must be (H, W) with both >= 32 pixels, got {self.image_size}")
        for name in ("history", "tokens_per_frame", "d_model", "layers", "heads", "key_size", "feed_forward",
                     "token_learner_hidden", "text_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.action_mode != "ee_delta":
            raise ValueError(f"RT-1 acts in the 'ee_delta' mode, got action_mode={self.action_mode!r}")


def paper_config(**overrides) -> RT1Config:
    """The paper-size RT-1 (REFERENCE.md section 4) at 288 x 288 so that EfficientNet's stride-32 map is 9 x 9 = 81
    tokens per image, as the paper's B3 at 300 x 300; ``overrides`` replace fields."""
    fields = dict(image_size=(288, 288), d_model=512, layers=8, heads=8, key_size=128, feed_forward=512)
    return RT1Config(**{**fields, **overrides})


__all__ = ["BLOCKS_PER_STRIDE", "RT1Config", "paper_config"]
