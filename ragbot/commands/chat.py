"""`ragbot chat`: chat completions straight from the model, no knowledge base: one conversation or many
(each prompt answered separately, printed in order), with every generation parameter and all choices."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from rag.azure.chat_request import ChatParams
from rag.azure.connector import chat_in_order
from rag.errors import ConfigError, RagError
from ragbot.commands._common import init, secret_values
from ragbot.commands._connector import (
    ENDPOINTS,
    add_endpoint_arguments,
    concurrency,
    error_json,
    open_client,
)
from ragbot.logs import redact

HELP = "chat completions from the model itself (several prompts, several choices, every parameter)"
DESCRIPTION = f"""Send chat completions to the configured model, without the knowledge base, and print
every choice. Each positional PROMPT is its own conversation: all are answered (at most
--concurrency at a time, within the rate limit) and printed in the order given. Examples:

  ragbot chat "Write a two-line welcome for the help desk"
  ragbot chat --n 3 --temperature 0.9 --seed 7 "Name a help-desk mascot"
  ragbot chat --system "Answer in French." "Reset my password" "Unlock my account"
  ragbot chat --user "Hi" --assistant "Hello! How can I help?" --user "What is a VPN?"
  ragbot chat --file conversation.json --json

--file reads JSON: a list of messages ({{"role", "content"}}), a request body with "messages"
(its other fields, e.g. "temperature", are sent too; flags win), or a list of either (several
conversations). Parameters not given come from AZURE_OPENAI_TEMPERATURE, _TOP_P, _MAX_TOKENS,
_STOP_SEQUENCE, _SEED, ... --json prints one JSON line per conversation: {{"prompt": N, "response":
the API's answer}} or {{"prompt": N, "error": {{"type", "message"}}}}. Exit status 1 when any failed.

{ENDPOINTS}"""

Role = Literal["system", "developer", "user", "assistant", "tool"]


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Role
    content: str | list[Any] | None = None


class Conversation(BaseModel):
    """A chat request body: its messages and any other field of the API (sent as given)."""

    model_config = ConfigDict(extra="allow")
    messages: list[Message] = Field(min_length=1)


class ChatFile(RootModel[Conversation | list[Message] | list[Conversation | list[Message]]]):
    """A --file: one conversation (a body or a list of messages), or a list of conversations."""


class _Turn(argparse.Action):
    """--user / --assistant keep their order in one shared list."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, value: Any, option: Any = None) -> None:
        turns = list(getattr(namespace, "turns", None) or [])
        turns.append({"role": "user" if option == "--user" else "assistant", "content": value})
        namespace.turns = turns


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompts", nargs="*", metavar="PROMPT", help="a user message; each is answered alone")
    parser.add_argument("--system", metavar="TEXT", help="the system message of every conversation")
    parser.add_argument("--user", action=_Turn, dest="turns", metavar="TEXT", help="a user turn (repeatable)")
    parser.add_argument(
        "--assistant", action=_Turn, dest="turns", metavar="TEXT", help="an assistant turn (repeatable)"
    )
    parser.add_argument("--file", type=Path, metavar="FILE.json", help="conversation(s) as JSON (see above)")
    add_endpoint_arguments(
        parser, "the chat deployment or model (default: AZURE_OPENAI_MODEL / RAGBOT_LLM_MODEL)"
    )
    parser.add_argument("--temperature", type=float, help="0-2")
    parser.add_argument("--top-p", type=float, help="0-1")
    parser.add_argument("--max-tokens", type=int, help="the longest answer, in tokens")
    parser.add_argument(
        "--stop", action="append", metavar="TEXT", help="a stop sequence (repeatable, up to 4)"
    )
    parser.add_argument("--presence-penalty", type=float, help="-2 to 2")
    parser.add_argument("--frequency-penalty", type=float, help="-2 to 2")
    parser.add_argument("--seed", type=int, help="ask for repeatable sampling")
    parser.add_argument("--n", type=int, help="choices per conversation (1-10); all are printed")
    parser.add_argument(
        "--concurrency", type=concurrency, default=4, help="conversations in flight at once (4, at most 64)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON line per conversation")


def file_bodies(path: Path) -> list[dict[str, Any]]:
    """The request bodies of a --file, each a conversation."""
    try:
        parsed: Any = ChatFile.model_validate_json(path.read_bytes()).root
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except ValidationError as exc:
        raise ConfigError(f"{path} is not a conversation file: {_first_error(exc)}") from None
    if isinstance(parsed, Conversation):
        group = [parsed]
    elif parsed and isinstance(parsed[0], Message):
        group = [Conversation(messages=parsed)]
    else:
        group = [item if isinstance(item, Conversation) else Conversation(messages=item) for item in parsed]
    return [conversation.model_dump(exclude_none=True) for conversation in group]


def conversations(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The request bodies (messages plus any fields from the file), in the order they are printed."""
    found: list[dict[str, Any]] = []
    if args.file:
        found += file_bodies(args.file)
    if getattr(args, "turns", None):
        found.append({"messages": list(args.turns)})
    found += [{"messages": [{"role": "user", "content": prompt}]} for prompt in args.prompts]
    if not found:
        raise ConfigError("nothing to send: give a PROMPT, --user TEXT or --file FILE.json")
    if args.system:
        for body in found:
            if not any(m.get("role") in ("system", "developer") for m in body["messages"]):
                body["messages"].insert(0, {"role": "system", "content": args.system})
    return found


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, over the AZURE_OPENAI_* defaults, checked against the API's ranges."""
    given = {
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_tokens": args.max_tokens,
        "stop": args.stop,
        "presence_penalty": args.presence_penalty,
        "frequency_penalty": args.frequency_penalty,
        "seed": args.seed,
        "n": args.n,
    }
    try:
        return ChatCheck.model_validate({k: v for k, v in given.items() if v is not None}).model_dump(
            exclude_none=True
        )
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None


class ChatCheck(BaseModel):
    """The documented ranges of the chat parameters a flag can set."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = Field(default=None, max_length=4)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=10)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _label(body: dict[str, Any]) -> str:
    users = [m.get("content") for m in body["messages"] if m.get("role") == "user"]
    text = users[-1] if users and isinstance(users[-1], str) else "(conversation)"
    flat = " ".join(text.split())
    return flat if len(flat) <= 70 else flat[:69] + "…"


def render(body: dict[str, Any], response: dict[str, Any]) -> str:
    """Every choice in index order; a choice that did not stop normally says why."""
    choices = sorted(
        (c for c in response.get("choices") or [] if isinstance(c, dict)),
        key=lambda c: int(c.get("index") or 0),
    )
    lines: list[str] = []
    for choice in choices:
        message = choice.get("message") or {}
        content = message.get("content")
        reason = choice.get("finish_reason")
        if len(choices) > 1:
            lines.append(f"--- choice {int(choice.get('index') or 0) + 1} ---")
        lines.append(content if isinstance(content, str) and content else f"(no text: {reason or 'empty'})")
        if reason not in (None, "stop"):
            lines.append(f"(finish_reason: {reason})")
    return "\n".join(lines) if lines else "(no choices)"


def show(
    args: argparse.Namespace,
    number: int,
    bodies: list[dict[str, Any]],
    result: dict[str, Any] | RagError,
    secrets: list[str],
) -> None:
    """Print conversation `number`'s answer (or error) as soon as it is known, in order."""
    if args.json:
        entry = (
            {"prompt": number, "error": error_json(result, secrets)}
            if isinstance(result, RagError)
            else {"prompt": number, "response": result}
        )
        print(json.dumps(entry, ensure_ascii=False), flush=True)
        return
    if len(bodies) > 1:
        print(f"{'' if number == 1 else chr(10)}[{number}] {_label(bodies[number - 1])}")
    if isinstance(result, RagError):
        print(f"error: {type(result).__name__}: {redact(str(result), secrets)}", file=sys.stderr)
        print(f"(failed: {type(result).__name__})", flush=True)
    else:
        print(render(bodies[number - 1], result), flush=True)


async def _main(args: argparse.Namespace) -> int:
    settings = init()
    secrets = secret_values(settings.rag, settings.bot)
    defaults = ChatParams.from_settings(settings.rag.openai).wire()
    flags = parameters(args)
    bodies = [{**defaults, **body, **flags} for body in conversations(args)]
    failed = 0
    async with open_client(settings.rag, args, "chat") as client:
        number = 0
        async for result in chat_in_order(client, bodies, concurrency=args.concurrency):
            number += 1
            failed += isinstance(result, RagError)
            show(args, number, bodies, result, secrets)
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
