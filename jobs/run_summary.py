"""The closing summary of a job that ended: what happened to every record, from the job's run totals.

The JVM operators keep named counts per stage (``io.github.kpf.batch.RunTotals``): metric counters, and accumulators
named ``<stage>.<count>`` that Flink returns with the job's result. The totals live in operator state too, so a job
restored from a checkpoint counts on from the checkpoint's totals: the accumulators of a run that crashed and
replayed count each record once, as a run without the crash would. A resumed bounded run (``--resume-from-latest``)
counts the whole logical run, from its first start.

Where each record ends (the sums the summary checks):

    decode.records_in = decode.decoded + decode.dead_lettered + decode.skipped_*
    dedup.records_in  = decode.decoded
    dedup.records_in  = dedup.skipped_unchanged + dedup.skipped_stale + emitted
    emitted           = sink.upserted + sink.updated + sink.deleted + sink.superseded
                        + sink.dead_lettered + sink.embed_dead_lettered
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SINK_APPLIED = ("upserted", "updated", "deleted", "superseded")


@dataclass(frozen=True)
class RunSummary:
    """The run totals of one job, by stage and count name."""

    totals: Mapping[str, int]
    wall_s: float

    @classmethod
    def from_accumulators(cls, accumulators: Mapping[str, Any], wall_s: float) -> RunSummary:
        totals = {}
        for name, value in accumulators.items():
            if "." in name and isinstance(value, int):
                totals[name] = int(value)
        return cls(totals, wall_s)

    def get(self, name: str) -> int:
        return self.totals.get(name, 0)

    def with_prefix(self, prefix: str) -> dict[str, int]:
        """The counts whose name starts with ``prefix`` (the prefix removed), largest first."""
        found = {name[len(prefix) :]: n for name, n in self.totals.items() if name.startswith(prefix) and n}
        return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))

    @property
    def skipped(self) -> dict[str, int]:
        """Skips by reason: decode's (``skipped_<reason>``, e.g. a tombstone while deletes are off) and dedup's
        (``unchanged``, ``stale``)."""
        reasons = self.with_prefix("decode.skipped_")
        for reason in ("unchanged", "stale"):
            if self.get(f"dedup.skipped_{reason}"):
                reasons[reason] = reasons.get(reason, 0) + self.get(f"dedup.skipped_{reason}")
        return reasons

    @property
    def dead_lettered(self) -> dict[str, int]:
        """Dead letters by the stage that rejected them."""
        stages = {
            "decode": self.get("decode.dead_lettered"),
            "embed": self.get("sink.embed_dead_lettered"),
            "sink": self.get("sink.dead_lettered"),
        }
        return {stage: n for stage, n in stages.items() if n}

    @property
    def unaccounted(self) -> int:
        """Records in minus every end a record can have; 0 when each record is accounted for exactly once."""
        ends = sum(self.get(f"sink.{kind}") for kind in SINK_APPLIED)
        ends += sum(self.skipped.values()) + sum(self.dead_lettered.values())
        return self.get("decode.records_in") - ends

    def lines(self) -> list[str]:
        """The summary as printed at the end of a run."""

        def detail(counts: Mapping[str, int]) -> str:
            parts = [f"{name.replace('_', ' ')} {n:,}" for name, n in counts.items()]
            return f" ({', '.join(parts)})" if parts else ""

        skipped = self.skipped
        dead = self.dead_lettered
        rows = [
            ("records in", self.get("decode.records_in"), ""),
            ("upserted", self.get("sink.upserted"), " (new ids)"),
            ("updated", self.get("sink.updated"), " (ids that held a live version)"),
            ("deleted", self.get("sink.deleted"), ""),
            ("superseded", self.get("sink.superseded"), " (a later change of the id in the same write won)"),
            ("skipped", sum(skipped.values()), detail(skipped)),
            ("dead-lettered", sum(dead.values()), detail(dead)),
        ]
        out = [f"Run summary ({self.wall_s:,.1f} s):"]
        out += [f"  {label:<14}{n:>12,}{note}" for label, n, note in rows]
        missing = self.unaccounted
        if missing:
            out.append(f"  warning: {missing:,} records are not accounted for by the counts above")
        return out


def summary_of(result: Any, wall_s: float) -> RunSummary | None:
    """The summary of a ``JobExecutionResult`` (None when it carries no run totals, e.g. a detached submission)."""
    try:
        accumulators = result.get_all_accumulator_results()
    except Exception:  # noqa: BLE001 - no result (detached) or a gateway without one: no summary, nothing else lost
        return None
    summary = RunSummary.from_accumulators(accumulators or {}, wall_s)
    return summary if summary.totals else None
