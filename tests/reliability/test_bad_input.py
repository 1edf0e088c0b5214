"""Bad input, property-based: whatever arrives at `/api/messages` or the local Direct Line, the answer is a
4xx or a polite reply, never a 5xx, an error in the log or a dead server. With auth on, forged tokens
always get 401 (Bot Framework) and Direct Line refuses forged tokens (401/403)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from aiohttp.http_exceptions import HttpProcessingError
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from bot.web import LOCAL_DIRECT_LINE
from tests.bot.conftest import Bot, MakeBot
from tests.bot.fakes import activity
from tests.bot.test_bot_http import APP_ID, ISSUER, SERVICE_URL, OpenIdServer, auth_overrides, signing, token
from tests.fuzzing import fuzz_settings
from tests.reliability.activities import (
    JSON_VALUES,
    ODD_TEXT,
    damaged_activities,
    encode,
    message,
    raw_bodies,
)

pytestmark = pytest.mark.reliability

__all__ = ["signing"]  # the bot suite's OpenID fixture, used here as is

FUZZ = fuzz_settings(
    200,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json", "application/json; charset=utf-8", "text/plain", ""]
)
POLITE_TYPES = ("message", "typing")
DELIVERY_S = 10.0


@pytest.fixture
async def bot(make_bot: MakeBot) -> Bot:
    return await make_bot(user_turns_per_minute=10_000)


def assert_no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    """No error from the bot's code, and no request handler that blew up.

    aiohttp also logs, at ERROR, requests its HTTP parser refused with a 400 (e.g. the fake connector
    getting a 200 kB URL): those are answered, not crashes, and are left out.
    """
    errors = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR and not (r.exc_info and isinstance(r.exc_info[1], HttpProcessingError))
    ]
    assert not errors, [r.getMessage() for r in errors]


def service_url_of(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed.get("serviceUrl") if isinstance(parsed, dict) else None


async def assert_alive(bot: Bot) -> None:
    assert (await bot.client.get("/healthz")).status == 200


@FUZZ
@given(data=st.data())
async def test_api_messages_answers_4xx_or_politely(
    bot: Bot, caplog: pytest.LogCaptureFixture, data: st.DataObject
) -> None:
    caplog.clear()
    body = data.draw(raw_bodies(bot.service_url), label="body")
    content_type = data.draw(CONTENT_TYPES, label="content type")
    before = len(bot.connector.received)
    response = await bot.client.post("/api/messages", data=body, headers={"Content-Type": content_type})
    if response.status == 502:  # the one 5xx allowed: the caller's own serviceUrl cannot take the reply
        assert service_url_of(body) not in (None, bot.service_url), await response.text()
    else:
        assert response.status < 500, await response.text()
    for received in bot.connector.received[before:]:
        assert received.type in POLITE_TYPES
        if received.type == "message":
            assert isinstance(received.activity.get("text"), str) and received.text.strip()
    assert_no_errors_logged(caplog)
    await assert_alive(bot)


async def test_mentions_pointing_nowhere_do_not_break_a_teams_turn(bot: Bot) -> None:
    """Group chat turns need an @mention of the bot; broken mention entities are just not mentions."""
    broken = [
        {"type": "mention"},
        {"type": "mention", "mentioned": None, "text": None},
        {"type": "mention", "mentioned": {"id": "someone-else"}, "text": "<at>Ghost</at>"},
        {"type": "mention", "mentioned": "bot", "text": 42},
        {"type": "mention", "mentioned": {"id": None}, "text": "<at>"},
    ]
    sample = activity(bot.service_url, "hi <at>Ghost</at>", conversation_type="groupChat", entities=broken)
    assert (await bot.post(sample)).status == 200
    assert bot.answerer.calls == []  # not addressed to the bot: no answer, no error
    bot_id = sample["recipient"]["id"]
    sample["entities"] = [*broken, {"type": "mention", "mentioned": {"id": bot_id}, "text": None}]
    assert (await bot.post(sample)).status == 200
    assert [call.question for call in bot.answerer.calls] == ["hi <at>Ghost</at>"]
    sample["entities"] = [*broken, "not an entity"]
    assert (await bot.post(sample)).status == 400


@pytest.mark.parametrize("channel", ["emulator", "webchat", "msteams"])
async def test_a_lone_surrogate_in_the_text_is_no_500(bot: Bot, channel: str) -> None:
    """`"\\ud800"` is valid JSON but no valid Unicode text: the bot must refuse or replace it, not crash."""
    sample = activity(bot.service_url, "hi \ud800 there", channel=channel, conversation_type="personal")
    response = await bot.client.post(
        "/api/messages", data=encode(sample), headers={"Content-Type": "application/json"}
    )
    assert response.status < 500, await response.text()


async def test_a_huge_activity_id_is_no_5xx(bot: Bot) -> None:
    """The bot puts the inbound id in its reply's URL (`.../activities/{replyToId}`); 100 kB of id must be
    refused up front rather than end as a 502 when the channel cannot take that URL."""
    sample = activity(bot.service_url, "hi", channel="emulator", activity_id="x" * 100_000)
    response = await bot.post(sample)
    assert response.status < 500, await response.text()


# --- Direct Line ---------------------------------------------------------------------------------


class DirectLine:
    def __init__(self, bot: Bot, conversation: str, token: str, user: str) -> None:
        self.bot, self.conversation, self.token, self.user = bot, conversation, token, user

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


@pytest.fixture
async def direct_line(bot: Bot) -> DirectLine:
    minted = await (await bot.client.post("/api/directline/token")).json()
    started = await bot.client.post(
        "/v3/directline/conversations", headers={"Authorization": f"Bearer {minted['token']}"}
    )
    assert started.status == 201
    return DirectLine(bot, minted["conversationId"], (await started.json())["token"], minted["userId"])


@FUZZ
@given(data=st.data())
async def test_direct_line_answers_4xx_or_accepts(
    direct_line: DirectLine, caplog: pytest.LogCaptureFixture, data: st.DataObject
) -> None:
    caplog.clear()
    client, cid = direct_line.bot.client, direct_line.conversation
    kind = data.draw(st.sampled_from(["activity", "generate", "watermark", "conversation id"]), label="kind")
    if kind == "activity":
        body = data.draw(
            st.one_of(raw_bodies("http://127.0.0.1:9"), damaged_activities("").map(encode)), label="body"
        )
        response = await client.post(
            f"/v3/directline/conversations/{cid}/activities", data=body, headers=direct_line.auth()
        )
    elif kind == "generate":
        body = data.draw(
            st.one_of(raw_bodies(""), st.fixed_dictionaries({"user": JSON_VALUES}).map(encode)), label="body"
        )
        response = await client.post("/v3/directline/tokens/generate", data=body)
    elif kind == "watermark":
        watermark = data.draw(ODD_TEXT, label="watermark")
        response = await client.get(
            f"/v3/directline/conversations/{cid}/activities?watermark={quote(watermark, errors='replace')}",
            headers=direct_line.auth(),
        )
    else:
        other = data.draw(ODD_TEXT.filter(lambda s: s != cid), label="conversation id")
        path = quote(other, safe="", errors="replace") or "x"
        response = await client.get(f"/v3/directline/conversations/{path}", headers=direct_line.auth())
        assert response.status in (403, 404), await response.text()
    assert response.status < 500, await response.text()
    await delivered(direct_line)
    assert_no_errors_logged(caplog)
    await assert_alive(direct_line.bot)


async def delivered(direct_line: DirectLine) -> None:
    """Wait until the Direct Line has handed every accepted activity to the bot (it does so in the
    background), so whatever the bot logs belongs to this example."""
    conversation = direct_line.bot.client.app[LOCAL_DIRECT_LINE].store.get(direct_line.conversation)
    assert conversation is not None
    async with asyncio.timeout(DELIVERY_S):
        while conversation.pending:  # noqa: ASYNC110  (a counter the Direct Line keeps; no event to wait on)
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("watermark", ["¹", "١٢", "٣", "-1", "1.5", "9" * 400])
async def test_odd_watermarks_get_no_5xx(direct_line: DirectLine, watermark: str) -> None:
    """`str.isdigit()` is true for `¹` and Arabic-Indic digits, which `int()` may refuse or read."""
    response = await direct_line.bot.client.get(
        f"/v3/directline/conversations/{direct_line.conversation}/activities?watermark={quote(watermark)}",
        headers=direct_line.auth(),
    )
    assert response.status in (200, 400), await response.text()


@st.composite
def forged_direct_line_tokens(draw: st.DrawFn, real: DirectLine, *, for_stream: bool, bound: bool) -> str:
    """Tokens that must not open the conversation: junk, foreign key, none, tampered, expired, wrong scope,
    and (`bound`: the endpoint names the conversation) a valid token for another conversation."""
    issuer = real.bot.client.app[LOCAL_DIRECT_LINE].tokens
    claims = {
        "iss": "ragbot-directline",
        "iat": int(time.time()),
        "exp": int(time.time()) + 600,
        "conv": real.conversation,
        "user": real.user,
        "scp": "conversation",
    }
    kinds = ["junk", "foreign key", "none", "tampered", "expired", "stream scope"]
    how = draw(st.sampled_from([*kinds, "other conversation"] if bound else kinds))
    if how == "junk":
        return draw(
            st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=300)
        )
    if how == "foreign key":
        return jwt.encode(claims, draw(st.binary(min_size=32, max_size=64)), algorithm="HS256")
    if how == "none":
        return jwt.encode(claims, None, algorithm="none")
    if how == "tampered":
        position = draw(st.integers(min_value=0, max_value=len(real.token) - 1))
        replacement = "A" if real.token[position] != "A" else "B"
        return real.token[:position] + replacement + real.token[position + 1 :]
    if how == "expired":
        now = issuer.clock
        issuer.clock = lambda: time.time() - 3 * 3600
        try:
            return issuer.issue(real.conversation, real.user)
        finally:
            issuer.clock = now
    if how == "stream scope":  # each endpoint refuses the other scope
        return real.token if for_stream else issuer.issue(real.conversation, real.user, scope="stream")
    return issuer.issue("another-conversation", real.user)  # valid, but not for this conversation


@FUZZ
@given(data=st.data())
async def test_forged_direct_line_tokens_are_refused(direct_line: DirectLine, data: st.DataObject) -> None:
    client, cid = direct_line.bot.client, direct_line.conversation
    method, path = data.draw(
        st.sampled_from(
            [
                ("POST", f"/v3/directline/conversations/{cid}/activities"),
                ("GET", f"/v3/directline/conversations/{cid}/activities"),
                ("GET", f"/v3/directline/conversations/{cid}"),
                ("POST", "/v3/directline/tokens/refresh"),
                ("GET", f"/v3/directline/conversations/{cid}/stream"),
            ]
        ),
        label="endpoint",
    )
    for_stream = path.endswith("/stream")
    bound = cid in path  # refresh names no conversation: any valid token may refresh itself
    forged = data.draw(
        forged_direct_line_tokens(direct_line, for_stream=for_stream, bound=bound), label="token"
    )
    if for_stream:
        path += f"?t={quote(forged, safe='')}"
    before = direct_line.bot.answerer.calls[:]
    response = await client.request(
        method, path, headers=direct_line.auth(forged), json=message("hi", service_url="http://127.0.0.1:9")
    )
    assert response.status in (401, 403), (response.status, await response.text())
    assert direct_line.bot.answerer.calls == before


# --- inbound Bot Framework auth ------------------------------------------------------------------


@st.composite
def forged_channel_tokens(draw: st.DrawFn, key: Any, forger: Any) -> str | None:
    """An Authorization header that must be refused: every token has at least one defect."""
    now = int(time.time())
    defect = draw(
        st.sampled_from(
            [
                "missing",
                "scheme",
                "junk",
                "foreign key",
                "audience",
                "issuer",
                "serviceurl",
                "expired",
                "none",
                "hs256",
            ]
        )
    )
    if defect == "missing":
        return None
    if defect == "scheme":
        return draw(st.sampled_from(["Basic ", "bearer", "Token ", ""])) + token(key)
    if defect == "junk":
        return "Bearer " + draw(
            st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=200)
        )
    if defect == "foreign key":
        return "Bearer " + token(forger, kid=draw(st.sampled_from(["test-key", "other-key"])))
    if defect == "audience":
        return "Bearer " + token(key, aud=draw(st.text(max_size=40).filter(lambda a: a != APP_ID)))
    if defect == "issuer":
        return "Bearer " + token(key, iss=draw(st.text(max_size=40).filter(lambda i: i != ISSUER)))
    if defect == "serviceurl":
        return "Bearer " + token(
            key, serviceurl=draw(st.text(max_size=40).filter(lambda u: u != SERVICE_URL))
        )
    if defect == "expired":
        age = draw(st.integers(min_value=3600, max_value=10**8))
        return "Bearer " + token(key, exp=now - age, nbf=now - age - 600)
    claims = {"iss": ISSUER, "aud": APP_ID, "serviceurl": SERVICE_URL, "exp": now + 600}
    if defect == "none":
        return "Bearer " + jwt.encode(claims, None, algorithm="none")
    return "Bearer " + jwt.encode(claims, draw(st.binary(min_size=32, max_size=64)), algorithm="HS256")


@pytest.fixture
async def secured_bot(make_bot: MakeBot, signing: tuple[Any, OpenIdServer]) -> Bot:
    _, server = signing
    return await make_bot(app_id=APP_ID, app_password="bot-password", auth_overrides=auth_overrides(server))


@pytest.fixture(scope="module")
def forger() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@FUZZ
@given(data=st.data())
async def test_with_auth_on_forged_tokens_always_get_401(
    secured_bot: Bot, signing: tuple[Any, OpenIdServer], forger: Any, data: st.DataObject
) -> None:
    key, _ = signing
    header = data.draw(forged_channel_tokens(key, forger), label="authorization")
    inbound = activity(SERVICE_URL, data.draw(ODD_TEXT, label="text"), deliveryMode="expectReplies")
    response = await secured_bot.post(
        inbound, headers={"Authorization": header} if header is not None else {}
    )
    assert response.status == 401, await response.text()
    assert secured_bot.answerer.calls == []
