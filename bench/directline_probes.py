"""The local Direct Line probes of issue #13 (items 3, 4, 5), against a real `ragbot serve` process.

Run by hand: `.venv/bin/python -m bench.directline_probes` (`--quick`: a smaller memory probe), or as the
`directline` piece of `python -m bench`.

- memory: RSS of the server before and after 20 conversations each receive 480 user events of 32 kB
  (posted as fast as the server takes them), and its peak (VmHWM); what one conversation keeps. Then
  200 conversations x 50 events, which is over the total budget rather than each conversation's.
- injection: a bot-role activity posted to the bot-side connector route of a live conversation
  (`/v3/conversations/{id}/activities`, no credential): the status, and whether it shows in the chat.
- flood: one client (127.0.0.1) opens 1,000 conversations as fast as it can while another client
  (127.0.0.2) holds one; how many starts were refused (429), and whether the other client's
  conversation still answers.

The server runs the On Your Data backend against an address that does not resolve: the probes need no
answers, only the Direct Line (the victim asks `help`, which the bot answers without a backend).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.loopback import Server, ragbot_serve
from bench.rows import Row, render

BENCH = "directline"
DL = "/v3/directline"
EVENT_BYTES = 32 * 1024
OTHER_CLIENT = "127.0.0.2"
"""Linux routes all of 127.0.0.0/8 to the loopback interface: a second client address on one machine."""
INJECTING_CLIENT = "127.0.0.3"
REPLY_TIMEOUT_S = 20.0


class Client:
    """A Web Chat-like client of the local Direct Line (tokens, conversation, polling)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.token = ""
        self.conversation = ""

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def start(self) -> int:
        """Token and conversation start; returns the first status that was not a success."""
        async with self.session.post(f"{self.base}/api/directline/token") as response:
            if response.status != 200:
                return response.status
            minted = await response.json()
        self.token, self.conversation = minted["token"], minted["conversationId"]
        async with self.session.post(f"{self.base}{DL}/conversations", headers=self.auth()) as response:
            if response.status != 201:
                return response.status
            self.token = (await response.json())["token"]
        return 201

    async def post(self, activity: dict[str, Any]) -> int:
        url = f"{self.base}{DL}/conversations/{self.conversation}/activities"
        async with self.session.post(url, headers=self.auth(), json=activity) as response:
            await response.read()
            return response.status

    async def activities(self) -> tuple[int, list[dict[str, Any]]]:
        url = f"{self.base}{DL}/conversations/{self.conversation}/activities"
        async with self.session.get(url, headers=self.auth()) as response:
            if response.status != 200:
                return response.status, []
            return 200, list((await response.json())["activities"])


def event(index: int) -> dict[str, Any]:
    """A user event of just under 32 kB, the most the Direct Line takes in one activity."""
    return {"type": "event", "name": "probe", "value": f"{index:06d}" + "x" * (EVENT_BYTES - 400)}


async def fill(client: Client, events: int) -> None:
    """Post `events` events one after the other; a 429 (deliveries queued) waits and tries again."""
    index = 0
    while index < events:
        status = await client.post(event(index))
        if status == 429:
            await asyncio.sleep(0.05)
            continue
        if status != 200:
            raise RuntimeError(f"an event was refused with HTTP {status}")
        index += 1


async def memory_probe(server: Server, conversations: int, events: int) -> list[Row]:
    _, before = server.memory_mb()
    async with aiohttp.ClientSession() as session:
        clients = [Client(session, server.url) for _ in range(conversations)]
        for client in clients:
            if await client.start() != 201:
                raise RuntimeError("a conversation could not start")
        started = time.perf_counter()
        await asyncio.gather(*(fill(client, events) for client in clients))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1.0)  # deliveries of the last events finish
        peak, after = server.memory_mb()
        _, kept = await clients[0].activities()
    kept_kb = len(json.dumps(kept)) / 1024
    posted_mb = conversations * events * EVENT_BYTES / 1024**2
    return [
        Row(
            bench=BENCH,
            figure=f"RSS after {conversations} conv. x {events} x 32 kB events",
            value=after,
            unit="MB",
            baseline="RSS before",
            baseline_value=before,
            higher_is_better=False,
            note=f"peak {peak:.0f} MB; {posted_mb:.0f} MB posted in {elapsed:.0f} s; "
            f"one conversation keeps {len(kept)} activities, {kept_kb:,.0f} kB",
        )
    ]


