"""The server the crash and replica tests kill: the real bot app with an instant scripted answerer, so
every turn's cost is the bot's own (parsing, storage, the reply post). Memory is the SQLite file under
`--data-dir` unless `RAGBOT_STORAGE` (and that store's settings) in the environment say otherwise.

Run as `python -m tests.reliability.crash_server --data-dir D --port P` from the repository root.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aiohttp import web

from bot.app import create_app
from bot.settings import BotSettings
from tests.bot.fakes import FakeAnswerer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = BotSettings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=args.data_dir,
        streaming=False,
        history_tokens=100_000,
        user_turns_per_minute=10_000,
    )
    web.run_app(create_app(settings, FakeAnswerer()), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
