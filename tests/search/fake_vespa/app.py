"""The stand-in's state and ASGI app: /document/v1, /search/, and the /_fake control plane."""

from __future__ import annotations

import asyncio
import gzip
import heapq
import math
import random
import re
import threading
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from search.backends.base import WRITERS, version_field
from search.fields import EMBEDDING_DIMENSIONS, FIELDS, TEXT_WEIGHTS, Kind
from search.vespa_app.build import CONTENT_CLUSTER, DOCUMENT_TYPE

from . import selection, yql

DOCV1 = re.compile(r"^/document/v1/(?P<ns>[^/]+)/(?P<type>[^/]+)/docid(?:/(?P<rest>.*))?$")
JSON_HEADERS = [(b"content-type", b"application/json; charset=UTF-8")]
MAX_HITS = 400  # the default query profile's maxHits
PROFILES = ("bm25", "semantic", "hybrid", "default", "unranked")  # the last two are built in
MESSAGES = {
    429: "Rejecting execution due to overload: 256 requests already enqueued",
    503: "Could not produce a response at this time",
    500: "Unspecified error",
    504: "Request timeout after 180000ms",
    507: "[UNKNOWN(251009) @ tcp/fake:19107/default]: ReturnCode(NO_SPACE, External feed is blocked "
    "due to resource exhaustion: disk on node 0 [fake] is 78.0% full (the configured limit is 75.0%))",
    400: "Injected bad request",
    413: "Request body too large",
}


