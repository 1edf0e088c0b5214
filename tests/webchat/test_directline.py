"""The local Direct Line over real loopback HTTP and WebSockets, as Web Chat and the bot use it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

from bot.directline.service import MAX_PENDING_DELIVERIES
from bot.directline.store import MAX_ACTIVITIES, MAX_SUBSCRIBERS, ConversationStore
from bot.directline.tokens import TOKEN_LIFETIME_S
from bot.http_limits import client_key
from bot.web import LOCAL_DIRECT_LINE

from .conftest import MakeClient, RecordingBot

DL = "/v3/directline"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def generate(client: TestClient, body: Any = None) -> dict[str, Any]:
    response = await client.post(f"{DL}/tokens/generate", json=body)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def start(client: TestClient, body: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A generated token and the started conversation."""
    generated = await generate(client, body)
    response = await client.post(f"{DL}/conversations", headers=auth(generated["token"]))
    assert response.status == 201, await response.text()
    return generated, dict(await response.json())


async def send(client: TestClient, conv: dict[str, Any], text: str, client_id: str = "c1") -> str:
    activity = {
        "type": "message",
        "text": text,
        "from": {"id": "someone-else", "name": "Ann"},
        "channelData": {"clientActivityID": client_id},
    }
    response = await client.post(
        f"{DL}/conversations/{conv['conversationId']}/activities", json=activity, headers=auth(conv["token"])
    )
    assert response.status == 200, await response.text()
    return str((await response.json())["id"])


async def poll(client: TestClient, conv: dict[str, Any], watermark: str | None = None) -> dict[str, Any]:
    query = f"?watermark={watermark}" if watermark is not None else ""
    response = await client.get(
        f"{DL}/conversations/{conv['conversationId']}/activities{query}", headers=auth(conv["token"])
    )
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def poll_until(client: TestClient, conv: dict[str, Any], text: str) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        while True:
            page = await poll(client, conv)
            if any(a.get("text") == text for a in page["activities"]):
                return page
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(wait(), 10)


async def test_generate_token_binds_a_conversation_and_a_user(client: TestClient) -> None:
    generated = await generate(client, {"user": {"id": "dl_ann", "name": "Ann"}})
    assert generated["expires_in"] == TOKEN_LIFETIME_S == 1800
    assert generated["userId"] == "dl_ann"
    claims = jwt.decode(generated["token"], options={"verify_signature": False})
    assert claims["conv"] == generated["conversationId"]
    assert claims["user"] == "dl_ann"
    assert claims["exp"] - claims["iat"] == 1800
    other = await generate(client)
    assert other["conversationId"] != generated["conversationId"]
    assert other["userId"].startswith("dl_")


async def test_generate_rejects_a_bad_body(client: TestClient) -> None:
    for body in (b"{", b'{"user": {"id": "has spaces and / slashes"}}', b"[1]"):
        response = await client.post(f"{DL}/tokens/generate", data=body)
        assert response.status == 400, body
        assert (await response.json())["error"]["code"] == "BadArgument"


async def test_refresh_gives_a_working_token_for_the_same_conversation(client: TestClient) -> None:
    generated, _ = await start(client)
    response = await client.post(f"{DL}/tokens/refresh", headers=auth(generated["token"]))
    assert response.status == 200
    refreshed = await response.json()
    assert refreshed["conversationId"] == generated["conversationId"]
    assert (await poll(client, {**generated, "token": refreshed["token"]}))["activities"]


