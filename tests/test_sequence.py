"""Sequence tracking at the gateway: the pure per-agent account, then the store on a real SQLite file.

Seqs 1, 2, 3, … are shared by an agent's health records and alerts. Alerts overtake health records after
an outage (open holes that close), an agent with a full disk thins health records (gaps, confirmed only
by a drained status), records come twice (dropped by id), and an agent that lost its database numbers
from 1 again (a reset).
"""

from __future__ import annotations

import dataclasses
import doctest
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwatch.clock import parse_rfc3339, rfc3339
from plantwatch.contract import ALERT_SCHEMA, HEALTH_SCHEMA, Record, uuid7
from plantwatch.gateway import sequence
from plantwatch.gateway.sequence import RESET_DROP, AgentSequence, Arrival, Gap, Observation
from plantwatch.gateway.store import (
    PRUNE_INTERVAL_S,
    AgentStatus,
    DeadLetter,
    GatewayStore,
    RecordIn,
    RecordTaken,
    StatusTaken,
)
from tests.test_gateway_store import alert

SITE = "plant1"
AGENT = "gw-line3"
START_S = parse_rfc3339("2026-03-01T12:00:00Z")


def account_after(seqs: list[int]) -> AgentSequence:
    """The account after records with ``seqs`` arrived in that order (ids in the same order)."""
    first, *rest = seqs
    account = AgentSequence.start(seq=first, message_id=f"id-{first:06d}")
    for seq in rest:
        assert account.observe(seq, f"id-{seq:06d}") == Observation(Arrival.NEW)
    return account


# --- the pure account --------------------------------------------------------------------------------


def test_in_order_arrival_leaves_no_hole() -> None:
    account = account_after(list(range(1, 11)))
    assert (account.contiguous, account.ranges, account.open_holes, account.highest) == (10, [], 0, 10)
    assert account.confirm(10).gaps == []


def test_the_first_record_starts_the_account_with_nothing_missing_below_it() -> None:
    account = AgentSequence.start(seq=5000, message_id="id-5000")
    assert (account.contiguous, account.ranges, account.open_holes) == (5000, [], 0)
    assert account.confirm(4000).gaps == []
    assert account.contiguous == 5000


def test_an_alert_ahead_of_the_backlog_opens_a_hole_that_the_backlog_closes() -> None:
    account = account_after([1, 2, 3])
    account.observe(7, "id-000007")  # the alert, in the priority lane
    assert (account.contiguous, account.ranges, account.open_holes) == (3, [(7, 7)], 3)
    account.observe(8, "id-000008")
    account.observe(4, "id-000004")
    assert (account.contiguous, account.ranges, account.open_holes) == (4, [(7, 8)], 2)
    account.observe(5, "id-000005")
    account.observe(6, "id-000006")
    assert (account.contiguous, account.ranges, account.open_holes) == (8, [], 0)
    assert account.confirm(8).gaps == []


def test_runs_merge_when_they_touch() -> None:
    account = account_after([1, 10, 5, 3, 4, 12, 11])
    assert account.ranges == [(3, 5), (10, 12)]
    account.observe(2, "id-000002")
    assert (account.contiguous, account.ranges) == (5, [(10, 12)])
    for seq in (6, 7, 9):
        account.observe(seq, f"id-{seq:06d}")
    assert (account.contiguous, account.ranges, account.open_holes) == (7, [(9, 12)], 1)
    account.observe(8, "id-000008")
    assert (account.contiguous, account.ranges) == (12, [])


