"""Embedding health per namespace, computed in the sink (which sees every vector written): the norm distribution
and drift.

Drift is the cosine distance between two centroids of unit-normalised vectors of one namespace:

    drift = 1 - cos(recent, reference)

- ``reference``: the mean of the first ``reference_size`` vectors the sink subtask writes to the namespace after it
  starts, or the vector the user gives for the namespace in a reference file (``load_reference``), which is fixed
  across restarts and the same for every subtask.
- ``recent``: an exponentially weighted mean of the vectors written since (each new vector weighs ``1/window``;
  ``window`` vectors make up ~63% of it).

0 means the recent vectors point, on average, where the reference did; it rises as their direction moves away (1 =
orthogonal centroids, 2 = opposite). Vectors are normalised first, so a change of scale alone is not drift (it shows
in the norms). Before the reference is complete, drift is 0. For records that bring their own vectors a rise shows a
change upstream (another model or version); for text embedded by the job, a change of the input texts.

Only dense vectors of upserts count, sampled: at most ``SAMPLE_PER_GROUP`` evenly spaced vectors per namespace of
each group the sink writes, and at most ``SAMPLES_PER_SECOND`` per namespace over time (a vector that came with its
record is read back from the request JSON decode made, so sampling bounds that cost, and the cap keeps it from growing
with the record rate; the estimates of a mean and of percentiles need no more). At most ``MAX_NAMESPACES``
namespaces are tracked per subtask (the first seen), so a topic pattern with many namespaces cannot grow the
metrics without bound.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from kafka_pinecone_flink.udfs.records import UPSERT, Change
from kafka_pinecone_flink.udfs.window import SlidingWindow, register_percentiles

DEFAULT_REFERENCE_SIZE = 1_000
DEFAULT_WINDOW = 1_000
MAX_REFERENCE_SIZE = 1_000_000
MAX_WINDOW = 1_000_000
MAX_NAMESPACES = 100
SAMPLE_PER_GROUP = 16
"""Reading a vector back from its request JSON costs about 28 µs (384 dimensions, ~1 KB of metadata: parse 17,
array 10, statistics 2). At 64 per group of 250 records that was 7 µs per record, a tenth of the sink's Python time on
pre-computed vectors (py-spy, (a) in the mini-cluster); 16 cost a quarter of it and still give a full window of the
default 1,000 vectors every 16,000 records."""
SAMPLES_PER_SECOND = 128
"""Vectors sampled per namespace and second at most, a token bucket that holds as many (so a namespace that was quiet
for a second gets ``SAMPLE_PER_GROUP`` from each of its next 8 groups). At full speed on pre-computed vectors (8,000
records/s, 32 groups of 250 a second) the per-group sample read back 512 vectors a second, about a tenth of the sink's
Python time (py-spy); the cap reads 128, with the default window and reference filled in about 8 s. Below 128 vectors a
second (a group of 16 every 125 ms) nothing changes."""
ALL_NAMESPACES = "*"
"""The key of a reference file's centroid for every namespace without one of its own."""

DRIFT_SCALE = 1_000_000
"""``embedding_drift_ppm`` = drift x 10^6 (PyFlink gauges are integers)."""
NORM_SCALE = 1_000
"""``vector_norm_milli_*`` = norm x 1000."""


class ReferenceFileError(ValueError):
    """The drift reference file cannot be used; the message says why."""


