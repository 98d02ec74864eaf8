"""A protocol-faithful Vespa stand-in for tests and benchmarks (reference/vespa.md §6).

An ASGI app (`app.FakeVespa`) served by Hypercorn on loopback (`server.FakeVespaServer`), speaking
HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on one port, accepting gzip bodies. It implements
/document/v1 (put, update, remove, get, visit, delete-where) with Vespa's decision table, the
document-selection subset our conditions use, a /search/ subset (YQL with userQuery(),
nearestNeighbor and filters; the bm25, semantic and hybrid rank profiles) and fault injection.
It is never a production backend.
"""

from .app import FakeVespa, Rule
from .server import FakeVespaServer

__all__ = ["FakeVespa", "FakeVespaServer", "Rule"]
