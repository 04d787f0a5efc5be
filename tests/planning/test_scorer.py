"""The language-model scorer on tiny random models: reference sums, padding, prefixes, normalisation, prompt reuse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.planning.tiny_lm import tiny_gemma, tiny_llama, tiny_tokenizer

from vlarm.planning.scorer import CausalLMScorer, normalize_scores

PROMPT = "objects = [ red block , blue bowl , green bowl ] # put the red block in the blue bowl pick"
LONG = "pick the red block and place it on the blue bowl"
OPTIONS = [
    "the red block",                       # a prefix of the next one
    "the red block and place it on the blue bowl",
    "done ( )",
    "the blue bowl",
    "the red block and place it on the top left corner",
    "the red block",                        # a duplicate
]


def reference_logprobs(model, tokenizer, prompt: str, option: str) -> np.ndarray:
    """log p of each option token from one full forward pass over prompt + option (no cache, no padding)."""
    p = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    o = tokenizer(option, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p + o])).logits[0]
    logp = torch.log_softmax(logits.float(), dim=-1)
    return np.array([float(logp[len(p) + j - 1, t]) for j, t in enumerate(o)])


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.mark.parametrize("make, strategy", [
    (lambda: tiny_gemma(sliding_window=6), "batched"),     # the prompt exceeds the window: sliding layers cut it
    (lambda: tiny_gemma(sliding_window=128), "tree"),
    (tiny_llama, "tree"),
    (tiny_llama, "batched"),
], ids=["gemma-sliding-batched", "gemma-tree", "llama-tree", "llama-batched"])
def test_score_equals_reference_sum_of_token_logprobs(make, strategy, tokenizer):
    model = make()
    scorer = CausalLMScorer(model, tokenizer, batch_size=4, strategy=strategy)
    got = scorer.token_logprobs(PROMPT, OPTIONS)
    for option, values in zip(OPTIONS, got, strict=True):
        np.testing.assert_allclose(values, reference_logprobs(model, tokenizer, PROMPT, option), atol=1e-4)
    sums = scorer.score(PROMPT, OPTIONS)
    np.testing.assert_allclose(sums, [reference_logprobs(model, tokenizer, PROMPT, o).sum() for o in OPTIONS],
                               atol=1e-4)
    assert len(set(np.round(sums, 3))) >= 4   # the options really differ (the test could fail)


@pytest.mark.parametrize("make", [lambda: tiny_gemma(sliding_window=128), tiny_llama], ids=["gemma", "llama"])
def test_one_at_a_time_equals_batched_left_and_right_padding(make, tokenizer):
    model = make()
    alone = np.array([CausalLMScorer(model, tokenizer, strategy="batched").score(PROMPT, [o])[0] for o in OPTIONS])
    right = CausalLMScorer(model, tokenizer, padding_side="right", batch_size=8, strategy="batched").score(PROMPT,
                                                                                                          OPTIONS)
    left = CausalLMScorer(model, tokenizer, padding_side="left", batch_size=8, strategy="batched").score(PROMPT,
                                                                                                        OPTIONS)
    np.testing.assert_allclose(right, alone, atol=1e-4)
    np.testing.assert_allclose(left, alone, atol=1e-4)


def test_left_padding_refused_where_a_sliding_window_makes_it_inexact(tokenizer):
    scorer = CausalLMScorer(tiny_gemma(sliding_window=6), tokenizer, padding_side="left")
    with pytest.raises(ValueError, match="sliding window"):
        scorer.score(PROMPT, OPTIONS)
    with pytest.raises(ValueError, match="sliding window"):
        CausalLMScorer(tiny_gemma(sliding_window=6), tokenizer, strategy="tree").score(PROMPT, OPTIONS)


@pytest.mark.parametrize("window", [6, 128], ids=["batched", "tree"])
def test_prefix_option_scores_the_same_first_last_or_alone(tokenizer, window):
    model = tiny_gemma(sliding_window=window)
    short, long = "the red block", "the red block and place it on the blue bowl"
    others = ["done ( )", "the blue bowl"]
    alone = CausalLMScorer(model, tokenizer).score(PROMPT, [short])[0]
    scorer = CausalLMScorer(model, tokenizer, batch_size=2)   # several batches, cached prompt reused between calls
    first = scorer.score(PROMPT, [short, long, *others])[0]
    last = scorer.score(PROMPT, [long, *others, short])[-1]
    after_long = scorer.score(PROMPT, [long])   # noqa: F841 - a longer sequence scored just before
    again = scorer.score(PROMPT, [short])[0]
    np.testing.assert_allclose([first, last, again], [alone] * 3, atol=1e-5)


def test_ranking_does_not_depend_on_option_order(tokenizer):
    scorer = CausalLMScorer(tiny_llama(), tokenizer, batch_size=3)
    base = scorer.score(PROMPT, OPTIONS)
    rng = np.random.default_rng(0)
    for _ in range(3):
        perm = rng.permutation(len(OPTIONS))
        shuffled = scorer.score(PROMPT, [OPTIONS[i] for i in perm])
        np.testing.assert_allclose(shuffled, base[perm], atol=1e-5)


def test_mean_normalisation_is_the_sum_over_the_token_count(tokenizer):
    model = tiny_llama()
    sums = CausalLMScorer(model, tokenizer, normalization="sum").score(PROMPT, OPTIONS)
    means = CausalLMScorer(model, tokenizer, normalization="mean").score(PROMPT, OPTIONS)
    counts = [len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in OPTIONS]
    np.testing.assert_allclose(means, sums / np.array(counts), atol=1e-6)
    # hand-checkable: a short unlikely option vs a long likely one swap ranks between the two normalisations
    lp = [np.array([-2.0]), np.array([-0.5, -0.5, -0.5, -0.5, -0.5])]
    assert np.argmax(normalize_scores(lp, "sum")) == 0 and np.argmax(normalize_scores(lp, "mean")) == 1
    with pytest.raises(ValueError, match="valid: sum, mean"):
        normalize_scores(lp, "max")


def test_extending_a_pinned_prompt_equals_a_fresh_prompt(tokenizer):
    model = tiny_gemma(sliding_window=6)
    header = "objects = [ red block , blue bowl ] # put the red block in the blue bowl pick the red block"
    prompt = header + " and place it on the blue bowl done ( ) # move every block"
    pinned = CausalLMScorer(model, tokenizer)
    pinned.pin_prefix(header)
    fresh = CausalLMScorer(model, tokenizer).score(prompt, OPTIONS)
    np.testing.assert_allclose(pinned.score(prompt, OPTIONS), fresh, atol=1e-4)


def test_generate_is_the_greedy_continuation(tokenizer):
    model = tiny_llama()
    scorer = CausalLMScorer(model, tokenizer)
    text = scorer.generate(PROMPT, max_new_tokens=5, stop="")
    ids = tokenizer(PROMPT, add_special_tokens=True)["input_ids"]
    out = []
    with torch.no_grad():
        for _ in range(5):
            token = int(model(input_ids=torch.tensor([ids + out])).logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                break
            out.append(token)
    assert text == tokenizer.decode(out, skip_special_tokens=True)


def test_bad_inputs_raise_clear_errors(tokenizer):
    scorer = CausalLMScorer(tiny_llama(), tokenizer)
    with pytest.raises(ValueError, match="no options"):
        scorer.score(PROMPT, [])
    with pytest.raises(ValueError, match="has no tokens"):
        scorer.score(PROMPT, [""])
    with pytest.raises(ValueError, match="valid: sum, mean"):
        CausalLMScorer(tiny_llama(), tokenizer, normalization="avg")
    with pytest.raises(ValueError, match="valid: right, left"):
        CausalLMScorer(tiny_llama(), tokenizer, padding_side="middle")


def test_skill_options_share_stems_and_still_equal_the_reference(tokenizer):
    model = tiny_gemma(sliding_window=6)
    targets = ["top left corner", "top right corner", "middle", "red bowl", "blue bowl", "green block"]
    options = [f"pick the {c} block and place it on the {t}" for c in ("red", "blue", "yellow") for t in targets
               if not t.startswith(c)] + ["done ( )"]
    scorer = CausalLMScorer(model, tokenizer, batch_size=5)
    ids = [tuple(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in options]
    stems = scorer.stems(ids)
    assert tokenizer.decode(list(stems[ids[0]])) == "pick the red block and place it on the"
    assert stems[ids[-1]] == ()
    got = scorer.score(PROMPT, options)
    np.testing.assert_allclose(got, [reference_logprobs(model, tokenizer, PROMPT, o).sum() for o in options],
                               atol=1e-4)
