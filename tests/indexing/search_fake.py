"""A loopback Azure AI Search (and Azure OpenAI embeddings) speaking the REST subset ragbot uses.

Index create/update/get/delete, documents batch (upload, merge, mergeOrUpload, delete),
`search.post.search` with filters (`tests.odata_filter`), ordering, select and paging (search text
matches every document: no ranking), knowledge sources and bases, and a knowledge base's retrieve
(`filterAddOn` applied the same way). Every request is recorded so tests can assert what the real
azure-search-documents client put on the wire, and faults (a whole request answered 503/429, or chosen
documents answered with a per-document status) can be queued.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from tests.loopback import Recorded, record
from tests.odata_filter import UnsupportedFilter, compile_filter

_INDEX_PATH = re.compile(r"^/indexes\('([^']+)'\)$")
_DOCS_PATH = re.compile(r"^/indexes\('([^']+)'\)/docs/(search\.index|search\.post\.search)$")
_RESOURCE_PATH = re.compile(r"^/(knowledgesources|knowledgebases)\('([^']+)'\)$")
_RETRIEVE_PATH = re.compile(r"^/knowledgebases\('([^']+)'\)/retrieve$")
_EMBED_PATH = re.compile(r"^/openai/deployments/([^/]+)/embeddings$")


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector per text, so tests can check which vector went with which chunk."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).normal(size=dimensions)
    return [float(x) for x in vector / np.linalg.norm(vector)]


def _matches(document: dict[str, Any], flt: str | None) -> bool:
    try:
        return not flt or compile_filter(flt)(document)
    except UnsupportedFilter as exc:
        raise ValueError(f"unsupported filter {flt!r}: {exc}") from None


@dataclass
class FakeSearch:
    api_key: str = "search-key"
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    request_faults: list[int] = field(default_factory=list)  # statuses for the next batch requests
    document_faults: dict[str, list[int]] = field(default_factory=dict)  # key -> statuses, one per try
    knowledge: dict[str, dict[str, Any]] = field(default_factory=dict)  # "knowledgebases/kb" -> definition
    url: str = ""

    def batches(self) -> list[list[dict[str, Any]]]:
        """The `value` of every documents batch request that reached the index (faulted ones too)."""
        return [r.body["value"] for r in self.requests if r.path.endswith("/docs/search.index")]

    def docs(self, index: str = "kb") -> dict[str, dict[str, Any]]:
        return self.documents.get(index, {})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        seen = await record(request)
        self.requests.append(seen)
        body = seen.body
        if _EMBED_PATH.match(request.path):
            return self._embed(body)
        if request.headers.get("api-key") != self.api_key:
            return _error(403, "Forbidden", "wrong api-key")
        index_match = _INDEX_PATH.match(request.path)
        if index_match:
            return self._index(request.method, index_match.group(1), body)
        retrieve_match = _RETRIEVE_PATH.match(request.path)
        if retrieve_match and request.method == "POST":
            return self._retrieve(retrieve_match.group(1), body)
        resource_match = _RESOURCE_PATH.match(request.path)
        if resource_match and request.method == "PUT":
            return self._knowledge(*resource_match.groups(), body)
        docs_match = _DOCS_PATH.match(request.path)
        if docs_match and request.method == "POST":
            name, operation = docs_match.groups()
            if name not in self.indexes:
                return _error(404, "ResourceNotFound", f"index {name} not found")
            if operation == "search.index":
                return self._batch(name, body)
            return self._search(name, body)
        return _error(404, "NotFound", request.path)

    def _embed(self, body: dict[str, Any]) -> web.Response:
        dimensions = int(body.get("dimensions") or 8)
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(text, dimensions)}
            for i, text in enumerate(body["input"])
        ]
        return web.json_response({"object": "list", "data": data, "usage": {"prompt_tokens": 1}})

    def _index(self, method: str, name: str, body: Any) -> web.Response:
        if method == "PUT":
            created = name not in self.indexes
            self.indexes[name] = {**body, "@odata.etag": '"1"'}
            self.documents.setdefault(name, {})
            return web.json_response(self.indexes[name], status=201 if created else 200)
        if name not in self.indexes:
            return _error(404, "ResourceNotFound", f"index {name} not found")
        if method == "GET":
            return web.json_response(self.indexes[name])
        if method == "DELETE":
            del self.indexes[name]
            self.documents.pop(name, None)
            return web.Response(status=204)
        return _error(405, "MethodNotAllowed", method)

    def _knowledge(self, collection: str, name: str, body: dict[str, Any]) -> web.Response:
        """A knowledge source must name an existing index, a knowledge base existing sources."""
        if collection == "knowledgesources":
            wanted = [("index", body["searchIndexParameters"]["searchIndexName"], self.indexes)]
        else:
            wanted = [("knowledge source", s["name"], self._sources()) for s in body["knowledgeSources"]]
        for kind, needed, existing in wanted:
            if needed not in existing:
                return _error(400, "InvalidRequest", f"{kind} {needed} does not exist")
        created = f"{collection}/{name}" not in self.knowledge
        self.knowledge[f"{collection}/{name}"] = {**body, "@odata.etag": '"1"'}
        return web.json_response(self.knowledge[f"{collection}/{name}"], status=201 if created else 200)

    def _retrieve(self, name: str, body: dict[str, Any]) -> web.Response:
        """A knowledge base retrieve: each knowledge source's index searched with its `filterAddOn` (every
        document that passes is a reference, reranker score 3, its `sourceDataFields` as source data)."""
        if f"knowledgebases/{name}" not in self.knowledge:
            return _error(404, "ResourceNotFound", f"knowledge base {name} not found")
        query = body["intents"][0]["search"]
        activity: list[dict[str, Any]] = []
        references: list[dict[str, Any]] = []
        for params in body.get("knowledgeSourceParams", []):
            source = self.knowledge[f"knowledgesources/{params['knowledgeSourceName']}"]
            index = source["searchIndexParameters"]["searchIndexName"]
            fields = [f["name"] for f in source["searchIndexParameters"]["sourceDataFields"]]
            try:
                rows = [d for d in self.documents[index].values() if _matches(d, params.get("filterAddOn"))]
            except ValueError as exc:
                return _error(400, "InvalidRequest", str(exc))
            number = len(activity) + 1
            activity.append(
                {
                    "type": "searchIndex",
                    "id": number,
                    "knowledgeSourceName": params["knowledgeSourceName"],
                    "searchIndexArguments": {"search": query, "filter": params.get("filterAddOn")},
                }
            )
            references += [
                {
                    "type": "searchIndex",
                    "id": str(len(references) + i),
                    "activitySource": number,
                    "docKey": d[self._key(index)],
                    "sourceData": {f: d.get(f) for f in fields},
                    "rerankerScore": 3.0,
                }
                for i, d in enumerate(rows)
            ]
        return web.json_response({"response": [], "activity": activity, "references": references})

    def _sources(self) -> set[str]:
        return {key.split("/", 1)[1] for key in self.knowledge if key.startswith("knowledgesources/")}

    def _key(self, name: str) -> str:
        return next(f["name"] for f in self.indexes[name]["fields"] if f.get("key"))

    def _batch(self, name: str, body: dict[str, Any]) -> web.Response:
        if self.request_faults:
            status = self.request_faults.pop(0)
            return _error(status, "Throttled" if status == 429 else "ServiceUnavailable", "try again")
        key, store = self._key(name), self.documents[name]
        fields = {f["name"] for f in self.indexes[name]["fields"]}
        results = []
        for action in body["value"]:
            kind = action["@search.action"]
            doc = {k: v for k, v in action.items() if k != "@search.action"}
            faults = self.document_faults.get(doc[key])
            if faults:
                status = faults.pop(0)
                results.append(
                    {
                        "key": doc[key],
                        "status": False,
                        "errorMessage": f"fault {status}",
                        "statusCode": status,
                    }
                )
                continue
            unknown = set(doc) - fields
            if unknown:
                results.append(
                    {
                        "key": doc[key],
                        "status": False,
                        "errorMessage": f"unknown fields {sorted(unknown)}",
                        "statusCode": 400,
                    }
                )
                continue
            if kind == "delete":
                store.pop(doc[key], None)
            elif kind in ("merge", "mergeOrUpload") and doc[key] in store:
                store[doc[key]].update(doc)
            elif kind == "merge":
                results.append(
                    {"key": doc[key], "status": False, "errorMessage": "not found", "statusCode": 404}
                )
                continue
            else:
                store[doc[key]] = doc
            results.append({"key": doc[key], "status": True, "errorMessage": None, "statusCode": 200})
        status = 200 if all(r["status"] for r in results) else 207
        return web.json_response({"value": results}, status=status)

    def _search(self, name: str, body: dict[str, Any]) -> web.Response:
        try:  # any search text matches every document the filter lets through (the fake does not rank)
            rows = [d for d in self.documents[name].values() if _matches(d, body.get("filter"))]
        except ValueError as exc:
            return _error(400, "InvalidRequest", str(exc))
        if body.get("orderby"):
            field_name, _, direction = body["orderby"].partition(" ")
            rows.sort(key=lambda d: str(d.get(field_name)), reverse=direction == "desc")
        rows = rows[int(body.get("skip") or 0) :][: int(body.get("top") or 50)]
        select = [s.strip() for s in body["select"].split(",")] if body.get("select") else None
        value = [
            {"@search.score": 1.0, **{k: v for k, v in d.items() if not select or k in select}} for d in rows
        ]
        return web.json_response({"value": value})


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
