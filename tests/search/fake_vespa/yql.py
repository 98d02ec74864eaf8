"""The /search/ subset: YQL parsing, matching and the three rank profiles.

    select (*|f, ...) from (product|sources *) where <expr> [limit n] [offset n] [;]
    <expr> := userQuery() | {targetHits:K}nearestNeighbor(field, input) | f contains "s"
            | f (=,<,<=,>,>=) n | range(f, a, b) | true | false | (<expr>) | and | or | !

userQuery() matches the `query` text against the default fieldset (lower-cased word tokens) with
`model.type` all, any, or weakAnd (Vespa's default, treated as any). nearestNeighbor is exact: the
K nearest documents by angular distance among those the rest of the query admits (Vespa filters
before the HNSW search). Scores follow search.backends.base.BaseBackend.search, which is also
what the generated rank profiles compute: bm25 with the field weights, cosine, and hybrid's
linear normalisation over the candidates; the numbers need not equal Vespa's, the order does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

WORD = re.compile(r"\w+", re.UNICODE)
_YQL_TOKEN = re.compile(
    r"\s*(?:(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<annot>\{[^}]*\})|(?P<op><=|>=|!=|=|<|>|\(|\)|,|;|!|\*)|(?P<name>[A-Za-z_][A-Za-z0-9_.]*))"
)
BM25_K1, BM25_B = 1.2, 0.75


class QueryError(ValueError):
    """An invalid query (HTTP 400 with root.errors)."""


def words(text: Any) -> list[str]:
    if isinstance(text, list):
        return [w for item in text for w in words(item)]
    return [w.lower() for w in WORD.findall(text or "")]


def _tokens(yql: str) -> list[tuple[str, Any]]:
    out, pos, yql = [], 0, yql.strip()
    while pos < len(yql):
        m = _YQL_TOKEN.match(yql, pos)
        if not m or m.end() == pos:
            raise QueryError(f"Could not parse YQL at {yql[pos:]!r}")
        pos = m.end()
        if m.group("str") is not None:
            out.append(("str", re.sub(r"\\(.)", r"\1", m.group("str")[1:-1])))
        elif m.group("num") is not None:
            raw = m.group("num")
            out.append(("num", float(raw) if "." in raw else int(raw)))
        elif m.group("annot") is not None:
            out.append(("annot", m.group("annot")))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            name = m.group("name")
            out.append(("kw", name.lower()) if name.lower() in _KEYWORDS else ("name", name))
    return out


_KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "contains",
    "limit",
    "offset",
    "sources",
    "true",
    "false",
}


@dataclass
class Parsed:
    where: Any
    limit: int | None = None
    offset: int | None = None
    nn: list[tuple[str, str, int]] = field(default_factory=list)  # (field, input, targetHits)


class _Parser:
    def __init__(self, tokens, doctype: str) -> None:
        self.tokens, self.pos, self.doctype, self.nn = tokens, 0, doctype, []

    def peek(self, ahead: int = 0):
        i = self.pos + ahead
        return self.tokens[i] if i < len(self.tokens) else (None, None)

    def take(self, expected=None):
        tok = self.peek()
        if tok[0] is None or (expected is not None and tok != expected):
            raise QueryError(f"Could not parse YQL: expected {expected!r}, got {tok[1]!r}")
        self.pos += 1
        return tok

    def parse(self) -> Parsed:
        self.take(("kw", "select"))
        while self.peek() != ("kw", "from"):
            self.take()
        self.take()
        if self.peek() == ("kw", "sources"):
            self.take()
            self.take()  # * or a source name
        else:
            _, name = self.take()
            if name != self.doctype:
                raise QueryError(f"Could not resolve source ref '{name}'")
        self.take(("kw", "where"))
        where = self.or_()
        parsed = Parsed(where, nn=self.nn)
        while self.peek()[0] is not None:
            tok = self.take()
            if tok == ("kw", "limit"):
                parsed.limit = int(self.take()[1])
            elif tok == ("kw", "offset"):
                parsed.offset = int(self.take()[1])
            elif tok != ("op", ";"):
                raise QueryError(f"Could not parse YQL near {tok[1]!r}")
        return parsed

    def or_(self):
        nodes = [self.and_()]
        while self.peek() == ("kw", "or"):
            self.take()
            nodes.append(self.and_())
        return nodes[0] if len(nodes) == 1 else ("or", nodes)

    def and_(self):
        nodes = [self.unary()]
        while self.peek() == ("kw", "and"):
            self.take()
            nodes.append(self.unary())
        return nodes[0] if len(nodes) == 1 else ("and", nodes)

    def unary(self):
        tok = self.peek()
        if tok == ("op", "!"):
            self.take()
            return ("not", self.unary())
        if tok == ("op", "("):
            self.take()
            node = self.or_()
            self.take(("op", ")"))
            return node
        if tok in (("kw", "true"), ("kw", "false")):
            self.take()
            return ("const", tok[1] == "true")
        annotation = None
        if tok[0] == "annot":
            annotation = self.take()[1]
            tok = self.peek()
        kind, name = self.take()
        if kind != "name":
            raise QueryError(f"Could not parse YQL near {name!r}")
        if name == "userQuery":
            self.take(("op", "("))
            self.take(("op", ")"))
            return ("userQuery",)
        if name == "nearestNeighbor":
            m = re.search(r"targetHits\s*:\s*(\d+)", annotation or "")
            if not m:
                raise QueryError("nearestNeighbor needs a targetHits annotation")
            self.take(("op", "("))
            tensor_field = self.take()[1]
            self.take(("op", ","))
            query_input = self.take()[1]
            self.take(("op", ")"))
            self.nn.append((tensor_field, query_input, int(m.group(1))))
            return ("nn", len(self.nn) - 1)
        if name == "range":
            self.take(("op", "("))
            range_field = self.take()[1]
            self.take(("op", ","))
            low = self.take()[1]
            self.take(("op", ","))
            high = self.take()[1]
            self.take(("op", ")"))
            return ("range", range_field, low, high)
        op = self.take()
        if op == ("kw", "contains"):
            return ("contains", name, str(self.take()[1]))
        if op[0] == "op" and op[1] in ("=", "<", "<=", ">", ">="):
            return ("cmp", op[1], name, self.take()[1])
        raise QueryError(f"Could not parse YQL near {op[1]!r}")


def parse(yql: str, doctype: str) -> Parsed:
    return _Parser(_tokens(yql), doctype).parse()


@dataclass
class Context:
    """One query's evaluation state over the stored documents."""

    terms: list[str]
    model_type: str
    text_fields: tuple[str, ...]
    nn_sets: list[
        set[str] | None
    ]  # per nearestNeighbor clause: the ids it matched (None: any with the field)
    nn_fields: list[str]


