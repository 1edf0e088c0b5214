"""HTTP behaviour of `/api/messages`: request hygiene (never a 500), inbound auth, health probes."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from bot.app import GC_THRESHOLDS, new_event_loop, tune_gc
from tests.bot.conftest import MakeBot
from tests.bot.fakes import FakeAnswerer, activity

APP_ID = "00000000-0000-0000-0000-00000000b07a"
ISSUER = "https://api.botframework.com"
SERVICE_URL = "https://smba.example.net/amer/"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", "application/json", 400),
        (b"{", "application/json", 400),
        (b"null", "application/json", 400),
        (b"[]", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b'{"type": "message"}', "application/json", 400),
        (b'{"type": "message", "text": "hi"}', "text/plain", 415),
        (b"x" * (1024 * 1024 + 1), "application/json", 413),
    ],
)
async def test_bad_requests_get_a_4xx(make_bot: MakeBot, body: bytes, content_type: str, status: int) -> None:
    bot = await make_bot()
    response = await bot.client.post("/api/messages", data=body, headers={"Content-Type": content_type})
    assert response.status == status
    assert bot.answerer.calls == []


@pytest.mark.parametrize(
    "broken",
    [
        {"type": ""},
        {"channelId": None},
        {"serviceUrl": "ftp://x"},
        {"serviceUrl": 42},
        {"conversation": {}},
        {"conversation": "c"},
        {"from": {"name": "no id"}},
        {"text": {"not": "text"}},
        {"entities": "nope"},
        {"entities": ["not an entity"]},
        {"channelData": []},
        {"id": "x" * 100_000},
        {"from": {"id": "u", "aadObjectId": {"not": "an id"}}},
        {"locale": ["en"]},
    ],
)
async def test_activities_missing_required_fields_get_400(make_bot: MakeBot, broken: dict[str, Any]) -> None:
    bot = await make_bot()
    response = await bot.post({**activity(bot.service_url, "hi"), **broken})
    assert response.status == 400
    assert "not a valid activity" in (await response.json())["error"]


async def test_body_just_under_the_limit_is_fine(make_bot: MakeBot) -> None:
    bot = await make_bot()
    inbound = activity(bot.service_url, "hi", channel="emulator", conversation_type=None)
    inbound["padding"] = "x" * (1024 * 1024 - len(json.dumps(inbound)) - 20)
    response = await bot.post(inbound)
    assert response.status == 200


async def test_unknown_invoke_is_a_client_error(make_bot: MakeBot) -> None:
    bot = await make_bot()
    response = await bot.post(activity(bot.service_url, kind="invoke", name="adaptiveCard/action"))
    assert response.status == 400


async def test_undeliverable_reply_is_502_and_history_unchanged(make_bot: MakeBot) -> None:
    bot = await make_bot(streaming=False)
    bot.connector.fail_status = 500
    response = await bot.post(activity(bot.service_url, "first"))
    assert response.status == 502
    bot.connector.fail_status = None
    await bot.ask(activity(bot.service_url, "second"))
    assert bot.answerer.calls[-1].history == []


async def test_health_probes(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(not_ready="index not built"))
    assert (await bot.client.get("/healthz")).status == 200
    response = await bot.client.get("/readyz")
    assert response.status == 503 and (await response.json())["reason"] == "index not built"
    bot.answerer.not_ready = None
    assert (await bot.client.get("/readyz")).status == 200


async def test_start_up_says_whether_the_backend_can_answer(
    make_bot: MakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="bot.app")
    await make_bot(FakeAnswerer(not_ready="index not built"))
    for _ in range(100):
        if "not ready" in caplog.text:
            break
        await asyncio.sleep(0.01)
    assert "answer backend fake is not ready: index not built" in caplog.text


# --- inbound auth ----------------------------------------------------------------------------


class OpenIdServer:
    """OpenID metadata + JWKS on loopback, in a thread: botbuilder fetches them with blocking `requests`."""

    def __init__(self, public_jwk: dict[str, Any]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body: dict[str, Any]
                if self.path == "/openid":
                    body = {"issuer": ISSUER, "jwks_uri": f"{outer.url}/keys"}
                else:
                    body = {"keys": [public_jwk]}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def signing() -> Iterator[tuple[Any, OpenIdServer]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="test-key", use="sig")
    server = OpenIdServer(jwk)
    yield key, server
    server.server.shutdown()


def auth_overrides(server: OpenIdServer) -> dict[str, str]:
    return {
        "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL": f"{server.url}/openid",
        "TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL": f"{server.url}/openid",
        "TO_BOT_FROM_CHANNEL_TOKEN_ISSUER": ISSUER,
        "TO_CHANNEL_FROM_BOT_OAUTH_SCOPE": "https://api.botframework.com",
        "TO_CHANNEL_FROM_BOT_LOGIN_URL": "https://login.microsoftonline.com/botframework.com",
    }


def token(key: Any, kid: str = "test-key", **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": APP_ID, "serviceurl": SERVICE_URL, "nbf": now - 10, "exp": now + 600}
    payload.update(claims)
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


async def test_with_an_app_id_only_a_valid_channel_token_gets_in(
    make_bot: MakeBot, signing: tuple[Any, OpenIdServer]
) -> None:
    key, server = signing
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bot = await make_bot(app_id=APP_ID, app_password="secret", auth_overrides=auth_overrides(server))
    inbound = activity(SERVICE_URL, "hi", deliveryMode="expectReplies")
    now = int(time.time())
    rejected = {
        "missing": None,
        "not bearer": "garbage",
        "undecodable": "Bearer abc.def.ghi",
        "hs256 foreign issuer": "Bearer "
        + jwt.encode({"iss": "https://evil.example"}, "k" * 32, algorithm="HS256"),
        "forged signature": "Bearer " + token(forger),
        "unknown key id": "Bearer " + token(forger, kid="other-key"),
        "wrong audience": "Bearer " + token(key, aud="someone-else"),
        "wrong serviceurl": "Bearer " + token(key, serviceurl="https://evil.example/"),
        "expired": "Bearer " + token(key, exp=now - 3600, nbf=now - 7200),
    }
    for case, header in rejected.items():
        headers = {"Authorization": header} if header else {}
        response = await bot.post(inbound, headers=headers)
        assert response.status == 401, case
    assert bot.answerer.calls == []

    response = await bot.post(inbound, headers={"Authorization": "Bearer " + token(key)})
    assert response.status == 200
    assert [a["type"] for a in (await response.json())["activities"]] == ["message"]


TENANT = "11111111-2222-3333-4444-555555555555"


async def test_a_single_tenant_bot_also_accepts_its_own_tenants_tokens(
    make_bot: MakeBot, signing: tuple[Any, OpenIdServer]
) -> None:
    """Entra v1/v2 issuers of the bot's tenant (what the Agents SDK accepts for single-tenant and
    managed-identity bots), keys from that tenant's metadata; `tid` must be the tenant."""
    key, server = signing
    overrides = {**auth_overrides(server), "TO_BOT_FROM_TENANT_OPENID_METADATA_URL": f"{server.url}/openid"}
    inbound = activity(SERVICE_URL, "hi", deliveryMode="expectReplies")
    v2, v1 = f"https://login.microsoftonline.com/{TENANT}/v2.0", f"https://sts.windows.net/{TENANT}/"
    single = await make_bot(
        app_id=APP_ID,
        app_password="s",
        app_type="SingleTenant",
        app_tenant_id=TENANT,
        auth_overrides=overrides,
    )
    for issuer in (v2, v1):
        header = {"Authorization": "Bearer " + token(key, iss=issuer, tid=TENANT)}
        assert (await single.post(inbound, headers=header)).status == 200, issuer
    other_tid = {"Authorization": "Bearer " + token(key, iss=v2, tid="99999999-2222-3333-4444-555555555555")}
    assert (await single.post(inbound, headers=other_tid)).status == 401
    other_aud = {"Authorization": "Bearer " + token(key, iss=v2, tid=TENANT, aud="someone-else")}
    assert (await single.post(inbound, headers=other_aud)).status == 401