def test_a_drained_status_confirms_exactly_the_holes_up_to_its_last_seq() -> None:
    # seqs 4-6 and 9 thinned by the agent; the alert 12 came first, the rest in order
    account = account_after([1, 2, 3, 12, 7, 8, 10, 11])
    assert (account.ranges, account.open_holes) == ([(7, 8), (10, 12)], 4)
    confirmation = account.confirm(5, records_thinned=3)
    assert confirmation.gaps == [Gap(4, 5)]
    assert (confirmation.missing, confirmation.thinned) == (2, 3)
    assert (account.contiguous, account.ranges, account.open_holes) == (5, [(7, 8), (10, 12)], 2)
    confirmation = account.confirm(14, records_thinned=4)
    assert confirmation.gaps == [Gap(6, 6), Gap(9, 9), Gap(13, 14)]
    assert [gap.missing for gap in confirmation.gaps] == [1, 1, 2]
    assert confirmation.thinned == 1  # since the previous drained status
    assert (account.contiguous, account.ranges, account.open_holes, account.highest) == (14, [], 0, 14)
    assert account.confirm(14).gaps == []


def test_a_hole_reaching_past_last_seq_is_confirmed_only_up_to_it() -> None:
    account = account_after([1, 10])
    assert account.confirm(4).gaps == [Gap(2, 4)]
    assert (account.contiguous, account.ranges, account.open_holes) == (4, [(10, 10)], 5)


def test_thinned_counts_start_over_when_the_agents_counter_does() -> None:
    account = account_after([1])
    assert account.confirm(1, records_thinned=40).thinned == 40  # the first drained status: all of them
    assert account.confirm(1, records_thinned=40).thinned == 0
    assert account.confirm(1, records_thinned=3).thinned == 3  # a counter that went down started over
    assert account.confirm(1).thinned is None
    assert account.records_thinned == 3


def test_a_new_id_with_a_seq_far_below_the_top_is_a_reset() -> None:
    account = account_after([*range(1, 501), 510])
    assert account.open_holes == 9
    observation = account.observe(1, "id-999999")
    assert observation == Observation(Arrival.RESET, previous_highest=510, abandoned=9)
    assert (account.contiguous, account.ranges, account.open_holes, account.newest_id) == (
        1,
        [],
        0,
        "id-999999",
    )
    assert account.observe(2, "id-999999a") == Observation(Arrival.NEW)


def test_a_covered_seq_with_an_older_id_is_late_and_changes_nothing() -> None:
    account = account_after([*range(1, 501), 510])
    before = account.copy()
    # an old record resent after the gateway forgot its id, or one of a declared gap that came after all
    assert account.observe(3, "id-000002x") == Observation(Arrival.LATE)
    assert account == before


def test_a_covered_seq_just_below_the_top_is_late_even_with_a_newer_id() -> None:
    account = account_after(list(range(1, 501)))
    assert account.observe(500 - RESET_DROP + 1, "id-999999") == Observation(Arrival.LATE)
    assert (account.contiguous, account.ranges) == (500, [])
    assert account.observe(500 - RESET_DROP, "id-9999999").arrival is Arrival.RESET


def test_ranges_survive_their_json_form() -> None:
    account = account_after([1, 5, 6, 9])
    assert account.ranges_json() == "[[5,6],[9,9]]"
    assert AgentSequence.ranges_from_json(account.ranges_json()) == account.ranges


@given(
    st.integers(min_value=2, max_value=60).flatmap(
        lambda n: st.tuples(st.permutations(range(2, n + 1)), st.sets(st.integers(2, n)), st.just(n))
    )
)
def test_any_arrival_order_gives_the_same_account_and_the_gaps_are_exactly_what_never_came(
    case: tuple[list[int], set[int], int],
) -> None:
    order, lost, last_seq = case
    account = account_after([1, *[seq for seq in order if seq not in lost]])
    arrived = {1} | (set(order) - lost)
    top = max(arrived)
    # the account is canonical: contiguous, then disjoint, sorted, non-touching runs of what arrived
    assert all(seq in arrived for seq in range(1, account.contiguous + 1))
    assert account.contiguous + 1 not in arrived
    assert {seq for first, last in account.ranges for seq in range(first, last + 1)} == {
        seq for seq in arrived if seq > account.contiguous
    }
    assert all(a[1] + 1 < b[0] for a, b in zip(account.ranges, account.ranges[1:], strict=False))
    assert account.open_holes == len([seq for seq in lost if seq < top])
    gaps = account.confirm(last_seq).gaps
    assert [seq for gap in gaps for seq in range(gap.first, gap.last + 1)] == sorted(lost)
    assert all(a.last + 1 < b.first for a, b in zip(gaps, gaps[1:], strict=False))
    assert (account.contiguous, account.ranges, account.open_holes) == (last_seq, [], 0)


