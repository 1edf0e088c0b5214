"""The chat page, its assets and the token endpoint in local and Azure mode (Azure's Direct Line is a
loopback server here that checks the secret the way the real one does)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

import bot.web
from bot.settings import BotSettings
from bot.web import WEBCHAT_JS

from .conftest import MakeClient

SECRET = "dl-secret-0123456789abcdef"


class FakeAzureDirectLine:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[dict[str, Any]] = []

    async def generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"authorization": request.headers.get("Authorization"), "body": body})
        if request.headers.get("Authorization") != f"Bearer {SECRET}" or self.status != 200:
            return web.json_response({"error": {"code": "BadArgument"}}, status=self.status or 403)
        return web.json_response({"conversationId": "az-conv-1", "token": "az-token", "expires_in": 3600})


@pytest.fixture
async def azure(aiohttp_server: Any) -> tuple[FakeAzureDirectLine, TestServer]:
    fake = FakeAzureDirectLine()
    app = web.Application()
    app.router.add_post("/v3/directline/tokens/generate", fake.generate)
    server: TestServer = await aiohttp_server(app)
    return fake, server


async def test_page_is_served_with_title_and_local_assets_only(make_client: MakeClient) -> None:
    assert WEBCHAT_JS.is_file(), "run `make webchat` first"
    client = await make_client(app_name="Fabrikam <IT> Desk")
    response = await client.get("/")
    assert response.status == 200
    page = await response.text()
    assert "<title>Fabrikam &lt;IT&gt; Desk</title>" in page  # escaped
    assert "/static/vendor/webchat.js" in page
    assert "http://" not in page and "https://" not in page
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self';" in csp
    for asset in ("/static/app.js", "/static/app.css", "/static/favicon.svg", "/static/vendor/webchat.js"):
        assert (await client.get(asset)).status == 200, asset
    script = await (await client.get("/static/app.js")).text()
    assert "webchat/join" in script and "DIRECT_LINE/CONNECT_FULFILLED" in script


async def test_missing_bundle_is_named_not_a_blank_page(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bot.web, "WEBCHAT_JS", tmp_path / "webchat.js")
    client = await make_client()
    response = await client.get("/")
    assert response.status == 503
    assert "make webchat" in await response.text()


async def test_local_token_has_no_domain_and_works_on_the_local_direct_line(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.post("/api/directline/token")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert "domain" not in body
    assert body["userId"].startswith("dl_")
    started = await client.post(
        "/v3/directline/conversations", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert started.status == 201
    assert (await started.json())["conversationId"] == body["conversationId"]


async def test_azure_mode_exchanges_the_secret_server_side(
    make_client: MakeClient, azure: tuple[FakeAzureDirectLine, TestServer]
) -> None:
    fake, server = azure
    endpoint = str(server.make_url("/v3/directline"))
    client = await make_client(direct_line_secret=SECRET, direct_line_endpoint=endpoint)
    response = await client.post("/api/directline/token")
    assert response.status == 200
    text = await response.text()
    assert SECRET not in text
    body = await response.json()
    assert body["token"] == "az-token"
    assert body["domain"] == endpoint
    sent = fake.requests[0]
    assert sent["authorization"] == f"Bearer {SECRET}"
    assert sent["body"]["user"]["id"] == body["userId"]  # the token carries a user id: welcome arrives
    assert body["userId"].startswith("dl_")
    # No local Direct Line in Azure mode, and the page may talk to Azure's.
    assert (await client.post("/v3/directline/tokens/generate")).status == 404
    page = await client.get("/")
    assert SECRET not in await page.text()
    origin = server.make_url("/").origin()
    stream = origin.with_scheme("ws")
    assert f"connect-src 'self' {origin} {stream};" in page.headers["Content-Security-Policy"]


async def test_azure_refusal_is_a_clear_502(
    make_client: MakeClient, azure: tuple[FakeAzureDirectLine, TestServer]
) -> None:
    fake, server = azure
    fake.status = 403
    client = await make_client(
        direct_line_secret=SECRET, direct_line_endpoint=str(server.make_url("/v3/directline"))
    )
    response = await client.post("/api/directline/token")
    assert response.status == 502
    error = (await response.json())["error"]
    assert error["code"] == "DirectLineUnavailable"
    assert "HTTP 403" in error["message"] and SECRET not in error["message"]


async def test_azure_unreachable_is_a_clear_502(make_client: MakeClient, unused_tcp_port: int) -> None:
    client = await make_client(
        direct_line_secret=SECRET, direct_line_endpoint=f"http://127.0.0.1:{unused_tcp_port}/v3/directline"
    )
    response = await client.post("/api/directline/token")
    assert response.status == 502
    assert "failed" in (await response.json())["error"]["message"]


def test_direct_line_endpoint_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIRECT_LINE_ENDPOINT", "https://europe.directline.botframework.com/v3/directline")
    assert BotSettings(_env_file=None).direct_line_endpoint.startswith("https://europe.")
    monkeypatch.setenv("DIRECT_LINE_ENDPOINT", "europe directline")
    with pytest.raises(ValidationError, match="DIRECT_LINE_ENDPOINT"):
        BotSettings(_env_file=None)
