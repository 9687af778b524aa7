"""End to end with real processes: machine simulator (pty) → agent → Mosquitto → gateway → SAP simulator."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from plantwatch.simulators.plant import Plant, find_mosquitto
from tests.conftest import wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        find_mosquitto() is None, reason="mosquitto is not installed (make setup installs it)"
    ),
]

STORED = re.compile(r"alert_stored .*?state=(\w+) .*?seq=(\d+) id=([0-9a-f-]{36})")


def stored_alerts(plant: Plant) -> list[tuple[str, int, str]]:
    """``(state, seq, id)`` of every alert the agent reported as stored, from its log."""
    text = (plant.workdir / "agent.log").read_text(errors="replace")
    return [(state, int(seq), mid) for state, seq, mid in STORED.findall(text)]


def gateway_inbox(plant: Plant) -> list[tuple[str, int]]:
    """``(message id, seq)`` of every alert in the gateway's inbox."""
    with sqlite3.connect(plant.workdir / "gateway" / "gateway.sqlite") as conn:
        return conn.execute("SELECT message_id, seq FROM inbox ORDER BY seq").fetchall()


def agent_outbox_rows(plant: Plant) -> int:
    with sqlite3.connect(plant.workdir / "agent" / "agent.sqlite") as conn:
        return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]


@pytest.fixture
def plant(tmp_path: Path):
    instance = Plant(tmp_path / "plant")
    yield instance
    codes = instance.stop()
    # a clean SIGTERM shutdown is part of the contract
    assert codes["agent"] == 0, instance.log_tail("agent")
    assert codes["gateway"] == 0, instance.log_tail("gateway")


def test_failing_bearing_becomes_exactly_one_notification(plant: Plant) -> None:
    plant.start(days=2.0, onset_days=0.5, speed=0)
    wait_until(
        lambda: plant.check_running() or plant.machine_done(), timeout_s=120, what="the simulated run to end"
    )
    wait_until(plant.notifications, timeout_s=60, what="a notification in SAP")
    wait_until(lambda: agent_outbox_rows(plant) == 0, timeout_s=60, what="the agent's outbox to drain")
    stored = stored_alerts(plant)
    wait_until(
        lambda: len(gateway_inbox(plant)) == len(stored), timeout_s=30, what="every alert at the gateway"
    )

    notes = plant.notifications()
    assert len(notes) == 1
    note = notes[0]
    assert note["NotificationType"] == "M2"
    assert note["TechnicalObject"] == "PUMP-7"
    assert note["MaintPriority"] == "2"
    assert re.fullmatch(r"PW[A-Z2-7]{18}", note["MaintNotifExtReferenceNumber"])
    assert "outer race" in note["NotificationText"]
    long_text = note["MaintNotifLongTextForEdit"]
    assert "BPFO" in long_text
    assert "anomaly-ae 2.0.0" in long_text
    assert note["MaintNotifExtReferenceNumber"] in long_text
    # the agent escalated through warning to alarm, and the gateway saw each alert once
    states = [state for state, _, _ in stored]
    assert states[0] == "warning" and "alarm" in states
    assert sorted(mid for mid, _ in gateway_inbox(plant)) == sorted(mid for _, _, mid in stored)


def test_broker_restart_loses_no_alert_and_duplicates_no_notification(plant: Plant) -> None:
    plant.start(days=2.5, onset_days=0.5, speed=6000)
    assert plant.broker is not None
    wait_until(lambda: plant.check_running() or stored_alerts(plant), timeout_s=90, what="the first alert")
    plant.broker.stop()
    # the alarm is raised and stored while the broker is down
    wait_until(
        lambda: plant.check_running() or any(state == "alarm" for state, _, _ in stored_alerts(plant)),
        timeout_s=60,
        what="an alarm during the outage",
    )
    assert plant.notifications() == []
    plant.broker.start()
    wait_until(
        lambda: plant.check_running() or plant.machine_done(), timeout_s=120, what="the simulated run to end"
    )
    wait_until(lambda: agent_outbox_rows(plant) == 0, timeout_s=90, what="the agent's outbox to drain")
    stored = stored_alerts(plant)
    wait_until(
        lambda: len(gateway_inbox(plant)) == len(stored), timeout_s=60, what="every alert at the gateway"
    )
    wait_until(plant.notifications, timeout_s=30, what="a notification in SAP")

    inbox = gateway_inbox(plant)
    assert sorted(mid for mid, _ in inbox) == sorted(mid for _, _, mid in stored), "an alert was lost"
    assert len({mid for mid, _ in inbox}) == len(inbox)
    assert len(plant.notifications()) == 1
    assert "disconnected" in (plant.workdir / "agent.log").read_text()