class HTTPError(Exception):
    def __init__(self, status: int, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra or {}


@dataclass
class Rule:
    """A fault (reference/vespa.md §6.7). Matches requests by `method`, `operation`, `path` and
    `doc_id` (regexes) and the presence of a query `param`; fires after `after_n` matches, `count`
    times (None: for ever), with `probability`. Actions:

    - `status`: answer it before applying;
    - `latency_ms`: a fixed delay, or [a, b] for a uniform one; with a `timeout` parameter shorter
      than the delay, the answer is 504 after the timeout, the operation applied when
      `apply_on_timeout` (a server that finished after the client gave up) or not; with
      `honor_timeout` off, the full delay whatever the timeout (the client's own timeout ends it);
    - `apply_then_fail`: apply, then answer this status (500, 504: the client cannot tell);
    - `drop_connection`: "before" or "after" applying, the answer breaks off mid-body;
    - `duplicate_apply`: apply the operation twice (a re-sent message).
    """

    status: int | None = None
    latency_ms: float | list[float] = 0.0
    honor_timeout: bool = True  # False: answer after the latency whatever timeout was asked (a hung node)
    apply_on_timeout: bool = True
    apply_then_fail: int | None = None
    drop_connection: str | None = None  # "before" or "after" applying
    duplicate_apply: bool = False
    method: str | None = None
    operation: str | None = None  # put, update, remove, get, visit, search
    path: str | None = None
    doc_id: str | None = None
    param: str | None = None
    count: int | None = 1
    after_n: int = 0
    probability: float = 1.0
    seen: int = 0

    def __post_init__(self) -> None:
        if self.drop_connection not in (None, "before", "after"):
            raise ValueError(f"drop_connection must be 'before' or 'after', got {self.drop_connection!r}")

    def matches(self, method: str, operation: str, path: str, doc_id: str, params: dict[str, str]) -> bool:
        if self.method and self.method != method:
            return False
        if self.operation and self.operation != operation:
            return False
        if self.path and not re.search(self.path, path):
            return False
        if self.param and self.param not in params:
            return False
        return not (self.doc_id and not re.search(self.doc_id, doc_id))

    def delay_seconds(self, rng: random.Random) -> float:
        if isinstance(self.latency_ms, list | tuple):
            low, high = self.latency_ms
            return rng.uniform(low, high) / 1000
        return self.latency_ms / 1000


class Dropped(Exception):
    """The answer breaks off mid-body (the connection or stream is torn down)."""


@dataclass
class Knobs:
    max_inflight: int | None = None  # automatic 429 beyond this many concurrent document operations
    feed_block: bool = False  # every write answers 507
    ignore_undefined_fields: bool = False
    log_bodies: bool = False  # keep request and response bodies in the log


@dataclass
class Decision:
    status: int
    body: dict[str, Any]
    applied: bool = False
    note: str = ""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class FakeVespa:
    """State (documents, faults, request log) and the ASGI entry point."""

    def __init__(self, *, seed: int = 0, log_size: int = 100_000) -> None:
        self.doctype = DOCUMENT_TYPE
        self.cluster = CONTENT_CLUSTER
        self.kinds: dict[str, Kind] = {f.name: f.kind for f in FIELDS}
        self.kinds.update({version_field(w): Kind.LONG for w in WRITERS})
        self.field_names = frozenset(self.kinds)
        self.docs: dict[str, dict[str, Any]] = {}  # full id -> fields
        self.tombstones: set[str] = set()  # full ids removed (and not written since)
        self.rules: list[Rule] = []
        self.knobs = Knobs()
        self.log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self.lock = threading.RLock()  # tests read state from another thread than the server's
        self.rng = random.Random(seed)
        self.inflight = 0
        self.seq = 0

    # --- control (in-process, or through /_fake) -------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.docs.clear()
            self.tombstones.clear()
            self.rules.clear()
            self.knobs = Knobs()
            self.log.clear()

    def add_faults(self, *rules: Rule) -> None:
        with self.lock:
            self.rules.extend(rules)

    def clear_faults(self) -> None:
        with self.lock:
            self.rules.clear()

    def requests(self, operation: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [entry for entry in self.log if operation is None or entry["operation"] == operation]

    def seed(self, documents: dict[str, dict[str, Any]], *, namespace: str = "shopsync") -> None:
        """Put documents in place directly (no log, no faults), fields as document/v1 takes them."""
        with self.lock:
            for user_id, fields in documents.items():
                stored, _ = self._fields(dict(fields), update=False, current={})
                self.docs[f"id:{namespace}:{self.doctype}::{user_id}"] = stored

    def user_docs(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {full_id.split("::", 1)[1]: dict(fields) for full_id, fields in self.docs.items()}

    # --- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = dict(scope["headers"])
        if body and headers.get(b"content-encoding") == b"gzip":
            body = gzip.decompress(body)
        try:
            status, payload, extra_headers = await self.handle(
                scope["method"],
                scope["raw_path"].decode("latin-1"),
                scope["query_string"].decode(),
                body,
                scope.get("http_version", "1.1"),
            )
        except Dropped:
            # Headers promise a body that never comes; the server then tears the stream (HTTP/2)
            # or the connection (HTTP/1.1) down, as a crashed container or a proxy would.
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]}
            )
            await send({"type": "http.response.body", "body": b'{"pathId":', "more_body": True})
            raise
        data = orjson.dumps(payload)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(data)).encode()), *extra_headers],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def handle(self, method: str, raw_path: str, query: str, body: bytes, http_version: str):
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        path = raw_path.split("?", 1)[0]
        if path in ("/ApplicationStatus", "/state/v1/health"):
            return 200, {"status": {"code": "up"}}, []
        if path.startswith("/_fake/"):
            return self._control(method, path, body)
        if path.rstrip("/") == "/search":
            operation, doc_id = "search", ""
        else:
            m = DOCV1.match(path)
            if not m:
                return 404, {"pathId": path, "message": f"Nothing at '{path}'"}, []
            rest = m.group("rest")
            if not rest:
                operation, doc_id = ("visit" if method == "GET" else "delete-where"), ""
            else:
                operation = {"POST": "put", "PUT": "update", "DELETE": "remove", "GET": "get"}.get(method, "")
                if not operation:
                    return 405, {"pathId": path, "message": f"'{method}' not allowed at '{path}'"}, []
                doc_id = unquote(rest)
        with self.lock:
            self.seq += 1
            seq = self.seq
            rule = self._fire(method, operation, path, doc_id, params)
        entry = {
            "seq": seq,
            "http_version": http_version,
            "method": method,
            "path": path,
            "params": params,
            "operation": operation,
            "id": doc_id,
        }
        if self.knobs.log_bodies:
            entry["body"] = body
        for name in ("route", "tracelevel", "dryRun"):
            if name in params:
                entry[name] = params[name]

        def decide() -> Decision:
            return self._decide(
                method, operation, path, m if operation != "search" else None, doc_id, params, body
            )

        dropped = rule is not None and rule.drop_connection is not None
        self.inflight += 1  # the latency below is time the operation is in flight
        try:
            delay = rule.delay_seconds(self.rng) if rule is not None else 0.0
            limit = _seconds(params.get("timeout")) if operation != "search" else None
            if dropped:
                applied = rule.drop_connection == "after" and decide().applied
                decision = Decision(0, {}, applied, "connection dropped")
            elif delay and limit is not None and delay > limit and rule.honor_timeout:
                await asyncio.sleep(limit)
                applied = rule.apply_on_timeout and decide().applied
                message = f"Request timeout after {round(limit * 1000)}ms"
                decision = Decision(
                    504, {"pathId": path, "id": doc_id, "message": message}, applied, "timeout"
                )
            else:
                if delay:
                    await asyncio.sleep(delay)
                decision = self._answer(rule, operation, path, decide)
        finally:
            self.inflight -= 1
        entry.update(status=decision.status, applied=decision.applied, note=decision.note)
        if self.knobs.log_bodies:
            entry["response"] = decision.body
        if operation not in ("search", "") and params.get("tracelevel", "0") not in ("", "0"):
            decision.body["trace"] = []
        with self.lock:
            self.log.append(entry)
        if dropped:
            raise Dropped()
        return decision.status, decision.body, decision.headers

    def _answer(self, rule: Rule | None, operation: str, path: str, decide) -> Decision:
        """The answer after any delay: backpressure, an injected status, or the operation itself
        (applied twice, or applied and then answered with an error, when a rule says so)."""
        if (
            self.knobs.max_inflight is not None
            and self.inflight > self.knobs.max_inflight
            and operation in ("put", "update", "remove")
        ):
            return Decision(429, {"pathId": path, "message": MESSAGES[429]})
        if rule is not None and rule.status:
            return Decision(rule.status, {"pathId": path, "message": MESSAGES.get(rule.status, "fault")})
        decision = decide()
        if rule is not None and rule.duplicate_apply and decision.applied:
            decide()  # the same message applied again
            decision.note = (decision.note + " applied twice").strip()
        if rule is not None and rule.apply_then_fail:
            note = f"applied, then answered {rule.apply_then_fail}"
            message = MESSAGES.get(rule.apply_then_fail, "")
            return Decision(
                rule.apply_then_fail, {"pathId": path, "message": message}, decision.applied, note
            )
        return decision

    def _fire(
        self, method: str, operation: str, path: str, doc_id: str, params: dict[str, str]
    ) -> Rule | None:
        for rule in self.rules:
            if not rule.matches(method, operation, path, doc_id, params):
                continue
            rule.seen += 1
            if rule.seen <= rule.after_n or (rule.count is not None and rule.count <= 0):
                continue
            if rule.probability < 1.0 and self.rng.random() >= rule.probability:
                continue
            if rule.count is not None:
                rule.count -= 1
            return rule
        return None

    def _control(self, method: str, path: str, body: bytes):
        if path == "/_fake/reset" and method == "POST":
            self.reset()
            return 200, {}, []
        if path == "/_fake/faults" and method == "POST":
            self.add_faults(*(Rule(**spec) for spec in orjson.loads(body)))
            return 200, {"rules": len(self.rules)}, []
        if path == "/_fake/knobs" and method == "POST":
            with self.lock:
                for key, value in orjson.loads(body).items():
                    setattr(self.knobs, key, value)
            return 200, {}, []
        if path == "/_fake/log" and method == "GET":
            return 200, [{k: v for k, v in e.items() if k != "body"} for e in self.requests()], []
        if path == "/_fake/docs" and method == "PUT":  # seed state: {user id: {field: value}}
            try:
                self.seed(orjson.loads(body))
            except HTTPError as exc:
                return exc.status, {"message": exc.message}, []
            return 200, {"documents": len(self.docs)}, []
        if path == "/_fake/stats" and method == "GET":
            with self.lock:
                statuses: dict[str, int] = {}
                for entry in self.log:
                    key = f"{entry['operation']} {entry['status']}"
                    statuses[key] = statuses.get(key, 0) + 1
                return 200, {"documents": len(self.docs), "requests": statuses}, []
        if path == "/_fake/docs" and method == "GET":
            return 200, self.user_docs(), []
        return 404, {"message": f"Nothing at '{path}'"}, []

    # --- documents -------------------------------------------------------------------------------

    def _decide(self, method, operation, path, m, doc_id, params, body) -> Decision:
        try:
            if operation == "search":
                return self._search(params, body)
            if m.group("type") != self.doctype:
                raise HTTPError(400, f"Document type {m.group('type')} does not exist")
            ns = m.group("ns")
            if operation in ("visit", "delete-where"):
                return self._visit(operation, path, ns, params)
            full_id = f"id:{ns}:{self.doctype}::{doc_id}"
            with self.lock:
                return self._document(operation, path, full_id, params, body)
        except HTTPError as exc:
            if operation == "search":
                error = {"code": 4, "summary": "Invalid query parameter", "message": exc.message}
                return Decision(exc.status, {"root": {"id": "toplevel", "relevance": 1.0, "errors": [error]}})
            return Decision(exc.status, {"pathId": path, "message": exc.message, **exc.extra})

    def _document(self, operation, path, full_id, params, body) -> Decision:
        ok = {"pathId": path, "id": full_id}
        doc = self.docs.get(full_id)
        if operation == "get":
            if doc is None:
                return Decision(404, ok)
            wanted = params.get("fieldSet", f"{self.doctype}:[document]").split(":", 1)[-1]
            names = None if wanted.startswith("[") else set(wanted.split(","))
            fields = {k: _render(v, self.kinds[k]) for k, v in doc.items() if names is None or k in names}
            return Decision(200, {**ok, "fields": fields})
        request = {}
        if operation in ("put", "update"):
            try:
                request = orjson.loads(body) if body else None
            except orjson.JSONDecodeError as exc:
                raise HTTPError(400, f"Could not parse document body: {exc}") from None
            if not isinstance(request, dict):
                raise HTTPError(400, "expected start of root object")
            if "fields" not in request:
                raise HTTPError(400, 'document is missing the required "fields" field')
            # Fields are parsed against the schema before anything else: a bad one is a 400 even
            # for an update that would find no document.
            self._fields(request["fields"], update=operation == "update", current={})
        condition = params.get("condition", request.get("condition"))
        create = params["create"].lower() == "true" if "create" in params else request.get("create") is True
        if self.knobs.feed_block:
            return Decision(507, {**ok, "message": MESSAGES[507]})
        if condition:
            try:
                compiled = selection.compile_selection(condition, self.doctype, self.field_names)
            except selection.SelectionError as exc:
                raise HTTPError(400, str(exc)) from None
        if doc is None:
            if operation == "remove":
                if condition:
                    return _failed(ok, "Document does not exist")
                return Decision(200, ok, note="not found")
            if condition and not create:
                return _failed(ok, "Document does not exist")
            if operation == "update" and not create:
                return Decision(200, ok, note="not found")
        elif condition and selection.evaluate(compiled, doc) is not True:
            return _failed(ok, "Condition did not match document")
        headers = []
        dry_run = params.get("dryRun", "").lower() == "true"  # validated and decided, not applied
        if operation == "remove":
            if not dry_run:
                del self.docs[full_id]
                self.tombstones.add(full_id)
            return Decision(200, ok, applied=not dry_run, note="dry run" if dry_run else "")
        if operation == "put":
            new, ignored = self._fields(request["fields"], update=False, current={})
        else:
            new, ignored = self._fields(request["fields"], update=True, current=dict(doc or {}))
        if ignored:
            headers.append((b"x-vespa-ignored-fields", b"true"))
        if dry_run:
            return Decision(200, ok, note="dry run", headers=headers)
        note = ""
        if doc is None:
            note = "re-created after a remove" if full_id in self.tombstones else "created"
        self.tombstones.discard(full_id)
        self.docs[full_id] = new
        return Decision(200, ok, applied=True, note=note, headers=headers)

    def _fields(self, fields: Any, *, update: bool, current: dict[str, Any]):
        if not isinstance(fields, dict):
            raise HTTPError(400, "fields must be an object")
        ignored = False
        for name, value in fields.items():
            kind = self.kinds.get(name)
            if kind is None:
                if self.knobs.ignore_undefined_fields:
                    ignored = True
                    continue
                raise HTTPError(400, f"No field '{name}' in the structure of type '{self.doctype}'")
            if not update:
                current[name] = _coerce(name, kind, value)
                if current[name] is None:
                    del current[name]
                continue
            if not isinstance(value, dict) or len(value) != 1:
                raise HTTPError(400, f"Expected start of JSON object, got VALUE for update of '{name}'")
            ((op, arg),) = value.items()
            if op == "assign":
                coerced = _coerce(name, kind, arg)
                if coerced is None:
                    current.pop(name, None)
                else:
                    current[name] = coerced
            elif op in ("increment", "decrement", "multiply", "divide") and kind in (Kind.LONG, Kind.DOUBLE):
                if name in current:  # no value: a no-op (real Vespa's behaviour is unverified)
                    number = _coerce(name, kind, arg)
                    result = {
                        "increment": current[name] + number,
                        "decrement": current[name] - number,
                        "multiply": current[name] * number,
                    }.get(op)
                    if op == "divide":
                        result = current[name] / number
                    current[name] = int(result) if kind == Kind.LONG else float(result)
            elif op in ("add", "remove") and kind == Kind.STRINGS:
                items = _coerce(name, kind, arg) or []
                existing = list(current.get(name, []))
                current[name] = existing + items if op == "add" else [v for v in existing if v not in items]
            else:
                raise HTTPError(400, f"Unknown or unsupported update operation '{op}' on field '{name}'")
        return current, ignored

    def _visit(self, operation, path, ns, params) -> Decision:
        if operation == "delete-where" and ("selection" not in params or "cluster" not in params):
            raise HTTPError(400, "Must specify 'selection' and 'cluster' for delete-where")
        if "cluster" in params and params["cluster"] != self.cluster:
            raise HTTPError(400, f"Your Vespa deployment has no content cluster '{params['cluster']}'")
        if ("slices" in params) != ("sliceId" in params):
            raise HTTPError(400, "Must specify both 'slices' and 'sliceId', or neither")
        text = params.get("selection") or "true"
        try:
            compiled = selection.compile_selection(text, self.doctype, self.field_names)
        except selection.SelectionError as exc:
            raise HTTPError(400, str(exc)) from None
        wanted = int(params.get("wantedDocumentCount", "1"))
        after = params.get("continuation", "")
        prefix = f"id:{ns}:{self.doctype}::"
        with self.lock:
            page = []
            for full_id in sorted(self.docs):
                if not full_id.startswith(prefix) or full_id <= after:
                    continue
                if selection.evaluate(compiled, self.docs[full_id]) is True:
                    page.append(full_id)
                    if len(page) > wanted:
                        break
            more = len(page) > wanted
            page = page[:wanted]
            if operation == "delete-where":
                for full_id in page:
                    del self.docs[full_id]
                result = {"pathId": path, "documentCount": len(page)}
            else:
                documents = [
                    {"id": i, "fields": {k: _render(v, self.kinds[k]) for k, v in self.docs[i].items()}}
                    for i in page
                ]
                result = {"pathId": path, "documents": documents, "documentCount": len(page)}
        if more and page:
            result["continuation"] = page[-1]
        return Decision(200, result, applied=operation == "delete-where")

    # --- search ----------------------------------------------------------------------------------

    def _search(self, params: dict[str, str], body: bytes) -> Decision:
        request = orjson.loads(body) if body else {}
        request.update(params)  # URL parameters win
        text = request.get("yql")
        if not text:
            raise HTTPError(400, "No query")
        profile = request.get("ranking.profile", request.get("ranking", "default"))
        if isinstance(profile, dict):
            profile = profile.get("profile", "default")
        if profile not in PROFILES:
            raise HTTPError(
                400, f"Requested rank profile '{profile}' is undefined for document type 'product'"
            )
        try:
            parsed = yql.parse(text, self.doctype)
        except yql.QueryError as exc:
            raise HTTPError(400, str(exc)) from None
        inputs = _inputs(request)
        model_type = request.get("model.type", request.get("type", "weakAnd"))
        terms = yql.words(request.get("query", ""))
        hits = int(request.get("hits", parsed.limit if parsed.limit is not None else 10))
        if hits > MAX_HITS:
            raise HTTPError(400, f"{hits} hits requested, configured limit: {MAX_HITS}.")
        offset = int(request.get("offset", parsed.offset or 0))
        with self.lock:
            docs = {full_id: dict(doc) for full_id, doc in self.docs.items()}
        ctx = yql.Context(
            terms, model_type, tuple(TEXT_WEIGHTS), [None] * len(parsed.nn), [nn[0] for nn in parsed.nn]
        )
        cosines: dict[str, float] = {}
        for i, (tensor_field, name, target) in enumerate(parsed.nn):
            vector = inputs.get(name)
            if vector is None or len(vector) != EMBEDDING_DIMENSIONS:
                raise HTTPError(
                    400, f"Expected 'query({name})' to be a tensor<float>(x[{EMBEDDING_DIMENSIONS}])"
                )
            eligible = [
                d
                for d, doc in docs.items()
                if yql.evaluate(parsed.where, d, doc, ctx) and doc.get(tensor_field) is not None
            ]
            scored = {d: yql.cosine(docs[d][tensor_field], vector) for d in eligible}
            ctx.nn_sets[i] = set(heapq.nlargest(target, scored, key=lambda d: (scored[d], d)))
            cosines.update({d: scored[d] for d in ctx.nn_sets[i]})
        matched = [d for d, doc in docs.items() if yql.evaluate(parsed.where, d, doc, ctx)]
        relevance = self._rank(profile, docs, matched, terms, cosines, inputs, ctx)
        ordered = sorted(matched, key=lambda d: (-relevance[d], d))[offset : offset + hits]
        children = [
            {
                "id": d,
                "relevance": relevance[d],
                "source": self.cluster,
                "fields": {
                    "sddocname": self.doctype,
                    "documentid": d,
                    **{
                        k: _render(v, self.kinds[k])
                        for k, v in docs[d].items()
                        if self.kinds[k] != Kind.VECTOR
                    },
                },
            }
            for d in ordered
        ]
        root = {
            "id": "toplevel",
            "relevance": 1.0,
            "fields": {"totalCount": len(matched)},
            "coverage": {
                "coverage": 100,
                "documents": len(docs),
                "full": True,
                "nodes": 1,
                "results": 1,
                "resultsFull": 1,
            },
        }
        if children:
            root["children"] = children
        return Decision(200, {"root": root})

    def _rank(self, profile, docs, matched, terms, cosines, inputs, ctx) -> dict[str, float]:
        boost = float(inputs.get("trend_boost", 0.0))
        trend = {d: float(docs[d].get("trend_score") or 0.0) for d in matched}
        text_matched = [
            d
            for d in matched
            if terms and any(t in yql._text_tokens(docs[d], ctx.text_fields) for t in terms)
        ]
        if profile == "bm25":
            text = yql.bm25_scores(docs, matched, terms, TEXT_WEIGHTS)
            return {d: text[d] + boost * trend[d] for d in matched}
        if profile in ("default", "unranked"):
            return dict.fromkeys(matched, 0.0)
        if profile == "semantic":
            return {d: cosines.get(d, -1.0) + boost * trend[d] for d in matched}
        weight = float(inputs.get("semantic_weight", 0.5))
        text = yql.bm25_scores(docs, text_matched, terms, TEXT_WEIGHTS)
        text_n = yql.normalize({d: text.get(d) for d in matched})
        cos_n = yql.normalize({d: cosines.get(d) for d in matched})
        return {d: (1 - weight) * text_n[d] + weight * cos_n[d] + boost * trend[d] for d in matched}


