"""The local Direct Line 3.0 subset: what Web Chat calls under `/v3/directline`.

User activities go to the bot in-process: after the checks `/api/messages` applies, each one is handed
to the turn handler with an outbox that writes the replies straight into the conversation. There is no
connector route for replies, so nothing outside this process can post as the bot. Deliveries run one
at a time per conversation, in the background: the browser's POST returns as soon as the echo is stored,
so a long streamed answer never leaves the user's message "sending".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from bot.activity import BadActivity, check_activity
from bot.directline.clients import StartLimits, client_of
from bot.directline.errors import MAX_USER_ACTIVITY_BYTES, error
from bot.directline.outbox import ConversationOutbox
from bot.directline.store import Activity, Conversation, ConversationStore, StoreFull, Subscriber
from bot.directline.tokens import TOKEN_LIFETIME_S, TokenClaims, TokenError, TokenIssuer
from bot.identity.principal import Principal
from bot.outbox import Outbox
from bot.settings import BotSettings
from bot.turns import InvokeReply

log = logging.getLogger(__name__)

PREFIX = "/v3/directline"
CHANNEL_ID = "directline"
MAX_PENDING_DELIVERIES = 10
CLEANUP_INTERVAL_S = 60.0
BOT_TURN_TIMEOUT_S = 300.0
USER_ACTIVITY_TYPES = ("message", "event", "invoke")
"""What a client may send (besides typing); membership changes are the Direct Line's own."""


class Bot(Protocol):
    """What the Direct Line delivers to: the app's turn handler."""

    async def handle(
        self, activity: Activity, outbox: Outbox, *, principal: Principal | None = None
    ) -> InvokeReply | None: ...


class User(BaseModel):
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-:.@]{1,64}$")
    name: str | None = Field(default=None, max_length=100)


class TokenRequest(BaseModel):
    user: User | None = None


def bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise error(401, "MissingToken", "Authorization: Bearer <token> is required")
    return token.strip()


def parse_watermark(request: web.Request) -> int | None:
    raw = request.query.get("watermark", "")
    if raw in ("", "null", "undefined"):
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise error(400, "BadArgument", f"watermark must be a non-negative integer, got {raw[:20]!r}")
    return int(raw)


