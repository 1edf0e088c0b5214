"""Read deadlines and a per-client connection cap for the HTTP server.

aiohttp closes idle keep-alive connections but puts no deadline on reading a request: a client that
sends half its headers, or its headers and half a body, holds a socket and a file descriptor for as long
as it likes, and a few hundred such sockets starve everyone else. Here:

- a request's headers must be complete within `RAGBOT_HEADER_TIMEOUT` of the connection opening (or of
  the first byte of the next request on a kept-alive connection), else the connection is closed;
- its body must be complete within `RAGBOT_BODY_TIMEOUT` of the headers, else it is answered 408 and
  the connection closed;
- one client (an IPv4 address, an IPv6 /64) holds at most `RAGBOT_MAX_CONNECTIONS_PER_CLIENT`
  connections; one more is closed as soon as it is accepted, and other clients are not affected;
- a client that goes away in the middle of its request is one INFO line, not an ERROR traceback.

The connection-level part (`GuardedRequestHandler`) is aiohttp's own protocol with these checks added;
`ragbot serve` builds its connections with it. The request-level part is the `request_deadlines`
middleware every app built by `create_app` has.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler

from bot.headers import harden
from bot.settings import BotSettings

log = logging.getLogger(__name__)

KEEPALIVE_S = 75.0
"""How long an idle kept-alive connection stays open (aiohttp's `run_app` default)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BodyTimeout(TimeoutError):
    """The request body did not arrive within the body deadline. A TimeoutError, so that aiohttp's own
    draining of an unread body stops quietly on it."""


def client_key(remote: str | None) -> str:
    """Who an address counts as: an IPv4 address as it is, an IPv6 one as its /64 (what one subscriber
    is usually given; IPv4-mapped ones as IPv4). The connection cap and the web chat's limits share it."""
    if not remote:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def client_of(peername: Any) -> str:
    """Who a connection counts against (see :func:`client_key`)."""
    if not isinstance(peername, tuple) or not peername:
        return "local"  # a Unix socket
    return client_key(str(peername[0]))


class ClientConnections:
    """Open connections per client, and the refusals of the one that reached the cap (0: no cap). Only
    clients with open connections have an entry, so the table is bounded by the open sockets."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[str, int] = {}
        self._refused: dict[str, int] = {}

    def admit(self, client: str) -> bool:
        held = self._open.get(client, 0)
        if self.cap and held >= self.cap:
            refused = self._refused.get(client, 0)
            if not refused:
                log.warning(
                    "client %s holds %d connections (RAGBOT_MAX_CONNECTIONS_PER_CLIENT): closing its new "
                    "ones until some of those close",
                    client,
                    held,
                )
            self._refused[client] = refused + 1
            return False
        self._open[client] = held + 1
        return True

    def release(self, client: str) -> None:
        held = self._open[client] - 1
        if held:
            self._open[client] = held
        else:
            del self._open[client]
        if held < self.cap and (refused := self._refused.pop(client, 0)):
            log.info(
                "client %s is below the connection cap again; %d connection(s) were closed", client, refused
            )


class GuardedRequestHandler(RequestHandler):
    """aiohttp's HTTP/1.1 protocol with a deadline on request headers and the per-client cap. The
    `request_deadlines` middleware tells it when a request is being handled."""

    def __init__(
        self,
        manager: web.Server,
        *,
        clients: ClientConnections,
        header_timeout: float,
        frame_ancestors: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self.clients = clients
        self.header_timeout = header_timeout
        self.frame_ancestors = frame_ancestors
        self.client: str | None = None
        self.busy = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client = client_of(transport.get_extra_info("peername"))
        if not self.clients.admit(client):
            transport.close()  # at once: aiohttp never sees this connection
            return
        self.client = client
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.client is None:
            return  # refused in connection_made
        self.clients.release(self.client)
        self.client = None
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.busy and self._deadline is None:  # the first bytes of the next request
            self._arm()
        super().data_received(data)

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse never reaches the app's hooks: harden it here."""
        response = super().handle_error(request, status, exc, message)
        harden(response, self.frame_ancestors)
        return response

    def request_started(self) -> None:
        self.busy = True
        self._disarm()

    def request_finished(self) -> None:
        self.busy = False

    def _arm(self) -> None:
        self._disarm()
        self._deadline = asyncio.get_running_loop().call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        log.info(
            "closed a connection from %s: no complete request headers within %g s (RAGBOT_HEADER_TIMEOUT)",
            self.client,
            self.header_timeout,
        )
        self.force_close()


def raise_open_file_limit(per_client: int) -> None:
    """Lift the soft open-file limit to the hard one (every connection is a descriptor) and warn when one
    client at the cap could still take more than a quarter of them."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if per_client and soft != resource.RLIM_INFINITY and per_client > soft // 4:
        log.warning(
            "RAGBOT_MAX_CONNECTIONS_PER_CLIENT=%d is more than a quarter of the open-file limit (%d): a "
            "few clients at the cap can use up the server's descriptors; lower it or raise the limit",
            per_client,
            soft,
        )


def protocol_factory(
    runner: web.AppRunner, settings: BotSettings, **kwargs: Any
) -> Callable[[], RequestHandler]:
    """Connections for `loop.create_server`, served by `runner`'s app once it is set up. `kwargs` go to
    aiohttp's RequestHandler (`access_log`, ...)."""
    clients = ClientConnections(settings.max_connections_per_client)
    kwargs.setdefault("keepalive_timeout", KEEPALIVE_S)

    def connection() -> RequestHandler:
        assert runner.server is not None, "the runner is set up before the server accepts"
        return GuardedRequestHandler(
            runner.server,
            clients=clients,
            header_timeout=settings.header_timeout,
            frame_ancestors=settings.frame_ancestors,
            loop=asyncio.get_running_loop(),
            **kwargs,
        )

    return connection


def request_deadlines(body_timeout: float) -> Middleware:
    """The middleware: a deadline on the request body, and a quiet end for a client that went away."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = request.protocol if isinstance(request.protocol, GuardedRequestHandler) else None
        if protocol is not None:
            protocol.request_started()
        body = request.content

        def body_late() -> None:
            if not body.is_eof():
                body.set_exception(BodyTimeout())  # the handler's read raises it

        late = None if body.is_eof() else asyncio.get_running_loop().call_later(body_timeout, body_late)
        try:
            return await handler(request)
        except BodyTimeout:
            log.info(
                "client %s sent %d of %s body bytes of %s %s in %g s (RAGBOT_BODY_TIMEOUT): answered 408",
                request.remote,
                body.total_raw_bytes,
                request.content_length if request.content_length is not None else "a chunked number of",
                request.method,
                request.path,
                body_timeout,
            )
            response = web.json_response(
                {"error": f"the request body did not arrive within {body_timeout:g} s"}, status=408
            )
            response.force_close()
            return response
        except ConnectionError:
            if request.transport is not None and not request.transport.is_closing():
                raise  # not this client's connection (an upstream's): the handler's fault, logged as such
            log.info(
                "client %s went away during %s %s (%d body bytes received)",
                request.remote,
                request.method,
                request.path,
                body.total_raw_bytes,
            )
            return web.Response(
                status=499, reason="Client Closed Request"
            )  # nobody reads it; the access log does
        finally:
            if late is not None:
                late.cancel()
            if protocol is not None:
                protocol.request_finished()

    return middleware
