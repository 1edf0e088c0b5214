"""`ragbot ask`: one question, or a questions file, through the active answer backend."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from bot.identity import graph_groups, principal
from bot.pacing import paced
from bot.render.failures import FILTERED_ANSWER, NO_ANSWER, NOT_IN_KNOWLEDGE_BASE
from bot.render.sources import cite, cite_partial
from rag.contract import REFUSAL, Answer, AnswerBuilder, Answerer, Asker, Turn
from rag.errors import ConfigError, ContentFiltered, RagError
from rag.factory import build_answerer
from ragbot.commands._common import AllSettings, init
from ragbot.logs import redact

NUMBER = re.compile(r"\[(\d+)\]")

HELP = "answer a question (or a questions file) from the knowledge base"
DESCRIPTION = """Answer with the active backend (see `ragbot config`) and print the answer with its
numbered sources, worded as the bot words them (the same refusal, the same numbering: one
number per document, 1, 2, ... by first use). Examples:

  ragbot ask "How do I connect to the VPN?"
  ragbot ask --history "How do I connect to the VPN on Windows?" "and on a Mac?"
  ragbot ask --json "vpn error 809"
  ragbot ask --batch samples/helpdesk/questions.jsonl --json > answers.jsonl

--user OBJECT_ID asks as that Entra user: documents restricted to them or to a group they are in
(read from Microsoft Graph, as the bot does) are searched too; --groups a,b asks as a member of
those groups. Without either, only unrestricted documents are searched (as for anonymous users
of the bot) whenever documents are restricted.

--json prints the answer with `citations` holding only the documents it cites (renumbered
[doc1], [doc2], ... like the text), every retrieved document under `retrieved`, and `refused`.
--stream prints the answer as it is written.

A questions file has one JSON object a line: id, question, optional history (earlier user
turns, each answered first so follow-ups see real context), relevant, answerable.

Without Azure settings the answer comes from the local index in RAGBOT_DATA_DIR (default: data,
relative to the current folder); build it with `ragbot index FOLDER`.