def test_the_module_docstring_example_runs() -> None:
    assert doctest.testmod(sequence, raise_on_error=False).failed == 0


# --- the store ---------------------------------------------------------------------------------------


def record(seq: int, *, kind: str = "health", ts: str | None = None, **changes: object) -> Record:
    """A valid health record (or alert) of agent ``gw-line3`` with ``seq``, a new id, and (unless ``ts``
    says otherwise) measured ``seq`` seconds after 2026-03-01T12:00:00Z."""
    made = alert(seq=seq, schema=HEALTH_SCHEMA if kind == "health" else ALERT_SCHEMA)
    return dataclasses.replace(made, ts=ts or rfc3339(START_S + seq), **changes)


def status(*, last_seq: int | None, buffered: int | None, thinned: int | None = None) -> AgentStatus:
    return AgentStatus(SITE, AGENT, last_seq=last_seq, buffered_records=buffered, records_thinned=thinned)


def take(store: GatewayStore, *items: Record | AgentStatus, now_s: float = 1000.0) -> list:
    return store.take([RecordIn(item) if isinstance(item, Record) else item for item in items], now_s=now_s)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GatewayStore]:
    result = GatewayStore(tmp_path / "gateway.sqlite", health_retention_s=100.0)
    yield result
    result.close()


def received_ids(store: GatewayStore) -> set[str]:
    return {row[0] for row in store.conn.execute("SELECT message_id FROM received")}


def test_a_health_record_seen_twice_is_dropped_by_its_id_also_within_one_batch(store: GatewayStore) -> None:
    first = record(1)
    taken = take(store, first, first)
    assert [t.duplicate for t in taken] == [False, True]
    (again,) = take(store, first, now_s=1001.0)
    assert again == RecordTaken(first, duplicate=True)
    assert received_ids(store) == {first.id}
    # health records stay out of the inbox and the ledger
    assert store.conn.execute("SELECT count(*) FROM inbox").fetchone()[0] == 0
    assert store.ledger() == []


def test_an_alert_seen_twice_is_dropped_by_its_id(store: GatewayStore) -> None:
    first = record(1, kind="alert")
    taken = take(store, first, record(2), first)
    assert [t.duplicate for t in taken] == [False, False, True]
    assert store.conn.execute("SELECT count(*) FROM inbox").fetchone()[0] == 1
    assert received_ids(store) == {taken[1].record.id}
    assert [entry["decision"] for entry in store.ledger()] == ["debounce"]  # one alarm so far: not yet work
    assert store.account(SITE, AGENT) == AgentSequence(2, [], max(taken[0].record.id, taken[1].record.id))


def test_alerts_and_health_records_share_one_sequence(store: GatewayStore) -> None:
    take(store, record(1), record(2), record(6, kind="alert"), record(3))
    assert (store.account(SITE, AGENT).contiguous, store.account(SITE, AGENT).ranges) == (3, [(6, 6)])
    assert store.open_holes(SITE) == {AGENT: 2}
    take(store, record(4), record(5))
    assert (store.account(SITE, AGENT).contiguous, store.account(SITE, AGENT).ranges) == (6, [])
    assert store.open_holes(SITE) == {}
    (confirmed,) = take(store, status(last_seq=6, buffered=0))
    assert confirmed.confirmation.gaps == []
    assert store.gaps() == [] and store.sequence_gaps(SITE) == {}


