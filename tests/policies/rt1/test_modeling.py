"""RT-1 model: FiLM starts as identity, the causal mask entry by entry, causality end to end, sizes, training
signal, cached-history acting and checkpoints."""

import numpy as np
import pytest
import torch

from vlarm.policies import load_policy
from vlarm.policies.rt1 import RT1Config, RT1Policy, paper_config
from vlarm.policies.rt1.configuration import BLOCKS_PER_STRIDE
from vlarm.policies.rt1.modeling import FiLMEfficientNet, attention_mask
from vlarm.policies.rt1.tokenizer import TOKENS_PER_ACTION

TINY = dict(image_size=(64, 64), d_model=32, layers=2, heads=2, key_size=8, feed_forward=32, history=3,
            backbone_pretrained=False, dropout=0.0)


class FakeEncoder:
    """Stand-in for MiniLM: a fixed random 384-d vector per string."""

    def encode(self, text):
        rng = np.random.default_rng(abs(hash(text)) % 2**32)
        return rng.standard_normal(384).astype(np.float32)


def test_film_backbone_equals_plain_backbone_at_init():
    torch.manual_seed(0)
    film = FiLMEfficientNet(text_dim=384, d_model=16, pretrained=True).eval()
    images = torch.rand(2, 3, 96, 128) * 255
    text = torch.randn(2, 384)
    with torch.no_grad():
        plain = film.backbone(images)[-1]                         # EfficientNet-Lite0's 1280-channel head output
        filmed = film(images, text)                               # FiLM'd, then the 1x1 projection
        expected = film.project(plain)
    torch.testing.assert_close(filmed, expected, rtol=0, atol=1e-5)
    with torch.no_grad():                                         # and FiLM is not a no-op once trained
        film.films[3].beta.bias.fill_(0.5)
        assert not torch.allclose(film(images, text), expected, atol=1e-3)


@pytest.mark.parametrize("frames,per_frame", [(6, 14), (3, 5), (1, 4)])
def test_attention_mask_entry_by_entry(frames, per_frame):
    mask = attention_mask(frames, per_frame)
    labels = [(f, s) for f in range(frames) for s in range(per_frame)]       # (frame, token-in-frame) of each position
    for i, (fi, si) in enumerate(labels):
        for j, (fj, sj) in enumerate(labels):
            assert bool(mask[i, j]) == (fj < fi or (fj == fi and sj <= si)), (i, j)
    for t in range(frames):        # every frame boundary
        rows = [i for i, (f, _) in enumerate(labels) if f == t]
        future = [j for j, (f, _) in enumerate(labels) if f == t + 1]
        past = [j for j, (f, _) in enumerate(labels) if f == t - 1]
        assert not mask[np.ix_(rows, future)].any()                 # frame t never sees frame t+1
        assert mask[np.ix_(rows, past)].all()                       # every token sees all of frame t-1


def test_actions_of_a_frame_do_not_depend_on_later_frames():
    torch.manual_seed(0)
    net = RT1Policy(RT1Config(**TINY)).net.eval()
    tokens = torch.randn(1, 3, 8, 32)
    later = tokens.clone()
    later[:, 2] = torch.randn(8, 32)
    with torch.no_grad():
        a, b = net.action_logits(tokens), net.action_logits(later)
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_paper_size_and_cpu_size_from_the_same_code():
    paper = RT1Policy(paper_config(backbone_pretrained=False))
    n = sum(p.numel() for p in paper.parameters())
    # RT-1 reports ~35M with EfficientNet-B3; Lite0 (4.6M with its head) in place of B3 gives ~28M.
    assert 25e6 < n < 40e6
    assert paper.net.image_encoder(torch.zeros(1, 3, 288, 288), torch.zeros(1, 384)).shape[-2:] == (9, 9)  # 81 tokens
    cpu = RT1Policy(RT1Config(backbone_pretrained=False))
    assert sum(p.numel() for p in cpu.parameters()) < n / 3
    assert type(cpu.net) is type(paper.net)


def test_training_signal_reduces_the_loss():
    torch.manual_seed(0)
    policy = RT1Policy(RT1Config(**TINY)).train()
    batch = {"images": torch.randint(0, 255, (2, 3, 64, 64, 3), dtype=torch.uint8),
             "text": torch.randn(2, 384), "tokens": torch.randint(0, 256, (2, 3, TOKENS_PER_ACTION)),
             "valid": torch.tensor([[False, True, True], [True, True, True]])}
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    first, _ = policy(batch)
    for _ in range(25):
        loss, info = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first.item() > np.log(256) - 1.0 and loss.item() < first.item() / 2
    assert set(info) == {"loss", "token_accuracy"}