async def injection_probe(server: Server) -> list[Row]:
    connector = aiohttp.TCPConnector(local_addr=(INJECTING_CLIENT, 0))  # not the flood's client
    async with aiohttp.ClientSession(connector=connector) as session:
        client = Client(session, server.url)
        await client.start()
        forged = {
            "type": "message",
            "from": {"id": "ragbot", "role": "bot"},
            "text": "PAY HERE " + "x" * 1000,
        }
        url = f"{server.url}/v3/conversations/{client.conversation}/activities"
        async with session.post(url, json=forged) as response:
            status = response.status
        await asyncio.sleep(0.2)
        _, seen = await client.activities()
    shown = any("PAY HERE" in str(a.get("text")) for a in seen)
    return [
        Row(
            bench=BENCH,
            figure="unauthenticated bot-role post into a live conversation",
            value=status,
            unit="HTTP",
            note="shown in the chat" if shown else "not in the chat",
        )
    ]


async def reply_to_help(client: Client) -> bool:
    """The victim asks `help`; True when the bot's answer arrives."""
    if await client.post({"type": "message", "text": "help"}) != 200:
        return False
    try:
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            while True:
                status, seen = await client.activities()
                if status != 200:
                    return False
                if any(a.get("from", {}).get("role") == "bot" and a.get("type") == "message" for a in seen):
                    return True
                await asyncio.sleep(0.1)
    except TimeoutError:
        return False


async def flood_probe(server: Server, starts: int) -> list[Row]:
    victim_connector = aiohttp.TCPConnector(local_addr=(OTHER_CLIENT, 0))
    async with (
        aiohttp.ClientSession(connector=victim_connector) as victim_session,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as flood_session,
    ):
        victim = Client(victim_session, server.url)
        if await victim.start() != 201:
            raise RuntimeError("the victim's conversation could not start")
        began = time.perf_counter()
        statuses = await asyncio.gather(*(Client(flood_session, server.url).start() for _ in range(starts)))
        elapsed = time.perf_counter() - began
        answered = await reply_to_help(victim)
    refused = statuses.count(429)
    opened = statuses.count(201)
    return [
        Row(
            bench=BENCH,
            figure=f"{starts:,} conversation starts from one client",
            value=opened,
            unit="opened",
            note=f"{refused} refused with 429 in {elapsed:.1f} s; the other client's conversation "
            + ("still answers" if answered else "is gone (no reply)"),
        )
    ]


async def measure(quick: bool) -> list[Row]:
    env = {
        "RAGBOT_BACKEND": "on_your_data",
        "RAGBOT_STORAGE": "memory",
        "AZURE_OPENAI_ENDPOINT": "https://openai.invalid",
        "AZURE_OPENAI_KEY": "bench-key",
        "AZURE_OPENAI_MODEL": "gpt",
        "AZURE_SEARCH_ENDPOINT": "https://search.invalid",
        "AZURE_SEARCH_INDEX": "kb",
        "AZURE_SEARCH_KEY": "bench-search-key",
    }
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        env["RAGBOT_DATA_DIR"] = tmp
        for conversations, events in ((20, 120),) if quick else ((20, 480), (200, 50)):
            # One client opens every conversation here: the start limits (the flood probe) are lifted.
            lifted = {
                "RAGBOT_DIRECTLINE_STARTS_PER_MINUTE": "100000",
                "RAGBOT_DIRECTLINE_CONVERSATIONS_PER_CLIENT": "1000",
            }
            async with ragbot_serve({**env, **lifted}, Path(tmp) / "memory.log") as server:
                rows += await memory_probe(server, conversations, events)
        async with ragbot_serve(env, Path(tmp) / "probes.log") as server:
            rows += await injection_probe(server)
            rows += await flood_probe(server, 1000)
    return rows


def rows(quick: bool = False) -> list[Row]:
    """The `directline` piece of `python -m bench`."""
    return asyncio.run(measure(quick))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4x fewer events per conversation")
    print(render(rows(parser.parse_args().quick)))


if __name__ == "__main__":
    main()