async def test_expired_or_forged_tokens_are_refused(client: TestClient) -> None:
    generated, _ = await start(client)
    issuer = client.app[LOCAL_DIRECT_LINE].tokens
    real_clock = issuer.clock
    issuer.clock = lambda: real_clock() - TOKEN_LIFETIME_S - 5
    expired = issuer.issue(generated["conversationId"], generated["userId"])
    issuer.clock = real_clock
    forged = jwt.encode({"conv": generated["conversationId"], "user": "x"}, "k" * 32, algorithm="HS256")
    cid = generated["conversationId"]
    for token in (expired, forged, "garbage"):
        for method, path in (
            ("POST", f"{DL}/tokens/refresh"),
            ("GET", f"{DL}/conversations/{cid}/activities"),
            ("GET", f"{DL}/conversations/{cid}"),
        ):
            response = await client.request(method, path, headers=auth(token))
            assert response.status == 403, (token, path)
    response = await client.get(f"{DL}/conversations/{cid}/activities")
    assert response.status == 401


async def test_start_sends_members_added_naming_this_server(client: TestClient, bot: RecordingBot) -> None:
    generated, conv = await start(client)
    assert conv["conversationId"] == generated["conversationId"]
    assert conv["streamUrl"].startswith(f"ws://{client.host}:{client.port}{DL}/conversations/")
    joined = await bot.wait_for(lambda a: a["type"] == "conversationUpdate")
    assert [m["id"] for m in joined["membersAdded"]] == ["ragbot", generated["userId"]]
    assert joined["serviceUrl"] == f"http://127.0.0.1:{client.port}/"
    assert joined["channelId"] == "directline"
    assert joined["conversation"]["id"] == conv["conversationId"]
    # Starting again with the same token describes the running conversation, without a second join.
    again = await client.post(f"{DL}/conversations", headers=auth(generated["token"]))
    assert again.status == 200
    await asyncio.sleep(0.1)
    assert sum(a["type"] == "conversationUpdate" for a in bot.received) == 1


async def test_user_message_reaches_the_bot_and_echoes_with_the_server_id(
    client: TestClient, bot: RecordingBot
) -> None:
    generated, conv = await start(client)
    activity_id = await send(client, conv, "hello")
    received = await bot.wait_for(lambda a: a.get("text") == "hello")
    assert received["id"] == activity_id
    assert activity_id.startswith(conv["conversationId"] + "|")
    assert received["from"]["id"] == generated["userId"]  # the token's user, not the one the client claimed
    assert received["serviceUrl"] == f"http://127.0.0.1:{client.port}/"
    assert received["recipient"]["id"] == "ragbot"
    page = await poll_until(client, conv, "You said: hello")
    echo = next(a for a in page["activities"] if a.get("text") == "hello")
    assert echo["id"] == activity_id
    assert echo["channelData"]["clientActivityID"] == "c1"
    assert echo["from"]["role"] == "user"


async def test_bot_reply_keeps_its_id_and_typing_is_not_stored(client: TestClient, bot: RecordingBot) -> None:
    _, conv = await start(client)
    user_id = await send(client, conv, "hi")
    page = await poll_until(client, conv, "You said: hi")
    reply = next(a for a in page["activities"] if a.get("text") == "You said: hi")
    assert reply["id"] == bot.reply_ids[0]
    assert reply["channelData"]["streamId"] == reply["id"]
    assert reply["replyToId"] == user_id
    assert reply["from"]["role"] == "bot"
    assert not any(a["type"] == "typing" for a in page["activities"])


async def test_watermark_returns_only_newer_activities(client: TestClient) -> None:
    _, conv = await start(client)
    await send(client, conv, "one")
    first = await poll_until(client, conv, "You said: one")
    await send(client, conv, "two", client_id="c2")
    await poll_until(client, conv, "You said: two")
    newer = await poll(client, conv, first["watermark"])
    assert [a["text"] for a in newer["activities"]] == ["two", "You said: two"]
    assert int(newer["watermark"]) > int(first["watermark"])
    assert (await poll(client, conv, newer["watermark"]))["activities"] == []
    for odd in ("abc", "¹", "-1", "9" * 40):
        bad = await client.get(
            f"{DL}/conversations/{conv['conversationId']}/activities",
            params={"watermark": odd},
            headers=auth(conv["token"]),
        )
        assert bad.status == 400, odd


