"""The gateway as a whole against ERPs: a real gateway process on a real Mosquitto, alerts published as an
agent publishes them, documents checked in the ERP (the SAP simulator here; the real Tryton server in
``test_erp_tryton.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plantwatch.clock import rfc3339
from plantwatch.simulators.gateway_process import Gateway, Publisher
from plantwatch.simulators.sap import SapSimulator
from tests.conftest import wait_until
from tests.test_gateway_store import T0, alert

pytestmark = pytest.mark.erp


@pytest.fixture
def sap() -> Iterator[SapSimulator]:
    simulator = SapSimulator(password="sap-secret")
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def publisher(broker) -> Iterator[Publisher]:
    result = Publisher(broker)
    yield result
    result.close()


def sap_gateway(tmp_path: Path, broker, sap: SapSimulator, **options: object) -> Gateway:
    return Gateway(
        tmp_path / str(options.pop("name", "gw")),
        broker,
        erp={"kind": "sap", "base_url": sap.url, "user": "PLANTWATCH"},
        erp_password=str(options.pop("password", "sap-secret")),
        **options,  # type: ignore[arg-type]
    )


def test_closed_loop_creates_one_notification_and_escalates_it(
    tmp_path: Path, broker, sap, publisher
) -> None:
    gateway = sap_gateway(tmp_path, broker, sap, policy={"create_on": "warning", "update_interval_s": 3600.0})
    gateway.start()
    try:
        first = alert(state="warning", seq=1)
        publisher.record(first)
        publisher.record(first)  # a copy (a resend after a reconnect)
        publisher.record(alert(state="warning", seq=2, at=T0 + 60))
        wait_until(lambda: sap.notifications(), timeout_s=20, what="the notification in SAP")
        publisher.record(alert(state="alarm", seq=3, at=T0 + 120))
        wait_until(
            lambda: [n["MaintPriority"] for n in sap.notifications()] == ["2"],
            timeout_s=20,
            what="priority 2",
        )
        (notification,) = sap.notifications()
        assert "BPFO 3.58×" in str(notification.get("NotificationText", "")) + str(notification)
        (document,) = gateway.documents()
        assert (document["status"], document["number"]) == ("open", notification["MaintenanceNotification"])
        wait_until(
            lambda: "erp_updated" in gateway.decisions(), timeout_s=20, what="the update in the ledger"
        )
        assert gateway.decisions().count("erp_created") == 1
    finally:
        gateway.stop()


def test_advisory_creates_nothing_until_a_planner_approves(tmp_path: Path, broker, sap, publisher) -> None:
    gateway = sap_gateway(tmp_path, broker, sap, approval="advisory")
    gateway.start()
    try:
        publisher.record(alert(seq=1))
        publisher.record(alert(asset="fan-2", seq=2))
        wait_until(
            lambda: len(gateway.documents("awaiting_approval")) == 2, timeout_s=20, what="2 recommendations"
        )
        status, pending = gateway.api("GET", "/recommendations", "viv")
        assert status == 200 and len(pending) == 2
        by_asset = {item["asset"]: item["correlation_id"] for item in pending}
        assert gateway.api("POST", f"/recommendations/{by_asset['pump-7']}/approve", "viv", {})[0] == 403
        assert sap.notifications() == []
        status, _ = gateway.api(
            "POST", f"/recommendations/{by_asset['fan-2']}/reject", "pat", {"reason": "fan was being cleaned"}
        )
        assert status == 200
        status, approved = gateway.api(
            "POST", f"/recommendations/{by_asset['pump-7']}/approve", "pat", {"reason": "confirmed"}
        )
        assert status == 200 and approved["status"] == "pending"
        wait_until(lambda: len(sap.notifications()) == 1, timeout_s=20, what="the approved notification")
        wait_until(lambda: gateway.documents("open"), timeout_s=20, what="the document open")
        (notification,) = sap.notifications()
        assert "PUMP-7" in str(notification).upper()
        ledger = gateway.rows(
            "SELECT decision, actor, reason FROM ledger WHERE actor IS NOT NULL AND decision != 'user_changed' ORDER BY id"
        )
        assert [(row["decision"], row["actor"]) for row in ledger] == [
            ("refused", "viv"),
            ("rejected", "pat"),
            ("approved", "pat"),
            ("erp_created", "pat"),  # the document records who approved it
        ]
        assert ledger[1]["reason"] == "fan was being cleaned"
    finally:
        gateway.stop()


def test_shadow_mode_creates_nothing_and_records_what_it_would_have(
    tmp_path: Path, broker, sap, publisher
) -> None:
    gateway = sap_gateway(tmp_path, broker, sap, approval="shadow")
    gateway.start()
    try:
        publisher.record(alert(seq=1))
        publisher.record(alert(seq=2, at=T0 + 60))
        wait_until(lambda: "repeat" in gateway.decisions(), timeout_s=20, what="the repeat in the ledger")
        assert gateway.decisions() == ["shadow", "repeat"]
        assert [d["status"] for d in gateway.documents()] == ["shadow"]
        assert sap.notifications() == [] and not [r for r in sap.requests() if r.method == "POST"]
    finally:
        gateway.stop()


def test_a_wrong_erp_password_dead_letters_with_the_erps_message(
    tmp_path: Path, broker, sap, publisher
) -> None:
    gateway = sap_gateway(tmp_path, broker, sap, password="wrong-secret")
    gateway.start()
    try:
        publisher.record(alert(seq=1))
        wait_until(lambda: gateway.rows("SELECT * FROM dead_letters"), timeout_s=20, what="a dead letter")
        (letter,) = gateway.rows("SELECT source, reason, correlation_id FROM dead_letters")
        assert letter["source"] == "erp" and "401" in letter["reason"]
        assert [d["status"] for d in gateway.documents()] == ["failed"]
        status, letters = gateway.api("GET", "/dead-letters", "viv")
        assert status == 200 and letters[0]["correlation_id"] == letter["correlation_id"]
    finally:
        gateway.stop()


def test_the_erp_busy_for_a_while_then_back_gets_every_document_once(
    tmp_path: Path, broker, sap, publisher
) -> None:
    gateway = sap_gateway(tmp_path, broker, sap)
    sap.fail_next(503, count=12, retry_after=1)
    gateway.start()
    try:
        assets = [f"pump-{i}" for i in range(5)]
        for seq, asset in enumerate(assets, start=1):
            publisher.record(alert(asset=asset, seq=seq, episode=rfc3339(T0 - 100)))
        wait_until(lambda: len(gateway.documents("open")) == 5, timeout_s=60, what="5 documents open")
        assert sorted(n["TechnicalObject"] for n in sap.notifications()) == sorted(a.upper() for a in assets)
        assert any("erp_retry" in line for line in gateway.log().splitlines())
    finally:
        gateway.stop()


def test_a_gateway_killed_between_the_erp_call_and_its_ledger_creates_no_duplicate(
    tmp_path: Path, broker, sap, publisher
) -> None:
    gateway = sap_gateway(tmp_path, broker, sap)
    gateway.start(env={"PLANTWATCH_FAULT_INJECTION": "crash-after-erp-create"})
    publisher.record(alert(seq=1))
    wait_until(
        lambda: gateway.process is not None and gateway.process.poll() is not None,
        timeout_s=20,
        what="the crash",
    )
    assert len(sap.notifications()) == 1
    assert [d["status"] for d in gateway.documents()] == ["pending"]  # the ledger never heard of it
    gateway.start()
    try:
        wait_until(
            lambda: gateway.documents("open"), timeout_s=20, what="the document found after the restart"
        )
        assert len(sap.notifications()) == 1
        assert "erp_found_existing" in gateway.decisions()
    finally:
        gateway.stop()
