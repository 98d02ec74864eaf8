"""Vespa index backend: pyvespa 1.2.9 against a Vespa cluster's /document/v1 and /search/ APIs.

Every pipeline write is a partial update (`assign`) of one writer's field group plus its
version-vector component, under the null-safe condition `vv_<writer> == null or vv_<writer> < V`
(a plain `<` against a missing field is *invalid* in Vespa's selection language and fails). Only
writes that may create a document send `create=true`; an inventory update of a missing document
gets 412 and creates nothing. Vespa answers 412 both for "stale" and for "no such document", so a
412 is followed by a GET of the version component to tell the two apart.

pyvespa's async client (HTTP/2) carries the requests with its retries switched off
(`NO_RETRY`): its own policy retries 429 for ever. Instead, at most CONCURRENCY requests are in
flight, writes to one document id go one after the other (in list order), 429/503 and
connection errors are retried with capped exponential backoff and jitter until the call's own
DEADLINE, and every outcome is classified the way the pipeline expects (see `_classify`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from collections import defaultdict
from collections.abc import Coroutine, Iterator
from typing import Any
from urllib.parse import urlsplit

from vespa.application import Vespa, VespaAsync
from vespa.retries import NO_RETRY

from ..fields import FIELDS_BY_NAME, Kind, writer_fields
from ..vespa_app.build import CONTENT_CLUSTER, DOCUMENT_TYPE
from .base import (
    SEARCHABLE_STATUSES,
    WRITERS,
    BaseBackend,
    IndexError_,
    IndexWrite,
    SearchHit,
    WriteOutcome,
    WriteResult,
    version_field,
)

DEFAULT_CONCURRENCY = 64  # in-flight requests per write() call; HTTP/2 multiplexes them
DEFAULT_DEADLINE = 60.0  # seconds a write() call may take in all, retries included
DEFAULT_REQUEST_TIMEOUT = 10.0  # seconds per request; Vespa is asked to give up a little sooner
BACKOFF_BASE, BACKOFF_CAP = 0.05, 2.0  # seconds: retry n waits uniform(0, min(cap, base * 2**n))
VISIT_PAGE = 1000  # documents() reads bounded pages
NEAREST_NEIGHBOURS = 100  # targetHits of nearestNeighbor: at least the page asked for
PING_ID = "__shopsync_ping__"  # never created: an update without create is a no-op Vespa must accept
_RETRY_STATUSES = frozenset({429, 503})
# httpr logs every response at INFO: one line per document written.
logging.getLogger("httpr").setLevel(logging.WARNING)
_SUMMARY_ONLY = ("sddocname", "documentid", "matchfeatures", "summaryfeatures")


class VespaBackend(BaseBackend):
    """Params: URL (required), NAMESPACE, CONCURRENCY, DEADLINE, REQUEST_TIMEOUT, COMPRESS, and
    for authenticated endpoints CERT + KEY (mTLS file paths) or TOKEN (from the environment)."""

    @classmethod
    def longest_write_seconds(cls, params: dict[str, Any]) -> float | None:
        # Nothing is sent after the deadline; what was sent ends within its request timeout; _run
        # waits 5 s more before it gives up on the loop.
        deadline = float(params.get("DEADLINE") or DEFAULT_DEADLINE)
        return deadline + float(params.get("REQUEST_TIMEOUT") or DEFAULT_REQUEST_TIMEOUT) + 5.0

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        url = params.get("URL") or ""
        parts = urlsplit(url)
        if not parts.scheme or not parts.hostname:
            raise ValueError(f"VespaBackend needs a URL like http://vespa:8080, got {url!r}")
        self.url = url
        self.namespace = params.get("NAMESPACE") or "shopsync"
        self.concurrency = int(params.get("CONCURRENCY") or DEFAULT_CONCURRENCY)
        self.deadline = float(params.get("DEADLINE") or DEFAULT_DEADLINE)
        self.request_timeout = float(params.get("REQUEST_TIMEOUT") or DEFAULT_REQUEST_TIMEOUT)
        # pyvespa gzips bodies over 1 KB ("auto"): a 384-float embedding shrinks to about half,
        # for most of the client's CPU per write (bench/vespa_feed.py). "false" on a fast network.
        compress = str(params.get("COMPRESS") or "auto").lower()
        if compress not in ("auto", "true", "false"):
            raise ValueError(f"VespaBackend COMPRESS must be auto, true or false, got {compress!r}")
        self.compress: str | bool = compress if compress == "auto" else compress == "true"
        self.app = Vespa(
            url=f"{parts.scheme}://{parts.hostname}",
            port=parts.port,
            cert=params.get("CERT") or None,
            key=params.get("KEY") or None,
            vespa_cloud_secret_token=params.get("TOKEN") or None,
            output_file=open(os.devnull, "w"),  # noqa: SIM115 (pyvespa prints connection chatter)
        )
        self._lock = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: VespaAsync | None = None

    # --- the event loop and HTTP/2 client, one per process ---------------------------------------

    def _run(self, coro: Coroutine[Any, Any, Any], *, timeout: float) -> Any:
        """Run `coro` on this process's loop thread (usable from sync code, even inside another
        running loop, where pyvespa's feed_async_iterable would fail)."""
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout + 5.0)  # the client's timeouts end it first
        except TimeoutError as exc:
            future.cancel()
            raise IndexError_(f"vespa: no answer within {timeout:.0f}s", retryable=True) from exc

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None and self._pid == os.getpid():
                return self._loop
            # First use, or a forked child: its parent's loop thread does not exist here.
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name=f"vespa-{self.alias}", daemon=True).start()
            self._loop, self._pid, self._client = loop, os.getpid(), None
            return loop

    async def _session(self) -> VespaAsync:
        if self._client is None:
            client = VespaAsync(
                self.app, timeout=self.request_timeout, compress=self.compress, docv1_retry_policy=NO_RETRY
            )
            client._open_httpr_client()
            self._client = client
        return self._client

    def close(self) -> None:
        with self._lock:
            loop, client, pid = self._loop, self._client, self._pid
            self._loop = self._client = None
        if loop is None or pid != os.getpid():
            return
        if client is not None:
            asyncio.run_coroutine_threadsafe(client._close_httpr_client(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)

    # --- writes ----------------------------------------------------------------------------------

    def write(self, writes: list[IndexWrite]) -> list[WriteResult]:
        if not writes:
            return []
        # Our deadline stops retries; a request already sent gets its REQUEST_TIMEOUT.
        return self._run(self._write_all(writes), timeout=self.deadline + self.request_timeout)

    async def _write_all(self, writes: list[IndexWrite]) -> list[WriteResult]:
        client = await self._session()
        loop = asyncio.get_running_loop()
        feed = _Feed(asyncio.Semaphore(self.concurrency), loop.time() + self.deadline)
        results: list[WriteResult | None] = [None] * len(writes)
        per_document: dict[str, list[int]] = defaultdict(list)
        for position, write in enumerate(writes):
            per_document[write.doc_id].append(position)

        async def one_document(positions: list[int]) -> None:
            for position in positions:  # in list order: each waits for the one before
                results[position] = await self._write_one(client, feed, writes[position])

        await asyncio.gather(*(one_document(positions) for positions in per_document.values()))
        return results  # type: ignore[return-value]

    async def _write_one(self, client: VespaAsync, feed: _Feed, write: IndexWrite) -> WriteResult:
        attempt, last = 0, "not sent: the call's deadline had passed"
        while True:
            if feed.blocked:
                return WriteResult(write, WriteOutcome.BLOCKED, feed.blocked)
            if feed.remaining() <= 0:
                return WriteResult(write, WriteOutcome.RETRYABLE, f"vespa {last} (still, at the deadline)")
            status, message = await self._request(client, feed, write)
            if status == 412:
                outcome = await self._after_failed_condition(client, feed, write)
                if outcome is not None:
                    return WriteResult(write, outcome)
                # The document changed between the write and the read: write again.
            elif status not in _RETRY_STATUSES and status != 0:
                outcome, error = _classify(status, message)
                if outcome == WriteOutcome.BLOCKED:
                    feed.blocked = error
                return WriteResult(write, outcome, error)
            attempt, last = attempt + 1, f"{status or 'unreachable'}: {message}"
            wait = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))
            if feed.remaining() <= wait:
                return WriteResult(write, WriteOutcome.RETRYABLE, f"vespa {last} (still, at the deadline)")
            await asyncio.sleep(wait)

    async def _request(self, client: VespaAsync, feed: _Feed, write: IndexWrite) -> tuple[int, str]:
        """Send one write; (status, message), status 0 for a connection error or our timeout."""
        vv = version_field(write.writer)
        params = {
            "condition": f"{DOCUMENT_TYPE}.{vv} == null or {DOCUMENT_TYPE}.{vv} < {int(write.version)}",
            "timeout": f"{self.request_timeout * 0.8:.3f}s",
        }
        if write.delete:
            call = client.delete_data(DOCUMENT_TYPE, write.doc_id, namespace=self.namespace, **params)
        else:
            fields = {name: {"assign": _to_vespa(name, value)} for name, value in write.fields.items()}
            fields[vv] = {"assign": int(write.version)}
            call = client.update_data(
                DOCUMENT_TYPE,
                write.doc_id,
                fields,
                create=write.create,
                auto_assign=False,
                namespace=self.namespace,
                **params,
            )
        return await self._send(call, feed)

    async def _send(self, call: Coroutine[Any, Any, Any], feed: _Feed) -> tuple[int, str]:
        try:
            response = await _in_time(call, feed)
        except Exception as exc:  # httpr raises its own transport errors, timeouts included
            return 0, f"{type(exc).__name__}: {exc} (a write may have been applied)"
        if response is None:
            return 0, "the call's deadline passed before the request was sent"
        body = response.json if isinstance(response.json, dict) else {}
        return response.status_code, str(body.get("message", ""))[:500]

    async def _after_failed_condition(
        self, client: VespaAsync, feed: _Feed, write: IndexWrite
    ) -> WriteOutcome | None:
        """412: STALE if the document holds this writer's version or newer, MISSING if there is
        no document (a condition on a missing document fails too), None if neither (it changed
        meanwhile). A read that fails counts as stale-or-missing unknown: retried as a whole."""
        vv = version_field(write.writer)
        call = client.get_data(
            DOCUMENT_TYPE, write.doc_id, namespace=self.namespace, fieldSet=f"{DOCUMENT_TYPE}:{vv}"
        )
        try:
            response = await _in_time(call, feed)
        except Exception:
            return None
        if response is None:  # past the deadline: not sent; the write ends retryable
            return None
        if response.status_code == 404:
            return WriteOutcome.MISSING
        if response.status_code != 200:
            return None
        current = (response.json.get("fields") or {}).get(vv)
        if current is not None and int(current) >= write.version:
            return WriteOutcome.STALE
        return None

    def put(self, document: dict[str, Any]) -> None:
        doc_id = _document_id(document)
        fields = {k: _to_vespa(k, v) for k, v in document.items() if k != "id" and v is not None}
        self._single("put", self._call("feed_data_point", doc_id, fields=fields))

    def update(self, doc_id: str, fields: dict[str, Any]) -> bool:
        if fields.get("id", doc_id) != doc_id:
            raise IndexError_(f"update of {doc_id} may not change its id", retryable=False)
        assigns = {k: {"assign": _to_vespa(k, v)} for k, v in fields.items() if k != "id"}
        # `true` holds for any existing document and fails (412) for a missing one, which an
        # update without a condition would silently skip with 200.
        call = self._call("update_data", doc_id, fields=assigns, auto_assign=False, condition="true")
        return self._single("update", call) == 200

    def delete(self, doc_id: str) -> bool:
        return self._single("delete", self._call("delete_data", doc_id, condition="true")) == 200

    def clear(self) -> None:
        params = {"selection": "true", "cluster": CONTENT_CLUSTER}
        while True:
            body = self._raw("DELETE", self._visit_path(), params)
            if not body.get("continuation"):
                return
            params["continuation"] = body["continuation"]

    # --- reads -----------------------------------------------------------------------------------

    def get(self, doc_id: str) -> dict[str, Any] | None:
        call = self._call("get_data", doc_id)
        status, body = self._run(self._single_async(call), timeout=2 * self.request_timeout)
        if status == 404:
            return None
        if status != 200:
            raise _error("get", status, body)
        return _from_vespa(doc_id, body.get("fields") or {})

    def documents(self, *, shop: str) -> Iterator[dict[str, Any]]:
        params = {
            "selection": f"{DOCUMENT_TYPE}.shop == {_quote(shop)}",
            "cluster": CONTENT_CLUSTER,
            "wantedDocumentCount": str(VISIT_PAGE),
        }
        while True:
            body = self._raw("GET", self._visit_path(), params)
            for document in body.get("documents", []):
                yield _from_vespa(document["id"].split("::", 1)[1], document.get("fields") or {})
            if not body.get("continuation"):
                return
            params["continuation"] = body["continuation"]

    def count(self, *, shop: str | None = None) -> int:
        where = "true" if shop is None else f"shop contains {_quote(shop)}"
        body = self._query(
            {"yql": f"select * from {DOCUMENT_TYPE} where {where}", "hits": 0, "ranking": "unranked"}  # noqa: S608 (YQL, values quoted)
        )
        return int(body["root"].get("fields", {}).get("totalCount", 0))

    def search(
        self,
        query: str,
        *,
        shop: str | None = None,
        statuses: tuple[str, ...] = SEARCHABLE_STATUSES,
        limit: int = 10,
        mode: str = "bm25",
        query_vector: list[float] | None = None,
        semantic_weight: float = 0.5,
        trend_boost: float = 0.0,
    ) -> list[SearchHit]:
        if not statuses or limit <= 0:
            return []
        filters = [f"({' or '.join(f'status contains {_quote(s)}' for s in statuses)})"]
        if shop is not None:
            filters.append(f"shop contains {_quote(shop)}")
        nearest = f"({{targetHits:{max(limit, NEAREST_NEIGHBOURS)}}}nearestNeighbor(embedding, q))"
        body: dict[str, Any] = {
            "hits": limit,
            "ranking.profile": mode,
            "input.query(trend_boost)": trend_boost,
        }
        if mode == "bm25":
            if not query.split():
                return []
            body["query"] = query
            matching = "userQuery()"
        elif mode in ("semantic", "hybrid"):
            if query_vector is None:
                raise IndexError_(f"{mode} search needs a query_vector", retryable=False)
            body["input.query(q)"] = list(query_vector)
            matching = nearest
            if mode == "hybrid":
                body["input.query(semantic_weight)"] = semantic_weight
                if query.split():
                    body["query"] = query
                    matching = f"(userQuery() or {nearest})"
        else:
            raise IndexError_(f"unknown search mode {mode!r}", retryable=False)
        # YQL, not SQL: every value in it is quoted by _quote; the user's text goes in `query`.
        body["yql"] = f"select * from {DOCUMENT_TYPE} where {' and '.join([matching, *filters])}"  # noqa: S608
        # All words first, as the embedded backend does; any word when that finds nothing.
        for model_type in ("all", "any") if mode == "bm25" else ("all",):
            root = self._query({**body, "model.type": model_type})["root"]
            children = root.get("children", [])
            if children or mode != "bm25" or len(query.split()) < 2:
                break
        return [
            SearchHit(
                id=hit["id"].split("::", 1)[1],
                score=float(hit.get("relevance", 0.0)),
                document=_from_vespa(hit["id"].split("::", 1)[1], hit.get("fields") or {}, complete=False),
            )
            for hit in children
        ]

    def ping(self) -> None:
        # An update without create of a document that never exists: a no-op Vespa still routes
        # like a write, so a feed block (507) or overload shows here.
        call = self._call(
            "update_data", PING_ID, fields={version_field("admin"): {"assign": 0}}, auto_assign=False
        )
        status, body = self._run(self._single_async(call), timeout=2 * self.request_timeout)
        if status != 200:
            error = _error("ping", status, body)
            raise IndexError_(str(error), retryable=True, blocked=status == 507)

    # --- plumbing --------------------------------------------------------------------------------

    def _call(self, method: str, doc_id: str, **kwargs: Any):
        async def call():
            client = await self._session()
            return await getattr(client, method)(DOCUMENT_TYPE, doc_id, namespace=self.namespace, **kwargs)

        return call

    async def _single_async(self, call) -> tuple[int, dict[str, Any]]:
        for attempt in range(2):
            try:
                response = await call()
            except Exception as exc:
                # Once more on a connection error: after a GOAWAY (Vespa Cloud recycles
                # connections) httpr's first request times out and the next reconnects.
                if attempt == 0:
                    continue
                return 0, {"message": f"{type(exc).__name__}: {exc}"}
            body = response.json() if callable(response.json) else response.json  # httpr's or pyvespa's
            return response.status_code, body if isinstance(body, dict) else {}
        raise AssertionError("unreachable")

    def _single(self, action: str, call) -> int:
        """One document operation outside the pipeline: 200 or 412, else IndexError_."""
        status, body = self._run(self._single_async(call), timeout=2 * self.request_timeout)
        if status not in (200, 412):
            raise _error(action, status, body)
        return status

    def _visit_path(self) -> str:
        return f"{self.app.end_point}/document/v1/{self.namespace}/{DOCUMENT_TYPE}/docid/"

    def _raw(self, method: str, url: str, params: dict[str, str]) -> dict[str, Any]:
        async def call() -> tuple[int, dict[str, Any]]:
            client = await self._session()
            return await client.httpr_client.request(method, url, params=params)

        status, body = self._run(self._single_async(call), timeout=2 * self.request_timeout)
        if status != 200:
            raise _error(method.lower(), status, body)
        return body

    def _query(self, body: dict[str, Any]) -> dict[str, Any]:
        async def call():
            client = await self._session()
            return await client.query(body=body, retry_policy=NO_RETRY)

        status, response = self._run(self._single_async(call), timeout=2 * self.request_timeout)
        if status != 200:
            errors = (response.get("root") or {}).get("errors") or [response]
            raise _error("search", status, {"message": "; ".join(str(e.get("message", e)) for e in errors)})
        return response


