"""Language-model scoring of skill texts: ``score(prompt, options) -> log-probabilities`` (SayCan, Ahn et al. 2022,
Sec. 3: the LLM's "say" term p(skill text | instruction, steps so far)).

The score of an option is the log-probability a causal language model gives its tokens as a continuation of the
prompt, i.e. the sum over the option's tokens of ``log p(token_j | prompt, token_<j)`` (REFERENCE.md Sec. 3). The
prompt and each option are tokenised separately and their ids concatenated, so every option is scored on the same
prompt tokens; write prompts that end where an option starts (a newline), so that the split is the natural one.

Cost. The prompt is run through the model once and its key/value cache is reused by every option. Two strategies:

* ``"tree"`` (tree attention): the distinct option prefixes (a token trie: 65 skills have ~130 distinct prefixes
  for ~780 option tokens) run as ONE sequence of batch 1 after the prompt, each token attending to the prompt and
  to its own ancestors only (a custom 4-D mask), at the position it has in its option. Nothing is recomputed and the
  prompt's cache is not copied per option. Exact when no sliding window cuts the prompt (Gemma-3's local layers:
  prompt + option under 512 tokens); ``"auto"`` uses it then.
* ``"batched"``: the prompt's cache is copied and expanded to the batch. Options run in two stages: the *stems*
  they share (the longest prefix common to at least an eighth of them, e.g. "pick the red block and place it on
  the") once each, then every option's remaining tokens in padded batches on a copy of its stem's cache.

A prompt that extends a recent one (the planner appends one step at a time to the same few-shot prompt) runs only
its new tokens. Identical options are scored once, and the output layer (for Gemma-3-270M, 262k x 640: more work
per token than the 18 transformer layers) runs once per distinct option *prefix*, because options sharing their
first k tokens share the predictions of tokens 2..k+1. Recent (prompt, options) requests are answered from a memo.

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
STRATEGIES: tuple[str, ...] = ("auto", "tree", "batched")
#: Prompt states (KV cache + last log-probabilities) kept for reuse (least recently used dropped first).
PROMPT_STATES = 4
#: Results of recent (prompt, options) requests kept (the same request is answered without the model).
MEMO_SIZE = 256


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
        padding_side: ``"right"`` or ``"left"`` (the batched strategy).
        source: where the model came from, for reports.
        strategy: ``"auto"`` (tree attention where exact, else batched), ``"tree"`` or ``"batched"`` (module
            docstring).

    Raises:
        ValueError: an unknown normalisation or padding side, or ``batch_size < 1``.
    """

    def __init__(self, model, tokenizer, normalization: str = "sum", batch_size: int = 128,
                 padding_side: str = "right", source: str = "", strategy: str = "auto"):
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
        if padding_side not in PADDING_SIDES:
            raise ValueError(f"unknown padding side {padding_side!r}; valid: {', '.join(PADDING_SIDES)}")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
        self.strategy = strategy
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.normalization, self.batch_size, self.padding_side = normalization, int(batch_size), padding_side
        self.source = source
        # the transformer body and the output layer, so the output layer runs only where a prediction is read
        self._base, self._head = model.base_model, model.get_output_embeddings()
        self._cache_kw = _cache_keyword(model)
        self._prompt_states: OrderedDict[tuple[int, ...], tuple[object, torch.Tensor]] = OrderedDict()
        self._memo: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()
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
        memo_key = (tuple(prompt_ids), tuple(option_ids))
        if memo_key in self._memo:   # the same step asked again (e.g. by several planners on one episode)
            return [v.copy() for v in self._memo[memo_key]]
        cache, last_logprobs = self._prompt(tuple(prompt_ids))
        unique = list(dict.fromkeys(option_ids))
        if self._use_tree(len(prompt_ids), unique):
            hidden = self._tree_hidden(len(prompt_ids), cache, unique)
        else:
            hidden = self._option_hidden(len(prompt_ids), cache, unique)
        # the output layer once per distinct prefix that predicts a token (the first token: the prompt's last position)
        prefixes = list(dict.fromkeys(o[:j] for o in unique for j in range(1, len(o))))
        logprobs = None
        if prefixes:
            logprobs = torch.log_softmax(self._logits(torch.stack([hidden[k] for k in prefixes])).float(), dim=-1)
        row = {k: i for i, k in enumerate(prefixes)}
        results = {}
        for o in unique:
            values = [float(last_logprobs[o[0]])] + [float(logprobs[row[o[:j]], o[j]]) for j in range(1, len(o))]
            results[o] = np.asarray(values, dtype=np.float64)
        out = [results[ids] for ids in option_ids]
        self._memo[memo_key] = [v.copy() for v in out]
        while len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)
        return out

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

    def _use_tree(self, prompt_len: int, options: list[tuple[int, ...]]) -> bool:
        """Whether :meth:`_tree_hidden` is exact and chosen (``strategy``): with sliding-window layers only when the
        prompt plus the longest option fits in the window (then no window cuts anything)."""
        if self.strategy == "batched":
            return False
        window = self._sliding_window()
        fits = window is None or prompt_len + max(len(o) for o in options) < window - 1
        if self.strategy == "tree" and not fits:
            raise ValueError(f"the tree strategy is inexact here: the prompt ({prompt_len} tokens) plus the longest "
                             f"option exceed the model's sliding window ({window}); use strategy='batched' or 'auto'")
        return fits

    def _tree_hidden(self, prompt_len: int, cache, options: list[tuple[int, ...]]) -> dict[tuple, torch.Tensor]:
        """Last hidden state of every option prefix in ONE forward pass of batch 1 (tree attention): the distinct
        prefixes are laid out as one sequence after the prompt, each attending to the prompt and to its own
        ancestors only, at the position it has in its option. The prompt's cache is not copied per option."""
        nodes = list(dict.fromkeys(o[:k] for o in sorted(options, key=len) for k in range(1, len(o) + 1)))
        nodes.sort(key=len)
        index = {n: i for i, n in enumerate(nodes)}
        q = len(nodes)
        mask = torch.full((1, 1, q, prompt_len + q), torch.finfo(torch.float32).min)
        mask[..., :prompt_len] = 0.0
        for i, n in enumerate(nodes):
            mask[0, 0, i, [prompt_len + index[n[:k]] for k in range(1, len(n) + 1)]] = 0.0
        ids = torch.tensor([[n[-1] for n in nodes]], device=self._device)
        positions = torch.tensor([[prompt_len + len(n) - 1 for n in nodes]], device=self._device)
        dtype = next(self.model.parameters()).dtype
        batch = copy.deepcopy(cache)
        out = self._base(input_ids=ids, attention_mask=mask.to(self._device, dtype), position_ids=positions,
                         use_cache=True, **{_cache_keyword(self._base): batch})
        h = out.last_hidden_state[0]
        return {n: h[i] for i, n in enumerate(nodes)}

    def stems(self, options: list[tuple[int, ...]]) -> dict[tuple[int, ...], tuple[int, ...]]:
        """Option -> its *stem*: the longest prefix it shares with at least ``max(2, ceil(N / 8))`` of the N options
        (empty when none). Stems run once each (stage 1), the rest of each option (its tail) on its stem's cache
        (stage 2); the skills "pick the X block and place it on the Y" share "pick the X block and place it on the"."""
        share = max(2, -(-len(options) // 8))
        count: dict[tuple[int, ...], int] = {}
        for o in options:
            for k in range(1, len(o) + 1):
                count[o[:k]] = count.get(o[:k], 0) + 1
        return {o: max((o[:k] for k in range(1, len(o) + 1) if count[o[:k]] >= share), key=len, default=())
                for o in options}

    def _option_hidden(self, prompt_len: int, cache, options: list[tuple[int, ...]]) -> dict[tuple, torch.Tensor]:
        """Last hidden state ``(D,)`` of every prefix of every option (key: the prefix's token ids), in two stages
        (:meth:`stems`): stems of one length in one batch on the prompt cache, then the tails of the options of those
        stems, in batches, on copies of the stems' caches (rows selected per tail)."""
        stem_of = self.stems(options)
        hidden: dict[tuple, torch.Tensor] = {}
        by_length: dict[int, list[tuple[int, ...]]] = {}
        for stem in dict.fromkeys(stem_of.values()):
            by_length.setdefault(len(stem), []).append(stem)
        for length, stems in sorted(by_length.items()):
            if length == 0:
                base, rows_of = cache, {(): 0}
            else:   # stage 1: equal lengths, so no padding between prompt and stem
                base = copy.deepcopy(cache)
                base.batch_repeat_interleave(len(stems))
                h = self._run(base, prompt_len, [list(t) for t in stems], "right")
                for i, stem in enumerate(stems):
                    for j in range(length):
                        hidden.setdefault(stem[: j + 1], h[i, j])
                rows_of = {stem: i for i, stem in enumerate(stems)}
            tails = [(o, o[length:]) for o in options if stem_of[o] in rows_of and len(o) > length]
            for start in range(0, len(tails), self.batch_size):   # stage 2
                chunk = tails[start : start + self.batch_size]
                batch = copy.deepcopy(base)
                batch.batch_select_indices(torch.tensor([rows_of[stem_of[o]] for o, _ in chunk], device=self._device))
                h, cols = self._run(batch, prompt_len + length, [list(t) for _, t in chunk], self.padding_side,
                                    return_columns=True)
                for i, (o, tail) in enumerate(chunk):
                    for j in range(len(tail)):
                        hidden.setdefault(o[: length + j + 1], h[i, cols[i][j]])
        return hidden

    def _run(self, cache, past_len: int, sequences: list[list[int]], padding_side: str,
             return_columns: bool = False):
        """Run padded ``sequences`` on ``cache`` (batch = len(sequences), ``past_len`` tokens cached): last hidden
        states ``(n, width, D)`` (and, with ``return_columns``, each row's columns of its real tokens)."""
        n, width = len(sequences), max(len(q) for q in sequences)
        window = self._sliding_window()
        if padding_side == "left" and window is not None and past_len + width > window - 1:
            raise ValueError(f"left padding is inexact here: the prompt ({past_len} tokens) plus an option "
                             f"({width}) exceed the model's sliding window ({window}); use padding_side='right'")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((n, width), int(pad), dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        cols = []
        for i, q in enumerate(sequences):
            start = 0 if padding_side == "right" else width - len(q)
            ids[i, start : start + len(q)] = torch.tensor(q)
            mask[i, start : start + len(q)] = 1
            cols.append(list(range(start, start + len(q))))
        positions = (past_len + torch.cumsum(mask, dim=1) - 1).clamp(min=past_len)
        attention = torch.cat([torch.ones((n, past_len), dtype=torch.long), mask], dim=1)
        kwargs = {_cache_keyword(self._base): cache}
        h = self._hidden_states(ids.to(self._device), attention.to(self._device), positions.to(self._device), kwargs)
        return (h, cols) if return_columns else h

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


__all__ = ["NORMALIZATIONS", "PADDING_SIDES", "STRATEGIES", "CausalLMScorer", "Scorer", "normalize_scores"]
