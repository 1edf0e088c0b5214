"""Microsoft Graph and Entra ID's token endpoint on loopback, with their official response shapes.

- Graph: `GET /v1.0/users/{id}/transitiveMemberOf/microsoft.graph.group` answers a collection page
  (`@odata.context`, `@odata.count`, `value` of `{"@odata.type": "#microsoft.graph.group", "id"}`) and an
  absolute `@odata.nextLink` with a `$skiptoken` while more remain; errors are Graph's
  `{"error": {"code", "message", "innerError"}}` (404 `Request_ResourceNotFound`, 401
  `InvalidAuthenticationToken`, 429 `TooManyRequests` with Retry-After, 503 `serviceNotAvailable`).
- Entra ID: `POST /{tenant}/oauth2/v2.0/token` (client credentials) over TLS, since azure-identity only
  talks to an https authority; the certificate is self-signed for 127.0.0.1 and handed to the client.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import secrets
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "00000000-0000-0000-0000-00000000b07a"
CLIENT_SECRET = "bot-secret"
GROUP_PATH = "/v1.0/users/{oid}/transitiveMemberOf/microsoft.graph.group"


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    inner = {"date": "2026-12-06T03:00:00", "request-id": secrets.token_hex(8), "client-request-id": "x"}
    return web.json_response(
        {"error": {"code": code, "message": message, "innerError": inner}}, status=status, headers=headers
    )


@dataclass
class FakeGraph:
    """Users -> group ids; `faults` are answered first, one per request (status, Retry-After)."""

    members: dict[str, list[str]] = field(default_factory=dict)
    page_size: int = 2
    faults: list[tuple[int, str]] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)
    """The user id of every group request, in order."""
    delay: float = 0.0
    """Seconds before each answer (a slow Graph)."""
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        oid = request.match_info["oid"]
        self.asked.append(oid)
        await asyncio.sleep(self.delay)
        if self.faults:
            status, retry_after = self.faults.pop(0)
            headers = {"Retry-After": retry_after} if retry_after else {}
            if status == 429:
                return _error(429, "TooManyRequests", "Too many requests.", **headers)
            if status == 401:
                return _error(
                    401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
                )
            if status == 403:
                return _error(
                    403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
                )
            return _error(status, "serviceNotAvailable", "The service is temporarily unavailable.", **headers)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.valid_tokens:
            return _error(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if request.query.get("$select") != "id":
            return _error(400, "Request_BadRequest", "expected $select=id")
        if oid not in self.members:
            return _error(
                404,
                "Request_ResourceNotFound",
                f"Resource '{oid}' does not exist or one of its queried reference-property objects "
                "are not present.",
            )
        groups = self.members[oid]
        top = min(int(request.query.get("$top", "100")), self.page_size)
        start = int(request.query.get("$skiptoken", "0"))
        body: dict[str, object] = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects(id)",
            "@odata.count": len(groups),
            "value": [
                {"@odata.type": "#microsoft.graph.group", "id": g} for g in groups[start : start + top]
            ],
        }
        if start + top < len(groups):
            body["@odata.nextLink"] = str(request.url.update_query({"$skiptoken": str(start + top)}))
        return web.json_response(body)


@dataclass
class FakeEntra:
    """Client-credentials grants for one app; every token it issues is also accepted by `graph`."""

    graph: FakeGraph
    issued: int = 0
    fail: bool = False

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self.fail:
            return web.json_response(
                {"error": "unauthorized_client", "error_description": "AADSTS700016: application not found"},
                status=400,
            )
        if (
            request.match_info["tenant"] != TENANT
            or form.get("grant_type") != "client_credentials"
            or form.get("client_id") != CLIENT_ID
            or form.get("client_secret") != CLIENT_SECRET
            or form.get("scope") != f"{self.graph.url}/.default"
        ):
            return web.json_response(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
                status=401,
            )
        self.issued += 1
        token = f"graph-token-{self.issued}-{secrets.token_hex(4)}"
        self.graph.valid_tokens.add(token)
        return web.json_response(
            {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        )


def self_signed(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 and the PEM file a client trusts it with."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "entra.pem", folder / "entra.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


@dataclass
class GraphWorld:
    graph: FakeGraph
    entra: FakeEntra
    authority: str
    """https://127.0.0.1:port (the token endpoint's host)."""
    ca: Path

    def transport(self) -> dict[str, str]:
        """What azure-identity needs to trust the loopback authority."""
        return {"connection_verify": str(self.ca)}


@asynccontextmanager
async def graph_world(folder: Path) -> AsyncIterator[GraphWorld]:
    """Graph (plain http) and Entra ID (https) on 127.0.0.1, ephemeral ports."""
    graph = FakeGraph()
    graph_app = web.Application()
    graph_app.router.add_get(GROUP_PATH, graph.handle)
    entra = FakeEntra(graph)
    entra_app = web.Application()
    entra_app.router.add_post("/{tenant}/oauth2/v2.0/token", entra.token)
    context, ca = self_signed(folder)
    graph_server = TestServer(graph_app, host="127.0.0.1")
    entra_server = TestServer(entra_app, host="127.0.0.1")
    await graph_server.start_server()
    await entra_server.start_server(ssl=context)
    graph.url = str(graph_server.make_url("")).rstrip("/")
    try:
        yield GraphWorld(graph, entra, f"https://127.0.0.1:{entra_server.port}", ca)
    finally:
        await graph_server.close()
        await entra_server.close()
