"""`RAGBOT_BOT_HOST=agents ragbot serve`, a real process answering from a real local index: a Teams
channel-thread turn in its thread with the citation entity, AI label and feedback loop; a personal
chat as a stream; a Web Chat turn through the local Direct Line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.bot.fakes import FakeConnector, activity
from tests.reliability.local_index import QUESTION, corpus, environment, index
from tests.reliability.processes import start_serve
from tests.reliability.test_security import web_chat_turn

pytestmark = pytest.mark.reliability

MESSAGE_ENTITY = "https://schema.org/Message"
THREAD = "19:general@thread.tacv2;messageid=1700000000001"


async def test_the_agents_host_serves_teams_threads_streams_and_web_chat(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    data_dir = tmp_path / "data"
    built = index(data_dir, str(corpus(tmp_path / "kb")), "--target", "local")
    assert built.returncode == 0, built.stderr
    connector = FakeConnector()
    service_url = str((await aiohttp_server(connector.app)).make_url("")).rstrip("/") + "/"
    env = environment(data_dir, RAGBOT_BOT_HOST="agents", RAGBOT_STREAMING="true")
    process, url = await start_serve(env, tmp_path / "serve.log")
    try:
        async with aiohttp.ClientSession() as session:
            thread_turn = activity(
                service_url, QUESTION, conversation_id=THREAD, conversation_type="channel", mention=True
            )
            async with session.post(f"{url}/api/messages", json=thread_turn) as response:
                assert response.status == 200, await response.text()
            personal = activity(service_url, QUESTION, conversation_id="a:personal-agents")
            async with session.post(f"{url}/api/messages", json=personal) as response:
                assert response.status == 200, await response.text()
            await web_chat_turn(session, url, QUESTION)
    finally:
        process.kill()
        await process.wait()

    (reply,) = connector.messages(THREAD)
    assert reply.reply_to_id == thread_turn["id"] and reply.activity["conversation"]["id"] == THREAD
    (root,) = [e for e in reply.activity["entities"] if e.get("type") == MESSAGE_ENTITY]
    assert root["additionalType"] == ["AIGeneratedContent"] and root["citation"]
    assert reply.activity["channelData"]["feedbackLoop"] == {"type": "default"}
    assert reply.stream is None, "no streaming in channels"

    sent = connector.in_conversation("a:personal-agents")
    assert sent[0].type == "typing" and sent[0].stream is not None
    assert sent[-1].type == "message" and sent[-1].stream and sent[-1].stream["streamType"] == "final"
    assert "[1]" in sent[-1].text
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-2000:]
