"""The closing summary of a finished job, from its run totals (``jobs.run_summary``)."""

from __future__ import annotations

from typing import Any

import pytest

from kafka_pinecone_flink.jobs.run_summary import RunSummary, summary_of

pytestmark = pytest.mark.unit

CONSISTENT = {
    "decode.records_in": 100,
    "decode.decoded": 90,
    "decode.dead_lettered": 6,
    "decode.skipped_tombstone_ignored": 3,
    "decode.skipped_delete_ignored": 1,
    "dedup.records_in": 90,
    "dedup.skipped_unchanged": 5,
    "dedup.skipped_stale": 2,
    "sink.upserted": 50,
    "sink.updated": 20,
    "sink.deleted": 7,
    "sink.superseded": 3,
    "sink.dead_lettered": 2,
    "sink.embed_dead_lettered": 1,
}
"""100 in: 6 + 4 dead-lettered/skipped by decode, 7 skipped by dedup, 83 reach the sink (80 applied, 3 dead)."""


def summary(totals: dict[str, Any], wall_s: float = 12.5) -> RunSummary:
    return RunSummary.from_accumulators(totals, wall_s)


def test_from_accumulators_keeps_only_stage_prefixed_integer_counts() -> None:
    found = summary({"decode.records_in": 4, "numRecordsIn": 9, "sink.upserted": 4, "sink.note": "text"})
    assert dict(found.totals) == {"decode.records_in": 4, "sink.upserted": 4}
    assert found.get("numRecordsIn") == 0 and found.get("sink.note") == 0


def test_skipped_merges_decode_skip_reasons_with_dedup_unchanged_and_stale() -> None:
    skipped = summary(CONSISTENT).skipped
    assert skipped == {"tombstone_ignored": 3, "delete_ignored": 1, "unchanged": 5, "stale": 2}


def test_skipped_adds_a_decode_reason_and_a_dedup_reason_of_the_same_name() -> None:
    assert summary({"decode.skipped_unchanged": 2, "dedup.skipped_unchanged": 3}).skipped == {"unchanged": 5}


def test_dead_lettered_is_by_the_stage_that_rejected_the_record() -> None:
    assert summary(CONSISTENT).dead_lettered == {"decode": 6, "embed": 1, "sink": 2}
    assert summary({"sink.embed_dead_lettered": 4}).dead_lettered == {"embed": 4}


def test_a_consistent_set_of_totals_accounts_for_every_record() -> None:
    assert summary(CONSISTENT).unaccounted == 0


@pytest.mark.parametrize(("name", "delta", "unaccounted"), [("sink.upserted", -1, 1), ("sink.deleted", 2, -2)])
def test_a_record_lost_or_counted_twice_is_unaccounted(name: str, delta: int, unaccounted: int) -> None:
    totals = {**CONSISTENT, name: CONSISTENT[name] + delta}
    assert summary(totals).unaccounted == unaccounted


def test_lines_show_every_figure() -> None:
    lines = summary(CONSISTENT).lines()
    assert lines[0] == "Run summary (12.5 s):"
    figures = {
        "records in": 100,
        "upserted": 50,
        "updated": 20,
        "deleted": 7,
        "superseded": 3,
        "skipped": 11,
        "dead-lettered": 9,
    }
    rows = {line[2:16].strip(): line[16:] for line in lines[1:]}
    assert list(rows) == list(figures)
    for label, figure in figures.items():
        assert rows[label].split()[0] == f"{figure:,}", (label, rows[label])
    assert rows["skipped"].endswith("(tombstone ignored 3, delete ignored 1, unchanged 5, stale 2)")
    assert rows["dead-lettered"].endswith("(decode 6, embed 1, sink 2)")


def test_lines_warn_when_records_are_unaccounted_for() -> None:
    lines = summary({**CONSISTENT, "decode.records_in": 1_234_567}).lines()
    assert lines[-1] == "  warning: 1,234,467 records are not accounted for by the counts above"
    assert any("1,234,567" in line for line in lines)


class Result:
    def __init__(self, accumulators: Any) -> None:
        self._accumulators = accumulators

    def get_all_accumulator_results(self) -> Any:
        if isinstance(self._accumulators, Exception):
            raise self._accumulators
        return self._accumulators


def test_summary_of_reads_the_accumulators_of_a_job_result() -> None:
    found = summary_of(Result(CONSISTENT), 3.0)
    assert found is not None and found.get("sink.upserted") == 50 and found.wall_s == 3.0


@pytest.mark.parametrize(
    "result",
    [object(), Result(RuntimeError("detached")), Result(None), Result({}), Result({"numRecordsIn": 3})],
    ids=["no-accumulators", "raising", "none", "empty", "no-run-totals"],
)
def test_summary_of_is_none_without_run_totals(result: Any) -> None:
    assert summary_of(result, 1.0) is None
