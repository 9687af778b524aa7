"""Fault injection against real processes: the plant in a box (machine simulator → agent → Mosquitto →
gateway) with the agent killed, the broker stopped, the disk budget hit, the state file corrupt, and the
broker refusing the agent. Each test checks that nothing was lost and nothing duplicated: every sequence
number the agent gave out (it numbers every record it stores, 1, 2, 3, …) arrives at the gateway exactly
once, or (only under the disk budget) was thinned by the agent and reported as a gap by the gateway.

``pytest -m faults`` runs just these.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from plantwatch.contract import agent_status_topic
from plantwatch.simulators.pki import issue, make_ca
from plantwatch.simulators.plant import Plant, find_mosquitto
from tests.conftest import wait_until

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(
        find_mosquitto() is None, reason="mosquitto is not installed (make setup installs it)"
    ),
]

STORED_ALERT = re.compile(r"alert_stored .*?state=(\w+) .*?seq=(\d+) id=([0-9a-f-]{36})")


# --- reading the parts' state ---------------------------------------------------------------------


def query(path: Path, sql: str) -> list[tuple]:
    """Rows of ``sql`` on a service's SQLite file, read through a separate connection (WAL allows it)."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


def agent_db(plant: Plant) -> Path:
    return plant.workdir / "agent" / "agent.sqlite"


def gateway_db(plant: Plant) -> Path:
    return plant.workdir / "gateway" / "gateway.sqlite"


def last_seq(plant: Plant) -> int:
    return plant.agent_numbers()[0]


def buffered(plant: Plant) -> int:
    return plant.agent_numbers()[1]


def outbox_seqs(plant: Plant) -> set[int]:
    rows = query(agent_db(plant), "SELECT json_extract(CAST(payload AS TEXT), '$.seq') FROM outbox")
    return {seq for (seq,) in rows}


def thinned(plant: Plant) -> int:
    return plant.agent_numbers()[2]


def arrived(plant: Plant) -> list[tuple[str, int, str]]:
    """``(kind, seq, message id)`` of every record the gateway accepted, in the order it accepted them."""
    alerts = query(gateway_db(plant), "SELECT rowid, 'alert', seq, message_id, received_at FROM inbox")
    health = query(gateway_db(plant), "SELECT rowid, 'health', seq, message_id, received_at FROM received")
    # both tables are written in arrival order; received_at orders the two lanes against each other
    rows = sorted(alerts + health, key=lambda row: (row[4], row[1] == "health", row[0]))
    return [(kind, seq, mid) for _, kind, seq, mid, _ in rows]


def arrival_times(plant: Plant) -> dict[int, float]:
    rows = query(
        gateway_db(plant),
        "SELECT seq, received_at FROM inbox UNION ALL SELECT seq, received_at FROM received",
    )
    return dict(rows)


def confirmed_gaps(plant: Plant) -> int:
    rows = query(gateway_db(plant), "SELECT coalesce(sum(missing), 0) FROM sequence_gaps WHERE kind = 'gap'")
    return rows[0][0] if rows else 0


def stored_alerts(plant: Plant) -> list[tuple[str, int, str]]:
    """``(state, seq, id)`` of every alert the agent reported as stored (its log)."""
    text = (plant.workdir / "agent.log").read_text(errors="replace")
    return [(state, int(seq), mid) for state, seq, mid in STORED_ALERT.findall(text)]


def agent_log(plant: Plant) -> str:
    return (plant.workdir / "agent.log").read_text(errors="replace")


def everything_arrived(plant: Plant) -> bool:
    """The agent's outbox is empty and the gateway holds every sequence number it gave out (or a gap)."""
    plant.check_running()
    total = last_seq(plant)
    return total > 0 and buffered(plant) == 0 and len(arrived(plant)) + thinned(plant) >= total


def assert_exactly_once(plant: Plant) -> None:
    """Every sequence number 1…last arrived once, with one id each; alerts match the agent's log."""
    records = arrived(plant)
    seqs = sorted(seq for _, seq, _ in records)
    assert seqs == list(range(1, last_seq(plant) + 1)), "a record was lost or duplicated"
    assert len({mid for _, _, mid in records}) == len(records)
    stored = {mid for _, _, mid in stored_alerts(plant)}
    assert {mid for kind, _, mid in records if kind == "alert"} == stored


