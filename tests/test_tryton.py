"""Tryton adapter against a real Tryton 8.2 server (plantwatch's module activated), one fresh database copy
per test (fixtures ``tryton_template`` / ``tryton`` in conftest.py)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from plantwatch.gateway.erp import ErpAdapter, ErpError, HoldRequest, NotificationRequest, NotificationUpdate
from plantwatch.gateway.tryton import (
    TITLE_MAX,
    TrytonAdapter,
    hold_status,
    status_from_progress,
    tryton_error,
)
from plantwatch.simulators.tryton import TrytonServer, TrytonTemplate

HOLD_MESSAGE = "To continue, alerts from failed inspections must be resolved."
DUPLICATE_MESSAGE = "The plantwatch correlation ID must be unique."


def adapter_for(
    server: TrytonServer, *, password: str | None = None, timeout_s: float = 10.0
) -> TrytonAdapter:
    return TrytonAdapter(
        server.url,
        server.database,
        server.plantwatch_user,
        server.plantwatch_password if password is None else password,
        timeout_s=timeout_s,
    )


@pytest.fixture
def adapter(tryton: TrytonServer) -> TrytonAdapter:
    return adapter_for(tryton)


def notification(
    correlation_id: str = "PW7OR1", *, priority: str = "3", title: str = ""
) -> NotificationRequest:
    return NotificationRequest(
        correlation_id=correlation_id,
        asset="pump-7",
        failure_mode="outer_race",
        severity="alarm",
        priority=priority,
        title=title or "pump-7: outer race defect (BPFO 0.42 g)",
        long_text="BPFO 0.42 g at 2026-11-23T10:00Z\nbaseline 0.05 g",
    )


def hold(correlation_id: str = "HOLD1", production_order: str = "MO-1001") -> HoldRequest:
    return HoldRequest(
        correlation_id=correlation_id,
        asset="press-3",
        production_order=production_order,
        lot="L-0042",
        material="HOUSING",
        title=f"Hold {production_order}: press-3 out of its normal state",
        long_text="press-3 vibration 3.1 mm/s (alarm) from 10:00 to 10:20 while it ran this order",
    )


@pytest.mark.erp
def test_created_notification_is_a_task_with_the_finding_and_is_found_by_correlation_id(
    tryton: TrytonServer, adapter: TrytonAdapter
) -> None:
    assert isinstance(adapter, ErpAdapter) and adapter.name == "tryton"
    adapter.check()
    long_title = "pump-7: " + "outer race defect, growing " * 10

    document = adapter.create_notification(notification(priority="2", title=long_title))

    assert document.created and document.status == "outstanding" and document.outcome is None
    (task,) = tryton.tasks()
    assert task["number"] == document.number
    assert task["name"].endswith("…") and len(task["name"]) == TITLE_MAX
    assert task["comment"] == notification().long_text and task["status"] == "Open"
    assert (task["plantwatch_correlation_id"], task["plantwatch_asset"], task["plantwatch_failure_mode"]) == (
        "PW7OR1",
        "pump-7",
        "outer_race",
    )
    assert task["plantwatch_priority"] == "2"
    found = adapter.find_notification("PW7OR1")
    assert found is not None and (found.number, found.created) == (document.number, False)
    assert adapter.find_notification("OTHER1") is None


@pytest.mark.erp
def test_second_create_with_the_same_correlation_id_returns_the_first_task(
    tryton: TrytonServer, adapter: TrytonAdapter
) -> None:
    first = adapter.create_notification(notification())
    again = adapter_for(tryton).create_notification(notification(priority="1"))

    assert (again.number, again.created) == (first.number, False)
    assert len(tryton.tasks()) == 1


@pytest.mark.erp
def test_tryton_itself_refuses_a_second_task_or_inspection_with_one_correlation_id(
    tryton: TrytonServer, adapter: TrytonAdapter
) -> None:
    adapter.create_notification(notification())
    with pytest.raises(ErpError) as refused:
        tryton.call(
            "model.project.work.create",
            [{"name": "copy", "type": "task", "plantwatch_correlation_id": "PW7OR1"}],
        )
    assert refused.value.message == DUPLICATE_MESSAGE and not refused.value.retryable

    production_id, _number = tryton.add_production("MO-1001")
    adapter.create_hold(hold())
    with pytest.raises(ErpError) as refused:
        tryton.call(
            "model.quality.inspection.create",
            [
                {
                    "control": tryton.seed.hold_control,
                    "origin": f"production,{production_id}",
                    "points": {"hold": False},
                    "plantwatch_correlation_id": "HOLD1",
                }
            ],
        )
    assert refused.value.message == DUPLICATE_MESSAGE
    assert len(tryton.tasks()) == 1 and len(tryton.inspections()) == 1


@pytest.mark.erp
def test_create_that_lost_the_race_to_another_writer_returns_the_winners_task(
    tryton: TrytonServer, adapter: TrytonAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner = adapter_for(tryton).create_notification(notification())
    real_find = adapter._find_work
    calls: list[str] = []

    def find_after_losing(correlation_id: str) -> dict[str, object] | None:
        calls.append(correlation_id)
        return None if len(calls) == 1 else real_find(correlation_id)  # the first ran before the winner's

    monkeypatch.setattr(adapter, "_find_work", find_after_losing)

    document = adapter.create_notification(notification())

    assert (document.number, document.created) == (winner.number, False)
    assert len(calls) == 2 and len(tryton.tasks()) == 1


@pytest.mark.erp
def test_concurrent_creates_from_several_threads_all_succeed(
    tryton: TrytonServer, adapter: TrytonAdapter
) -> None:
    # Unserialised, Tryton on SQLite hands one task number out twice ("The number on work must be unique.").
    errors: list[BaseException] = []

    def create(thread: int) -> None:
        for index in range(4):
            try:
                adapter.create_notification(notification(f"T{thread}N{index}"))
            except ErpError as error:
                errors.append(error)

    threads = [threading.Thread(target=create, args=(thread,)) for thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    numbers = [task["number"] for task in tryton.tasks()]
    assert len(numbers) == 16 == len(set(numbers))


@pytest.mark.erp
def test_update_raises_the_priority_never_lowers_it_and_appends_the_note_once(
    tryton: TrytonServer, adapter: TrytonAdapter
) -> None:
    document = adapter.create_notification(notification(priority="3"))

    adapter.update_notification(NotificationUpdate(document.number, "PW7OR1", "2", "Repeat: BPFO 0.51 g"))
    adapter.update_notification(NotificationUpdate(document.number, "PW7OR1", "2", "Repeat: BPFO 0.51 g"))
    adapter.update_notification(NotificationUpdate(document.number, "PW7OR1", "4", "Repeat: BPFO 0.47 g"))

    (task,) = tryton.tasks()
    assert task["plantwatch_priority"] == "2"
    assert task["comment"] == notification().long_text + "\nRepeat: BPFO 0.51 g\nRepeat: BPFO 0.47 g"
    with pytest.raises(ErpError) as wrong:
        adapter.update_notification(NotificationUpdate(document.number, "OTHER1", "1", "x"))
    assert wrong.value.code == "wrong_document" and not wrong.value.retryable


@pytest.mark.erp
def test_read_notification_gives_completed_and_the_outcome_once_the_planner_closed_the_task(
    tryton: TrytonServer, adapter: TrytonAdapter
) -> None:
    fault = adapter.create_notification(notification("FAULT1"))
    healthy = adapter.create_notification(notification("HEALTHY1"))
    assert adapter.read_notification(fault.number).status == "outstanding"

    tryton.close_task(fault.number, "fault_confirmed")
    tryton.close_task(healthy.number, "no_fault_found")

    assert (
        adapter.read_notification(fault.number).status,
        adapter.read_notification(fault.number).outcome,
    ) == (
        "completed",
        "fault_confirmed",
    )
    read = adapter.read_notification(healthy.number)
    assert (read.status, read.outcome, read.correlation_id, read.created) == (
        "completed",
        "no_fault_found",
        "HEALTHY1",
        False,
    )
    with pytest.raises(ErpError) as unknown:
        adapter.read_notification("999")
    assert unknown.value.code == "not_found" and not unknown.value.retryable


@pytest.mark.erp
def test_hold_blocks_finishing_its_production_only_until_the_alert_is_resolved(
    tryton: TrytonServer, adapter: TrytonAdapter
) -> None:
    held_id, _ = tryton.add_production("MO-1001")
    other_id, _ = tryton.add_production("MO-1002")

    document = adapter.create_hold(hold(production_order="MO-1001"))

    assert document.created and document.status == "outstanding"
    (inspection,) = tryton.inspections()
    assert inspection["number"] == document.number and inspection["state"] == "failed"
    assert inspection["origin"] == f"production,{held_id}" and inspection["alert_states"] == ["open"]
    assert tryton.try_production_do(held_id) == HOLD_MESSAGE
    assert tryton.production_state(held_id) == "running"
    assert tryton.try_production_do(other_id) is None
    assert tryton.production_state(other_id) == "done"

    tryton.release_hold(document.number)

    found = adapter.find_hold("HOLD1")
    assert found is not None and (found.number, found.status) == (document.number, "completed")
    assert tryton.try_production_do(held_id) is None


@pytest.mark.erp
def test_hold_is_idempotent_and_a_pending_one_left_by_a_crash_gets_processed(
    tryton: TrytonServer, adapter: TrytonAdapter
) -> None:
    held_id, _ = tryton.add_production("MO-1001")
    first = adapter.create_hold(hold())
    again = adapter_for(tryton).create_hold(hold())
    assert (again.number, again.created, again.status) == (first.number, False, "outstanding")
    assert len(tryton.inspections()) == 1

    # A crash between the inspection's create and its process leaves it pending: no hold yet.
    tryton.call(
        "model.quality.inspection.create",
        [
            {
                "control": tryton.seed.hold_control,
                "origin": f"production,{held_id}",
                "points": {"hold": False},
                "plantwatch_correlation_id": "HOLD2",
            }
        ],
    )
    assert adapter.find_hold("HOLD2") is not None
    retried = adapter.create_hold(hold("HOLD2"))

    assert not retried.created and retried.status == "outstanding"
    assert [row["state"] for row in tryton.inspections()] == ["failed", "failed"]


@pytest.mark.erp
def test_hold_finds_the_production_by_mes_reference_or_number_and_refuses_an_unknown_one(
    tryton: TrytonServer, adapter: TrytonAdapter
) -> None:
    production_id, number = tryton.add_production("MO-1001")

    with pytest.raises(ErpError) as refused:
        adapter.create_hold(hold("HOLD1", production_order="MO-9999"))
    adapter.create_hold(hold("HOLD2", production_order=number))  # an MES that sends Tryton's number

    assert not refused.value.retryable and refused.value.code == "unknown_production_order"
    assert "MO-9999" in str(refused.value)
    assert adapter.find_hold("HOLD1") is None
    assert tryton.try_production_do(production_id) == HOLD_MESSAGE


@pytest.mark.erp
def test_expired_session_is_renewed_by_one_new_login(tryton: TrytonServer, adapter: TrytonAdapter) -> None:
    adapter.create_notification(notification("BEFORE1"))
    tryton.set_password(tryton.plantwatch_user, tryton.plantwatch_password)  # Tryton ends the sessions

    document = adapter.create_notification(notification("AFTER1"))

    assert document.created and len(tryton.tasks()) == 2


@pytest.mark.erp
def test_stopped_or_hung_server_is_retryable_and_the_adapter_works_again_after(tryton: TrytonServer) -> None:
    adapter = adapter_for(tryton, timeout_s=1.0)
    adapter.create_notification(notification("BEFORE1"))
    assert tryton.pid is not None
    os.kill(tryton.pid, signal.SIGSTOP)  # hung: the port accepts, nothing answers
    try:
        with pytest.raises(ErpError) as hung:
            adapter.find_notification("BEFORE1")
    finally:
        os.kill(tryton.pid, signal.SIGCONT)
    tryton.stop()

    with pytest.raises(ErpError) as down:
        adapter.create_notification(notification("DOWN1"))
    tryton.start()

    assert hung.value.retryable and hung.value.code == "unreachable" and "timed out" in str(hung.value)
    assert down.value.retryable and down.value.code == "unreachable"
    assert adapter.create_notification(notification("DOWN1")).created


@pytest.fixture
def strict_tryton(tmp_path: Path, tryton_template: TrytonTemplate) -> Iterator[TrytonServer]:
    """A server that rate-limits logins after a single failure (``[session] max_attempt = 0``), so that
    HTTP 429 comes at once instead of after 5 failures and up to 31 s of Tryton's progressive delay."""
    config = {"session": {"max_attempt": "0"}}
    with TrytonServer(tmp_path / "strict", template=tryton_template, config=config) as server:
        yield server