def test_thinned_seqs_are_a_gap_only_once_a_drained_status_covers_them(store: GatewayStore) -> None:
    # 3, 4 and 8 were thinned; the alert 9 came ahead of the backlog
    take(store, record(1), record(2), record(9, kind="alert"), record(5), record(6), record(7))
    assert store.open_holes(SITE) == {AGENT: 3}
    # still sending, an older agent without the fields, a drained status below the holes: nothing
    results = take(
        store,
        status(last_seq=9, buffered=12),
        status(last_seq=None, buffered=None),
        status(last_seq=2, buffered=0),
        now_s=1010.0,
    )
    assert [r.confirmation.gaps if r.confirmation else None for r in results] == [None, None, []]
    assert store.gaps() == [] and store.sequence_gaps(SITE) == {}
    (drained,) = take(store, status(last_seq=9, buffered=0, thinned=3), now_s=1020.0)
    assert drained.confirmation.gaps == [Gap(3, 4), Gap(8, 8)]
    rows = [
        (row["kind"], row["first"], row["last"], row["missing"], row["thinned_by_agent"], row["detected_at"])
        for row in store.gaps()
    ]
    assert rows == [("gap", 3, 4, 2, 3, 1020.0), ("gap", 8, 8, 1, 3, 1020.0)]
    assert store.sequence_gaps(SITE) == {AGENT: 3}
    assert store.open_holes(SITE) == {}
    assert (store.account(SITE, AGENT).contiguous, store.account(SITE, AGENT).ranges) == (9, [])
    # the same status again confirms nothing more
    (again,) = take(store, status(last_seq=9, buffered=0, thinned=3), now_s=1030.0)
    assert again.confirmation.gaps == [] and len(store.gaps()) == 2


def test_a_status_of_an_agent_not_tracked_yet_confirms_nothing(store: GatewayStore) -> None:
    assert take(store, status(last_seq=50, buffered=0)) == [StatusTaken(status(last_seq=50, buffered=0))]
    assert store.account(SITE, AGENT) is None
    take(store, record(51))
    assert store.account(SITE, AGENT) == AgentSequence(51, [], store.account(SITE, AGENT).newest_id)


def test_a_reset_is_recorded_and_tracking_restarts_at_its_seq(store: GatewayStore) -> None:
    take(store, *[record(seq) for seq in range(1, 301)], record(305, kind="alert"))
    (reset,) = take(store, record(1, kind="alert"), now_s=2000.0)
    assert reset.observation == Observation(Arrival.RESET, previous_highest=305, abandoned=4)
    (row,) = store.gaps()
    assert (row["kind"], row["first"], row["last"], row["missing"], row["detected_at"]) == (
        "reset",
        1,
        305,
        4,
        2000.0,
    )
    assert store.sequence_gaps(SITE) == {AGENT: 4}
    assert store.open_holes(SITE) == {}
    assert store.account(SITE, AGENT).contiguous == 1
    take(store, record(2), record(3))
    assert (store.account(SITE, AGENT).contiguous, store.account(SITE, AGENT).ranges) == (3, [])


def test_a_late_record_is_accepted_and_leaves_the_account_alone(store: GatewayStore) -> None:
    old = record(3)  # made first, so its id is older than those of the records after it
    take(store, record(1), record(2), record(5))
    take(store, status(last_seq=5, buffered=0))  # 3 and 4 declared missing
    before = store.account(SITE, AGENT)
    (late,) = take(store, old)
    assert late == RecordTaken(old, duplicate=False, observation=Observation(Arrival.LATE))
    assert store.account(SITE, AGENT) == before
    assert old.id in received_ids(store)


def test_the_accounts_gaps_and_ids_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite"
    store = GatewayStore(path)
    seen = record(1)
    take(store, seen, record(2), record(7, kind="alert"), record(3), record(4))
    take(store, status(last_seq=4, buffered=0, thinned=10), record(5))
    take(store, status(last_seq=3, buffered=0))  # nothing new
    before = store.account(SITE, AGENT)
    gaps = store.gaps()
    store.close()
    store = GatewayStore(path)
    try:
        assert store.account(SITE, AGENT) == before
        assert (before.contiguous, before.ranges, before.records_thinned) == (5, [(7, 7)], 10)
        assert store.open_holes(SITE) == {AGENT: 1}
        assert store.gaps() == gaps == []
        assert take(store, seen)[0].duplicate
        (drained,) = take(store, status(last_seq=7, buffered=0, thinned=11))
        assert (drained.confirmation.gaps, drained.confirmation.thinned) == ([Gap(6, 6)], 1)
    finally:
        store.close()
    store = GatewayStore(path)
    try:
        assert store.sequence_gaps(SITE) == {AGENT: 1}
        assert store.open_holes(SITE) == {}
    finally:
        store.close()


