"""Vespa's document selection language, the subset our conditions and visits use.

`or` < `and` < `not`, parentheses, `true`/`false`, `<doctype>` (true when the type matches),
`<doctype>.<field>` alone (shorthand for `!= null`), and comparisons `v op v` with
op in ==, !=, <, <=, >, >= over fields, integers, floats, quoted strings and `null`.

Three-valued: a missing field is null; == and != against null are defined, any other comparison
with null (or of a number with a string) is INVALID, and a root result of INVALID is no match:
`product.vv_shopify < 3` on a document without that field fails, which is why our conditions
say `product.vv_shopify == null or product.vv_shopify < 3`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

INVALID = None  # the third truth value
_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+\.\d*(?:[eE][-+]?\d+)?|-?\d+)|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<op>==|!=|<=|>=|<|>|\(|\))|(?P<name>[A-Za-z_][A-Za-z0-9_.]*))"
)


class SelectionError(ValueError):
    """A malformed selection, or one naming a field the schema does not have (HTTP 400)."""


class _Field:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_DOCTYPE = object()  # a bare document type name


def _tokens(text: str) -> list[tuple[str, Any]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SelectionError(f"cannot parse selection at {text[pos:]!r}")
        pos = m.end()
        if m.group("num") is not None:
            raw = m.group("num")
            out.append(("val", float(raw) if "." in raw or "e" in raw.lower() else int(raw)))
        elif m.group("str") is not None:
            out.append(("val", re.sub(r"\\(.)", r"\1", m.group("str")[1:-1])))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            name = m.group("name")
            low = name.lower()
            if low in ("and", "or", "not"):
                out.append(("kw", low))
            elif low == "null":
                out.append(("val", None))
            elif low in ("true", "false"):
                out.append(("bool", low == "true"))
            else:
                out.append(("name", name))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]], doctype: str, fields: frozenset[str]) -> None:
        self.tokens, self.pos, self.doctype, self.fields = tokens, 0, doctype, fields

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None:
            raise SelectionError("unexpected end of selection")
        self.pos += 1
        return tok

    def parse(self):
        node = self.or_()
        if self.peek() is not None:
            raise SelectionError(f"unexpected {self.peek()[1]!r} in selection")
        return node

    def or_(self):
        nodes = [self.and_()]
        while self.peek() == ("kw", "or"):
            self.take()
            nodes.append(self.and_())
        return nodes[0] if len(nodes) == 1 else ("or", nodes)

    def and_(self):
        nodes = [self.not_()]
        while self.peek() == ("kw", "and"):
            self.take()
            nodes.append(self.not_())
        return nodes[0] if len(nodes) == 1 else ("and", nodes)

    def not_(self):
        if self.peek() == ("kw", "not"):
            self.take()
            return ("not", self.not_())
        return self.primary()

    def primary(self):
        if self.peek() == ("op", "("):
            self.take()
            node = self.or_()
            if self.take() != ("op", ")"):
                raise SelectionError("missing ')' in selection")
            return node
        left = self.value()
        tok = self.peek()
        if tok is not None and tok[0] == "op" and tok[1] not in ("(", ")"):
            self.take()
            return ("cmp", tok[1], left, self.value())
        if left is _DOCTYPE:
            return ("const", True)
        if isinstance(left, _Field):
            return ("cmp", "!=", left, None)
        if isinstance(left, bool):
            return ("const", left)
        raise SelectionError(f"a bare value {left!r} is not a selection")

    def value(self):
        kind, val = self.take()
        if kind in ("val", "bool"):
            return val
        if kind != "name":
            raise SelectionError(f"unexpected {val!r} in selection")
        doctype, _, field = val.partition(".")
        if doctype != self.doctype:
            raise SelectionError(f"unknown document type {doctype!r} in selection")
        if not field:
            return _DOCTYPE
        if field not in self.fields:
            raise SelectionError(f"no field '{field}' in document type '{doctype}'")
        return _Field(field)


@lru_cache(maxsize=4096)
def compile_selection(text: str, doctype: str, fields: frozenset[str]):
    return _Parser(_tokens(text), doctype, fields).parse()


def _resolve(value, doc: dict[str, Any]):
    return doc.get(value.name) if isinstance(value, _Field) else value


def _compare(op: str, a, b):
    if op in ("==", "!="):
        if a is None or b is None:
            equal = a is None and b is None
        elif (isinstance(a, int | float) and isinstance(b, int | float)) or type(a) is type(b):
            equal = a == b
        else:
            return INVALID
        return equal if op == "==" else not equal
    if a is None or b is None:
        return INVALID
    numbers = isinstance(a, int | float) and isinstance(b, int | float)
    if not numbers and not (isinstance(a, str) and isinstance(b, str)):
        return INVALID
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def evaluate(node, doc: dict[str, Any]):
    """True, False or INVALID for the document's fields `doc`."""
    kind = node[0]
    if kind == "const":
        return node[1]
    if kind == "cmp":
        return _compare(node[1], _resolve(node[2], doc), _resolve(node[3], doc))
    if kind == "not":
        value = evaluate(node[1], doc)
        return INVALID if value is INVALID else not value
    values = [evaluate(child, doc) for child in node[1]]
    if kind == "and":
        if any(v is False for v in values):
            return False
        return INVALID if any(v is INVALID for v in values) else True
    if any(v is True for v in values):
        return True
    return INVALID if any(v is INVALID for v in values) else False


def matches(text: str, doctype: str, fields: frozenset[str], doc: dict[str, Any]) -> bool:
    return evaluate(compile_selection(text, doctype, fields), doc) is True