Exit status: 0 answered (a refusal too), 1 the answer failed, 2 set-up to fix: a bad setting or a
backend that is not ready (no index or an unreadable one, refused credentials)."""


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
    parser.add_argument(
        "--user",
        metavar="OBJECT_ID",
        help="ask as this Entra user (object id); their groups come from Microsoft Graph",
    )
    parser.add_argument(
        "--groups", metavar="A,B", default="", help="ask as a member of these group ids (comma-separated)"
    )


async def _with_history(answerer: Answerer, earlier: list[str], asker: Asker) -> list[Turn]:
    """Answer each earlier user turn in order, so the history carries real answers and intents."""
    history: list[Turn] = []
    for text in earlier:
        answer = await answerer.answer(history, text, asker)
        history += [
            Turn(role="user", content=text),
            Turn(role="assistant", content=answer.content, citations=answer.citations, intent=answer.intent),
        ]
    return history


def plain_text(answer: Answer) -> str:
    """The answer as the bot words it (same refusal and failure sentences), with its sources numbered
    1, 2, ... by first use, one line per document, and the searches it ran on a last, quiet line."""
    if answer.refused:
        return NOT_IN_KNOWLEDGE_BASE
    if answer.finish_reason == "content_filter":
        return FILTERED_ANSWER
    cited = cite(answer.content, answer.citations)
    lines = [cited.text.strip() or NO_ANSWER]
    if cited.sources:
        lines += ["", "Sources:"]
        for source in cited.sources:
            where = source.link or source.citation.filepath
            lines.append(f"  [{source.position}] {source.name}" + (f" - {where}" if where else ""))
    if answer.intent:
        lines += ["", f"(searched for: {'; '.join(answer.intent)})"]
    return "\n".join(lines)


def answer_json(answer: Answer) -> dict[str, Any]:
    """The Answer with `citations` only the documents the content cites, renumbered `[doc1]`, `[doc2]`,
    ... by first use (a document cited twice is one citation); every retrieved document is under
    `retrieved`, in retrieval order."""
    cited = cite(answer.content, answer.citations)
    content = NUMBER.sub(lambda m: f"[doc{m.group(1)}]", cited.text)
    body = answer.model_dump(mode="json")
    body.update(
        content=content,
        citations=[source.citation.model_dump(mode="json") for source in cited.sources],
        retrieved=body["citations"],
        refused=answer.refused,
    )
    return body


async def _print_stream(
    answerer: Answerer, history: list[Turn], question: str, asker: Asker | None = None
) -> None:
    """Print the answer as its pieces arrive: text before the first citation marker goes out at once,
    then each piece as soon as its markers can be numbered; sources and searches follow."""
    builder = AnswerBuilder()
    shown = ""
    async for delta in paced(answerer.stream(history, question, asker)):
        builder.add(delta)
        answer = builder.answer
        text = cite_partial(builder.text, answer.citations if answer.citations else None)
        if builder.text.strip() == REFUSAL[: len(builder.text.strip())]:
            continue  # a refusal is printed in the bot's words at the end
        if text.startswith(shown) and len(text) > len(shown):
            print(text[len(shown) :], end="", flush=True)
            shown = text
    final = builder.build()
    rest = plain_text(final)
    if shown and rest.startswith(shown):
        rest = rest[len(shown) :]
    elif shown:
        print()
    print(rest, flush=True)


async def _ask(args: argparse.Namespace, answerer: Answerer, asker: Asker) -> int:
    if args.batch:
        for raw in args.batch.read_text(encoding="utf-8").splitlines():
            if not raw.strip():
                continue
            line = QuestionLine.model_validate_json(raw)
            history = await _with_history(answerer, line.history, asker)
            answer = await answerer.answer(history, line.question, asker)
            if args.json:
                print(
                    json.dumps({"id": line.id, "answer": answer_json(answer)}, ensure_ascii=False), flush=True
                )
            else:
                print(f"== {line.id}: {line.question}")
                print(plain_text(answer))
                print()
        return 0
    history = await _with_history(answerer, args.history, asker)
    if args.stream and not args.json:
        await _print_stream(answerer, history, args.question, asker)
        return 0
    answer = await answerer.answer(history, args.question, asker)
    if args.json:
        print(json.dumps(answer_json(answer), indent=2, ensure_ascii=False))
    else:
        print(plain_text(answer))
    return 0


def not_ready_hint(settings: AllSettings, reason: str) -> str:
    """What to change when the local index is missing: the folder it was looked for in, and how it
    is found (RAGBOT_DATA_DIR, relative to the current folder) or built."""
    index = settings.rag.ragbot.local_index_path
    if index.exists():  # there but unusable: the reason says what is wrong with it
        return reason
    return (
        f"{reason}\n  looked for {index.resolve()} (RAGBOT_DATA_DIR={settings.rag.ragbot.data_dir}, "
        f"relative to {Path.cwd()}): set RAGBOT_DATA_DIR to the folder that holds index.sqlite, or build "
        "one with `ragbot index FOLDER` (the sample: `ragbot index samples/helpdesk` in the ragbot repo)"
    )


async def asker_of(args: argparse.Namespace, settings: AllSettings) -> Asker:
    """`--groups` as given; `--user` with the groups Microsoft Graph has for them (GroupsUnavailable,
    exit 1, when Graph cannot say)."""
    groups = [group.strip() for group in args.groups.split(",") if group.strip()]
    if not args.user:
        return Asker(groups=groups)
    who = principal(args.user)
    if who is None:
        raise ConfigError(f"--user must be an Entra object id (a GUID), got {args.user!r}")
    lookup = graph_groups(settings.identity, settings.bot)
    try:
        groups += await lookup.groups(who.object_id)
    finally:
        await lookup.aclose()
    return Asker(aad_object_id=who.object_id, groups=list(dict.fromkeys(groups)))


async def _main(args: argparse.Namespace) -> int:
    settings = init()
    asker = await asker_of(args, settings)
    answerer = build_answerer(settings.rag)
    try:
        reason = await answerer.ready()
        if reason:
            problem = not_ready_hint(settings, reason)
            if args.json:  # as for a failed answer: a JSON reader gets an object, people read stderr
                body = {"type": "NotReady", "message": redact(problem)}
                print(json.dumps({"error": body}, ensure_ascii=False), flush=True)
            print(f"ragbot ask: the {answerer.name} backend is not ready: {problem}", file=sys.stderr)
            return 2  # no index, an unreadable one, refused credentials: set-up to fix, as serve's exit 2
        return await _ask(args, answerer, asker)
    except RagError as exc:
        if args.json:  # a JSON reader gets an object too, not nothing (stderr says it for people)
            print(json.dumps({"error": error_json(exc)}, ensure_ascii=False), flush=True)
        raise
    finally:
        await answerer.aclose()


def error_json(exc: RagError) -> dict[str, Any]:
    """A failed answer as JSON: its type and message, and for the content filter where and what."""
    body: dict[str, Any] = {"type": type(exc).__name__, "message": redact(str(exc))}
    if isinstance(exc, ContentFiltered):
        body.update(source=exc.source, categories=exc.categories)
    return body


def run(args: argparse.Namespace) -> int:
    if not args.question and not args.batch:
        print("ragbot ask: give a QUESTION or --batch FILE.jsonl", file=sys.stderr)
        return 2
    return asyncio.run(_main(args))
