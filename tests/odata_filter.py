"""An evaluator for the subset of Azure AI Search's OData `$filter` language that ragbot sends, so loopback
fakes can answer a filtered search the way the service would (and reject anything else with a 400).

Supported: `and`, `or`, `not`, parentheses, `true`/`false`, comparisons (`eq ne gt ge lt le`) of a field
or range variable with a string literal, `search.in(x, 'a,b', ',')`, and `field/any()` /
`field/any(x: ...)` over string collections. String literals double their single quotes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<name>search\.in|[A-Za-z_]\w*(?:/[A-Za-z_]\w*)*)|(?P<punct>[(),:]))"
)
_COMPARE: dict[str, Callable[[str, str], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
Predicate = Callable[[dict[str, Any]], bool]


class UnsupportedFilter(ValueError):
    """The filter is malformed or outside the supported subset."""


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if not match:
            raise UnsupportedFilter(f"cannot read {text[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise UnsupportedFilter("unexpected end of filter")
        token = self.tokens[self.at]
        if expected is not None and token[1] != expected:
            raise UnsupportedFilter(f"expected {expected!r}, found {token[1]!r}")
        self.at += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.at != len(self.tokens):
            raise UnsupportedFilter(f"unexpected {self.peek()!r}")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.peek() == "or":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else lambda env: any(p(env) for p in parts)

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.peek() == "and":
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else lambda env: all(p(env) for p in parts)

    def negation(self) -> Predicate:
        if self.peek() == "not":
            self.take()
            inner = self.negation()
            return lambda env: not inner(env)
        return self.primary()

    def primary(self) -> Predicate:
        kind, value = self.take()
        if value == "(":
            inner = self.disjunction()
            self.take(")")
            return inner
        if kind != "name":
            raise UnsupportedFilter(f"unexpected {value!r}")
        if value in ("true", "false"):
            return lambda env: value == "true"
        if value == "search.in":
            return self.search_in()
        if value.endswith("/any"):
            return self.any(value.removesuffix("/any"))
        operator = self.take()[1]
        if operator not in _COMPARE:
            raise UnsupportedFilter(f"unsupported operator {operator!r}")
        literal = self.literal()
        compare = _COMPARE[operator]
        return lambda env: (found := env.get(value)) is not None and compare(str(found), literal)

    def literal(self) -> str:
        kind, value = self.take()
        if kind != "string":
            raise UnsupportedFilter(f"expected a string literal, found {value!r}")
        return value[1:-1].replace("''", "'")

    def search_in(self) -> Predicate:
        self.take("(")
        name = self.take()[1]
        self.take(",")
        values = self.literal()
        delimiters = " ,"
        if self.peek() == ",":
            self.take()
            delimiters = self.literal()
        self.take(")")
        allowed = {v for v in re.split(f"[{re.escape(delimiters)}]", values) if v}
        return lambda env: env.get(name) in allowed

    def any(self, field: str) -> Predicate:
        self.take("(")
        if self.peek() == ")":
            self.take()
            return lambda env: bool(env.get(field))
        variable = self.take()[1]
        self.take(":")
        body = self.disjunction()
        self.take(")")
        return lambda env: any(body({**env, variable: item}) for item in env.get(field) or [])


def compile_filter(text: str) -> Predicate:
    """A predicate over a document (a dict of field values) for the filter `text`."""
    return _Parser(text).parse()
