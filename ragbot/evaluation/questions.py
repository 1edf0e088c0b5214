"""Evaluation questions: ragbot's own file (`samples/helpdesk/questions.jsonl`) and the ground truth of
Microsoft's azure-search-openai-demo (`{"question": ..., "truth": ...}`, sources cited in the truth as
`[file.pdf#page=N]`), one JSON object a line; both read into one model."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rag.contract import Asker

SOURCE_REF = re.compile(r"\[([^\[\]\s][^\[\]]*?\.[A-Za-z0-9]{1,5}(?:#page=\d+)?)\]")
"""A source cited as the demo's ground truth cites it: `[Benefit_Options.pdf#page=3]`, `[it/vpn.md]`."""


LINE_ID = "line-"
"""Prefix of the id given to a question without one: `line-7` for the seventh line."""


class EvalFileError(ValueError):
    """A line of the questions file is not a question: names the file and line."""


class EvalQuestion(BaseModel):
    """One question; fields beyond these (notes for people) are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: str = ""
    question: str = Field(min_length=1)
    truth: str = Field(default="", description="the expected answer, citing its sources as [file#page=N]")
    history: list[str] = Field(default_factory=list, description="earlier user turns, each answered first")
    relevant: list[str] = Field(default_factory=list, description="paths of the documents that answer it")
    answerable: bool = True
    procedure: list[str] = Field(
        default_factory=list, description="`path#Heading` of each section whose list answers the question"
    )
    groups: list[str] = Field(default_factory=list, description="the asker's group ids (none: anonymous)")

    @property
    def asker(self) -> Asker:
        """Who asks it (security trimming): a member of `groups`, or anonymous."""
        return Asker(groups=self.groups)

    @property
    def expected_sources(self) -> list[str]:
        """The documents a right answer cites: `relevant`, else the sources cited in `truth`."""
        return self.relevant or list(dict.fromkeys(SOURCE_REF.findall(self.truth)))


def read_questions(path: Path, *, allow_empty: bool = False) -> list[EvalQuestion]:
    """Every non-blank line; a line without an id is named `line-N`. Raises `EvalFileError`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"{path}: cannot read: {exc}") from exc
    questions: list[EvalQuestion] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            question = EvalQuestion.model_validate_json(line)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
            raise EvalFileError(f"{path}:{number}: not a question ({problem})") from exc
        questions.append(
            question if question.id else question.model_copy(update={"id": f"{LINE_ID}{number}"})
        )
    if not questions and not allow_empty:
        raise EvalFileError(f"{path}: no questions (one JSON object a line, with at least `question`)")
    twice = sorted(i for i, n in Counter(q.id for q in questions).items() if n > 1)
    if twice:
        raise EvalFileError(f"{path}: ids used more than once: {', '.join(twice[:5])}")
    return questions