async def test_a_multi_tenant_bot_refuses_tenant_issued_tokens(
    make_bot: MakeBot, signing: tuple[Any, OpenIdServer]
) -> None:
    key, server = signing
    overrides = {**auth_overrides(server), "TO_BOT_FROM_TENANT_OPENID_METADATA_URL": f"{server.url}/openid"}
    multi = await make_bot(app_id=APP_ID, app_password="s", app_tenant_id=TENANT, auth_overrides=overrides)
    header = {
        "Authorization": "Bearer "
        + token(key, iss=f"https://login.microsoftonline.com/{TENANT}/v2.0", tid=TENANT)
    }
    inbound = activity(SERVICE_URL, "hi", deliveryMode="expectReplies")
    assert (await multi.post(inbound, headers=header)).status == 401


async def test_with_an_app_id_plain_http_service_urls_are_refused(
    make_bot: MakeBot, signing: tuple[Any, OpenIdServer]
) -> None:
    key, server = signing
    bot = await make_bot(app_id=APP_ID, app_password="secret", auth_overrides=auth_overrides(server))
    inbound = activity("http://127.0.0.1:9/", "hi")
    header = {"Authorization": "Bearer " + token(key, serviceurl="http://127.0.0.1:9/")}
    assert (await bot.post(inbound, headers=header)).status == 400


