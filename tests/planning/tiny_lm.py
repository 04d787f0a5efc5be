"""A tiny random causal LM and a word-level tokenizer, built in memory for the planner tests (never Gemma)."""

from __future__ import annotations

import torch

WORDS = ("<pad> <bos> <eos> <unk> pick the red blue green yellow purple block bowl blocks bowls and place it on "
         "top left right bottom corner middle side done ( ) # put all in matching colors objects = [ ] , ; "
         "explanation : move stack every except one two").split()


def tiny_tokenizer():
    """Word-level fast tokenizer over :data:`WORDS`; adds <bos> with special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")


def tiny_gemma(sliding_window: int = 6, seed: int = 0):
    """Two-layer Gemma-3 (one sliding-window layer, one full-attention layer), random weights, float32."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=sliding_window,
                              layer_types=["sliding_attention", "full_attention"], max_position_embeddings=256,
                              pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():   # random weights with some spread, so options differ clearly
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def tiny_llama(seed: int = 0):
    """Two-layer Llama (full attention everywhere), random weights, float32."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256, pad_token_id=0,
                         bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(config).eval()
