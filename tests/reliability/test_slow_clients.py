"""Slow and greedy clients do not starve the others, against a real `ragbot serve` (issue #13 item 6).

One client (127.0.0.1) opens sockets that send half their headers, and sockets that send their headers
and half a body, up to its connection cap, then more; another client (127.0.0.2: all of 127.0.0.0/8 is
loopback) keeps asking meanwhile. The half-sent requests are closed after their deadlines, the sockets
over the cap at once, the other client is answered throughout, and a client that goes away mid-upload
is one INFO line: the log has no ERROR and no traceback.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from bot.http_limits import client_of
from tests.bot.fakes import activity
from tests.reliability.processes import logged, start_serve

pytestmark = pytest.mark.reliability

HEADER_S = 3.0
BODY_S = 4.0
CAP = 8
OTHER_CLIENT = "127.0.0.2"
BODY = b'{"type": "message", "text": "' + b"x" * 2000 + b'"}'
HALF_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: ragbot\r\nAccept: */*\r\n"
HALF_BODY = (
    b"POST /api/messages HTTP/1.1\r\nHost: ragbot\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
    + BODY[: len(BODY) // 2]
)


@dataclass
class Served:
    url: URL
    log: Path


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "RAGBOT_", "Microsoft"))},
        "RAGBOT_DATA_DIR": str(tmp_path),
        "RAGBOT_HEADER_TIMEOUT": str(HEADER_S),
        "RAGBOT_BODY_TIMEOUT": str(BODY_S),
        "RAGBOT_MAX_CONNECTIONS_PER_CLIENT": str(CAP),
    }
    process, url = await start_serve(env, tmp_path / "serve.log")
    try:
        yield Served(URL(url), tmp_path / "serve.log")
    finally:
        process.terminate()
        assert await process.wait() == 0  # SIGTERM: a clean stop


async def open_socket(url: URL, sent: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(sent)
    await writer.drain()
    return reader, writer


async def until_closed(reader: asyncio.StreamReader, within: float = 30) -> bytes:
    """Everything the server sent before closing (a reset counts as closed); fails if it stays open."""
    received = b""
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(4096):
                received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {within} s")
    return received


async def test_slow_and_greedy_sockets_are_closed_and_the_others_answered(served: Served) -> None:
    started = time.monotonic()
    half_headers = [await open_socket(served.url, HALF_HEADERS) for _ in range(CAP // 2)]
    half_bodies = [await open_socket(served.url, HALF_BODY) for _ in range(CAP // 2)]
    over_cap = [await open_socket(served.url, HALF_HEADERS) for _ in range(4)]
    # over the cap: closed at once, while the first ones are still held open
    assert [await until_closed(reader) for reader, _ in over_cap] == [b""] * 4
    assert not any(reader.at_eof() for reader, _ in half_headers + half_bodies)

    answered: list[int] = []

    async def other_client() -> None:
        """Probes and turns with bodies from another address until the slow sockets are gone."""
        connector = aiohttp.TCPConnector(local_addr=(OTHER_CLIENT, 0))
        async with aiohttp.ClientSession(served.url, connector=connector) as session:
            while True:
                async with session.get("/healthz") as response:
                    answered.append(response.status)
                turn = activity(
                    "http://127.0.0.1:9/", "hello", channel="emulator", deliveryMode="expectReplies"
                )
                async with session.post("/api/messages", json=turn) as response:
                    answered.append(response.status)
                await asyncio.sleep(0.2)

    asker = asyncio.create_task(other_client())
    try:
        closed_headers = [await until_closed(reader) for reader, _ in half_headers]
        headers_s = time.monotonic() - started
        closed_bodies = [await until_closed(reader) for reader, _ in half_bodies]
        bodies_s = time.monotonic() - started
    finally:
        asker.cancel()
        for _, writer in half_headers + half_bodies + over_cap:
            writer.close()

    assert closed_headers == [b""] * len(half_headers)  # nothing to answer: the request never came
    assert HEADER_S <= headers_s < HEADER_S + 20
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in closed_bodies)
    assert BODY_S <= bodies_s < BODY_S + 20
    assert len(answered) >= 4 and set(answered) == {200}, answered  # the other client was answered

    # the first client's slots are free again; it abandons an upload half way
    async with aiohttp.ClientSession(served.url) as session, session.get("/healthz") as response:
        assert response.status == 200
    _, abandoned = await open_socket(served.url, HALF_BODY)
    abandoned.close()
    await logged(served.log, "went away during POST /api/messages")
    log = served.log.read_text(errors="replace")
    assert "no complete request headers within" in log and "answered 408" in log
    assert f"client 127.0.0.1 holds {CAP} connections" in log
    assert " ERROR " not in log and "Traceback" not in log, log


async def test_a_request_aiohttp_cannot_parse_is_answered_hardened(served: Served) -> None:
    reader, writer = await open_socket(served.url, b"BREW /pot HTCPCP/1.0\r\n\r\n")
    answer = (await until_closed(reader)).decode()
    writer.close()
    assert answer.startswith("HTTP/1.")
    assert "\r\nServer: ragbot\r\n" in answer and "\r\nX-Content-Type-Options: nosniff\r\n" in answer
    assert "aiohttp/" not in answer


@pytest.mark.parametrize(
    ("peer", "client"),
    [
        (("198.51.100.7", 50000), "198.51.100.7"),
        (("::ffff:198.51.100.7", 50000, 0, 0), "198.51.100.7"),
        (("2001:db8:1:2:aaaa::1", 50000, 0, 0), "2001:db8:1:2::/64"),
        (("fe80::1%eth0", 50000, 0, 2), "fe80::/64"),
        ("", "local"),
    ],
)
def test_a_client_is_an_ipv4_address_or_an_ipv6_64(peer: object, client: str) -> None:
    assert client_of(peer) == client
