"""Secrets inside URLs (a password in the userinfo, a SAS `sig=`, an OAuth `code=`) never print:
not in `ragbot config`, text or JSON, not in a configuration error, not in a log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragbot.logs import LogSettings, setup_logging
from tests.commandline import run_ragbot

pytestmark = pytest.mark.reliability

PASSWORD = "hunter2-Pa55word"
SIGNATURE = "sv2024SIGabcdef0123%3D"
CODE = "oauth-code-77Zq"
ENDPOINT = f"https://ops:{PASSWORD}@aoai.example.com/openai?sv=2024-11-04&sig={SIGNATURE}"
COSMOS = f"https://state.documents.azure.com/?code={CODE}&api-key=cosmos-key-9911"
HIDDEN = (PASSWORD, SIGNATURE, CODE, "cosmos-key-9911")


@pytest.mark.parametrize("output", ["text", "json"])
def test_config_masks_url_passwords_and_secret_parameters(tmp_path: Path, output: str) -> None:
    env = {"AZURE_OPENAI_ENDPOINT": ENDPOINT, "RAGBOT_COSMOS_ENDPOINT": COSMOS}
    result = run_ragbot("config", *(["--json"] if output == "json" else []), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for secret in HIDDEN:
        assert secret not in result.stdout
    # the rest of the URL still says where the service is
    assert "https://ops:***@aoai.example.com/openai?sv=2024-11-04&sig=***" in result.stdout
    if output == "json":
        assert json.loads(result.stdout)["bot"]["RAGBOT_COSMOS_ENDPOINT"] == (
            "https://state.documents.azure.com/?code=***&api-key=***"
        )


def test_a_configuration_error_quoting_a_url_masks_its_password(tmp_path: Path) -> None:
    env = {"DIRECT_LINE_ENDPOINT": f"https://bot:{PASSWORD}@directline.example.com/v3 directline"}
    result = run_ragbot("config", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "DIRECT_LINE_ENDPOINT='https://bot:***@directline.example.com/v3 directline'" in result.stderr
    assert PASSWORD not in result.stderr


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    yield buffer
    logging.getLogger().handlers.clear()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_lines_mask_url_secrets(captured: io.StringIO, log_format: str) -> None:
    setup_logging(LogSettings(format=log_format), stream=captured)
    log = logging.getLogger("ragbot.test")
    log.info("calling %s", ENDPOINT)
    log.warning("state store at %s is slow", COSMOS, extra={"url": ENDPOINT})
    log.info("redis at redis://:%s@cache.example.com:6380/0", PASSWORD)
    try:
        raise ConnectionError(f"cannot reach {ENDPOINT}")
    except ConnectionError:
        log.exception("upload failed")
    text = captured.getvalue()
    for secret in HIDDEN:
        assert secret not in text
    assert "aoai.example.com/openai?sv=2024-11-04&sig=***" in text
    assert "redis://:***@cache.example.com:6380/0" in text
    # a port or an e-mail address is no password
    log.info("listening on http://127.0.0.1:3978/ for ops@example.com")
    assert "http://127.0.0.1:3978/ for ops@example.com" in captured.getvalue()