async def test_a_reply_under_an_existing_id_replaces_it_and_is_redelivered(client: TestClient) -> None:
    _, conv = await start(client)
    conversation = client.app[LOCAL_DIRECT_LINE].store.get(conv["conversationId"])
    assert conversation is not None
    activity_id = conversation.append({"type": "message", "text": "v1"})
    mark = (await poll(client, conv))["watermark"]
    assert conversation.append({"type": "message", "id": activity_id, "text": "v2"}) == activity_id
    assert [a["text"] for a in (await poll(client, conv, mark))["activities"]] == ["v2"]
    everything = (await poll(client, conv))["activities"]
    assert [a.get("text") for a in everything if a["id"] == activity_id] == ["v2"]


async def test_websocket_pushes_frames_and_reconnect_resumes_from_the_watermark(
    client: TestClient, bot: RecordingBot
) -> None:
    _, conv = await start(client)
    ws = await client.session.ws_connect(conv["streamUrl"])
    frames: list[dict[str, Any]] = []

    async def until(text: str) -> None:
        while not any(a.get("text") == text for f in frames for a in f["activities"]):
            frames.append(await ws.receive_json(timeout=10))

    await send(client, conv, "streamed")
    await until("You said: streamed")
    kinds = [a["type"] for f in frames for a in f["activities"]]
    assert kinds == ["conversationUpdate", "message", "typing", "message"]
    typing = next(a for f in frames for a in f["activities"] if a["type"] == "typing")
    final = frames[-1]["activities"][0]
    # Web Chat replaces by id, not duplicates; the first update names its stream.
    assert (
        typing["id"] == final["id"] == final["channelData"]["streamId"] == typing["channelData"]["streamId"]
    )
    watermark = frames[-1]["watermark"]
    await ws.close()

    await send(client, conv, "while away", client_id="c2")
    await poll_until(client, conv, "You said: while away")
    response = await client.get(
        f"{DL}/conversations/{conv['conversationId']}?watermark={watermark}", headers=auth(conv["token"])
    )
    assert response.status == 200
    fresh = await response.json()
    assert fresh["streamUrl"] != conv["streamUrl"]
    ws = await client.session.ws_connect(fresh["streamUrl"])
    backlog = await ws.receive_json(timeout=10)
    assert [a["text"] for a in backlog["activities"]] == ["while away", "You said: while away"]
    await ws.close()


async def test_a_token_cannot_touch_another_conversation(client: TestClient) -> None:
    mine, my_conv = await start(client)
    _, their_conv = await start(client)
    theirs = their_conv["conversationId"]
    attempts = [
        ("GET", f"{DL}/conversations/{theirs}/activities"),
        ("POST", f"{DL}/conversations/{theirs}/activities"),
        ("GET", f"{DL}/conversations/{theirs}"),
    ]
    for method, path in attempts:
        response = await client.request(
            method, path, headers=auth(my_conv["token"]), json={"type": "message", "text": "x"}
        )
        assert response.status == 403, path
        assert "another conversation" in (await response.json())["error"]["message"]
    # My stream token on their stream URL.
    my_stream_token = my_conv["streamUrl"].split("t=")[1]
    response = await client.get(f"{DL}/conversations/{theirs}/stream?t={my_stream_token}")
    assert response.status == 403
    # A conversation token is not a stream token.
    response = await client.get(f"{DL}/conversations/{mine['conversationId']}/stream?t={mine['token']}")
    assert response.status == 403


async def test_bad_user_activities_get_clear_errors(client: TestClient, bot: RecordingBot) -> None:
    _, conv = await start(client)
    await bot.wait_for(lambda a: a["type"] == "conversationUpdate")
    before = await poll(client, conv)
    path = f"{DL}/conversations/{conv['conversationId']}/activities"
    bodies = [b"not json", b'"text"', b'{"text": "no type"}', b'{"type": "conversationUpdate"}']
    for body in bodies:
        response = await client.post(path, data=body, headers=auth(conv["token"]))
        assert response.status == 400, body
        assert (await response.json())["error"]["message"]
    huge = {"type": "message", "text": "x" * 40_000}
    response = await client.post(path, json=huge, headers=auth(conv["token"]))
    assert response.status == 413
    assert "larger than" in (await response.json())["error"]["message"]
    assert await poll(client, conv) == before  # nothing stored
    assert len(bot.received) == 1  # nothing forwarded (only the join)