async def test_without_an_app_id_auth_is_off_but_junk_tokens_are_still_401(make_bot: MakeBot) -> None:
    bot = await make_bot()
    assert (await bot.post(activity(bot.service_url, "hi"))).status == 200
    junk = await bot.post(activity(bot.service_url, "hi"), headers={"Authorization": "Bearer abc.def.ghi"})
    assert junk.status == 401


async def test_a_lone_surrogate_is_refused_not_stored(make_bot: MakeBot) -> None:
    bot = await make_bot()
    for broken in (
        activity(bot.service_url, "hi \ud800 there"),
        activity(bot.service_url, "hi", channelData={"note": "\udfff"}),
    ):
        body = json.dumps(broken, ensure_ascii=True).encode()
        response = await bot.client.post(
            "/api/messages", data=body, headers={"Content-Type": "application/json"}
        )
        assert response.status == 400
    assert "Unicode" in (await response.json())["error"]
    assert bot.answerer.calls == []
    emoji = json.dumps(activity(bot.service_url, "hi \U0001f600"), ensure_ascii=True).encode()
    response = await bot.client.post(
        "/api/messages", data=emoji, headers={"Content-Type": "application/json"}
    )
    assert response.status == 200, "a surrogate pair is a normal character"


async def test_free_form_fields_of_odd_shapes_are_no_crash(make_bot: MakeBot) -> None:
    bot = await make_bot()
    odd = activity(
        bot.service_url,
        "hi",
        conversation_type="groupChat",
        tenant=None,
        channelData={"tenant": "not an object"},
    )
    odd["entities"] = [
        {"type": "mention", "mentioned": True, "text": 42},
        {"type": "mention", "mentioned": {"id": None}},
    ]
    assert (await bot.post(odd)).status == 200
    assert bot.answerer.calls == [], "no valid mention of the bot: not addressed to it"


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop has no Windows build")
def test_the_server_runs_on_uvloop() -> None:
    loop = new_event_loop()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


async def test_the_served_process_tunes_its_collector() -> None:
    app = web.Application()
    before = gc.get_threshold()
    try:
        await tune_gc(app)
        assert gc.get_threshold() == GC_THRESHOLDS and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