class _Feed:
    """What the writes of one write() call share: request slots, the deadline, a feed block."""

    def __init__(self, slots: asyncio.Semaphore, deadline: float) -> None:
        self.slots, self.deadline, self.blocked = slots, deadline, ""

    def remaining(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()


async def _in_time(call: Coroutine[Any, Any, Any], feed: _Feed) -> Any:
    """Send `call` once a request slot is free, unless the call's deadline passed meanwhile (then
    None, and it is not sent): so a write() call ends within deadline + request timeout.

    A request in flight is never cancelled from here: the client's own timeout ends it.
    (Abandoning HTTP/2 streams mid-answer can leave their unread data holding the connection's
    flow-control window, until no answer gets through at all.)"""
    async with feed.slots:
        if feed.remaining() <= 0:
            call.close()
            return None
        return await call


def _classify(status: int, message: str) -> tuple[WriteOutcome, str]:
    """The outcome of a final answer (200, 412, 429 and 503 are handled by the caller)."""
    error = f"vespa {status}: {message}"
    if 200 <= status < 300:
        return WriteOutcome.APPLIED, ""
    if status == 507:
        return WriteOutcome.BLOCKED, error
    if status in (500, 502, 504):
        # Vespa may have applied it before failing. Replaying is safe (an idempotent assign
        # under a version condition: 412, then STALE, if it did), so retry later, not now.
        return WriteOutcome.RETRYABLE, f"{error} (outcome unknown; safe to replay)"
    if 400 <= status < 500:
        return WriteOutcome.PERMANENT, error  # 400, 413 and the like: the same write fails again
    return WriteOutcome.RETRYABLE, error


def _error(action: str, status: int, body: dict[str, Any]) -> IndexError_:
    message = f"vespa {action} failed ({status or 'connection'}): {body.get('message', '')}"
    return IndexError_(message, retryable=status in (0, 429, 500, 502, 503, 504), blocked=status == 507)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _document_id(document: dict[str, Any]) -> str:
    doc_id = document.get("id") if isinstance(document, dict) else None
    if not isinstance(doc_id, str) or not doc_id:
        raise IndexError_(f"document needs a non-empty string id, got {doc_id!r}", retryable=False)
    return doc_id


def _to_vespa(name: str, value: Any) -> Any:
    field = FIELDS_BY_NAME.get(name)
    if field is not None and field.kind == Kind.VECTOR and value is not None:
        return {"values": value if isinstance(value, list) else list(value)}
    return value


def _from_vespa(doc_id: str, fields: dict[str, Any], *, complete: bool = True) -> dict[str, Any]:
    """A stored document in the shape every backend returns: typed values, and (`complete`: a
    whole document, not a search hit's summary) every field of a group that was written present:
    None where Vespa stores no value, [] for an empty list."""
    document: dict[str, Any] = {"id": doc_id}
    for name, value in fields.items():
        if name in _SUMMARY_ONLY:
            continue
        field = FIELDS_BY_NAME.get(name)
        kind = field.kind if field is not None else (Kind.LONG if name.startswith("vv_") else None)
        if value is None or kind is None:
            document[name] = value
        elif kind == Kind.VECTOR:
            document[name] = [float(v) for v in (value.get("values") if isinstance(value, dict) else value)]
        elif kind == Kind.LONG:
            document[name] = int(value)
        elif kind == Kind.DOUBLE:
            document[name] = float(value)
        elif kind == Kind.STRINGS:
            document[name] = list(value)
        else:
            document[name] = value
    for writer in WRITERS if complete else ():
        if version_field(writer) in document:
            for name in writer_fields(writer):
                document.setdefault(name, [] if FIELDS_BY_NAME[name].kind == Kind.STRINGS else None)
    return document
