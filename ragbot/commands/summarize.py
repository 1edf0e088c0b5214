"""`ragbot summarize`: the hand-off summary of a stored conversation or a text file, optionally posted."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bot.feedback import PREFIX as FEEDBACK_PREFIX
from bot.handoff import HandOff
from bot.handoff.card import counts
from bot.handoff.transcript import thread_transcript
from bot.handoff.webhook import Delivery
from bot.memory import ThreadState
from bot.refusals import PREFIX as REFUSAL_PREFIX
from bot.settings import BotSettings
from bot.state import StateStore, StoreUnavailable
from rag.summary import Summary, Transcript, summary_client
from ragbot.commands._common import AllSettings, init
from ragbot.commands.feedback import server_store

HELP = "summarize a stored conversation or a text file for a person taking over (--post: to the help desk)"
DESCRIPTION = """Write the summary the bot's `handoff` command gives a human agent: what the user asked,
what the bot answered with which sources, what it could not answer and the feedback given. The chat
model writes it when one is configured (AZURE_OPENAI_*, or RAGBOT_LLM_*; RAGBOT_GENERATOR=extractive
turns it off); otherwise it is extractive, built from the conversation itself.

A stored conversation is read from the server's store (RAGBOT_STORAGE), by its conversation id as the
channel gave it, or by its full thread key (channel|tenant|conversation id); `--channel` narrows the
search. A text file may hold "User: ..." / "Bot: ..." lines (one exchange per User line) or any text.

  ragbot summarize a:1Xb0-personal-chat            a stored conversation
  ragbot summarize 'msteams|tenant-1|a:1Xb0'       the same, by its thread key
  ragbot summarize --file chat.txt                 a transcript or any text file
  ragbot summarize a:1Xb0 --post                   and POST it to RAGBOT_HANDOFF_WEBHOOK
  ragbot summarize --file chat.txt --json          the summary, method and exchanges as JSON

Exit 0: printed (and delivered, with --post); 1: --post did not go through; 2: the conversation or
file was not found, or --post without RAGBOT_HANDOFF_WEBHOOK."""

MAX_FILE_BYTES = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("conversation", nargs="?", help="a stored conversation's id (or thread key)")
    parser.add_argument("--file", type=Path, help="summarize this text file instead")
    parser.add_argument(
        "--channel", help="look for the conversation in this channel only (msteams, webchat, ...)"
    )
    parser.add_argument("--post", action="store_true", help="also POST it to RAGBOT_HANDOFF_WEBHOOK")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


class NotFound(Exception):
    """The conversation or the file to summarize is not there; the message says what was looked for."""


OTHER_DOCUMENTS = (FEEDBACK_PREFIX, REFUSAL_PREFIX, "rate|")
"""Keys of the store that are not threads (`channel|tenant|conversation id`)."""


def _is_thread(key: str) -> bool:
    return len(key.split("|")) >= 3 and not key.startswith(OTHER_DOCUMENTS)


async def find_thread(store: StateStore, wanted: str, channel: str | None) -> tuple[str, ThreadState]:
    """The thread whose key is `wanted`, or whose conversation id is; ambiguity is an error."""
    if _is_thread(wanted):
        stored = await store.read(wanted)
        if stored is not None:
            return wanted, ThreadState.model_validate_json(stored.doc)
    prefix = f"{channel}|" if channel else ""
    found = [(k, doc) for k, doc in await store.scan(prefix) if _is_thread(k)]
    exact = [(k, doc) for k, doc in found if k.split("|", 2)[2] == wanted]
    matches = exact or [(k, doc) for k, doc in found if k.split("|", 2)[2].startswith(f"{wanted};messageid=")]
    if not matches:
        raise NotFound(f"no stored conversation {wanted!r}" + (f" in channel {channel}" if channel else ""))
    if len(matches) > 1:
        keys = "\n  ".join(k for k, _ in matches[:20])
        raise NotFound(f"{wanted!r} names {len(matches)} threads; give one of these keys:\n  {keys}")
    key, doc = matches[0]
    return key, ThreadState.model_validate_json(doc)


async def from_store(
    settings: BotSettings, wanted: str, channel: str | None
) -> tuple[Transcript, dict[str, Any]]:
    store = server_store(settings)
    if store is None:
        raise NotFound(f"no conversations are stored yet (no {settings.data_dir}/ state file)")
    try:
        key, state = await find_thread(store, wanted, channel)
        transcript = await thread_transcript(store, state, key.split("|", 1)[0])
    finally:
        await store.aclose()
    channel_id, tenant, conversation = key.split("|", 2)
    about = {
        "channel": channel_id,
        "conversation_id": conversation,
        "tenant_id": None if tenant == "-" else tenant,
    }
    return transcript, about


def from_file(path: Path) -> Transcript:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise NotFound(f"{path} is larger than {MAX_FILE_BYTES // 1024} KiB")
    return Transcript.from_text(raw.decode("utf-8", errors="replace"))


async def _run(
    args: argparse.Namespace, settings: AllSettings
) -> tuple[Transcript, Summary, Delivery | None]:
    if args.file:
        transcript, about = from_file(args.file), {"file": args.file.name}
    else:
        transcript, about = await from_store(settings.bot, args.conversation, args.channel)
    handoff = HandOff(settings.bot, summary_client(settings.rag))
    try:
        summary = await handoff.summarize(transcript)
        about = {"app": settings.bot.app_name, **about, "source": "ragbot summarize"}
        delivery = await handoff.deliver(summary, transcript, about) if args.post else None
    finally:
        await handoff.aclose()
    return transcript, summary, delivery


def run(args: argparse.Namespace) -> int:
    if bool(args.file) == bool(args.conversation):
        print("ragbot summarize: give a conversation id or --file PATH (one of them)", file=sys.stderr)
        return 2
    settings = init()
    if args.post and settings.bot.handoff_webhook is None:
        print("ragbot summarize: --post needs RAGBOT_HANDOFF_WEBHOOK", file=sys.stderr)
        return 2
    try:
        transcript, summary, delivery = asyncio.run(_run(args, settings))
    except NotFound as exc:
        print(f"ragbot summarize: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"ragbot summarize: cannot read the conversation store: {exc}", file=sys.stderr)
        return 1
    if args.json:
        out: dict[str, Any] = {**summary.model_dump(), "transcript": transcript.model_dump()}
        out["delivery"] = delivery.model_dump() if delivery else None
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(summary.text)
        facts = (
            [f"{name.lower()}: {value}" for name, value in counts(transcript)] if transcript.exchanges else []
        )
        note = f"; {summary.note}" if summary.note else ""
        print(f"\n(summary by {summary.method}{note}{''.join('; ' + f for f in facts)})")
    if delivery is not None:
        if not delivery.sent:
            print(f"ragbot summarize: not delivered to the help desk: {delivery.detail}", file=sys.stderr)
            return 1
        print(f"delivered to the help desk (HTTP {delivery.status})", file=sys.stderr)
    return 0
