"""Language-model scoring of skill texts: ``score(prompt, options) -> log-probabilities`` (SayCan, Ahn et al. 2022,
Sec. 3: the LLM's "say" term p(skill text | instruction, steps so far)).

The score of an option is the log-probability a causal language model gives its tokens as a continuation of the
prompt, i.e. the sum over the option's tokens of ``log p(token_j | prompt, token_<j)`` (REFERENCE.md Sec. 3). The
prompt and each option are tokenised separately and their ids concatenated, so every option is scored on the same
prompt tokens; write prompts that end where an option starts (a newline), so that the split is the natural one.

Cost. The prompt is run through the model once and its key/value cache is reused by every option (copied and
expanded to the batch); options are run in padded batches. A prompt that extends a recent one (the planner appends
one step at a time to the same few-shot prompt) runs only its new tokens. Identical options are scored once, and the
output layer (for Gemma-3-270M, 262k x 640: more work per token than the 18 transformer layers) runs once per
distinct option *prefix*, because options sharing their first k tokens share the predictions of tokens 2..k+1.

Padding. Options of different lengths are padded on the right (default) or on the left. Real tokens take the
position ids they would have alone (prompt length + their index), the attention mask hides the padding, and each
row's log-probabilities are read at that row's own tokens, with the first option token predicted from the prompt's
last position. Left padding puts the pad tokens between prompt and option: exact for full attention, but a
sliding-window layer measures its window in cache slots, pads included, so left padding is refused when a prompt
plus a padded option would exceed the window (right padding is always exact).

Normalisation (comparing options of different lengths): ``"sum"`` (default, SayCan's: the log-probability of the
whole text; favours short options), or ``"mean"`` (the sum divided by the option's token count, a per-token
average; length-neutral). Both are computed from the same per-token values (:meth:`CausalLMScorer.token_logprobs`).
"""

from __future__ import annotations

import copy
import inspect
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

#: How option log-probabilities are compared across lengths (see the module docstring).
NORMALIZATIONS: tuple[str, ...] = ("sum", "mean")
PADDING_SIDES: tuple[str, ...] = ("right", "left")
#: Prompt states (KV cache + last log-probabilities) kept for reuse (least recently used dropped first).
PROMPT_STATES = 4


class Scorer(Protocol):
    """Anything that scores options as continuations of a prompt (DESIGN.md: ``Scorer``)."""

    def score(self, prompt: str, options: Sequence[str]) -> np.ndarray:
        """``(len(options),)`` float64 log-probabilities (under the scorer's normalisation)."""
        ...