def test_retention_pruning_removes_only_expired_health_ids_at_most_once_a_minute(store: GatewayStore) -> None:
    assert PRUNE_INTERVAL_S == 60.0
    old, newer = record(1), record(2)
    warning = record(3, kind="alert")
    take(store, old, now_s=1000.0)  # pruned now: nothing is old enough
    take(store, newer, warning, now_s=1090.0)  # pruned at 1090: nothing before 990
    take(store, now_s=1149.0)  # too soon after 1090 to prune
    assert received_ids(store) == {old.id, newer.id}
    take(store, now_s=1150.0)  # prunes everything received before 1050
    assert received_ids(store) == {newer.id}
    take(store, now_s=1200.0)  # too soon again, though newer's time is past
    assert received_ids(store) == {newer.id}
    take(store, now_s=1210.0)
    assert received_ids(store) == set()
    # alerts are kept for good
    assert [row[0] for row in store.conn.execute("SELECT message_id FROM inbox")] == [warning.id]


def test_asset_latest_keeps_the_newest_measurement_not_the_last_arrival(store: GatewayStore) -> None:
    alarm = record(9, kind="alert", ts="2026-03-01T12:09:00.000Z", state="alarm", score=3.4)
    backlog = record(5, ts="2026-03-01T12:05:00.000Z", state="normal", score=0.2)
    take(store, alarm, now_s=1000.0)
    take(store, backlog, now_s=1001.0)
    (row,) = store.asset_latest()
    assert (row["asset"], row["state"], row["score"], row["seq"], row["message_id"], row["received_at"]) == (
        "pump-7",
        "alarm",
        3.4,
        9,
        alarm.id,
        1000.0,
    )
    after = record(10, ts="2026-03-01T12:10:00.000Z", state="warning", score=1.5)
    take(store, after, record(11, asset="fan-2", ts="2026-03-01T12:00:00.160Z"), now_s=1002.0)
    rows = {row["asset"]: (row["state"], row["score"], row["received_at"]) for row in store.asset_latest()}
    assert rows == {"pump-7": ("warning", 1.5, 1002.0), "fan-2": ("alarm", 3.4, 1002.0)}


def test_a_batch_that_fails_changes_nothing_in_the_file_or_in_memory(store: GatewayStore) -> None:
    take(store, record(1))
    before = store.account(SITE, AGENT)
    with pytest.raises(AttributeError):
        store.take([RecordIn(record(2)), RecordIn(record(5)), object()], now_s=1001.0)  # type: ignore[list-item]
    assert store.account(SITE, AGENT) == before
    assert store.open_holes(SITE) == {}
    assert len(received_ids(store)) == 1
    assert tuple(store.conn.execute("SELECT contiguous, ranges FROM agent_sequence").fetchone()) == (1, "[]")


def test_dead_letters_in_a_batch_are_kept_with_the_records(store: GatewayStore) -> None:
    letter = DeadLetter(
        source="mqtt", topic="plantwatch/v1/plant1/gw-line3/status", payload=b"{", reason="bad"
    )
    assert take(store, record(1), letter)[1] is None
    assert store.dead_letter_count() == 1


def test_the_second_migration_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite"
    GatewayStore(path).close()
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"received", "asset_latest", "agent_sequence", "sequence_gaps"} <= tables
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "received_by_time" in indexes
    conn.close()


def test_uuid7_ids_sort_in_creation_order_as_the_reset_rule_assumes() -> None:
    made = [uuid7(now_s=1_700_000_000.0 + n // 10) for n in range(100)]
    assert sorted(made) == made and len(set(made)) == 100
