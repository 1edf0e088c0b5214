"""A loopback fake of the Azure Cosmos DB for NoSQL REST API, as far as the state store uses it.

There is no Cosmos DB emulator installable here (its Linux emulator is a container image), so this
plays the service over real HTTP for the official `azure-cosmos` client: the database account and
container reads, point reads, create (409 Conflict if the id exists), replace with `If-Match`
(412 PreconditionFailed on another `_etag`), upsert, delete, and the one query the store sends
(`STARTSWITH(c.id, @prefix)`, with its query plan). Response bodies and headers follow the REST
reference (`_rid`, `_self`, `_etag`, `_ts`, `x-ms-request-charge`, `x-ms-session-token`, ...).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from bot.state.cosmos import SCAN_QUERY

PARTITION_KEY = {"paths": ["/id"], "kind": "Hash", "version": 2}


class CosmosFake:
    def __init__(self, database: str = "ragbot", container: str = "conversations") -> None:
        self.database = database
        self.container = container
        self.items: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.down = False
        self._lsn = itertools.count(1)

    def _headers(self, etag: str | None = None) -> dict[str, str]:
        headers = {
            "x-ms-request-charge": "1.0",
            "x-ms-activity-id": str(uuid.uuid4()),
            "x-ms-session-token": f"0:-1#{next(self._lsn)}",
            "x-ms-item-count": "1",
        }
        if etag:
            headers["etag"] = etag
        return headers

    def _error(self, status: int, code: str, message: str) -> web.Response:
        return web.json_response({"code": code, "message": message}, status=status, headers=self._headers())

    async def handle(self, request: web.Request) -> web.Response:
        """Every route (serve it with `tests.loopback.serve`)."""
        path = unquote(request.path).strip("/")
        self.requests.append(f"{request.method} /{path}")
        if self.down:
            return self._error(503, "ServiceUnavailable", "The service is unavailable.")
        if path == "":
            return web.json_response(self._account(request), headers=self._headers())
        parts = path.split("/")
        coll = ["dbs", self.database, "colls", self.container]
        if parts[:2] == ["dbs", self.database] and len(parts) == 2:
            return web.json_response({"id": self.database, "_rid": "db1=", "_self": "dbs/db1=/"})
        if parts[:4] != coll:
            return self._error(404, "NotFound", "Resource Not Found.")
        rest = parts[4:]
        if not rest and request.method == "GET":
            return web.json_response(self._container(), headers=self._headers())
        if rest == ["pkranges"]:
            ranges = [{"id": "0", "_rid": "c1=AA==", "minInclusive": "", "maxExclusive": "FF", "parents": []}]
            return web.json_response(
                {"_rid": "c1=", "PartitionKeyRanges": ranges, "_count": 1}, headers=self._headers()
            )
        if rest == ["docs"] and request.method == "POST":
            return await self._post_docs(request)
        if len(rest) == 2 and rest[0] == "docs":
            return await self._item(request, rest[1])
        return self._error(400, "BadRequest", f"the fake does not do {request.method} {path}")

    def _account(self, request: web.Request) -> dict[str, Any]:
        here = f"{request.scheme}://{request.host}/"
        location = [{"name": "Fake Region", "databaseAccountEndpoint": here}]
        return {
            "_self": "",
            "id": "fake",
            "_rid": "fake.documents.azure.com",
            "media": "//media/",
            "addresses": "//addresses/",
            "_dbs": "//dbs/",
            "writableLocations": location,
            "readableLocations": location,
            "enableMultipleWriteLocations": False,
            "userReplicationPolicy": {
                "asyncReplication": False,
                "minReplicaSetSize": 1,
                "maxReplicasetSize": 4,
            },
            "userConsistencyPolicy": {"defaultConsistencyLevel": "Session"},
            "systemReplicationPolicy": {"minReplicaSetSize": 1, "maxReplicasetSize": 4},
            "readPolicy": {"primaryReadCoefficient": 1, "secondaryReadCoefficient": 1},
            "queryEngineConfiguration": json.dumps({"maxSqlQueryInputLength": 262144}),
        }

    def _container(self) -> dict[str, Any]:
        return {
            "id": self.container,
            "partitionKey": PARTITION_KEY,
            "indexingPolicy": {"indexingMode": "consistent", "automatic": True},
            "_rid": "c1=",
            "_ts": int(time.time()),
            "_self": "dbs/db1=/colls/c1=/",
            "_etag": '"00000000-0000-0000-0000-000000000001"',
            "_docs": "docs/",
        }

    def _stored(self, body: dict[str, Any]) -> dict[str, Any]:
        item = {
            **body,
            "_rid": f"c1=AAAA{len(self.items)}==",
            "_self": f"dbs/db1=/colls/c1=/docs/{body['id']}/",
            "_etag": f'"{uuid.uuid4()}"',
            "_attachments": "attachments/",
            "_ts": int(time.time()),
        }
        self.items[body["id"]] = item
        return item

    async def _post_docs(self, request: web.Request) -> web.Response:
        headers = request.headers
        if headers.get("x-ms-cosmos-is-query-plan-request", "").lower() == "true":
            return web.json_response(self._query_plan(), headers=self._headers())
        body = await request.json()
        if headers.get("x-ms-documentdb-isquery", "").lower() == "true" or "query" in body:
            return self._query(body)
        if headers.get("x-ms-documentdb-is-upsert", "").lower() == "true":
            existing = body["id"] in self.items
            item = self._stored(body)
            return web.json_response(
                item, status=200 if existing else 201, headers=self._headers(item["_etag"])
            )
        if body["id"] in self.items:
            return self._error(409, "Conflict", "Entity with the specified id already exists in the system.")
        item = self._stored(body)
        return web.json_response(item, status=201, headers=self._headers(item["_etag"]))

    async def _item(self, request: web.Request, item_id: str) -> web.Response:
        current = self.items.get(item_id)
        if current is None:
            return self._error(404, "NotFound", "Entity with the specified id does not exist in the system.")
        if request.method == "GET":
            return web.json_response(current, headers=self._headers(current["_etag"]))
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != current["_etag"]:
            return self._error(
                412,
                "PreconditionFailed",
                "Operation cannot be performed because one of the specified precondition is not met.",
            )
        if request.method == "PUT":
            item = self._stored(await request.json())
            return web.json_response(item, headers=self._headers(item["_etag"]))
        if request.method == "DELETE":
            del self.items[item_id]
            return web.Response(status=204, headers=self._headers())
        return self._error(405, "MethodNotAllowed", request.method)

    @staticmethod
    def _query_plan() -> dict[str, Any]:
        return {
            "partitionedQueryExecutionInfoVersion": 2,
            "queryInfo": {
                "distinctType": "None",
                "top": None,
                "offset": None,
                "limit": None,
                "orderBy": [],
                "orderByExpressions": [],
                "groupByExpressions": [],
                "groupByAliases": [],
                "aggregates": [],
                "groupByAliasToAggregateType": {},
                "rewrittenQuery": "",
                "hasSelectValue": False,
                "dCountInfo": None,
                "hasNonStreamingOrderBy": False,
            },
            "queryRanges": [{"min": "", "max": "FF", "isMinInclusive": True, "isMaxInclusive": False}],
        }

    def _query(self, body: dict[str, Any]) -> web.Response:
        if body.get("query") != SCAN_QUERY:
            return self._error(400, "BadRequest", "the fake answers only the state store's prefix query")
        prefix = {p["name"]: p["value"] for p in body.get("parameters", [])}["@prefix"]
        found = [
            {"id": i["id"], "doc": i["doc"]} for k, i in sorted(self.items.items()) if k.startswith(prefix)
        ]
        headers = self._headers()
        headers["x-ms-item-count"] = str(len(found))
        return web.json_response({"_rid": "c1=", "Documents": found, "_count": len(found)}, headers=headers)
