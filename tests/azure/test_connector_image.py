"""`ragbot image` end to end with the official images/generations examples (tests/conformance/actions):
URL answers downloaded from the loopback fake in place of blob storage, base64 answers decoded."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure_fake import CliRunner, FakeAzure, Reply

EXAMPLES = Path(__file__).resolve().parents[1] / "conformance" / "actions"
BLOB = "https://dalletipusw2.blob.core.windows.net"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))


def example(version: str) -> dict[str, Any]:
    data = json.loads((EXAMPLES / version / "image_generation.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def served_from(fake: FakeAzure, response: dict[str, Any]) -> dict[str, Any]:
    """The example's answer with its blob storage URLs pointing at the fake (no call leaves loopback)."""
    loaded = json.loads(json.dumps(response).replace(BLOB, fake.url))
    assert isinstance(loaded, dict)
    return loaded


def files_in(folder: Path) -> list[Path]:
    return list(folder.iterdir())


def env(url: str, version: str = "2024-10-21") -> dict[str, str]:
    return {
        "AZURE_OPENAI_ENDPOINT": url,
        "AZURE_OPENAI_KEY": "image-secret-key",
        "AZURE_OPENAI_PREVIEW_API_VERSION": version,
        "RAGBOT_RETRY_BUDGET": "0",
    }


async def test_official_example_url_answer_downloaded(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner, tmp_path: Path
) -> None:
    official = example("2024-10-21")
    make_settings(env(fake_endpoint.url))
    fake_endpoint.reply(
        Reply(body=served_from(fake_endpoint, official["responses"]["200"]["body"])),
        Reply(body=PNG, content_type="image/png"),
    )
    request = official["parameters"]["body"]
    code, out, err = await run_cli(
        "image", request["prompt"], "--model", "dall-e-3", "--n", "1", "--style", "natural",
        "--quality", "standard", "--out", str(tmp_path / "images"),
    )  # fmt: skip
    assert code == 0, err
    generate, download = fake_endpoint.requests
    assert generate.path == "/openai/deployments/dall-e-3/images/generations"
    assert generate.query == {"api-version": "2024-10-21"}
    assert generate.body == {**request, "size": "1024x1024"}
    assert download.method == "GET"
    assert download.path == "/private/images/e5451cc6-b1ad-4747-bd46-b89a3a3b8bc3/generated_00.png"
    assert "api-key" not in download.headers  # the key never goes to the storage host
    written = tmp_path / "images" / "image-1698342300-1.png"
    assert written.read_bytes() == PNG
    assert str(written) in out and "A vivid, natural representation of Microsoft Clippy" in out


async def test_two_urls_and_a_shared_revised_prompt_2023_12(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner, tmp_path: Path
) -> None:
    official = example("2023-12-01-preview")
    make_settings(env(fake_endpoint.url, "2023-12-01-preview"))
    fake_endpoint.reply(
        Reply(body=served_from(fake_endpoint, official["responses"]["200"]["body"])),
        Reply(body=PNG, content_type="image/png"),
        Reply(body=b"\xff\xd8\xff\xe0jpeg", content_type="image/jpeg"),
    )
    request = official["parameters"]["body"]
    code, out, err = await run_cli(
        "image", request["prompt"], "--model", "dall-e-3", "--style", "natural", "--quality", "standard",
        "--json", "--out", "pics",
    )  # fmt: skip
    assert code == 0, err
    assert fake_endpoint.requests[0].body == {**request, "size": "1024x1024"}  # n: 1, two images back
    saved = json.loads(out)
    assert [Path(item["path"]).name for item in saved] == ["image-1698342300-1.png", "image-1698342300-2.jpg"]
    assert {item["revised_prompt"] for item in saved} == {
        "A vivid, natural representation of Microsoft Clippy wearing a cowboy hat."
    }
    assert [item["source"] for item in saved] == ["url", "url"]