def _text_tokens(doc: dict[str, Any], text_fields: tuple[str, ...]) -> set[str]:
    return {w for name in text_fields for w in words(doc.get(name))}


def evaluate(node, doc_id: str, doc: dict[str, Any], ctx: Context) -> bool:
    kind = node[0]
    if kind == "const":
        return node[1]
    if kind == "and":
        return all(evaluate(child, doc_id, doc, ctx) for child in node[1])
    if kind == "or":
        return any(evaluate(child, doc_id, doc, ctx) for child in node[1])
    if kind == "not":
        return not evaluate(node[1], doc_id, doc, ctx)
    if kind == "userQuery":
        if not ctx.terms:
            return False
        tokens = _text_tokens(doc, ctx.text_fields)
        hits = [t in tokens for t in ctx.terms]
        return all(hits) if ctx.model_type == "all" else any(hits)
    if kind == "nn":
        matched = ctx.nn_sets[node[1]]
        if matched is None:
            return doc.get(ctx.nn_fields[node[1]]) is not None
        return doc_id in matched
    if kind == "contains":
        value = doc.get(node[1])
        values = value if isinstance(value, list) else [value]
        return any(isinstance(v, str) and v.lower() == node[2].lower() for v in values)
    if kind == "range":
        value = doc.get(node[1])
        return isinstance(value, int | float) and node[2] <= value <= node[3]
    value = doc.get(node[2])
    if not isinstance(value, int | float):
        return False
    return {"=": value == node[3], "<": value < node[3], "<=": value <= node[3], ">": value > node[3]}.get(
        node[1], value >= node[3]
    )


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def bm25_scores(
    docs: dict[str, dict[str, Any]], candidates: list[str], terms: list[str], weights: dict[str, float]
) -> dict[str, float]:
    """Weighted sum over the text fields of each field's BM25 (Vespa's bm25(field) feature)."""
    total = len(docs)
    scores = dict.fromkeys(candidates, 0.0)
    if not terms or not total:
        return scores
    for name, weight in weights.items():
        tokenized = {doc_id: words(doc.get(name)) for doc_id, doc in docs.items()}
        average = sum(len(t) for t in tokenized.values()) / total or 1.0
        for term in set(terms):
            n = sum(1 for t in tokenized.values() if term in t)
            if not n:
                continue
            idf = math.log(1 + (total - n + 0.5) / (n + 0.5))
            for doc_id in candidates:
                tokens = tokenized[doc_id]
                tf = tokens.count(term)
                if tf:
                    norm = BM25_K1 * (1 - BM25_B + BM25_B * len(tokens) / average)
                    scores[doc_id] += weight * idf * tf * (BM25_K1 + 1) / (tf + norm)
    return scores


def normalize(values: dict[str, float | None]) -> dict[str, float]:
    """Linear to [0, 1] over the candidates the side found (min -> 0, max -> 1, all equal -> 1);
    a candidate it did not find -> 0."""
    found = [v for v in values.values() if v is not None]
    if not found:
        return dict.fromkeys(values, 0.0)
    low, high = min(found), max(found)
    return {
        k: 0.0 if v is None else (1.0 if high == low else (v - low) / (high - low)) for k, v in values.items()
    }
