"""The gateway against a real Tryton 8.2 server: work orders with the evidence, quality holds that really
block ``production.do`` on exactly the affected production orders, a long ERP outage, a crash between the
ERP call and the ledger, two gateways on a shared subscription, refusals into dead letters, and the
planner's outcome read back as a label. Real processes throughout: Mosquitto, trytond, the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plantwatch.clock import rfc3339
from plantwatch.contract import CONTEXT_SCHEMA, ProductionContext, context_topic, uuid7
from plantwatch.simulators.gateway_process import SITE, Gateway, Publisher, alert_record
from tests.conftest import wait_until

pytestmark = pytest.mark.erp

T0 = 1_795_000_000.0
EPISODE = rfc3339(T0)


@pytest.fixture
def publisher(broker) -> Iterator[Publisher]:
    result = Publisher(broker)
    yield result
    result.close()


def tryton_gateway(
    tmp_path: Path, broker, tryton, *, name: str = "gw", password: str | None = None, **options
) -> Gateway:
    return Gateway(
        tmp_path / name,
        broker,
        erp={
            "kind": "tryton",
            "base_url": tryton.url,
            "database": tryton.database,
            "user": tryton.plantwatch_user,
        },
        erp_password=password or tryton.plantwatch_password,
        gateway_id=name,
        **options,
    )


def context(publisher: Publisher, asset: str, order: str | None, since: float) -> None:
    """The MES says ``order`` runs on ``asset`` from ``since`` (None: idle)."""
    payload = ProductionContext(
        schema=CONTEXT_SCHEMA,
        id=uuid7(),
        site=SITE,
        asset=asset,
        ts=rfc3339(since),
        production_order=order,
        lot=f"LOT-{order}" if order else None,
        material="HOUSING-80" if order else None,
        since=rfc3339(since),
    )
    publisher.raw(context_topic(SITE, asset), payload.to_json().encode(), retain=True)


def test_an_alarm_becomes_one_tryton_task_with_the_evidence_and_the_outcome_comes_back(
    tmp_path: Path, broker, tryton, publisher
) -> None:
    gateway = tryton_gateway(tmp_path, broker, tryton, policy={"create_on": "warning"})
    gateway.start()
    try:
        publisher.record(alert_record(asset="pump-7", seq=1, at=T0, state="warning", episode=EPISODE))
        wait_until(
            lambda: [t["plantwatch_priority"] for t in tryton.tasks()] == ["3"], timeout_s=30, what="a task"
        )
        publisher.record(alert_record(asset="pump-7", seq=2, at=T0 + 600, state="alarm", episode=EPISODE))
        wait_until(
            lambda: [t["plantwatch_priority"] for t in tryton.tasks()] == ["2"],
            timeout_s=30,
            what="priority 2",
        )
        (task,) = tryton.tasks()
        assert task["name"] == "pump-7: bearing outer race defect"
        assert task["plantwatch_asset"] == "pump-7" and task["plantwatch_failure_mode"] == "outer_race"
        assert "BPFO 3.58× (107.4 Hz): 0.420 g in the envelope, 42× baseline" in task["comment"]
        assert "rose to alarm" in task["comment"]  # the escalation's note
        (document,) = gateway.documents()
        assert (document["number"], document["correlation_id"]) == (
            task["number"],
            task["plantwatch_correlation_id"],
        )
        tryton.close_task(task["number"], "fault_confirmed")
        wait_until(lambda: gateway.documents("closed"), timeout_s=30, what="the task read back as closed")
        status, labels = gateway.api("GET", "/feedback", "viv")
        assert status == 200 and [(lab["label"], lab["erp_number"]) for lab in labels] == [
            ("fault_confirmed", task["number"])
        ]
        assert labels[0]["features"]["env_bpfo_g"] == 0.42
        # the fault returns after the planner closed the order: a new one
        publisher.record(alert_record(asset="pump-7", seq=3, at=T0 + 7200, state="alarm", episode=EPISODE))
        wait_until(lambda: len(tryton.tasks()) == 2, timeout_s=30, what="a second task")
    finally:
        gateway.stop()


def test_an_excursion_holds_exactly_the_production_orders_made_during_it(
    tmp_path: Path, broker, tryton, publisher
) -> None:
    orders = {
        name: tryton.add_production(name) for name in ("PO-100", "PO-101", "PO-102", "PO-103", "PO-200")
    }
    gateway = tryton_gateway(tmp_path, broker, tryton)
    gateway.start()
    try:
        context(publisher, "pump-7", "PO-100", T0 - 7200)  # ends when the excursion begins: not held
        context(publisher, "pump-7", "PO-101", T0)
        context(publisher, "pump-7", "PO-102", T0 + 1800)
        context(publisher, "fan-2", "PO-200", T0 - 3600)  # another asset: not held
        publisher.record(alert_record(asset="pump-7", seq=1, at=T0 + 60, state="warning", episode=EPISODE))
        publisher.record(alert_record(asset="pump-7", seq=2, at=T0 + 600, state="alarm", episode=EPISODE))
        publisher.record(alert_record(asset="pump-7", seq=3, at=T0 + 3600, state="normal", episode=None))
        context(publisher, "pump-7", "PO-103", T0 + 3600)  # begins when it ends: not held
        wait_until(lambda: len(gateway.documents("open")) >= 3, timeout_s=60, what="2 holds and a task open")
        held = sorted(i["reference"] for i in tryton.inspections())
        assert len(held) == 2 and all(i["state"] == "failed" for i in tryton.inspections())
        origins = sorted(i["origin"] for i in tryton.inspections())
        assert origins == sorted(f"production,{orders[name][0]}" for name in ("PO-101", "PO-102"))
        message = "To continue, alerts from failed inspections must be resolved."
        assert tryton.try_production_do(orders["PO-101"][0]) == message
        assert tryton.try_production_do(orders["PO-102"][0]) == message
        for name in ("PO-100", "PO-103", "PO-200"):
            assert tryton.try_production_do(orders[name][0]) is None, name
        holds = gateway.rows(
            "SELECT production_order, lot, status FROM documents WHERE kind = 'hold' ORDER BY 1"
        )
        assert [(h["production_order"], h["lot"], h["status"]) for h in holds] == [
            ("PO-101", "LOT-PO-101", "open"),
            ("PO-102", "LOT-PO-102", "open"),
        ]
    finally:
        gateway.stop()


def test_a_hold_for_an_order_tryton_does_not_know_is_dead_lettered_with_its_message(
    tmp_path: Path, broker, tryton, publisher
) -> None:
    gateway = tryton_gateway(tmp_path, broker, tryton)
    gateway.start()
    try:
        context(publisher, "pump-7", "PO-404", T0 - 60)
        publisher.record(alert_record(asset="pump-7", seq=1, at=T0 + 60, episode=EPISODE))
        wait_until(lambda: gateway.rows("SELECT * FROM dead_letters"), timeout_s=30, what="the dead letter")
        (letter,) = gateway.rows("SELECT source, reason FROM dead_letters")
        assert letter["source"] == "erp" and "PO-404" in letter["reason"]
        wait_until(lambda: tryton.tasks(), timeout_s=30, what="the work order, created all the same")
    finally:
        gateway.stop()


def test_a_wrong_tryton_password_is_dead_lettered_not_retried(
    tmp_path: Path, broker, tryton, publisher
) -> None:
    gateway = tryton_gateway(tmp_path, broker, tryton, password="not-the-password")
    gateway.start()
    try:
        publisher.record(alert_record(asset="pump-7", seq=1, at=T0, episode=EPISODE))
        wait_until(lambda: gateway.rows("SELECT * FROM dead_letters"), timeout_s=60, what="the dead letter")
        (letter,) = gateway.rows("SELECT reason FROM dead_letters")
        assert "401" in letter["reason"] or "password" in letter["reason"].lower()
        assert tryton.tasks() == []
    finally:
        gateway.stop()


def test_tryton_down_for_a_long_outage_then_back_gets_every_document_once(
    tmp_path: Path, broker, tryton, publisher
) -> None:
    gateway = tryton_gateway(tmp_path, broker, tryton)
    gateway.start()
    try:
        tryton.stop()
        assets = [f"pump-{i}" for i in range(6)]
        for seq, asset in enumerate(assets, start=1):
            publisher.record(alert_record(asset=asset, seq=seq, at=T0 + seq, episode=EPISODE))
        wait_until(lambda: "circuit=open" in gateway.log(), timeout_s=60, what="the circuit breaker to open")
        assert gateway.documents("open") == []
        tryton.start()
        wait_until(
            lambda: len(gateway.documents("open")) == 6, timeout_s=90, what="6 documents after the outage"
        )
        tasks = tryton.tasks()
        assert sorted(t["plantwatch_asset"] for t in tasks) == assets
        assert len({t["plantwatch_correlation_id"] for t in tasks}) == 6
    finally:
        gateway.stop()


def test_a_gateway_killed_after_tryton_created_the_task_finds_it_on_restart(
    tmp_path: Path, broker, tryton, publisher
) -> None:
    gateway = tryton_gateway(tmp_path, broker, tryton)
    gateway.start(env={"PLANTWATCH_FAULT_INJECTION": "crash-after-erp-create"})
    publisher.record(alert_record(asset="pump-7", seq=1, at=T0, episode=EPISODE))
    wait_until(
        lambda: gateway.process is not None and gateway.process.poll() is not None,
        timeout_s=30,
        what="the crash",
    )
    assert len(tryton.tasks()) == 1 and [d["status"] for d in gateway.documents()] == ["pending"]
    gateway.start()
    try:
        wait_until(lambda: gateway.documents("open"), timeout_s=30, what="the task found after the restart")
        assert len(tryton.tasks()) == 1
        assert "erp_found_existing" in gateway.decisions()
    finally:
        gateway.stop()


def test_two_gateways_on_a_shared_subscription_create_no_duplicates_and_survive_one_dying(
    tmp_path: Path, broker, tryton, publisher
) -> None:
    first = tryton_gateway(tmp_path, broker, tryton, name="gw-a", shared_group="plant1-gateways")
    second = tryton_gateway(tmp_path, broker, tryton, name="gw-b", shared_group="plant1-gateways")
    first.start()
    second.start()
    try:
        assets = [f"pump-{i}" for i in range(5)]
        seq = 0
        for _ in range(4):  # every asset's alarm comes four times: each gateway sees some of them
            for asset in assets:
                seq += 1
                publisher.record(alert_record(asset=asset, seq=seq, at=T0 + seq, episode=EPISODE))
        wait_until(lambda: len(tryton.tasks()) >= 5, timeout_s=60, what="5 tasks")
        wait_until(
            lambda: len(first.documents("open")) + len(second.documents("open")) >= 5,
            timeout_s=60,
            what="both ledgers",
        )
        took = [len(first.rows("SELECT * FROM inbox")), len(second.rows("SELECT * FROM inbox"))]
        assert sum(took) == 20 and min(took) > 0  # the broker shared the alerts between them
        assert sorted(t["plantwatch_asset"] for t in tryton.tasks()) == assets  # one task per asset
        first.kill()
        later = [f"fan-{i}" for i in range(4)]
        for asset in later:
            seq += 1
            publisher.record(alert_record(asset=asset, seq=seq, at=T0 + seq, episode=EPISODE))
        first.start()  # whatever the broker had queued for the dead one comes when it is back
        wait_until(lambda: len(tryton.tasks()) == 9, timeout_s=60, what="the later alerts' tasks")
        assert sorted(t["plantwatch_asset"] for t in tryton.tasks()) == sorted(assets + later)
    finally:
        first.stop()
        second.stop()