def normalize_scores(token_logprobs: Sequence[np.ndarray], normalization: str) -> np.ndarray:
    """Option scores from per-token log-probabilities.

    Args:
        token_logprobs: per option, ``(n_tokens,)`` float log-probabilities (natural log), n_tokens >= 1.
        normalization: ``"sum"`` or ``"mean"`` (module docstring).

    Returns:
        ``(n_options,)`` float64.

    Raises:
        ValueError: an unknown normalisation (naming the valid ones) or an option without tokens.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
    out = np.empty(len(token_logprobs), dtype=np.float64)
    for i, lp in enumerate(token_logprobs):
        lp = np.asarray(lp, dtype=np.float64)
        if lp.size == 0:
            raise ValueError(f"option {i} has no tokens")
        out[i] = lp.sum() if normalization == "sum" else lp.mean()
    return out


class CausalLMScorer:
    """Scores options with a Hugging Face causal language model (see the module docstring).

    Args:
        model: a ``transformers`` causal LM (``AutoModelForCausalLM``), in eval mode; float32 on the CPU is exact.
        tokenizer: its tokenizer (the prompt gets the tokenizer's special tokens, e.g. Gemma's BOS; options none).
        normalization: ``"sum"`` or ``"mean"``.
        batch_size: options per forward pass.
        padding_side: ``"right"`` or ``"left"``.
        source: where the model came from, for reports.

    Raises:
        ValueError: an unknown normalisation or padding side, or ``batch_size < 1``.
    """

    def __init__(self, model, tokenizer, normalization: str = "sum", batch_size: int = 64,
                 padding_side: str = "right", source: str = ""):
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
        if padding_side not in PADDING_SIDES:
            raise ValueError(f"unknown padding side {padding_side!r}; valid: {', '.join(PADDING_SIDES)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.normalization, self.batch_size, self.padding_side = normalization, int(batch_size), padding_side
        self.source = source
        # the transformer body and the output layer, so the output layer runs only where a prediction is read
        self._base, self._head = model.base_model, model.get_output_embeddings()
        self._cache_kw = _cache_keyword(model)
        self._prompt_states: OrderedDict[tuple[int, ...], tuple[object, torch.Tensor]] = OrderedDict()
        self._device = next(model.parameters()).device

    # ------------------------------------------------------------------ public
    def score(self, prompt: str, options: Sequence[str]) -> np.ndarray:
        """Log-probability of each option as the continuation of ``prompt``, under :attr:`normalization`.

        Args:
            prompt: the shared context (tokenised with the tokenizer's special tokens).
            options: N option texts, each with at least one token.

        Returns:
            ``(N,)`` float64 (natural log; ``"mean"``: per token).

        Raises:
            ValueError: an empty option list, an option or prompt without tokens.
        """
        return normalize_scores(self.token_logprobs(prompt, options), self.normalization)

    @torch.no_grad()
    def token_logprobs(self, prompt: str, options: Sequence[str]) -> list[np.ndarray]:
        """Per option, the ``(n_tokens,)`` float64 log-probabilities of its tokens given the prompt and its earlier
        tokens (the terms summed by :meth:`score`).

        Raises:
            ValueError: as :meth:`score`.
        """
        options = list(options)
        if not options:
            raise ValueError("no options to score")
        prompt_ids = self._encode(prompt, special=True)
        if not prompt_ids:
            raise ValueError("the prompt has no tokens (and the tokenizer adds none): give it some text")
        option_ids = [tuple(self._encode(o, special=False)) for o in options]
        for text, ids in zip(options, option_ids, strict=True):
            if not ids:
                raise ValueError(f"option {text!r} has no tokens")
        cache, last_logprobs = self._prompt(tuple(prompt_ids))
        unique = list(dict.fromkeys(option_ids))
        results: dict[tuple[int, ...], np.ndarray] = {}
        for start in range(0, len(unique), self.batch_size):
            chunk = unique[start : start + self.batch_size]
            results.update(zip(chunk, self._score_batch(len(prompt_ids), cache, last_logprobs, chunk), strict=True))
        return [results[ids] for ids in option_ids]

    @torch.no_grad()
    def generate(self, prompt: str, max_new_tokens: int = 24, stop: str = "\n") -> str:
        """Greedy continuation of ``prompt`` up to ``stop`` (not included) or ``max_new_tokens`` tokens.

        Used for SayCan's "Generative" ablation (the LM writes the next step) and the optional explanation line.

        Raises:
            ValueError: a prompt without tokens or ``max_new_tokens < 1``.
        """
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        prompt_ids = self._encode(prompt, special=True)
        if not prompt_ids:
            raise ValueError("the prompt has no tokens")
        cache, logprobs = self._prompt(tuple(prompt_ids))
        cache = copy.deepcopy(cache)
        new: list[int] = []
        eos = self.tokenizer.eos_token_id
        text = ""
        for _ in range(max_new_tokens):
            token = int(torch.argmax(logprobs))
            if token == eos:
                break
            new.append(token)
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            if stop and stop in text:
                break
            ids = torch.tensor([[token]], device=self._device)
            pos = torch.tensor([[len(prompt_ids) + len(new) - 1]], device=self._device)
            out = self.model(input_ids=ids, position_ids=pos, use_cache=True, **{self._cache_kw: cache})
            cache = _cache_of(out)
            logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        return text.split(stop, 1)[0] if stop else text

    # ------------------------------------------------------------------ internals
    def _encode(self, text: str, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    @torch.no_grad()
    def _prompt(self, prompt_ids: tuple[int, ...]) -> tuple[object, torch.Tensor]:
        """KV cache and last-position log-probabilities of the prompt.

        The states of the last few prompts are kept; a new prompt that extends one of them (the planner appends a
        step to the same few-shot prompt) runs only its new tokens on a copy of that prompt's cache.
        """
        if prompt_ids in self._prompt_states:
            self._prompt_states.move_to_end(prompt_ids)
            return self._prompt_states[prompt_ids]
        base = max((k for k in self._prompt_states if len(k) < len(prompt_ids) and prompt_ids[: len(k)] == k),
                   key=len, default=None)
        start, kwargs = 0, {}
        if base is not None:
            self._prompt_states.move_to_end(base)   # a shared prefix (the few-shot examples) stays cached
            start = len(base)
            kwargs[self._cache_kw] = copy.deepcopy(self._prompt_states[base][0])
        ids = torch.tensor([prompt_ids[start:]], device=self._device)
        pos = torch.arange(start, len(prompt_ids), device=self._device)[None]
        out = self.model(input_ids=ids, position_ids=pos, use_cache=True, **kwargs)
        state = (_cache_of(out), torch.log_softmax(out.logits[0, -1].float(), dim=-1))
        self._prompt_states[prompt_ids] = state
        while len(self._prompt_states) > PROMPT_STATES:
            self._prompt_states.popitem(last=False)
        return state

    def pin_prefix(self, prefix: str) -> None:
        """Compute and keep the state of a prompt prefix (e.g. the few-shot examples) so that every later prompt
        starting with it runs only its own tokens (:meth:`_prompt`)."""
        self._prompt(tuple(self._encode(prefix, special=True)))

    def _sliding_window(self) -> int | None:
        config = getattr(self.model, "config", None)
        config = getattr(config, "text_config", None) or config
        window = getattr(config, "sliding_window", None)
        layer_types = getattr(config, "layer_types", None)
        if window and (layer_types is None or any("sliding" in str(t) for t in layer_types)):
            return int(window)
        return None

    def _score_batch(self, prompt_len: int, cache, last_logprobs: torch.Tensor,
                     options: list[tuple[int, ...]]) -> list[np.ndarray]:
        n, width = len(options), max(len(o) for o in options)
        window = self._sliding_window()
        if self.padding_side == "left" and window is not None and prompt_len + width > window - 1:
            raise ValueError(f"left padding is inexact here: the prompt ({prompt_len} tokens) plus an option "
                             f"({width}) exceed the model's sliding window ({window}); use padding_side='right'")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((n, width), int(pad), dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, o in enumerate(options):
            sl = slice(0, len(o)) if self.padding_side == "right" else slice(width - len(o), width)
            ids[i, sl] = torch.tensor(o)
            mask[i, sl] = 1
        positions = (prompt_len + torch.cumsum(mask, dim=1) - 1).clamp(min=prompt_len)
        attention = torch.cat([torch.ones((n, prompt_len), dtype=torch.long), mask], dim=1)
        batch_cache = copy.deepcopy(cache)
        batch_cache.batch_repeat_interleave(n)
        kwargs = {_cache_keyword(self._base): batch_cache}
        hidden = self._hidden_states(ids.to(self._device), attention.to(self._device), positions.to(self._device),
                                     kwargs)                                           # (n, width, D)
        # Predictors: the first token of each option is predicted by the prompt's last position, token j > 0 by
        # the row's own position of token j - 1. Options sharing a prefix share predictors: compute each once.
        rows, keys = [], {}
        for i, o in enumerate(options):
            cols = torch.nonzero(mask[i]).flatten().tolist()
            for j in range(1, len(o)):
                key = o[:j]
                if key not in keys:
                    keys[key] = len(rows)
                    rows.append((i, cols[j - 1]))
        logprobs = None
        if rows:
            idx = torch.tensor(rows, device=self._device)
            logprobs = torch.log_softmax(self._logits(hidden[idx[:, 0], idx[:, 1]]).float(), dim=-1)
        out = []
        for o in options:
            values = [float(last_logprobs[o[0]])]
            values += [float(logprobs[keys[o[:j]], o[j]]) for j in range(1, len(o))]
            out.append(np.asarray(values, dtype=np.float64))
        return out

    def _hidden_states(self, ids, attention, positions, cache_kwargs) -> torch.Tensor:
        """Last hidden states ``(n, width, D)`` of the option tokens (the output layer is applied selectively)."""
        out = self._base(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=True,
                         **cache_kwargs)
        return out.last_hidden_state

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The model's output layer on ``(M, D)`` hidden states (with Gemma's final logit soft-capping, if any)."""
        logits = self._head(hidden)
        cap = getattr(getattr(self.model, "config", None), "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits


def _cache_keyword(module) -> str:
    """The forward keyword of the key/value cache: ``cache`` (transformers >= 5.x) or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def _cache_of(output):
    """The key/value cache of a model output (``cache`` in transformers >= 5.x, ``past_key_values`` before)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


__all__ = ["NORMALIZATIONS", "PADDING_SIDES", "CausalLMScorer", "Scorer", "normalize_scores"]
