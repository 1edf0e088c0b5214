"""Keys as names a cloud store accepts (blob names, Cosmos DB ids), reversibly and prefix-preserving.

Conversation ids carry any character (Teams' `19:...@thread.tacv2;messageid=...`, Web Chat's
random ids); Cosmos DB refuses `/ \\ ? #` in ids and blob names treat `/` and a trailing `.`
specially. Every other character becomes `~XX` per UTF-8 byte, one character at a time, so the
names of keys sharing a prefix share its encoding (prefix scans still work).
"""

from __future__ import annotations

import re

SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_|:@=;,")
_ESCAPE = re.compile(r"(?:~[0-9A-F]{2})+")


def encode(key: str) -> str:
    return "".join(c if c in SAFE else "".join(f"~{b:02X}" for b in c.encode()) for c in key)


def decode(name: str) -> str:
    return _ESCAPE.sub(lambda m: bytes.fromhex(m.group().replace("~", "")).decode(), name)
