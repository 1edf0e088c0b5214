"""`ragbot ask`: one question, or a questions file, through the active answer backend."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from rag.contract import Answer, AnswerBuilder, Answerer, Turn
from rag.factory import build_answerer
from ragbot.commands._common import init

HELP = "answer a question (or a questions file) from the knowledge base"
DESCRIPTION = """Answer with the active backend (see `ragbot config`) and print the answer with its
numbered sources. Examples:

  ragbot ask "How do I connect to the VPN?"
  ragbot ask --history "How do I connect to the VPN on Windows?" "and on a Mac?"
  ragbot ask --json "vpn error 809"
  ragbot ask --batch samples/helpdesk/questions.jsonl --json > answers.jsonl

A questions file has one JSON object a line: id, question, optional history (earlier user
turns, each answered first so follow-ups see real context), relevant, answerable."""


class QuestionLine(BaseModel):
    id: str
    question: str
    history: list[str] = Field(default_factory=list)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", nargs="?", help="the question to answer")
    parser.add_argument(
        "--history", action="append", default=[], metavar="TEXT", help="an earlier user turn (repeatable)"
    )
    parser.add_argument(
        "--batch", type=Path, metavar="FILE.jsonl", help="answer every line of a questions file"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the Answer as JSON (one line per question)"
    )
    parser.add_argument("--stream", action="store_true", help="print the answer as it streams")


async def _with_history(answerer: Answerer, earlier: list[str]) -> list[Turn]:
    """Answer each earlier user turn in order, so the history carries real answers and intents."""
    history: list[Turn] = []
    for text in earlier:
        answer = await answerer.answer(history, text)
        history += [
            Turn(role="user", content=text),
            Turn(role="assistant", content=answer.content, citations=answer.citations, intent=answer.intent),
        ]
    return history


def _print_text(answer: Answer, *, body: bool = True) -> None:
    if body:
        print(answer.content)
    if answer.intent:
        print(f"\nSearched for: {'; '.join(answer.intent)}")
    cited = answer.cited_numbers()
    if cited:
        print("\nSources:")
    for number in cited:
        if 1 <= number <= len(answer.citations):
            c = answer.citations[number - 1]
            where = c.url or c.filepath or ""
            print(f"  [doc{number}] {c.title or c.filepath or 'untitled'}" + (f" - {where}" if where else ""))


async def _ask(args: argparse.Namespace, answerer: Answerer) -> int:
    if args.batch:
        for raw in args.batch.read_text(encoding="utf-8").splitlines():
            if not raw.strip():
                continue
            line = QuestionLine.model_validate_json(raw)
            history = await _with_history(answerer, line.history)
            answer = await answerer.answer(history, line.question)
            record: dict[str, Any] = {"id": line.id, "answer": answer.model_dump(mode="json")}
            if args.json:
                print(json.dumps(record, ensure_ascii=False), flush=True)
            else:
                print(f"== {line.id}: {line.question}")
                _print_text(answer)
                print()
        return 0
    history = await _with_history(answerer, args.history)
    if args.stream and not args.json:
        builder = AnswerBuilder()
        async for delta in answerer.stream(history, args.question):
            builder.add(delta)
            print(delta.content, end="", flush=True)
        print()
        _print_text(builder.build(), body=False)
        return 0
    answer = await answerer.answer(history, args.question)
    if args.json:
        print(answer.model_dump_json(indent=2))
    else:
        _print_text(answer)
    return 0


async def _main(args: argparse.Namespace) -> int:
    settings = init()
    answerer = build_answerer(settings.rag)
    try:
        reason = await answerer.ready()
        if reason:
            print(f"ragbot ask: the {answerer.name} backend is not ready: {reason}", file=sys.stderr)
            return 1
        return await _ask(args, answerer)
    finally:
        await answerer.aclose()


def run(args: argparse.Namespace) -> int:
    if not args.question and not args.batch:
        print("ragbot ask: give a QUESTION or --batch FILE.jsonl", file=sys.stderr)
        return 2
    return asyncio.run(_main(args))
