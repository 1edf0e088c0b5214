"""What a Markdown line is, in the one place every reader of passages asks: code fences and heading marks.

The answer-time cleaner (`rag.grounded.residue`) must leave exactly the lines alone that the unit
splitter (`rag.grounded.units`) then quotes as code, and the channel renderer strips the same heading
marks the splitter reads as headings; one definition keeps them agreeing.
"""

from __future__ import annotations

import re

FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
"""The opening line of a fenced code block: its fence, and the language named after it."""

HEADING_MARK = r"^\s{0,3}#{1,6}\s+"
"""The marks of an ATX heading ("## "), as a pattern to build on."""


def closes(fence: str, line: str) -> bool:
    """Whether `line` ends the code block that `fence` opened: a fence of the same character, at least
    as long (a ``` line inside a ~~~ block, or inside a ```` block, is code)."""
    return line.strip().startswith(fence)
