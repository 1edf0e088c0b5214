"""Inbound activities for the reliability tests, and hypothesis strategies that break them.

The strategies start from a valid message activity and damage it the ways real callers do: bodies
that are not JSON, JSON that is not an activity, fields of the wrong type, huge fields, odd unicode
(lone surrogates, bidi controls, NULs), and @mention entities that point nowhere.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import strategies as st

from tests.bot.fakes import activity

_ids = itertools.count(1)


def thread_turn(service_url: str, thread: int, index: int) -> dict[str, Any]:
    """Question `index` of thread `thread` (each thread its own user), as the crash and replica tests
    post them and then look for in the store."""
    return activity(
        service_url,
        f"thread {thread} question {index}",
        channel="emulator",
        conversation_id=f"thread-{thread}",
        conversation_type=None,
        user_id=f"user-{thread}",
        activity_id=f"t{thread}-q{index}",
    )


def message(
    text: str,
    *,
    conversation: str = "conv-1",
    service_url: str = "http://127.0.0.1:9",
    channel: str = "webchat",
    user: str = "user-1",
    activity_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A well-formed message activity from `user` in `conversation`."""
    return {
        "type": "message",
        "id": activity_id or f"act-{next(_ids)}",
        "channelId": channel,
        "serviceUrl": service_url,
        "conversation": {"id": conversation},
        "from": {"id": user, "name": "User"},
        "recipient": {"id": "bot", "name": "ragbot"},
        "text": text,
        "locale": "en-US",
        **extra,
    }


ODD_TEXT = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\u202eevil\u202c",
            "\ufeff",
            "𝕳𝖊𝖑𝖕 🧨" * 50,
            "e\u0301" * 300,
            "<at>ragbot</at>",
            "{{7*7}} ${jndi:ldap://127.0.0.1/x}",
            "\r\n" * 100,
        ]
    ),
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    ODD_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
HUGE = st.sampled_from(["x" * 200_000, "é" * 300_000, "[doc1]" * 50_000, "a" * 2_000_000])

FIELDS = (
    "type",
    "id",
    "channelId",
    "serviceUrl",
    "conversation",
    "from",
    "recipient",
    "text",
    "entities",
    "channelData",
    "replyToId",
    "deliveryMode",
    "value",
    "name",
    "membersAdded",
    "attachments",
    "locale",
)

ID_FIELDS = ("id", "replyToId")
"""Never made huge here: `test_bad_input` checks huge ids on their own (the bot echoes them in reply URLs)."""

MENTIONS_NOWHERE = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("mention"), "mentioned": st.fixed_dictionaries({"id": st.text(max_size=20)})},
            optional={"text": ODD_TEXT},
        ),
        st.fixed_dictionaries(
            {"type": st.just("mention")}, optional={"mentioned": JSON_VALUES, "text": JSON_VALUES}
        ),
        st.fixed_dictionaries(
            {"type": st.just("mention"), "mentioned": st.just({"id": "bot"}), "text": ODD_TEXT}
        ),
        JSON_VALUES,
    ),
    min_size=1,
    max_size=4,
)


@st.composite
def damaged_activities(draw: st.DrawFn, service_url: str) -> dict[str, Any]:
    """A message activity with some fields replaced, removed or made huge, and/or odd @mentions.

    Field damage alone mostly earns a 400 from validation; mentions are also tried on otherwise valid
    activities, so the code that reads them is reached.
    """
    activity = message(
        draw(ODD_TEXT),
        service_url=service_url,
        channel=draw(st.sampled_from(["webchat", "msteams", "directline", "emulator", "slack"])),
    )
    damage = draw(st.sampled_from(["fields", "mentions", "both"]))
    if damage != "mentions":
        for field in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True)):
            choice = draw(st.sampled_from(["drop", "value", "huge", "odd"]))
            if choice == "drop":
                activity.pop(field, None)
            elif choice == "value":
                activity[field] = draw(JSON_VALUES)
            elif choice == "huge" and field not in ID_FIELDS:
                activity[field] = draw(HUGE)
            else:
                activity[field] = draw(ODD_TEXT)
        if draw(st.booleans()):
            activity["conversation"] = {"id": draw(ODD_TEXT), "conversationType": draw(JSON_VALUES)}
    if damage != "fields":
        activity["entities"] = draw(MENTIONS_NOWHERE)
        conversation = activity.get("conversation")
        if isinstance(conversation, dict) and draw(st.booleans()):
            conversation["conversationType"] = draw(st.sampled_from(["groupChat", "channel"]))
    return activity


def encode(value: Any) -> bytes:
    """JSON as a client would send it; ASCII escapes keep lone surrogates representable."""
    return json.dumps(value, ensure_ascii=True).encode()


def raw_bodies(service_url: str) -> st.SearchStrategy[bytes]:
    """Request bodies: broken bytes, broken JSON, JSON that is no activity, damaged activities."""
    valid = encode(message("hello", service_url=service_url))
    return st.one_of(
        st.binary(max_size=300),
        st.sampled_from(
            [b"", b"{", b"null", b"[]", b'"text"', b"{}", b"\xff\xfe", valid[:-1], valid[: len(valid) // 2]]
        ),
        JSON_VALUES.map(encode),
        damaged_activities(service_url).map(encode),
    )