@pytest.mark.parametrize(("version", "calls"), [("2024-10-21", [1, 1, 1]), ("2025-04-01-preview", [3])])
async def test_n_images_one_call_each_where_the_schema_allows_one(
    fake_endpoint: FakeAzure,
    make_settings: Callable[..., Any],
    run_cli: CliRunner,
    tmp_path: Path,
    version: str,
    calls: list[int],
) -> None:
    make_settings(env(fake_endpoint.url, version))
    encoded = base64.b64encode(PNG).decode()
    fake_endpoint.respond = lambda body: Reply(
        body={"created": 9, "data": [{"b64_json": encoded}] * body["n"]}
    )
    code, out, err = await run_cli(
        "image", "icons", "--model", "img", "--n", "3", "--json", "--out", str(tmp_path)
    )
    assert code == 0, err
    assert [seen.body["n"] for seen in fake_endpoint.requests] == calls
    assert [Path(item["path"]).name for item in json.loads(out)] == [f"image-9-{n}.png" for n in (1, 2, 3)]


async def test_base64_answer_written_and_nothing_overwritten(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner, tmp_path: Path
) -> None:
    make_settings(env(fake_endpoint.url))
    answer = {"created": 7, "data": [{"b64_json": base64.b64encode(PNG).decode()}]}
    fake_endpoint.reply(Reply(body=answer), Reply(body=answer))
    for _ in range(2):
        code, _, err = await run_cli(
            "image", "a cat", "--model", "gpt-image-1", "--size", "1792x1024",
            "--response-format", "b64_json", "--out", str(tmp_path),
        )  # fmt: skip
        assert code == 0, err
    assert fake_endpoint.requests[0].body["response_format"] == "b64_json"
    assert fake_endpoint.requests[0].body["size"] == "1792x1024"
    assert (tmp_path / "image-7-1.png").read_bytes() == (tmp_path / "image-7-1-1.png").read_bytes() == PNG


async def test_download_over_the_byte_cap_writes_nothing(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner, tmp_path: Path
) -> None:
    make_settings(env(fake_endpoint.url))
    fake_endpoint.reply(
        Reply(body={"created": 1, "data": [{"url": fake_endpoint.url + "/big.png"}]}),
        Reply(body=PNG * 100, content_type="image/png"),
    )
    code, _, err = await run_cli(
        "image", "x", "--model", "dall-e-3", "--max-bytes", "1000", "--out", str(tmp_path)
    )
    assert code == 1 and "1,000-byte cap" in err
    assert not files_in(tmp_path)


@pytest.mark.parametrize(
    ("args", "version", "message"),
    [
        (["--n", "11"], "2024-10-21", "less than or equal to 10"),
        ([], "2023-06-01-preview", "images/generations is not in api-version 2023-06-01-preview"),
    ],
)
async def test_refused_before_any_call(
    fake_endpoint: FakeAzure,
    make_settings: Callable[..., Any],
    run_cli: CliRunner,
    tmp_path: Path,
    args: list[str],
    version: str,
    message: str,
) -> None:
    make_settings(env(fake_endpoint.url, version))
    code, _, err = await run_cli("image", "x", "--model", "dall-e-3", "--out", str(tmp_path), *args)
    assert code == 2 and message in err
    assert not fake_endpoint.requests


async def test_blocked_prompt_and_withheld_image_are_content_filtered(
    fake_endpoint: FakeAzure, make_settings: Callable[..., Any], run_cli: CliRunner, tmp_path: Path
) -> None:
    """The spec's dalleErrorResponse (inner_error ResponsibleAIPolicyViolation) for a blocked prompt, and
    a 200 whose image was filtered out (content_filter_results filtered, no url)."""
    make_settings(env(fake_endpoint.url))
    blocked = {
        "error": {
            "code": "contentFilter",
            "message": "Your task failed as a result of our safety system.",
            "inner_error": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_results": {"violence": {"filtered": True, "severity": "high"}},
            },
        }
    }
    withheld = {
        "created": 1,
        "data": [{"content_filter_results": {"sexual": {"filtered": True, "severity": "medium"}}}],
    }
    fake_endpoint.reply(Reply(status=400, body=blocked), Reply(body=withheld))
    code, _, err = await run_cli("image", "x", "--model", "dall-e-3", "--out", str(tmp_path))
    assert code == 1 and "ContentFiltered" in err and "prompt" in err and "violence (high)" in err
    code, _, err = await run_cli("image", "y", "--model", "dall-e-3", "--out", str(tmp_path))
    assert code == 1 and "ContentFiltered" in err and "completion" in err and "sexual (medium)" in err
    assert len(fake_endpoint.requests) == 2 and not files_in(tmp_path)