@pytest.mark.erp
def test_wrong_password_is_not_retryable_and_says_so_and_a_rate_limited_login_is(
    strict_tryton: TrytonServer,
) -> None:
    with pytest.raises(ErpError) as refused:
        adapter_for(strict_tryton, password="not-the-password").check()
    with pytest.raises(ErpError) as limited:
        adapter_for(strict_tryton).check()  # the right password, but one failure too many just now

    assert refused.value.status == 401 and not refused.value.retryable
    assert "wrong user or password" in str(refused.value) and "'plantwatch'" in str(refused.value)
    assert limited.value.status == 429 and limited.value.retryable


@pytest.mark.erp
def test_task_status_follows_the_progress_of_tryton_work_status() -> None:
    assert [status_from_progress(p) for p in (None, 0.0, 0.25, 1.0)] == [
        "outstanding",
        "outstanding",
        "in_process",
        "completed",
    ]


@pytest.mark.erp
def test_hold_status_follows_the_strongest_alert() -> None:
    assert hold_status("failed", ["resolved", "open"]) == "outstanding"
    assert hold_status("failed", ["deferred"]) == "postponed"
    assert hold_status("failed", ["processing", "resolved"]) == "in_process"
    assert hold_status("failed", []) == "outstanding"
    assert hold_status("passed", ["open"]) == "completed"
    assert hold_status("pending", []) == "outstanding"


@pytest.mark.erp
def test_tryton_user_errors_are_final_but_the_sequence_race_and_server_faults_are_retryable() -> None:
    hold_refusal = tryton_error("model.production.do", ["UserError", [HOLD_MESSAGE, "", None]])
    race = tryton_error(
        "model.project.work.create", ["UserError", ["The number on work must be unique.", "", None]]
    )
    fault = tryton_error(
        "model.project.work.create", ["database is locked", "Traceback (most recent call last):"]
    )
    concurrent = tryton_error("model.project.work.write", ["ConcurrencyException", "Records were modified"])

    assert (hold_refusal.retryable, hold_refusal.message, hold_refusal.code) == (
        False,
        HOLD_MESSAGE,
        "UserError",
    )
    assert race.retryable and fault.retryable and concurrent.retryable
    assert "database is locked" in fault.message and fault.code == "server_error"