def _failed(ok: dict[str, Any], why: str) -> Decision:
    message = f"[UNKNOWN(251013) @ tcp/fake:19107/default]: ReturnCode(TEST_AND_SET_CONDITION_FAILED, {why})"
    return Decision(412, {**ok, "message": message}, note=why)


def _inputs(request: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for key, value in request.items():
        m = re.fullmatch(r"(?:input|ranking\.features)\.query\((\w+)\)", key)
        if m:
            if isinstance(value, str):
                value = orjson.loads(value) if value.strip().startswith(("[", "{")) else float(value)
            if isinstance(value, dict):
                value = value.get("values")
            values[m.group(1)] = value
    for key, value in (request.get("input") or {}).items() if isinstance(request.get("input"), dict) else ():
        m = re.fullmatch(r"query\((\w+)\)", key)
        if m:
            values[m.group(1)] = value
    return values


def _coerce(name: str, kind: Kind, value: Any) -> Any:
    """A field value as the schema stores it; a value of the wrong type is a 400."""
    if value is None:
        return None
    if kind == Kind.STRING and isinstance(value, str):
        return value
    if (
        kind == Kind.LONG
        and isinstance(value, int)
        and not isinstance(value, bool)
        and -(2**63) <= value < 2**63
    ):
        return value
    if kind == Kind.DOUBLE and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == Kind.STRINGS and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if kind == Kind.VECTOR:
        cells = value.get("values") if isinstance(value, dict) and "values" in value else value
        if isinstance(value, dict) and "cells" in value:
            cells = [0.0] * EMBEDDING_DIMENSIONS
            for cell in value["cells"]:
                cells[int(cell["address"]["x"])] = cell["value"]
        if (
            isinstance(cells, list)
            and len(cells) == EMBEDDING_DIMENSIONS
            and all(
                isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c) for c in cells
            )
        ):
            return array("f", cells).tolist()  # stored as float32, as the schema says
    raise HTTPError(400, f"Invalid value for field '{name}' of type {kind.value}: {str(value)[:80]}")


def _render(value: Any, kind: Kind) -> Any:
    """A stored value as document/v1 renders it (dense tensors in the short form)."""
    if kind == Kind.VECTOR:
        return {"type": kind.value, "values": value}
    return value


def _seconds(value: str | None) -> float | None:
    """A document/v1 `timeout` ("5s", "500ms", "0.5", "1m") in seconds; None if absent or unreadable."""
    if not value:
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m)?\s*", value)
    if not m:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]
    return float(m.group(1)) * scale


_ = time  # the clock is not used yet (now() in selections is not in our subset)