def load_reference(path: str | Path) -> dict[str, list[float]]:
    """A reference file: a JSON object mapping namespace (``"*"``: any other namespace) to a centroid, a non-empty
    array of finite numbers that are not all zero. The centroid is normalised when used."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ReferenceFileError(f"cannot read the drift reference file {str(path)!r}: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ReferenceFileError("the drift reference file must hold a JSON object: namespace -> array of numbers")
    reference: dict[str, list[float]] = {}
    for namespace, vector in data.items():
        if (
            not isinstance(vector, list)
            or not vector
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in vector)
            or not any(vector)
        ):
            raise ReferenceFileError(
                f"the drift reference of namespace {namespace!r} must be a non-empty array of finite numbers, "
                "not all zero"
            )
        reference[namespace] = [float(v) for v in vector]
    return reference


def _dense_values(change: Change) -> list[float] | None:
    if change.values is not None:
        return change.values
    try:
        values = orjson.loads(change.json or b"{}").get("values")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return values if isinstance(values, list) else None


def _unit(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(matrix, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    return matrix / safe[:, None], norms


@dataclass
class NamespaceHealth:
    """The state of one namespace: norms in a sliding window, the reference and recent centroids."""

    reference_size: int
    window: int
    reference: np.ndarray | None = None
    fixed_reference: bool = False
    collected: int = 0
    reference_sum: np.ndarray | None = None
    recent: np.ndarray | None = None
    norms: SlidingWindow = field(default_factory=SlidingWindow)
    tokens: float = float(SAMPLES_PER_SECOND)
    """Vectors this namespace may still sample now (``SAMPLES_PER_SECOND``)."""
    tokens_at: float | None = None
    """When ``tokens`` was last brought up to date (the clock of ``EmbeddingHealth``)."""

    def allowance(self, now: float) -> int:
        """How many vectors may be sampled now: the bucket refilled for the time since the last call."""
        if self.tokens_at is not None:
            self.tokens = min(float(SAMPLES_PER_SECOND), self.tokens + (now - self.tokens_at) * SAMPLES_PER_SECOND)
        self.tokens_at = now
        return min(SAMPLE_PER_GROUP, int(self.tokens))

    def add(self, vectors: np.ndarray) -> None:
        units, norms = _unit(vectors)
        for norm in norms.tolist():
            self.norms.add(norm)
        if self.reference is not None and self.reference.shape[0] != units.shape[1]:
            return  # a reference of another dimension: no drift for this namespace
        if not self.fixed_reference and self.collected < self.reference_size:
            take = units[: self.reference_size - self.collected]
            total = take.sum(axis=0)
            self.reference_sum = total if self.reference_sum is None else self.reference_sum + total
            self.collected += take.shape[0]
            if self.collected >= self.reference_size:
                self.reference = self.reference_sum / self.collected
        alpha = 1.0 / self.window
        k = units.shape[0]
        weights = alpha * (1.0 - alpha) ** np.arange(k - 1, -1, -1)
        update = weights @ units
        decay = (1.0 - alpha) ** k
        # The first vector starts the mean (an EWMA started at 0 would point anywhere its first vectors point, but
        # with a bias towards 0 in length only, which the cosine ignores).
        self.recent = update if self.recent is None else decay * self.recent + update

    def drift(self) -> float:
        if self.reference is None or self.recent is None:
            return 0.0
        denominator = float(np.linalg.norm(self.reference) * np.linalg.norm(self.recent))
        if denominator == 0.0:
            return 0.0
        return max(0.0, 1.0 - float(self.reference @ self.recent) / denominator)


class EmbeddingHealth:
    """Norms and drift of the dense vectors written, per namespace; ``register`` publishes them as Flink gauges in
    a ``namespace`` key group (a Prometheus label): ``embedding_drift_ppm``, ``vector_norm_milli_p50/_p95/_p99``
    and ``vectors_observed``."""

    def __init__(
        self,
        reference_size: int = DEFAULT_REFERENCE_SIZE,
        window: int = DEFAULT_WINDOW,
        reference: Mapping[str, list[float]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reference_size = reference_size
        self._clock = clock
        self.window = window
        self._reference = {ns: np.asarray(v, dtype=np.float64) for ns, v in (reference or {}).items()}
        self.namespaces: dict[str, NamespaceHealth] = {}
        self.observed: dict[str, int] = {}

    def observe(self, changes: Iterable[Change]) -> None:
        by_namespace: dict[str, list[Change]] = {}
        for change in changes:
            if change.op == UPSERT and (change.values or change.json is not None):
                by_namespace.setdefault(change.namespace, []).append(change)
        if not by_namespace:
            return
        now = self._clock()
        for namespace, candidates in by_namespace.items():
            health = self._namespace(namespace)
            if health is None:
                continue
            allowed = health.allowance(now)
            if allowed == 0:
                continue
            stride = -(-len(candidates) // allowed)
            values = [v for v in map(_dense_values, candidates[::stride]) if v]
            health.tokens -= len(values)
            if not values:
                continue
            try:
                matrix = np.asarray(values, dtype=np.float64)
            except ValueError:  # ragged: vectors of several dimensions in one namespace (Pinecone rejects them)
                continue
            if matrix.ndim != 2:
                continue
            health.add(matrix)
            self.observed[namespace] = self.observed.get(namespace, 0) + matrix.shape[0]

    def drift(self, namespace: str) -> float:
        health = self.namespaces.get(namespace)
        return health.drift() if health is not None else 0.0

    def register(self, group: Any) -> None:
        """Publish each namespace's gauges in ``group.add_group("namespace", <name>)``, and ``embedding_namespaces``
        (how many are tracked) on ``group``.

        A namespace seen by ``observe`` (the operator's asyncio thread) is registered later, by the
        ``embedding_namespaces`` gauge itself, in the thread that reads the gauges at the end of a bundle: PyFlink
        iterates a group's gauges (then its sub-groups) there, so registering from another thread could change a
        dict under that iteration. Registered by the first gauge read, the new sub-group is complete before the
        iteration reaches the sub-groups."""

        def publish(namespace: str, health: NamespaceHealth) -> None:
            sub = group.add_group("namespace", namespace)
            sub.gauge("embedding_drift_ppm", lambda: round(health.drift() * DRIFT_SCALE))
            sub.gauge("vectors_observed", lambda: self.observed.get(namespace, 0))
            register_percentiles(sub, "vector_norm_milli", health.norms, scale=NORM_SCALE)

        published: set[str] = set()

        def publish_new() -> int:
            for namespace, health in list(self.namespaces.items()):
                if namespace not in published:
                    publish(namespace, health)
                    published.add(namespace)
            return len(published)

        group.gauge("embedding_namespaces", publish_new)

    def _namespace(self, namespace: str) -> NamespaceHealth | None:
        health = self.namespaces.get(namespace)
        if health is None:
            if len(self.namespaces) >= MAX_NAMESPACES:
                return None
            reference = self._reference.get(namespace, self._reference.get(ALL_NAMESPACES))
            health = NamespaceHealth(self.reference_size, self.window)
            if reference is not None:
                health.reference = reference / np.linalg.norm(reference)
                health.fixed_reference = True
            self.namespaces[namespace] = health
        return health
