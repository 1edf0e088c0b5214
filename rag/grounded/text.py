"""Words of a question that carry its topic (shared by the local retriever and the extractive scorer)."""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    """a about am an and any are as at be been but by can could did do does for from get got had has have how
    i if in into is it its me my need of on or our should so some than that the their then there these they
    this to up was we were what whats when where which who why will with would you your not no just please
    hi hello thanks many much often put out come coming give s t m d ll re ve""".split()  # noqa: SIM905 - a word list reads better as prose
)
_WORD = re.compile(r"[^\W_]+")


def content_words(text: str) -> list[str]:
    """Lower-cased letter/digit runs of `text`, stopwords removed, in order."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


VARIANT_NAMES = (frozenset({"mac", "macos", "macbook", "osx", "imac"}), frozenset({"iphone", "ios", "ipad"}))
"""Names of one platform: a question about a "Mac" is answered by an article "on macOS"."""


def same_platform(word: str) -> frozenset[str]:
    """The other names of the platform `word` names (empty when it names none)."""
    return next((names - {word} for names in VARIANT_NAMES if word in names), frozenset())
