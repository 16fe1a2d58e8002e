"""The pure parts of ``benchmarks/compare.py``: workloads, statistics, targets, the table and the chart.

Nothing here starts a process or touches the network, so ``tests/unit/test_bench_compare.py`` covers it all.

Workloads (all records are JSON objects keyed by their id; Pinecone ids are the keys, ``--id.format=raw``):

* ``vectors`` (a): a 384-dimensional vector in ``values`` plus ~1 KB of flat metadata.
* ``text`` (b): a product ``title`` and ``description`` to embed (joined by a newline), plus a price.
* ``changes`` (c): a change stream: one insert per id, then ``updates_per_id`` updates per id (shuffled, each id's
  updates in order). Exactly ``round(0.8 * updates)`` updates keep the id's current text and change only metadata
  (price, stock); the others change the description. Only inserts and text-changing updates need the model.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
import math
import random
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

DIMENSION = 384
WORKLOADS = ("vectors", "text", "changes")
WORKLOAD_ALIASES = {"a": "vectors", "b": "text", "c": "changes"}
WORKLOAD_TITLES = {
    "vectors": "(a) 384-d vectors + ~1 KB metadata",
    "text": "(b) text to embed",
    "changes": "(c) change stream, 80% text unchanged",
}
CONTENDERS = ("tutorial", "handmade", "job-mini", "job-cluster", "raw")
CONTENDER_TITLES = {
    "tutorial": "tutorial loop (1 record at a time)",
    "handmade": "hand-made consumer (batched)",
    "job-mini": "this job, mini-cluster (p=1)",
    "job-cluster": "this job, standalone cluster (p=2)",
    "raw": "raw limit",
}
RAW_LIMIT_OF = {"vectors": "raw upserts (SDK, 200/batch, 4 threads)", "text": "model.encode, batches of 64"}
RAW_LIMIT_OF["changes"] = "model.encode of the texts that changed, batches of 64"
TEXT_FIELDS = ("title", "description")
UNCHANGED_TEXT_SHARE = 0.8

_WORDS = (
    "waterproof lightweight durable ergonomic compact insulated adjustable recycled rugged portable wireless "
    "rechargeable organic handcrafted breathable stainless jacket boots tent lamp chair desk blender grinder knife "
    "kettle speaker headphones backpack bottle mat trail kitchen office travel everyday running hiking camping"
).split()
_CATEGORIES = ("outdoor", "kitchen", "office", "audio", "travel")

Record = tuple[str, dict[str, Any]]


# -- workloads -----------------------------------------------------------------------------------------------------


def product_title(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(4)).capitalize()


def product_description(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(30, 50))).capitalize() + "."


def unit_vector(rng: random.Random, dimension: int = DIMENSION) -> list[float]:
    values = [rng.gauss(0.0, 1.0) for _ in range(dimension)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def vector_metadata(rng: random.Random, number: int) -> dict[str, Any]:
    """Flat Pinecone metadata of ~1 KB: strings, numbers and a list of strings."""
    return {
        "sku": f"sku-{number}",
        "category": rng.choice(_CATEGORIES),
        "price": round(rng.uniform(5, 500), 2),
        "in_stock": rng.random() < 0.8,
        "tags": [rng.choice(_WORDS) for _ in range(5)],
        "notes": " ".join(rng.choice(_WORDS) for _ in range(130)),
    }


def vector_records(count: int, seed: int = 1, prefix: str = "v") -> list[Record]:
    rng = random.Random(seed)
    return [(f"{prefix}{i}", {**vector_metadata(rng, i), "values": unit_vector(rng)}) for i in range(count)]


def text_records(count: int, seed: int = 2, prefix: str = "t") -> list[Record]:
    rng = random.Random(seed)
    return [
        (
            f"{prefix}{i}",
            {"title": product_title(rng), "description": product_description(rng), "price": float(i % 500)},
        )
        for i in range(count)
    ]


def change_records(total: int, updates_per_id: int, seed: int = 3, prefix: str = "c") -> list[Record]:
    """``total`` records: ``total // (1 + updates_per_id)`` inserts, then the rest as updates of those ids."""
    if total < 1 or updates_per_id < 0:
        raise ValueError("changes needs at least one record and updates_per_id >= 0")
    rng = random.Random(seed)
    ids = max(total // (1 + updates_per_id), 1)
    current: dict[str, dict[str, Any]] = {}
    records: list[Record] = []
    for i in range(ids):
        key = f"{prefix}{i}"
        current[key] = {"title": product_title(rng), "description": product_description(rng), "price": 10.0, "stock": 1}
        records.append((key, dict(current[key])))
    updates = total - ids
    keep_text = set(rng.sample(range(updates), round(UNCHANGED_TEXT_SHARE * updates)))
    for n in range(updates):
        key = f"{prefix}{rng.randrange(ids)}"
        doc = current[key]
        doc["price"] = round(float(doc["price"]) + 1.0, 2)
        doc["stock"] = int(doc["stock"]) + 1
        if n not in keep_text:
            doc["description"] = product_description(rng)
        records.append((key, dict(doc)))
    return records


def embed_text(doc: Mapping[str, Any]) -> str | None:
    """The text the job embeds for ``doc`` (``--embedding.text-fields=title,description``), or None."""
    parts = [str(doc[name]) for name in TEXT_FIELDS if doc.get(name) not in (None, "")]
    return "\n".join(parts) if parts else None


def texts_to_embed(records: Iterable[Record], only_changed: bool) -> list[str]:
    """Texts a consumer must embed: every record's, or (``only_changed``) only where the id's text changed."""
    last: dict[str, str] = {}
    texts = []
    for key, doc in records:
        text = embed_text(doc)
        if text is None or "values" in doc:
            continue
        if not only_changed or last.get(key) != text:
            texts.append(text)
        last[key] = text
    return texts


def unchanged_text_share(records: Sequence[Record]) -> float:
    """Share of updates (records of an id seen before) whose embedded text is the id's previous one."""
    last: dict[str, str | None] = {}
    updates = unchanged = 0
    for key, doc in records:
        text = embed_text(doc)
        if key in last:
            updates += 1
            unchanged += last[key] == text
        last[key] = text
    return unchanged / updates if updates else 0.0


def generate(workload: str, size: int, updates_per_id: int, seed: int = 0) -> list[Record]:
    if workload == "vectors":
        return vector_records(size, seed=seed + 1)
    if workload == "text":
        return text_records(size, seed=seed + 2)
    if workload == "changes":
        return change_records(size, updates_per_id, seed=seed + 3)
    raise ValueError(f"unknown workload {workload!r}")


def fresh_records(workload: str, count: int, backlog: Sequence[Record], seed: int = 99) -> list[Record]:
    """Records of the freshness phase. (a) and (b): new ids ``f<n>``; (a) reuses the vectors of the backlog's first
    2,000 records (nothing to embed either way), (b) has new texts. (c): updates of the backlog's ids, as its change
    stream has them (price and stock change; exactly 80% keep the id's current text, 20% get a new description),
    the ids taken in a shuffled order round after round, so that two updates of one id are as far apart as the
    number of ids allows (``latencies`` relies on it)."""
    rng = random.Random(seed)
    out: list[Record] = []
    if workload == "changes":
        current: dict[str, dict[str, Any]] = {}
        for key, doc in backlog:
            current[key] = dict(doc)
        order = sorted(current)
        rng.shuffle(order)
        keep_text = set(rng.sample(range(count), round(UNCHANGED_TEXT_SHARE * count)))
        for n in range(count):
            key = order[n % len(order)]
            doc = current[key]
            doc["price"] = round(float(doc.get("price", 0.0)) + 1.0, 2)
            doc["stock"] = int(doc.get("stock", 0)) + 1
            if n not in keep_text:
                doc["description"] = product_description(rng)
            out.append((key, dict(doc)))
        return out
    pool = backlog[:2000]
    for n in range(count):
        if workload == "vectors":
            doc = dict(pool[n % len(pool)][1])
        else:
            doc = {"title": product_title(rng), "description": product_description(rng), "price": float(n)}
        out.append((f"f{n}", doc))
    return out


def encode_record(record: Record) -> tuple[bytes, bytes]:
    key, doc = record
    return key.encode(), json.dumps(doc, separators=(",", ":")).encode()


# -- statistics ----------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference


def rate(records: int, start: float | None, end: float | None) -> float | None:
    """Records per second between the first and the last acknowledgement (None if the window is empty)."""
    if start is None or end is None or records <= 0:
        return None
    return records / max(end - start, 1e-3)


STEADY_LOW, STEADY_HIGH = 0.1, 0.9
MIN_STEADY_WINDOW_S = 0.01


def ack_window(
    ack_times: Sequence[float], records: int, low_share: float, *, after_first_request: bool = False
) -> tuple[float, float, float] | None:
    """``(start, end, records acknowledged in between)``: from the acknowledgement at the ``low_share`` quantile (or,
    with ``after_first_request``, if later, the first one after the first request) to the one at the 90th
    percentile of all of a run's acknowledgements; records in between = after the request that opened the window, up
    to and including the one that closed it. None when the window is shorter than 10 ms."""
    if not ack_times or records <= 0:
        return None
    ordered = sorted(ack_times)
    last = len(ordered) - 1
    low, high = math.floor(low_share * last), math.ceil(STEADY_HIGH * last)
    if after_first_request:
        low = max(low, sum(1 for t in ordered if t == ordered[0]))  # written together: prepared before the window
    if low >= high or ordered[high] - ordered[low] < MIN_STEADY_WINDOW_S:
        return None
    within = bisect.bisect_right(ordered, ordered[high]) - bisect.bisect_right(ordered, ordered[low])
    return ordered[low], ordered[high], records * within / len(ordered)


def steady_rate(ack_times: Sequence[float], records: int) -> tuple[float | None, float | None]:
    """``(records/s, window seconds)`` between the acknowledgements at the 10th (or, if later, the first one after the
    first request) and the 90th percentile of all of a run's acknowledgements: start-up and the first batch
    (prepared before the first acknowledgement) are outside, and so is the tail; the same rule for every contender.
    ``(None, None)`` when that window is shorter than 10 ms (everything was written in one or two requests: too few
    records to time)."""
    window = ack_window(ack_times, records, STEADY_LOW, after_first_request=True)
    if window is None:
        return None, None
    start, end, within = window
    return within / (end - start), end - start


WARM_FROM = 0.5


def warm_window(ack_times: Sequence[float], records: int) -> tuple[float, float, float] | None:
    """``ack_window`` from the acknowledgement at the 50th percentile to the one at the 90th: the second half of a
    run, before the tail. A JVM's just-in-time compilers do more of their work in a run's first half, but in a run of
    a few seconds they are still at work in its second (BENCHMARKS.md, "(a)'s short run: the JIT compilers' share").
    None when it is shorter than 10 ms."""
    return ack_window(ack_times, records, WARM_FROM)


def latencies(produced: Sequence[tuple[str, float]], acked: Mapping[str, Sequence[float]]) -> tuple[list[float], int]:
    """Seconds from each produced record's Kafka timestamp to the first acknowledgement of its id at or after it
    (``acked``: each id's acknowledgement times, sorted), and how many records had none. An id produced again
    before the acknowledgement of its previous record would take that one's: the freshness phase spaces the
    updates of one id by the number of ids over the rate (seconds), so this does not arise at the latencies met."""
    found: list[float] = []
    for key, stamp in produced:
        times = acked.get(key, ())
        at = bisect.bisect_left(times, stamp)
        if at < len(times):
            found.append(times[at] - stamp)
    return found, len(produced) - len(found)


@dataclass(frozen=True)
class ProcessSample:
    """One sample of a contender's process tree: the wall time, each live pid's CPU seconds, the RSS sum."""

    time: float
    cpu_by_pid: Mapping[int, float]
    rss_bytes: int
    jit_cpu_by_thread: Mapping[int, float] = field(default_factory=dict)
    """CPU seconds of each JIT compiler thread (HotSpot's ``C1 CompilerThread<n>`` and ``C2 CompilerThread<n>``) of
    the JVMs in the tree, by thread id: part of their processes' CPU in ``cpu_by_pid``."""
    host_busy_s: float | None = None
    """CPU seconds the whole host has been busy since it booted, every process's and the kernel's (/proc/stat): what
    the contender shares its cores with."""
    service_cpu: Mapping[str, float] = field(default_factory=dict)
    """CPU seconds of each service every contender shares (``SERVICE_TITLES``), by name: not part of the tree."""


def cumulative_cpu(samples: Sequence[ProcessSample], *, jit: bool = False) -> list[tuple[float, float]]:
    """``(time, CPU seconds used so far by every process seen)``: a process that ended keeps its last value. With
    ``jit``, by the JVMs' compiler threads only (a thread that ended, as HotSpot ends compiler threads it no longer
    needs, keeps its last value too)."""
    last: dict[int, float] = {}
    series = []
    for sample in samples:
        last.update(sample.jit_cpu_by_thread if jit else sample.cpu_by_pid)
        series.append((sample.time, sum(last.values())))
    return series


def cpu_seconds(samples: Sequence[ProcessSample], start: float, end: float, *, jit: bool = False) -> float | None:
    """CPU seconds the tree used between ``start`` and ``end`` (interpolated between samples); with ``jit``, the
    part of them its JVMs' JIT compiler threads used."""
    return _between(cumulative_cpu(samples, jit=jit), start, end)


def service_seconds(samples: Sequence[ProcessSample], service: str, start: float, end: float) -> float | None:
    """CPU seconds the shared ``service`` used between ``start`` and ``end``, from the samples that saw it (None:
    none did)."""
    return _between([(s.time, s.service_cpu[service]) for s in samples if service in s.service_cpu], start, end)


def host_cores(samples: Sequence[ProcessSample], start: float, end: float) -> float | None:
    """Cores of the whole host busy between ``start`` and ``end``, on average (None without host figures)."""
    busy = _between([(s.time, s.host_busy_s) for s in samples if s.host_busy_s is not None], start, end)
    return None if busy is None else busy / (end - start)


def _between(series: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """How much the cumulative ``series`` (time, value) grew between ``start`` and ``end``."""
    if not series or end <= start:
        return None

    def at(moment: float) -> float:
        """Linear interpolation between the samples around ``moment`` (the nearest end outside them)."""
        if moment <= series[0][0]:
            return series[0][1]
        for (t0, v0), (t1, v1) in itertools.pairwise(series):
            if t0 <= moment <= t1:
                return v0 if t1 == t0 else v0 + (v1 - v0) * (moment - t0) / (t1 - t0)
        return series[-1][1]

    return max(at(end) - at(start), 0.0)


def jit_seconds(samples: Sequence[ProcessSample], start: float, end: float) -> float | None:
    """CPU seconds of the JVMs' JIT compiler threads between ``start`` and ``end``; None when the samples saw no
    such thread (a contender without a JVM)."""
    if not any(sample.jit_cpu_by_thread for sample in samples):
        return None
    return cpu_seconds(samples, start, end, jit=True)


def jit_share(jit_cpu_s: float | None, cpu_s: float, records: float) -> str:
    """A note's clause on how much of ``cpu_s`` (for ``records``) the JIT compilers took, and the rest per record;
    empty without a JVM."""
    if jit_cpu_s is None or cpu_s <= 0 or not records:
        return ""
    return (
        f", of which the JVMs' JIT compiler threads {jit_cpu_s:,.1f} CPU-s ({jit_cpu_s / cpu_s:.0%}) "
        f"and everything else {(cpu_s - jit_cpu_s) / records * 1e6:,.0f} µs per record"
    )


SERVICE_TITLES = {"server": "the local Pinecone server", "broker": "the Kafka broker"}
"""The services every contender shares the host with, as a note names them."""


def host_share(
    host: float | None, cpus: int, service_cpu_s: Mapping[str, float], records: float, window_s: float
) -> str:
    """A note on what the contender shared the host with from its first acknowledgement to its last: the cores of
    the whole host busy, and each shared service's CPU per record written and in cores; empty without figures."""
    if host is None or not records or window_s <= 0:
        return ""
    services = "; ".join(
        f"{SERVICE_TITLES.get(name, name)} {cpu_s / records * 1e6:,.0f} µs per record ({cpu_s / window_s:.2f} cores)"
        for name, cpu_s in service_cpu_s.items()
    )
    return f"the whole host from the first acknowledgement to the last: {host:.2f} of {cpus} cores busy" + (
        f", of which the services every contender shares: {services}" if services else ""
    )


def peak_rss_bytes(samples: Sequence[ProcessSample]) -> int:
    return max((s.rss_bytes for s in samples), default=0)


# -- results, targets and rendering ---------------------------------------------------------------------------------


@dataclass
class Result:
    """One contender on one workload."""

    workload: str
    contender: str
    label: str
    records: int = 0
    rps: float | None = None
    window_s: float | None = None
    startup_s: float | None = None
    fresh_rate: float | None = None
    fresh_records: int = 0
    fresh_missing: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    cpu_s: float | None = None
    cores: float | None = None
    peak_rss_mb: float | None = None
    vs_handmade: float | None = None
    vs_raw: float | None = None
    warm_rps: float | None = None
    """Records/s in the run's second half (``warm_window``)."""
    warm_cpu_s: float | None = None
    """CPU seconds of the contender's process tree in that window."""
    warm_records: float | None = None
    """Records acknowledged in that window."""
    jit_cpu_s: float | None = None
    """Of ``cpu_s``, the CPU seconds of the JVMs' JIT compiler threads (None: no JVM in the contender)."""
    warm_jit_cpu_s: float | None = None
    """Of ``warm_cpu_s``, the same."""
    host_cores: float | None = None
    """Cores of the whole host busy from the first acknowledgement to the last, on average: the contender's, the
    services' and anything else's."""
    service_cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds in that window of the services every contender shares on the host (``SERVICE_TITLES``: the local
    Pinecone server, the Kafka broker), by service."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def bracketed(before: Result, after: Result) -> Result:
    """One result for a baseline measured twice, before and after the contenders it is compared with: their mean
    records/s, CPU and cores, the larger peak, and a note with both rates, so that a host that sped up or slowed down
    during the workload shows, and moves the ratios less than a single measurement would."""
    combined = dataclasses.replace(before, notes=list(before.notes))

    def mean(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else (a + b) / 2

    combined.rps = mean(before.rps, after.rps)
    combined.cpu_s = mean(before.cpu_s, after.cpu_s)
    combined.cores = mean(before.cores, after.cores)
    combined.host_cores = mean(before.host_cores, after.host_cores)
    combined.peak_rss_mb = max((m for m in (before.peak_rss_mb, after.peak_rss_mb) if m is not None), default=None)
    if before.rps is not None and after.rps is not None:
        combined.notes.append(
            f"measured before and after the other contenders: {before.rps:,.1f} and {after.rps:,.1f} rec/s; "
            "the table gives their mean, and the ratios use it"
        )
    combined.notes.extend(note for note in after.notes if note not in combined.notes)
    return combined


def fill_ratios(results: Sequence[Result]) -> None:
    """Set each result's records/s ratio against the hand-made consumer and the raw limit of its workload."""
    for workload in {r.workload for r in results}:
        rows = [r for r in results if r.workload == workload]
        handmade = next((r.rps for r in rows if r.contender == "handmade"), None)
        raw = next((r.rps for r in rows if r.contender == "raw"), None)
        for row in rows:
            row.vs_handmade = ratio(row.rps, handmade)
            row.vs_raw = ratio(row.rps, raw)


@dataclass(frozen=True)
class Target:
    text: str
    met: bool | None  # None: not measured in this run


def _find(results: Sequence[Result], workload: str, contender: str) -> Result | None:
    return next((r for r in results if r.workload == workload and r.contender == contender), None)


def _check(*parts: bool | None) -> bool | None:
    return None if any(p is None for p in parts) else all(bool(p) for p in parts)


def _ge(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


PEAK_RSS_TARGET_MB = {"job-mini": 1536, "job-cluster": 2048}
"""Issue 17: peak memory on (a), the mini-cluster under 1.5 GiB, the standalone cluster under 2 GiB."""
FRESHNESS_TARGET_MS = {"vectors": 1000, "text": 2000, "changes": 2000}
"""Issue 17: freshness p99 at 50% load, under 1 s for (a), under 2 s for (b) and (c)."""


def _cpu_per_record(row: Result | None, *, warm: bool = False) -> float | None:
    """CPU seconds per record over the whole run, or with ``warm`` over its second half (``warm_window``)."""
    if row is None:
        return None
    cpu_s, records = (row.warm_cpu_s, row.warm_records) if warm else (row.cpu_s, row.records)
    return None if cpu_s is None or not records else cpu_s / records


ROUND_CONTENDERS = ("handmade", "job-mini", "job-cluster")
"""The contenders of (a)'s rounds: the hand-made consumer, then each job, measured again in turn."""


@dataclass(frozen=True)
class RoundRatio:
    """One round of (a): a job's figures over the hand-made consumer's in the same round."""

    rps: float | None
    """The job's records/s."""
    vs_handmade: float | None
    """Its records/s over the hand-made consumer's."""
    cpu: float | None
    """Its CPU seconds per record over the hand-made consumer's, whole run."""
    warm_cpu: float | None
    """The same over the run's second half."""


def round_ratios(rounds: Sequence[Mapping[str, Result]], job: str) -> list[RoundRatio]:
    """``job``'s ratios to the hand-made consumer in each round of (a) that measured both."""
    found = []
    for measured in rounds:
        handmade, row = measured.get("handmade"), measured.get(job)
        if handmade is None or row is None:
            continue
        found.append(
            RoundRatio(
                row.rps,
                ratio(row.rps, handmade.rps),
                ratio(_cpu_per_record(row), _cpu_per_record(handmade)),
                ratio(_cpu_per_record(row, warm=True), _cpu_per_record(handmade, warm=True)),
            )
        )
    return found


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values measured; None when a round has none (a failed round is no figure to pass on)."""
    listed = list(values)
    return (
        None if not listed or any(v is None for v in listed) else statistics.median(v for v in listed if v is not None)
    )


def evaluate_targets(results: Sequence[Result], rounds: Sequence[Mapping[str, Result]] = ()) -> list[Target]:
    """Issue 17's targets (and the earlier ones it kept: ≥ 5,000 rec/s on (a), ≥ 2x the tutorial loop on (b)), each
    met, missed, or not measured (None), for every job contender measured. With more than one round of (a)
    (``rounds``, the first being ``results``' own), (a)'s records/s and CPU targets take the median of the rounds'
    ratios, each round's job against that round's hand-made consumer."""
    targets: list[Target] = []
    for job in ("job-mini", "job-cluster"):
        name = CONTENDER_TITLES[job]
        vec = _find(results, "vectors", job)
        if vec is not None:
            # One round: this run's own rows (without a hand-made consumer, none: every ratio unmeasured).
            handmade = _find(results, "vectors", "handmade")
            one_round = [{"handmade": handmade, job: vec}] if handmade is not None else []
            several = len(rounds) > 1
            measured = round_ratios(rounds if several else one_round, job)
            of = f" (median of {len(rounds)} rounds)" if several else ""
            rps, vs_handmade = median(r.rps for r in measured), median(r.vs_handmade for r in measured)
            cpu, warm = median(r.cpu for r in measured), median(r.warm_cpu for r in measured)
            targets.append(
                Target(f"{name}, (a): ≥ hand-made and ≥ 5,000 rec/s{of}", _check(_ge(vs_handmade, 1), _ge(rps, 5000)))
            )
            targets.append(
                Target(f"{name}, (a): CPU-s per record ≤ 2x hand-made{of}", None if cpu is None else cpu <= 2)
            )
            # The same bound on the run's second half: what a long-running job pays once its JVM has compiled the
            # hot code. Reported beside the whole-run row, which stays the target's measure.
            targets.append(
                Target(
                    f"{name}, (a): CPU-s per record ≤ 2x hand-made, second half of the run (beside the row above){of}",
                    None if warm is None else warm <= 2,
                )
            )
            limit = PEAK_RSS_TARGET_MB[job]
            peak = vec.peak_rss_mb
            targets.append(
                Target(f"{name}, (a): peak memory < {limit / 1024:g} GiB", None if peak is None else peak < limit)
            )
        text = _find(results, "text", job)
        tutorial = _find(results, "text", "tutorial")
        if text is not None:
            # Two rows: issue 17's bound, and the earlier one, which the tutorial loop's own speed can put out of
            # reach of any job (at more than half the raw model's rate, 2x it is faster than the model itself).
            targets.append(Target(f"{name}, (b): ≥ 90% of raw model", _ge(text.vs_raw, 0.9)))
            vs_tutorial = ratio(text.rps, tutorial.rps if tutorial else None)
            targets.append(Target(f"{name}, (b): ≥ 2x tutorial loop (earlier target)", _ge(vs_tutorial, 2)))
        changes = _find(results, "changes", job)
        if changes is not None:
            targets.append(Target(f"{name}, (c): ≥ 3x hand-made", _ge(changes.vs_handmade, 3)))
        for row in (vec, text, changes):
            if row is None:
                continue
            limit_ms = FRESHNESS_TARGET_MS[row.workload]
            # A record that never arrived misses the target, even when none arrived and there is no p99.
            met = False if row.fresh_missing else (None if row.p99_ms is None else row.p99_ms < limit_ms)
            label = WORKLOAD_TITLES[row.workload].split(" ", 1)[0]
            targets.append(Target(f"{name}, {label}: freshness p99 < {limit_ms / 1000:g} s at 50% load", met))
    return targets


def _num(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


TABLE_COLUMNS = (
    "workload",
    "contender",
    "records",
    "rec/s",
    "vs hand-made",
    "vs raw",
    "start-up s",
    "fresh rec/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "CPU cores",
    "CPU s",
    "peak RSS MiB",
)


def table_rows(results: Sequence[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        missing = f" ({r.fresh_missing} lost)" if r.fresh_missing else ""
        rows.append(
            [
                WORKLOAD_TITLES.get(r.workload, r.workload),
                r.label,
                f"{r.records:,}",
                _num(r.rps, 1 if (r.rps or 0) < 100 else 0),
                _ratio(r.vs_handmade),
                _ratio(r.vs_raw),
                _num(r.startup_s, 1),
                _num(r.fresh_rate, 1 if (r.fresh_rate or 0) < 100 else 0),
                _num(r.p50_ms),
                _num(r.p95_ms),
                _num(r.p99_ms) + missing,
                _num(r.cores, 2),
                _num(r.cpu_s, 1),
                _num(r.peak_rss_mb),
            ]
        )
    return rows


def render_markdown(
    results: Sequence[Result], targets: Sequence[Target] = (), rounds: Sequence[Mapping[str, Result]] = ()
) -> str:
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    rounds_table = render_rounds(rounds)
    if rounds_table:
        lines += [
            "",
            f"(a) in {len(rounds)} rounds (the first is the table's; the others without a freshness phase), each job "
            "against the hand-made consumer of its round:",
            "",
            rounds_table.rstrip("\n"),
        ]
    if targets:
        lines += ["", render_targets(targets)]
    notes = [f"- {WORKLOAD_TITLES.get(r.workload, r.workload)}, {r.label}: {n}" for r in results for n in r.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def _per_record_us(row: Result) -> str:
    cpu = _cpu_per_record(row)
    return _num(None if cpu is None else cpu * 1e6, suffix=" µs")


def render_rounds(rounds: Sequence[Mapping[str, Result]]) -> str:
    """(a)'s rounds as a Markdown table: each round's hand-made consumer and jobs (records/s, CPU per record) and the
    jobs' ratios to that round's hand-made consumer; a last row with the medians the targets take. Empty for one
    round."""
    jobs = [job for job in ROUND_CONTENDERS[1:] if any(job in measured for measured in rounds)]
    if len(rounds) < 2 or not jobs or not all("handmade" in measured for measured in rounds):
        return ""
    head = ["round", "hand-made: rec/s, CPU per record"]
    head += [f"{CONTENDER_TITLES[job]}: rec/s, CPU per record, x hand-made (rec/s, CPU)" for job in jobs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for number, measured in enumerate(rounds, start=1):
        handmade = measured["handmade"]
        cells = [str(number), f"{_num(handmade.rps)}, {_per_record_us(handmade)}"]
        for job in jobs:
            row = measured.get(job)
            if row is None:
                cells.append("-")
                continue
            (one,) = round_ratios([measured], job)
            cells.append(f"{_num(row.rps)}, {_per_record_us(row)}, {_ratio(one.vs_handmade)}, {_ratio(one.cpu)}")
        lines.append("| " + " | ".join(cells) + " |")
    medians = ["median", f"{_num(median(m['handmade'].rps for m in rounds))}"]
    for job in jobs:
        ratios = round_ratios(rounds, job)
        medians.append(
            f"{_num(median(r.rps for r in ratios))}, -, {_ratio(median(r.vs_handmade for r in ratios))}, "
            f"{_ratio(median(r.cpu for r in ratios))}"
        )
    lines.append("| " + " | ".join(medians) + " |")
    return "\n".join(lines) + "\n"


def render_targets(targets: Sequence[Target]) -> str:
    marks = {True: "met", False: "**missed**", None: "not measured"}
    return "\n".join(["| target | result |", "|---|---|", *(f"| {t.text} | {marks[t.met]} |" for t in targets)])


def render_text(results: Sequence[Result]) -> str:
    """The table for a terminal: aligned columns."""
    rows = [list(TABLE_COLUMNS), *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


def save_chart(results: Sequence[Result], path: Any) -> None:
    """Records/s per workload and contender (log scale) and the freshness p99 at 50% load, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [w for w in WORKLOADS if any(r.workload == w for r in results)]
    contenders = [c for c in CONTENDERS if any(r.contender == c for r in results)]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8))
    width = 0.8 / max(len(contenders), 1)
    for n, contender in enumerate(contenders):
        xs, rps, p99 = [], [], []
        for i, workload in enumerate(workloads):
            found = _find(results, workload, contender)
            xs.append(i + (n - (len(contenders) - 1) / 2) * width)
            rps.append(found.rps if found and found.rps else 0)
            p99.append(found.p99_ms / 1000 if found and found.p99_ms is not None else 0)
        top.bar(xs, rps, width, label=CONTENDER_TITLES[contender])
        if contender != "raw":
            bottom.bar(xs, p99, width, label=CONTENDER_TITLES[contender])
    for axis in (top, bottom):
        axis.set_xticks(range(len(workloads)), [WORKLOAD_TITLES[w] for w in workloads])
    top.set_yscale("log")
    top.set_ylabel("records/s (log)")
    top.set_title("Throughput, same data, broker and local Pinecone server")
    top.legend(fontsize=8)
    bottom.axhline(2.0, color="grey", linestyle="--", linewidth=1)
    bottom.set_ylabel("freshness p99 (s)")
    bottom.set_title("Kafka timestamp → Pinecone acknowledgement, p99 at 50% of each contender's max rate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_sizes(text: str, defaults: Mapping[str, int]) -> dict[str, int]:
    """``vectors=20000,text=3000`` (a/b/c accepted) over ``defaults``."""
    sizes = dict(defaults)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = WORKLOAD_ALIASES.get(name, name)
        if not sep or name not in WORKLOADS or not value.isdigit() or int(value) < 1:
            raise ValueError(f"expected WORKLOAD=COUNT with a workload of {', '.join(WORKLOADS)}, got {part!r}")
        sizes[name] = int(value)
    return sizes


def parse_choice(text: str, allowed: Sequence[str], aliases: Mapping[str, str] | None = None) -> list[str]:
    chosen = [(aliases or {}).get(p.strip(), p.strip()) for p in text.split(",") if p.strip()]
    unknown = [c for c in chosen if c not in allowed]
    if unknown or not chosen:
        raise ValueError(f"choose from {', '.join(allowed)}; got {text!r}")
    return [c for c in allowed if c in chosen]