def service_url(request: web.Request) -> str:
    """The socket address the request arrived on. Activities must name a `serviceUrl`; replies never
    go there (they stay in-process), so it only tells the bot where the conversation lives."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not isinstance(sockname, tuple):
        return "http://localhost/"
    host, port = sockname[0], sockname[1]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class LocalDirectLine:
    """One per app: the conversations, the token issuer and the bot the activities go to."""

    def __init__(self, settings: BotSettings, turns: Bot, limits: StartLimits | None = None) -> None:
        self.limits = limits or StartLimits(settings.directline_starts_per_minute)
        self.store = ConversationStore(
            max_per_client=settings.directline_conversations_per_client,
            conversation_bytes=settings.directline_conversation_bytes,
            total_bytes=settings.directline_total_bytes,
        )
        self.tokens = TokenIssuer()
        self.turns = turns
        self.bot = {"id": settings.app_id or "ragbot", "name": settings.app_name, "role": "bot"}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle -------------------------------------------------------------------------------

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: the idle-expiry task up, then it and every delivery down."""
        cleaner = asyncio.create_task(self._expire_forever())
        yield
        cleaner.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(cleaner, *self._tasks, return_exceptions=True)

    async def on_shutdown(self, app: web.Application) -> None:
        """Close every stream so open WebSockets do not hold the shutdown."""
        self.store.close()

    async def _expire_forever(self) -> None:
        while True:
            await asyncio.sleep(CLEANUP_INTERVAL_S)
            if gone := self.store.expire():
                log.info("direct line: %d idle conversation(s) expired", gone)

    def add_routes(self, app: web.Application) -> None:
        app.cleanup_ctx.append(self.lifecycle)
        app.on_shutdown.append(self.on_shutdown)
        r = app.router
        r.add_post(f"{PREFIX}/tokens/generate", self.generate_token)
        r.add_post(f"{PREFIX}/tokens/refresh", self.refresh_token)
        r.add_post(f"{PREFIX}/conversations", self.start_conversation)
        r.add_get(f"{PREFIX}/conversations/{{cid}}", self.reconnect)
        r.add_post(f"{PREFIX}/conversations/{{cid}}/activities", self.post_user_activity)
        r.add_get(f"{PREFIX}/conversations/{{cid}}/activities", self.get_activities)
        r.add_get(f"{PREFIX}/conversations/{{cid}}/stream", self.stream)

    # --- tokens --------------------------------------------------------------------------------------

    def new_token(
        self, client: str, user: User | None = None, who: Principal | None = None
    ) -> dict[str, Any]:
        """A fresh conversation id and a token bound to it, to a user (`dl_...` when none is given), to
        the client that asked and to the signed-in Entra user `who` (the bot's token endpoint only)."""
        conversation_id = secrets.token_urlsafe(18)
        user_id = (user.id if user else None) or f"dl_{secrets.token_urlsafe(12)}"
        user_name = user.name if user else None
        return {
            "conversationId": conversation_id,
            "userId": user_id,
            "token": self.tokens.issue(conversation_id, user_id, user_name, client=client, who=who),
            "expires_in": TOKEN_LIFETIME_S,
        }

    async def generate_token(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = TokenRequest.model_validate_json(raw) if raw.strip() else TokenRequest()
        except ValidationError as exc:
            raise error(400, "BadArgument", f"invalid token request: {exc.errors()[0]['msg']}") from exc
        client = client_of(request)
        self.limits.check("token", client)
        return web.json_response(self.new_token(client, body.user))

    def claims(self, request: web.Request, conversation_id: str | None = None) -> TokenClaims:
        try:
            claims = self.tokens.verify(bearer(request))
        except TokenError as exc:
            raise error(403, "TokenInvalid", str(exc)) from exc
        if conversation_id is not None and claims.conversation_id != conversation_id:
            raise error(403, "TokenInvalid", "token is for another conversation")
        return claims

    async def refresh_token(self, request: web.Request) -> web.Response:
        claims = self.claims(request)
        self.store.get(claims.conversation_id)  # refreshing counts as activity
        token = self.tokens.issue(
            claims.conversation_id,
            claims.user_id,
            claims.user_name,
            client=claims.client,
            who=claims.principal,
        )
        return web.json_response(
            {"conversationId": claims.conversation_id, "token": token, "expires_in": TOKEN_LIFETIME_S}
        )

    # --- conversations -------------------------------------------------------------------------------

    def conversation(self, claims: TokenClaims) -> Conversation:
        conversation = self.store.get(claims.conversation_id)
        if conversation is None:
            raise error(404, "BadArgument", "conversation not found or expired")
        return conversation

    def conversation_body(self, request: web.Request, claims: TokenClaims) -> dict[str, Any]:
        stream_token = self.tokens.issue(claims.conversation_id, claims.user_id, scope="stream")
        query = {"t": stream_token}
        if "watermark" in request.query:
            query["watermark"] = str(parse_watermark(request) or 0)
        scheme = "wss" if request.secure or request.headers.get("X-Forwarded-Proto") == "https" else "ws"
        stream_url = (
            request.url.with_scheme(scheme)
            .with_path(f"{PREFIX}/conversations/{claims.conversation_id}/stream")
            .with_query(query)
        )
        return {
            "conversationId": claims.conversation_id,
            "token": self.tokens.issue(
                claims.conversation_id,
                claims.user_id,
                claims.user_name,
                client=claims.client,
                who=claims.principal,
            ),
            "expires_in": TOKEN_LIFETIME_S,
            "streamUrl": str(stream_url),
        }

    async def start_conversation(self, request: web.Request) -> web.Response:
        """Start the token's conversation (201), or describe it again if it already runs (200).

        A start counts against the client that asked for the token and the one starting (per minute);
        the conversation is the token client's."""
        claims = self.claims(request)
        if self.store.get(claims.conversation_id) is not None:
            return web.json_response(self.conversation_body(request, claims))
        client = claims.client or client_of(request)
        self.limits.check("start", client, client_of(request))
        try:
            conversation = self.store.create(claims.conversation_id, claims.user_id, claims.user_name, client)
        except StoreFull as exc:
            log.warning("direct line: no room for a new conversation (%s); refusing with 503", exc)
            raise error(
                503, "ServiceUnavailable", "the chat is full; try again in a minute", retry_after=60
            ) from exc
        user = {"id": claims.user_id, "name": claims.user_name, "role": "user"}
        joined: Activity = {
            "type": "conversationUpdate",
            "membersAdded": [dict(self.bot), dict(user)],
            "from": user,
        }
        self.accept(conversation, self.stamp(request, conversation, joined), claims.principal)
        return web.json_response(self.conversation_body(request, claims), status=201)

    async def reconnect(self, request: web.Request) -> web.Response:
        claims = self.claims(request, request.match_info["cid"])
        self.conversation(claims)
        return web.json_response(self.conversation_body(request, claims))

    # --- the client's activities ---------------------------------------------------------------------

    async def post_user_activity(self, request: web.Request) -> web.Response:
        claims = self.claims(request, request.match_info["cid"])
        conversation = self.conversation(claims)
        raw = await request.read()  # bounded by the app's client_max_size
        if len(raw) > MAX_USER_ACTIVITY_BYTES:
            raise error(413, "MessageSizeTooBig", f"activity larger than {MAX_USER_ACTIVITY_BYTES} bytes")
        try:
            activity = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise error(400, "BadArgument", "body is not valid JSON") from exc
        if not isinstance(activity, dict) or not isinstance(activity.get("type"), str):
            raise error(400, "BadArgument", "an activity is a JSON object with a string 'type'")
        if activity["type"] == "typing":  # not stored, not sent to the bot
            return web.json_response({"id": conversation.new_id()})
        if activity["type"] not in USER_ACTIVITY_TYPES:
            raise error(400, "BadArgument", f"activity type {activity['type'][:40]!r} cannot be sent here")
        if conversation.pending >= MAX_PENDING_DELIVERIES:
            raise error(
                429,
                "TooManyRequests",
                "too many activities waiting for the bot; try again shortly",
                retry_after=1,
            )
        claimed = activity.get("from")
        name = claimed.get("name") if isinstance(claimed, dict) else None
        activity["from"] = {"id": claims.user_id, "name": claims.user_name or name, "role": "user"}
        activity.pop("id", None)
        activity = self.stamp(request, conversation, activity)
        try:  # what /api/messages would refuse is refused here, before it is stored
            check_activity(activity, raw)
        except BadActivity as exc:
            raise error(400, "BadArgument", f"not a valid activity: {exc}") from exc
        return web.json_response({"id": self.accept(conversation, activity, claims.principal)})

    def stamp(self, request: web.Request, conversation: Conversation, activity: Activity) -> Activity:
        """The fields the Direct Line sets on a user-side activity: channel, conversation, recipient."""
        activity.update(
            channelId=CHANNEL_ID,
            serviceUrl=service_url(request),
            conversation={"id": conversation.id},
            recipient=dict(self.bot),
        )
        return activity

    def accept(self, conversation: Conversation, activity: Activity, who: Principal | None) -> str:
        """Store and echo a user-side activity, then queue its delivery to the bot, vouching for `who`
        (the token's signed-in user)."""
        activity_id = conversation.append(activity)
        conversation.pending += 1
        task = asyncio.create_task(self.deliver(conversation, activity, who))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return activity_id

    async def deliver(
        self, conversation: Conversation, activity: Activity, who: Principal | None = None
    ) -> None:
        """Run the bot's turn on one activity, after the ones before it; a failure is shown in the chat."""
        try:
            async with conversation.lock:
                failure = ""
                try:
                    async with asyncio.timeout(BOT_TURN_TIMEOUT_S):
                        result = await self.turns.handle(
                            activity, ConversationOutbox(activity, conversation), principal=who
                        )
                    if result is not None and result.status >= 400:
                        log.warning(
                            "direct line: the bot answered %d to a %s", result.status, activity["type"]
                        )
                except TimeoutError:
                    log.warning("direct line: the bot's turn took longer than %.0f s", BOT_TURN_TIMEOUT_S)
                    failure = "it took too long"
                except Exception:
                    log.exception("direct line: the bot's turn failed")
                    failure = "an internal error"
                if failure and activity["type"] == "message":
                    conversation.append(
                        {
                            "type": "message",
                            "from": dict(self.bot),
                            "conversation": {"id": conversation.id},
                            "replyToId": activity["id"],
                            "text": f"Sorry, the bot could not process this message ({failure}). "
                            "Please try again.",
                        }
                    )
        finally:
            conversation.pending -= 1

    async def get_activities(self, request: web.Request) -> web.Response:
        claims = self.claims(request, request.match_info["cid"])
        conversation = self.conversation(claims)
        return web.Response(text=conversation.page(parse_watermark(request)), content_type="application/json")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """WebSocket `streamUrl`: the backlog after `watermark`, then every activity as it arrives."""
        conversation_id = request.match_info["cid"]
        try:
            claims = self.tokens.verify(request.query.get("t", ""), scope="stream")
        except TokenError as exc:
            raise error(403, "TokenInvalid", str(exc)) from exc
        if claims.conversation_id != conversation_id:
            raise error(403, "TokenInvalid", "token is for another conversation")
        conversation = self.conversation(claims)
        watermark = parse_watermark(request)
        ws = web.WebSocketResponse(heartbeat=30.0)
        await ws.prepare(request)
        subscriber = conversation.subscribe(watermark)
        sender = asyncio.create_task(self._pump(ws, subscriber))
        try:
            async for _ in ws:  # the client only sends keep-alives
                pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            conversation.unsubscribe(subscriber)
        return ws

    @staticmethod
    async def _pump(ws: web.WebSocketResponse, subscriber: Subscriber) -> None:
        while (frame := await subscriber.next()) is not None:
            await ws.send_str(frame)
        await ws.close()
