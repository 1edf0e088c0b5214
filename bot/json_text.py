"""JSON text for the hot path (replies, stored documents): orjson, which is several times faster than
`json`, falling back to `json` for the little it refuses (integers beyond 64 bits, lone surrogates)."""

from __future__ import annotations

import json

import orjson


def dumps(value: object) -> str:
    """Compact JSON text, non-ASCII characters kept as they are, non-string keys made strings."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        # NaN and Infinity are not JSON: refused here (orjson, above, writes null for them).
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
