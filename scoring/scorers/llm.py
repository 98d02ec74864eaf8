"""The LLM scorer: any OpenAI-compatible chat-completions endpoint, with the local scorer behind it.

The model gets the product and its signals and must answer a JSON object
`{"score": <number in [0, 1]>, "explanation": "<one or two sentences>"}` and nothing else. The
answer is validated strictly; anything else is a failure. Failures never lose a score: the local
scorer answers instead and the reason is stored beside it.

Bounded in time: one deadline (LLM_TIMEOUT_SECONDS) covers every attempt of a product, each
request gets what is left of it, 429 and 5xx are retried (Retry-After honoured when it fits,
else exponential backoff with jitter) at most LLM_MAX_RETRIES times. A circuit breaker stops
asking after LLM_BREAKER_FAILURES failures in a row, for LLM_BREAKER_COOLDOWN_SECONDS: a down
endpoint then costs nothing per product. Only the stdlib (urllib) is used.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings

from ..signals import Signal
from . import ScoreResult
from .local import local_score

logger = logging.getLogger("shopsync.scoring.llm")

PROMPT_VERSION = "trend-v1"
SYSTEM_PROMPT = (
    "You rate how much a product in an online shop is trending right now, from 0 (not at all) to 1 "
    "(selling fast and in demand). You get the product and its signals, each with a normalized "
    "score in [0, 1]. Answer with one JSON object and nothing else: "
    '{"score": <number between 0 and 1>, "explanation": "<one or two sentences for the merchant>"}'
)
MAX_EXPLANATION = 600
BACKOFF_BASE_SECONDS = 0.5
MAX_RETRY_AFTER_SECONDS = 30.0


class LLMError(Exception):
    """The endpoint failed this product; `retryable` for 429, 5xx and connection trouble."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass
class CircuitBreaker:
    failures_to_open: int
    cooldown_seconds: float
    failures: int = 0
    opened_at: float | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Closed, or open long enough that one call may probe (half-open)."""
        with self._lock:
            return self.opened_at is None or time.monotonic() - self.opened_at >= self.cooldown_seconds

    def record(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.failures, self.opened_at = 0, None
                return
            self.failures += 1
            if self.failures >= self.failures_to_open:
                if self.opened_at is None:
                    logger.warning("LLM circuit open after %d failures in a row", self.failures)
                self.opened_at = time.monotonic()


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(base_url: str) -> CircuitBreaker:
    """One breaker per endpoint per process."""
    with _breakers_lock:
        if base_url not in _breakers:
            _breakers[base_url] = CircuitBreaker(
                settings.LLM_BREAKER_FAILURES, settings.LLM_BREAKER_COOLDOWN_SECONDS
            )
        return _breakers[base_url]


def reset_breakers() -> None:
    with _breakers_lock:
        _breakers.clear()


class LLMScorer:
    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        self.base_url = (base_url if base_url is not None else settings.LLM_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else settings.LLM_API_KEY
        self.model = model if model is not None else settings.LLM_MODEL
        self.timeout = timeout if timeout is not None else settings.LLM_TIMEOUT_SECONDS
        self.max_retries = max_retries if max_retries is not None else settings.LLM_MAX_RETRIES
        self.breaker = breaker_for(self.base_url)
        self.calls = 0  # HTTP requests sent (benchmarks count them)

    def score(self, product: dict, signals: dict[str, Signal]) -> ScoreResult:
        """The LLM's score, or the local one with the reason the LLM's is missing."""
        if not self.base_url or not self.model:
            return _fallback(signals, "LLM_BASE_URL or LLM_MODEL not set")
        if not self.breaker.allow():
            return _fallback(signals, "circuit open after repeated LLM failures")
        try:
            score, explanation = self._ask(product, signals)
        except LLMError as exc:
            self.breaker.record(ok=False)
            logger.info("LLM score failed, local used: %s", exc)
            return _fallback(signals, str(exc)[:250])
        self.breaker.record(ok=True)
        return ScoreResult(score, explanation, "llm", model=self.model, prompt_version=PROMPT_VERSION)

    def _ask(self, product: dict, signals: dict[str, Signal]) -> tuple[float, str]:
        deadline = time.monotonic() + self.timeout
        body = json.dumps(
            {
                "model": self.model,
                "temperature": 0,
                "response_format": {"type": "json_object"},
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": user_prompt(product, signals)},
                ],
            }
        ).encode()
        attempt = 0
        while True:
            try:
                return parse_answer(self._post(body, deadline))
            except LLMError as exc:
                if not exc.retryable or attempt >= self.max_retries:
                    raise
                delay = exc.retry_after
                if delay is None:
                    delay = BACKOFF_BASE_SECONDS * 2**attempt * random.uniform(0.5, 1.0)
                if time.monotonic() + delay >= deadline:
                    raise LLMError(f"{exc}; no time left to retry within {self.timeout:g}s") from exc
                time.sleep(delay)
                attempt += 1

    def _post(self, body: bytes, deadline: float) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise LLMError(f"timed out after {self.timeout:g}s")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(  # noqa: S310 (the configured https/http endpoint)
            f"{self.base_url}/chat/completions", data=body, headers=headers, method="POST"
        )
        self.calls += 1
        try:
            with urllib.request.urlopen(request, timeout=left) as response:  # noqa: S310
                return response.read()
        except urllib.error.HTTPError as exc:
            retryable = exc.code == 429 or exc.code >= 500
            raise LLMError(
                f"HTTP {exc.code} from the LLM endpoint",
                retryable=retryable,
                retry_after=_retry_after(exc.headers.get("Retry-After")),
            ) from exc
        except TimeoutError as exc:
            raise LLMError(f"no answer within {self.timeout:g}s") from exc
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError | socket.timeout):
                raise LLMError(f"no answer within {self.timeout:g}s") from exc
            raise LLMError(f"LLM endpoint unreachable: {reason}", retryable=True) from exc


def user_prompt(product: dict, signals: dict[str, Signal]) -> str:
    lines = [
        f"Product: {product.get('title', '')}",
        f"Type: {product.get('product_type') or '-'}; vendor: {product.get('vendor') or '-'}",
        f"Tags: {', '.join(product.get('tags') or []) or '-'}",
        "Signals (name: normalized score; detail):",
    ]
    lines += [f"- {name}: {signal.score:.3f}; {signal.detail}" for name, signal in sorted(signals.items())]
    return "\n".join(lines)


def parse_answer(raw: bytes) -> tuple[float, str]:
    """The score and explanation from a chat-completions response, or LLMError (not retried)."""
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
        answer = json.loads(content)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"malformed LLM answer: {exc}") from exc
    if not isinstance(answer, dict) or set(answer) != {"score", "explanation"}:
        raise LLMError("LLM answer must be exactly {score, explanation}")
    score, explanation = answer["score"], answer["explanation"]
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
        raise LLMError(f"LLM score must be a number in [0, 1], got {score!r}")
    if not isinstance(explanation, str) or not explanation.strip():
        raise LLMError("LLM explanation must be a non-empty string")
    return round(float(score), 4), explanation.strip()[:MAX_EXPLANATION]


def _retry_after(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _fallback(signals: dict[str, Signal], reason: str) -> ScoreResult:
    local = local_score(signals)
    return ScoreResult(
        local.score,
        local.explanation,
        "local",
        model=local.model,
        prompt_version=PROMPT_VERSION,
        fallback_reason=reason,
    )