async def test_a_failing_bot_is_reported_in_the_chat(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    _, conv = await start(client)
    user_id = await send(client, conv, "fail")

    async def error_reply() -> dict[str, Any]:
        while True:
            for activity in (await poll(client, conv))["activities"]:
                if activity.get("from", {}).get("role") == "bot" and "internal error" in activity.get(
                    "text", ""
                ):
                    return activity
            await asyncio.sleep(0.02)

    reply = await asyncio.wait_for(error_reply(), 10)
    assert "could not process" in reply["text"]
    assert reply["replyToId"] == user_id
    assert "the bot's turn failed" in caplog.text


async def test_turns_waiting_for_the_bot_are_bounded(client: TestClient, bot: RecordingBot) -> None:
    _, conv = await start(client)
    path = f"{DL}/conversations/{conv['conversationId']}/activities"
    for n in range(MAX_PENDING_DELIVERIES):
        await send(client, conv, "hold", client_id=f"h{n}")
    response = await client.post(
        path, json={"type": "message", "text": "one more"}, headers=auth(conv["token"])
    )
    assert response.status == 429
    assert "waiting for the bot" in (await response.json())["error"]["message"]
    bot.release.set()
    async with asyncio.timeout(10):  # every held turn is answered, in order, then there is room again
        while True:
            texts = [a.get("text") for a in (await poll(client, conv))["activities"]]
            if texts.count("You said: hold") == MAX_PENDING_DELIVERIES:
                break
            await asyncio.sleep(0.02)
    await send(client, conv, "one more")
    await poll_until(client, conv, "You said: one more")


async def test_idle_conversations_expire(client: TestClient) -> None:
    _, conv = await start(client)
    store = client.app[LOCAL_DIRECT_LINE].store
    now = store.clock()
    store.clock = lambda: now + 31 * 60
    response = await client.get(
        f"{DL}/conversations/{conv['conversationId']}/activities", headers=auth(conv["token"])
    )
    assert response.status == 404
    assert conv["conversationId"] not in store


async def test_activity_log_and_conversation_count_are_bounded(client: TestClient) -> None:
    _, conv = await start(client)
    cid = conv["conversationId"]
    conversation = client.app[LOCAL_DIRECT_LINE].store.get(cid)
    assert conversation is not None
    for n in range(MAX_ACTIVITIES + 20):
        conversation.append({"type": "message", "text": str(n)})
    page = await poll(client, conv)
    assert len(page["activities"]) == MAX_ACTIVITIES
    assert page["activities"][-1]["text"] == str(MAX_ACTIVITIES + 19)
    assert int(page["watermark"]) == MAX_ACTIVITIES + 21  # the join and every post moved it

    store = client.app[LOCAL_DIRECT_LINE].store
    store.max_conversations = 3
    others = [(await start(client))[1] for _ in range(3)]
    assert len(store) == 3
    assert cid not in store  # least recently active went first
    assert all(o["conversationId"] in store for o in others)


async def test_app_id_without_secret_explains_what_is_missing(make_client: MakeClient) -> None:
    client = await make_client(app_id="00000000-0000-0000-0000-000000000001")
    response = await client.post("/api/directline/token")
    assert response.status == 503
    assert "DIRECT_LINE_SECRET" in (await response.json())["error"]["message"]
    assert (await client.post(f"{DL}/tokens/generate")).status == 404


async def test_expiry_sweep_drops_idle_conversations_and_ends_their_streams() -> None:
    now = [0.0]
    store = ConversationStore(clock=lambda: now[0])
    idle = store.create("idle", "dl_a", None)
    busy = store.create("busy", "dl_b", None)
    subscriber = idle.subscribe(None)
    assert subscriber.queue.empty()  # no backlog
    now[0] = 20 * 60
    assert store.get("busy") is busy  # activity keeps it alive
    now[0] = 31 * 60
    assert store.expire() == 1
    assert "idle" not in store and "busy" in store
    assert subscriber.closed and await subscriber.next() is None  # its WebSocket is told to close


def test_byte_budgets_drop_the_oldest_and_keep_watermarks() -> None:
    store = ConversationStore(conversation_bytes=64 * 1024, total_bytes=1024**2)
    chat = store.create("chat", "dl_a", None)
    ids = [chat.append({"type": "event", "value": f"{n:03d}" + "x" * 8000}) for n in range(20)]
    assert chat.bytes <= 64 * 1024 and store.budget.held == chat.bytes
    kept = [json.loads(text)["id"] for text in chat.since(None)]
    assert kept == ids[-len(kept) :] and 5 < len(kept) < 9  # the oldest went, the newest stayed
    assert chat.watermark == 20
    # From a dropped watermark: what remains after it, the same as from the start.
    assert chat.since(2) == chat.since(None) == chat.since(0)
    assert json.loads(chat.page(2))["watermark"] == "20"
    assert chat.since(20) == []
    # The total: the heaviest conversation gives up its oldest, lighter ones keep theirs.
    light = store.create("light", "dl_b", None)
    light_ids = [light.append({"type": "message", "text": "hi"}) for _ in range(3)]
    everyone = [chat, light]
    for n in range(30):
        everyone.append(other := store.create(f"flood-{n}", "dl_c", None))
        other.append({"type": "event", "value": "y" * 30_000})
        other.append({"type": "event", "value": "y" * 30_000})
    assert store.budget.held == sum(c.bytes for c in everyone) <= 1024**2
    assert [json.loads(text)["id"] for text in light.since(None)] == light_ids
    # An ended conversation gives its bytes back and stores nothing more.
    chat.close()
    assert store.budget.held == sum(c.bytes for c in everyone if c is not chat)
    chat.append({"type": "message", "text": "late reply"})
    assert len(chat) == 0 and chat.bytes == 0


async def test_a_stream_that_falls_behind_is_closed_and_streams_are_capped() -> None:
    store = ConversationStore(conversation_bytes=64 * 1024)
    chat = store.create("chat", "dl_a", None)
    streams = [chat.subscribe(None) for _ in range(MAX_SUBSCRIBERS + 1)]
    assert streams[0].closed and len(chat.subscribers) == MAX_SUBSCRIBERS
    for _ in range(5):  # nobody reads: 5 x 30 kB is over the 128 kB a stream may queue
        chat.append({"type": "event", "value": "z" * 30_000})
    assert all(stream.closed for stream in streams) and not chat.subscribers
    assert await streams[1].next() is None


def test_a_client_at_its_cap_gives_up_its_own_oldest_conversation() -> None:
    store = ConversationStore(max_per_client=3)
    mine = [store.create(f"mine-{n}", "dl_a", None, client="10.0.0.1") for n in range(3)]
    theirs = store.create("theirs", "dl_b", None, client="10.0.0.2")
    store.get("mine-0")  # the oldest is now mine-1
    store.create("mine-3", "dl_a", None, client="10.0.0.1")
    assert "mine-1" not in store and mine[1].closed
    assert all(c in store for c in ("mine-0", "mine-2", "mine-3", "theirs")) and not theirs.closed


def test_a_client_is_its_address_and_an_ipv6_one_its_64() -> None:
    assert client_key("2001:db8:0:1::1") == client_key("2001:db8:0:1:ffff::2") == "2001:db8:0:1::/64"
    assert client_key("2001:db8:0:2::1") != client_key("2001:db8:0:1::1")
    assert client_key("::ffff:10.0.0.1") == client_key("10.0.0.1") == "10.0.0.1"
    assert client_key(None) == "unknown"
