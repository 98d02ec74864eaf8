"""Webhook authenticity: HMAC-SHA256 over the raw body, compared as bytes in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

DIGEST_SIZE = hashlib.sha256().digest_size


def decode_signature(header: str | None) -> bytes | None:
    """The 32 raw bytes of an X-Shopify-Hmac-Sha256 header, or None if it cannot be one.

    Missing, non-ASCII, non-base64 or wrong-length values are all "no signature": the caller
    answers 401, never 500 (hmac.compare_digest raises TypeError on non-ASCII str).
    """
    if not header:
        return None
    try:
        raw = header.strip().encode("ascii")
        digest = base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None
    return digest if len(digest) == DIGEST_SIZE else None


def sign(body: bytes, secret: str) -> str:
    """The base64 signature Shopify would send for `body` (used by tests, the demo and benches)."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def verify(body: bytes, signature: bytes, secrets: Iterable[str]) -> bool:
    """True if `signature` is the HMAC of the raw `body` under any accepted secret.

    Every secret is tried (no early exit on the first mismatch leaks nothing useful: the set of
    secrets is fixed, and each comparison is constant-time).
    """
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
        matched |= hmac.compare_digest(expected, signature)
    return matched