# --- the plant --------------------------------------------------------------------------------------


@pytest.fixture
def make_plant(tmp_path: Path) -> Iterator[Callable[..., Plant]]:
    made: list[Plant] = []

    def make(**options: object) -> Plant:
        plant = Plant(tmp_path / f"plant{len(made)}", status_interval_s=1.0, **options)  # type: ignore[arg-type]
        made.append(plant)
        return plant

    yield make
    for plant in made:
        plant.stop()


# --- crashes -------------------------------------------------------------------------------------


def test_kill_9_of_the_agent_under_load_loses_and_duplicates_nothing(
    make_plant: Callable[..., Plant],
) -> None:
    plant = make_plant()
    plant.start(days=2.0, onset_days=0.5, speed=0)  # the sensor streams as fast as the agent reads
    wait_until(
        lambda: plant.check_running() or last_seq(plant) >= 800, timeout_s=120, what="800 records stored"
    )
    plant.kill_agent()
    killed_at = last_seq(plant)
    plant.start_agent()
    wait_until(lambda: plant.check_running() or plant.machine_done(), timeout_s=240, what="the stream to end")
    wait_until(lambda: everything_arrived(plant), timeout_s=120, what="every record at the gateway")

    assert 0 < killed_at < last_seq(plant)
    assert agent_log(plant).count("agent_starting") == 2
    assert_exactly_once(plant)
    assert any(state == "alarm" for state, _, _ in stored_alerts(plant))


# --- outages -------------------------------------------------------------------------------------


def test_an_alarm_raised_during_a_broker_outage_overtakes_the_backlog_and_order_is_kept(
    make_plant: Callable[..., Plant],
) -> None:
    # 400 health records a second: the backlog of the outage takes seconds to drain, whatever the machine
    plant = make_plant(outbox={"drain_rate_per_s": 400})
    plant.start(days=2.5, onset_days=0.5, speed=6000)
    assert plant.broker is not None
    wait_until(
        lambda: plant.check_running() or len(arrived(plant)) >= 100, timeout_s=120, what="records flowing"
    )
    plant.broker.stop()  # before the fault shows: warning and alarm come during the outage
    outage_from = last_seq(plant)
    wait_until(
        lambda: plant.check_running() or any(state == "alarm" for state, _, _ in stored_alerts(plant)),
        timeout_s=120,
        what="an alarm during the outage",
    )
    alarm_seq = next(seq for state, seq, _ in stored_alerts(plant) if state == "alarm")
    wait_until(lambda: last_seq(plant) >= alarm_seq + 200, timeout_s=60, what="more backlog after the alarm")
    assert alarm_seq - outage_from > 400, "the outage should leave more than a second of backlog"
    plant.broker.start()
    wait_until(lambda: plant.check_running() or plant.machine_done(), timeout_s=240, what="the stream to end")
    wait_until(lambda: everything_arrived(plant), timeout_s=180, what="the backlog to drain")

    assert_exactly_once(plant)
    times = arrival_times(plant)
    backlog = [seq for seq in range(outage_from + 1, alarm_seq) if times[seq] > times[alarm_seq]]
    assert len(backlog) > 200, "the alarm waited for the backlog instead of overtaking it"
    # per asset, each lane arrived in the order the agent made it
    records = {mid: seq for _, seq, mid in arrived(plant)}
    lanes = query(
        gateway_db(plant),
        "SELECT asset, 'alert', seq FROM inbox UNION ALL SELECT asset, 'health', seq FROM received",
    )
    assert len(lanes) == len(records)
    for table in ("inbox", "received"):
        for (asset,) in query(gateway_db(plant), f"SELECT DISTINCT asset FROM {table}"):
            in_arrival_order = [
                s
                for (s,) in query(
                    gateway_db(plant), f"SELECT seq FROM {table} WHERE asset = '{asset}' ORDER BY rowid"
                )
            ]
            assert in_arrival_order == sorted(in_arrival_order), f"{asset} {table} out of order"


