"""A protocol-faithful Vespa stand-in for tests and benchmarks (reference/vespa.md §6).

An ASGI app (`app.FakeVespa`) served by Hypercorn on loopback (`server.FakeVespaServer`), speaking
HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on one port, accepting gzip bodies. It implements
/document/v1 (put, update, remove, get, visit, delete-where) with Vespa's decision table, the
document-selection subset our conditions use, a /search/ subset (YQL with userQuery(),
nearestNeighbor and filters; the bm25, semantic and hybrid rank profiles, a 400-hit cap), the
`timeout` parameter (a 504 when an injected latency exceeds it), dry runs, traces, tombstones,
and fault injection: statuses, fixed or ranged latency, apply-then-fail, connections dropped
before or after applying, duplicate applies, matched by method, operation, path, id or parameter.
Not implemented: the `match` and tensor `modify` update operators, `order by`, `now()`.
It is never a production backend.
"""

from .app import FakeVespa, Rule
from .server import FakeVespaServer

__all__ = ["FakeVespa", "FakeVespaServer", "Rule"]
