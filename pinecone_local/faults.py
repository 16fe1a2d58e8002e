"""Fault injection for testing clients: throttling, random errors, added latency, and scripted failures.

All switches live in one ``FaultState``; the CLI sets them at start, and ``PUT /admin/faults`` changes them at run
time. For every request the server calls ``FaultState.decide`` *before* it changes anything, so an injected failure
never has a side effect. Precedence: scripted "fail next N" rules, then rate limits, then the random error share.
Latency is added to every matching request, failed or not.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError

DATA_KINDS = (
    "upsert",
    "query",
    "fetch",
    "fetch_by_metadata",
    "delete",
    "update",
    "describe_index_stats",
    "list",
    "list_namespaces",
    "describe_namespace",
    "delete_namespace",
    "create_namespace",
)
CONTROL_KINDS = ("create_index", "describe_index", "list_indexes", "delete_index", "configure_index")
ANY_KIND = "*"
ALL_KINDS = frozenset((*DATA_KINDS, *CONTROL_KINDS, ANY_KIND))
DEFAULT_ERROR_STATUS = 503


def _check_kind(kind: str) -> str:
    if kind not in ALL_KINDS:
        raise ValueError(f"unknown request kind {kind!r}; expected one of {sorted(ALL_KINDS)}")
    return kind


def _check_status(status: int) -> int:
    if not 400 <= status <= 599:
        raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
    return status


def _check_after(after: int) -> int:
    if after < 0:
        raise ValueError(f"after must be >= 0, got {after}")
    return after


@dataclass
class FailNext:
    """Let ``after`` requests of ``kind`` through, then fail the next ``remaining`` ones with ``status``."""

    kind: str
    remaining: int
    status: int = DEFAULT_ERROR_STATUS
    after: int = 0


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class FaultState:
    """The current fault configuration plus counters of what was injected."""

    error_rate: float = 0.0
    error_status: int = DEFAULT_ERROR_STATUS
    error_kinds: frozenset[str] = frozenset((ANY_KIND,))
    latency_ms: float = 0.0
    rate_limits: dict[str, float] = field(default_factory=dict)
    fail_next: list[FailNext] = field(default_factory=list)
    seed: int | None = None
    counters: dict[str, int] = field(default_factory=lambda: {"failed_next": 0, "rate_limited": 0, "random_errors": 0})
    _buckets: dict[tuple[str, str, str], _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _random: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self._random.seed(self.seed)

    @property
    def active(self) -> bool:
        """Whether any switch is on (the server skips ``decide`` otherwise)."""
        return bool(self.error_rate or self.latency_ms or self.rate_limits or self.fail_next)

    # --- configuration --------------------------------------------------------------------------------------------
    def apply(self, changes: dict[str, Any]) -> None:
        """Apply a partial configuration (the admin endpoint's body); raises ``ValueError`` on bad input."""
        with self._lock:
            if "error_rate" in changes:
                rate = float(changes["error_rate"])
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("error_rate must be between 0 and 1")
                self.error_rate = rate
            if "error_status" in changes:
                self.error_status = _check_status(int(changes["error_status"]))
            if "error_kinds" in changes:
                kinds = changes["error_kinds"] or [ANY_KIND]
                self.error_kinds = frozenset(_check_kind(str(k)) for k in kinds)
            if "latency_ms" in changes:
                latency = float(changes["latency_ms"])
                if latency < 0:
                    raise ValueError("latency_ms must be >= 0")
                self.latency_ms = latency
            if "rate_limits" in changes:
                limits = {_check_kind(str(k)): float(v) for k, v in (changes["rate_limits"] or {}).items()}
                if any(v <= 0 for v in limits.values()):
                    raise ValueError("rate limits must be positive requests per second")
                self.rate_limits = limits
                self._buckets.clear()
            if "fail_next" in changes:
                rules = [
                    FailNext(
                        kind=_check_kind(str(rule["kind"])),
                        remaining=int(rule.get("count", 1)),
                        status=_check_status(int(rule.get("status", DEFAULT_ERROR_STATUS))),
                        after=_check_after(int(rule.get("after", 0))),
                    )
                    for rule in changes["fail_next"] or []
                ]
                self.fail_next = [*self.fail_next, *rules] if changes.get("append") else rules
            if "seed" in changes and changes["seed"] is not None:
                self.seed = int(changes["seed"])
                self._random.seed(self.seed)

    def reset(self) -> None:
        """Turn every switch off and zero the counters."""
        with self._lock:
            self.error_rate = 0.0
            self.error_status = DEFAULT_ERROR_STATUS
            self.error_kinds = frozenset((ANY_KIND,))
            self.latency_ms = 0.0
            self.rate_limits = {}
            self.fail_next = []
            self._buckets.clear()
            for key in self.counters:
                self.counters[key] = 0

    def to_json(self) -> dict[str, Any]:
        """The configuration and counters, as the admin endpoint returns them."""
        with self._lock:
            return {
                "error_rate": self.error_rate,
                "error_status": self.error_status,
                "error_kinds": sorted(self.error_kinds),
                "latency_ms": self.latency_ms,
                "rate_limits": dict(self.rate_limits),
                "fail_next": [
                    {"kind": r.kind, "count": r.remaining, "status": r.status, "after": r.after} for r in self.fail_next
                ],
                "seed": self.seed,
                "counters": dict(self.counters),
            }

    # --- per request ----------------------------------------------------------------------------------------------
    def _take_token(self, kind: str, index: str, namespace: str, now: float) -> float:
        """Spend a token for the first matching limit; 0.0 if allowed, else seconds until a token is available."""
        rate = self.rate_limits.get(kind, self.rate_limits.get(ANY_KIND))
        if rate is None:
            return 0.0
        key = (index, namespace, kind)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=rate, updated=now)
        bucket.tokens = min(rate, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def decide(self, kind: str, index: str = "", namespace: str = "") -> tuple[float, ApiError | None]:
        """Return (seconds of latency to add, error to answer with or ``None``) for one request."""
        with self._lock:
            delay = self.latency_ms / 1000.0
            for rule in self.fail_next:
                if rule.kind in (kind, ANY_KIND) and rule.remaining > 0:
                    if rule.after > 0:
                        rule.after -= 1
                        continue
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self.fail_next.remove(rule)
                    self.counters["failed_next"] += 1
                    return delay, _injected(rule.status, f"Injected failure for {kind} (fail-next rule)")
            wait = self._take_token(kind, index, namespace, time.monotonic())
            if wait > 0:
                self.counters["rate_limited"] += 1
                rate = self.rate_limits.get(kind, self.rate_limits.get(ANY_KIND))
                message = (
                    f"Request failed. You've reached the max {kind} rate of {rate:g} requests per second for "
                    f"namespace '{namespace}' of index '{index}' (RESOURCE_EXHAUSTED). Retry after a short wait."
                )
                return delay, ApiError(429, message, headers={"retry-after": str(max(1, math.ceil(wait)))})
            applies = ANY_KIND in self.error_kinds or kind in self.error_kinds
            if self.error_rate and applies and self._random.random() < self.error_rate:
                self.counters["random_errors"] += 1
                return delay, _injected(self.error_status, f"Injected failure for {kind} (error rate)")
            return delay, None


def _injected(status: int, message: str) -> ApiError:
    headers = {"retry-after": "1"} if status == 429 else {}
    return ApiError(status, message, headers=headers)


def parse_kv(text: str) -> tuple[str, float]:
    """Parse ``KIND=RPS`` (CLI ``--rate-limit``)."""
    kind, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"expected KIND=RPS, got {text!r}")
    return _check_kind(kind), float(value)


def parse_fail_next(text: str) -> dict[str, Any]:
    """Parse ``KIND:COUNT[:STATUS[:AFTER]]`` (CLI ``--fail-next``)."""
    parts = text.split(":")
    if len(parts) not in (2, 3, 4):
        raise ValueError(f"expected KIND:COUNT[:STATUS[:AFTER]], got {text!r}")
    rule: dict[str, Any] = {"kind": _check_kind(parts[0]), "count": int(parts[1])}
    if len(parts) >= 3:
        rule["status"] = _check_status(int(parts[2]))
    if len(parts) == 4:
        rule["after"] = _check_after(int(parts[3]))
    return rule