def test_a_disk_budget_hit_during_an_outage_thins_health_records_and_delivers_every_alert(
    make_plant: Callable[..., Plant],
) -> None:
    plant = make_plant(outbox={"disk_budget_mb": 1, "drain_rate_per_s": 2000})
    plant.start(days=2.5, onset_days=0.5, speed=6000)
    assert plant.broker is not None
    wait_until(lambda: plant.check_running() or stored_alerts(plant), timeout_s=120, what="the first alert")
    plant.broker.stop()
    wait_until(
        lambda: plant.check_running() or ("buffer_thinned" in agent_log(plant) and thinned(plant) > 300),
        timeout_s=120,
        what="the agent to thin its buffer",
    )
    wait_until(
        lambda: plant.check_running() or any(state == "alarm" for state, _, _ in stored_alerts(plant)),
        timeout_s=120,
        what="an alarm during the outage",
    )
    plant.broker.start()
    wait_until(lambda: plant.check_running() or plant.machine_done(), timeout_s=240, what="the stream to end")
    wait_until(lambda: everything_arrived(plant), timeout_s=120, what="the rest to drain")
    # the gateway declares the thinned records missing once the agent says its buffer is empty
    wait_until(
        lambda: len(arrived(plant)) + confirmed_gaps(plant) >= last_seq(plant),
        timeout_s=30,
        what="the gaps to be confirmed",
    )
    records = arrived(plant)
    assert len({seq for _, seq, _ in records}) == len(records)  # nothing twice
    # every seq arrived or was declared missing, never both
    assert len(records) + confirmed_gaps(plant) == last_seq(plant)
    # A record the broker took just as it stopped may still reach the gateway although its PUBACK never
    # came back to the agent, which then thinned it: at most as many gaps as records thinned.
    assert 0 < confirmed_gaps(plant) <= thinned(plant)
    stored = stored_alerts(plant)
    assert {mid for kind, _, mid in records if kind == "alert"} == {mid for _, _, mid in stored}
    assert "buffer_near_limit" in agent_log(plant)
    assert "sequence_gap" in (plant.workdir / "gateway.log").read_text()


# --- a corrupt state file ---------------------------------------------------------------------------


def retained_status(plant: Plant) -> dict[str, object]:
    """The agent's retained status as the broker holds it now."""
    assert plant.broker is not None
    got: list[bytes] = []
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id="test-status-reader", protocol=paho.MQTTv5
    )
    client.on_connect = lambda c, u, f, r, p: c.subscribe(
        agent_status_topic(plant.site, plant.agent_id), qos=1
    )
    client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    client.connect("127.0.0.1", plant.broker.port)
    client.loop_start()
    try:
        wait_until(lambda: got, timeout_s=10, what="the retained status")
    finally:
        client.disconnect()
        client.loop_stop()
    return json.loads(got[-1])


def test_a_corrupt_database_is_moved_aside_and_the_agent_runs_and_says_so(
    make_plant: Callable[..., Plant],
) -> None:
    plant = make_plant()
    state = plant.workdir / "agent"
    state.mkdir(parents=True)
    garbage = b"\x00\xffthe SD card lost power mid-write" * 500
    (state / "agent.sqlite").write_bytes(garbage)
    plant.start(days=1.0, onset_days=0.5, speed=0)
    wait_until(lambda: plant.check_running() or plant.machine_done(), timeout_s=180, what="the stream to end")
    wait_until(lambda: everything_arrived(plant), timeout_s=60, what="every record at the gateway")

    (moved,) = state.glob("agent.sqlite.corrupt-*")
    assert moved.read_bytes() == garbage  # kept for recovery
    log = agent_log(plant)
    assert re.search(r"ERROR plantwatch.db database_corrupt .*moved_to=\S+agent.sqlite.corrupt-", log)
    assert_exactly_once(plant)
    status = retained_status(plant)
    assert any("moved aside" in error for error in status["errors"])  # type: ignore[union-attr]


# --- a locked-down broker that refuses the agent -----------------------------------------------------


def recover_and_deliver(plant: Plant) -> None:
    """Stop the agent (SIGTERM, clean), put the right settings back, start it: everything buffered arrives."""
    from plantwatch.simulators.plant import stop

    assert stop(plant.processes["agent"]) == 0, plant.log_tail("agent")
    plant.write_agent_config()
    plant.start_agent()
    wait_until(lambda: everything_arrived(plant), timeout_s=120, what="the buffered records at the gateway")
    assert_exactly_once(plant)