def test_select_action_caches_history_and_round_trips(tmp_path):
    torch.manual_seed(0)
    policy = RT1Policy(RT1Config(**TINY)).eval()
    policy.text_encoder = FakeEncoder()
    obs = {"rgb": np.zeros((64, 64, 3), np.uint8), "instruction": "put the red blocks in a green bowl"}
    for step in range(5):
        action = policy.select_action(obs)
        assert len(policy._history) == min(step + 1, 3)
    assert set(action) == {"translation", "yaw", "suction", "terminate"}
    policy.reset()
    assert len(policy._history) == 0
    with pytest.raises(ValueError, match="image_scale"):
        policy.select_action({**obs, "rgb": np.zeros((32, 32, 3), np.uint8)})
    policy.save_pretrained(tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt")
    loaded.text_encoder = FakeEncoder()
    policy.reset()
    a, b = loaded.select_action(obs), policy.select_action(obs)
    np.testing.assert_array_equal(a["translation"], b["translation"])


def test_state_token_feeds_the_tip_state_and_is_required_when_configured(tmp_path):
    torch.manual_seed(0)
    policy = RT1Policy(RT1Config(**TINY, state_token=True)).eval()
    policy.text_encoder = FakeEncoder()
    assert policy.net.slots_per_frame == 8 + 1 + TOKENS_PER_ACTION
    images, text = torch.rand(1, 2, 3, 64, 64) * 255, torch.randn(1, 384)
    state = torch.zeros(1, 2, 8)
    moved = state.clone()
    moved[0, 1, :3] = torch.tensor([0.5, 0.1, 0.2])
    with torch.no_grad():
        a, b = policy.net(images, text, state), policy.net(images, text, moved)
        torch.testing.assert_close(a[:, 0], b[:, 0])            # frame 0 cannot see frame 1's state
        assert not torch.allclose(a[:, 1], b[:, 1])             # frame 1 does
    with pytest.raises(ValueError, match="proprioceptive state"):
        policy.net(images, text)
    with pytest.raises(ValueError, match="no state token"):
        RT1Policy(RT1Config(**TINY)).net(images, text, state)
    obs = {"rgb": np.zeros((64, 64, 3), np.uint8), "state": np.zeros(8, np.float32),
           "instruction": "put the red blocks in a green bowl"}
    first = policy.select_action(obs)
    policy.save_pretrained(tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt")
    assert loaded.config.state_token
    loaded.text_encoder = FakeEncoder()
    policy.reset()
    np.testing.assert_array_equal(loaded.select_action(obs)["translation"], policy.select_action(obs)["translation"])
    assert set(first) == {"translation", "yaw", "suction", "terminate"}


@pytest.mark.parametrize("position", [False, True])
def test_position_embedding_is_what_tells_tokenlearner_where_a_feature_was(position):
    torch.manual_seed(0)
    net = RT1Policy(RT1Config(**TINY, token_stride=16, position_embedding=position)).net.eval()
    feats = torch.randn(1, 32, 4, 4)                                   # 64 x 64 at stride 16: 16 positions
    swapped = feats.flatten(2)[:, :, torch.randperm(16)].view(1, 32, 4, 4)
    text = torch.randn(1, 384)
    with torch.no_grad():
        net.image_encoder.trainable_features = lambda x, t: feats
        a = net.frame_tokens(torch.zeros(1, 3, 64, 64), text)
        net.image_encoder.trainable_features = lambda x, t: swapped
        b = net.frame_tokens(torch.zeros(1, 3, 64, 64), text)
    assert a.shape == (1, 8, 32)
    assert torch.allclose(a, b, atol=1e-5) != position                 # pooling alone is blind to position


def test_stride_16_tokens_come_from_the_finer_map():
    encoder = FiLMEfficientNet(text_dim=384, d_model=16, pretrained=False, stride=16).eval()
    with torch.no_grad():
        out = encoder(torch.rand(1, 3, 96, 128) * 255, torch.randn(1, 384))
    assert out.shape == (1, 16, 6, 8) and encoder.n_blocks == 11 and len(encoder.films) == 11
    with pytest.raises(ValueError, match="token_stride"):
        RT1Config(**TINY, token_stride=8)


@pytest.mark.parametrize("value", ["no", "False", 1, None])
def test_switches_must_be_booleans(value):
    with pytest.raises(ValueError, match="state_token must be True or False"):
        RT1Config(**TINY, state_token=value)


@pytest.mark.parametrize("size", [None, (96.5, 128), (True, 128), (96,), "96x128"])
def test_image_size_must_be_two_integers(size):
    with pytest.raises(ValueError, match="image_size must be two integers"):
        RT1Config(**{**TINY, "image_size": size})


def test_blocks_per_stride_matches_the_network():
    for stride, blocks in BLOCKS_PER_STRIDE.items():
        assert FiLMEfficientNet(text_dim=8, d_model=4, pretrained=False, stride=stride).n_blocks == blocks


@pytest.mark.parametrize("stride", [16, 32])
def test_frozen_blocks_split_the_backbone_without_changing_it(stride):
    torch.manual_seed(0)
    config = RT1Config(**{**TINY, "image_size": (64, 64)}, token_stride=stride, frozen_blocks=5)
    net = RT1Policy(config).net.eval()
    encoder = net.image_encoder
    with torch.no_grad():                     # FiLM layers that are not the identity, frozen and trainable alike
        for film in encoder.films:
            film.beta.bias.normal_(0, 0.1)
        images, text = torch.rand(2, 3, 64, 64) * 255, torch.randn(2, 384)
        whole = encoder(images, text)
        cached = encoder.trainable_features(encoder.frozen_features(images, text), text)
        torch.testing.assert_close(cached, whole, rtol=0, atol=0)
        tokens = net.frame_tokens(images, text)
        torch.testing.assert_close(net.frame_tokens(None, text, features=encoder.frozen_features(images, text)),
                                   tokens, rtol=0, atol=0)
    frozen = [encoder.backbone.net._conv_stem, *encoder.backbone.net._blocks[:5], *encoder.films[:5]]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for m in (*encoder.backbone.net._blocks[5:], *encoder.films[5:])
               for p in m.parameters())
    with pytest.raises(ValueError, match="either images or their frozen features"):
        net.frame_tokens(images, text, features=encoder.frozen_features(images, text))
    with pytest.raises(ValueError, match="either images or their frozen features"):
        net.frame_tokens(None, text)


@pytest.mark.parametrize("stride,value", [(16, 11), (32, 16), (16, -1), (16, True), (16, 2.0)])
def test_frozen_blocks_must_leave_a_block_to_train(stride, value):
    most = BLOCKS_PER_STRIDE[stride] - 1
    with pytest.raises(ValueError, match=rf"frozen_blocks must be an integer in \[0, {most}\]"):
        RT1Config(**TINY, token_stride=stride, frozen_blocks=value)