def test_a_wrong_password_is_refused_once_reported_and_nothing_buffered_is_lost(
    make_plant: Callable[..., Plant],
) -> None:
    plant = make_plant(secure=True)
    plant.start(days=1.0, onset_days=0.5, speed=0, agent_password="not the password")
    wait_until(
        lambda: plant.check_running() or "mqtt_credentials_refused" in agent_log(plant),
        timeout_s=60,
        what="the refusal",
    )
    wait_until(lambda: plant.check_running() or plant.machine_done(), timeout_s=180, what="the stream to end")

    assert re.search(r"ERROR plantwatch.mqtt mqtt_credentials_refused .*user=gw-line1", agent_log(plant))
    assert "buffering_offline" in agent_log(plant)
    # it did not hammer the broker: one attempt, however long the stream took
    assert agent_log(plant).count("mqtt_credentials_refused") == 1
    assert buffered(plant) == last_seq(plant) > 0  # every record kept, none sent
    assert arrived(plant) == []
    recover_and_deliver(plant)


def test_an_untrusted_broker_certificate_is_refused_reported_and_nothing_buffered_is_lost(
    make_plant: Callable[..., Plant], tmp_path: Path
) -> None:
    plant = make_plant(secure=True)
    other_ca = make_ca(tmp_path / "other-ca", name="someone else's CA")
    issue(other_ca, tmp_path / "other-ca", "unused", server=True)
    plant.start(days=1.0, onset_days=0.5, speed=0)
    # delivering, with the stream still running: waiting for a moment with nothing buffered raced the
    # stream's end (an agent that keeps up with a fast stream seldom has an empty outbox)
    wait_until(
        lambda: plant.check_running() or arrived(plant), timeout_s=60, what="the first records to arrive"
    )
    assert not plant.machine_done(), "the stream ended before the agent's CA could be swapped"
    from plantwatch.simulators.plant import stop

    # the agent now trusts only another CA (a broker replaced by an impostor looks the same)
    assert stop(plant.processes["agent"]) == 0
    plant.write_agent_config(tls_ca_file=str(other_ca.cert_file))
    before, waiting_before = last_seq(plant), buffered(plant)
    plant.start_agent()
    wait_until(
        lambda: plant.check_running() or "certificate is not trusted" in agent_log(plant),
        timeout_s=60,
        what="the TLS refusal",
    )
    assert re.search(
        r"ERROR plantwatch.mqtt mqtt_connect_failed .*TLS: the broker's certificate is not trusted",
        agent_log(plant),
    )
    wait_until(lambda: plant.check_running() or plant.machine_done(), timeout_s=180, what="the stream to end")
    assert last_seq(plant) > before and buffered(plant) == waiting_before + last_seq(plant) - before
    recover_and_deliver(plant)


def test_an_agent_writing_under_another_agents_id_is_refused_by_the_acl_and_keeps_its_records(
    make_plant: Callable[..., Plant],
) -> None:
    plant = make_plant(secure=True)
    plant.start(days=1.0, onset_days=0.5, speed=0)
    wait_until(
        lambda: plant.check_running() or len(arrived(plant)) > 100, timeout_s=120, what="records flowing"
    )
    from plantwatch.simulators.plant import stop

    assert stop(plant.processes["agent"]) == 0
    # logged in as gw-line2, publishing under gw-line1: the ACL denies every record
    plant.write_agent_config(username="gw-line2")
    plant.start_agent(password=plant.mqtt_passwords["gw-line2"])
    wait_until(
        lambda: plant.check_running() or "publish_refused" in agent_log(plant),
        timeout_s=60,
        what="the ACL refusal",
    )
    wait_until(lambda: plant.check_running() or plant.machine_done(), timeout_s=180, what="the stream to end")

    assert re.search(
        r"ERROR plantwatch.agent.publisher publish_refused .*[Nn]ot authori[sz]ed", agent_log(plant)
    )
    at_gateway = {seq for _, seq, _ in arrived(plant)}
    kept = outbox_seqs(plant)
    # what the broker refused is all still in the outbox (a few sent before the switch may be in both)
    assert len(kept) > 1000 and at_gateway | kept == set(range(1, last_seq(plant) + 1))
    recover_and_deliver(plant)
