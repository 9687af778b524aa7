"""SAP adapter against the SAP simulator over loopback HTTP, and the simulator against SAP's EDMX."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwatch.clock import ManualClock
from plantwatch.gateway.erp import ErpAdapter, ErpDocument, ErpError, NotificationRequest, shorten
from plantwatch.gateway.sap import SapAdapter, utf16_length
from plantwatch.simulators.sap import (
    ETAG_PROPERTY,
    FUNCTION_PARAMETERS,
    PROPERTIES,
    REQUIRED_ON_CREATE,
    SERVICE_ROOT,
    SapSimulator,
    metadata_document,
    parse_filter,
)

USER = "PLANTWATCH"
PASSWORD = "secret"
SPECS = Path(__file__).resolve().parents[1].parent / "shared" / "specs" / "sap"
EDM = "{http://schemas.microsoft.com/ado/2008/09/edm}"
EDM_V4 = "{http://docs.oasis-open.org/odata/ns/edm}"
SAP = "{http://www.sap.com/Protocols/SAPData}"
M = "{http://schemas.microsoft.com/ado/2007/08/dataservices/metadata}"
TIMEOUT_S = 5.0


def make_request(correlation_id: str = "PW0001", **overrides: str) -> NotificationRequest:
    fields = {
        "correlation_id": correlation_id,
        "asset": "pump-7",
        "failure_mode": "outer_race",
        "severity": "alarm",
        "priority": "2",
        "title": "Outer race defect on pump-7",
        "long_text": "BPFO 3.58x: 0.42 g, 9x baseline\nVelocity RMS 7.1 mm/s (zone C)",
    }
    fields.update(overrides)
    return NotificationRequest(**fields)


@pytest.fixture
def sim() -> Iterator[SapSimulator]:
    simulator = SapSimulator(user=USER, password=PASSWORD)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def adapter(sim: SapSimulator) -> SapAdapter:
    return SapAdapter(base_url=sim.url, user=USER, password=PASSWORD, timeout_s=TIMEOUT_S)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """Bare HTTP against the simulator: no cookie jar, no CSRF handling, nothing implicit."""

    def __init__(self, sim: SapSimulator, user: str = USER, password: str = PASSWORD) -> None:
        self.address = urlsplit(sim.url)
        self.authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.cookie: str | None = None
        self.token: str | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        session: bool = True,
    ) -> Reply:
        sent = {"Accept": "application/json"}
        if auth:
            sent["Authorization"] = self.authorization
        if session and self.cookie:
            sent["Cookie"] = self.cookie
        if session and self.token:
            sent["X-CSRF-Token"] = self.token
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        connection = http.client.HTTPConnection(self.address.hostname, self.address.port, timeout=TIMEOUT_S)
        try:
            connection.request(method, SERVICE_ROOT + path, body=data, headers=sent)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    def fetch_token(self) -> Reply:
        reply = self.request("GET", "/", headers={"X-CSRF-Token": "Fetch"}, session=False)
        self.token = reply.headers["X-CSRF-Token"]
        self.cookie = reply.headers["Set-Cookie"].split(";")[0]
        return reply


@pytest.fixture
def raw(sim: SapSimulator) -> RawClient:
    client = RawClient(sim)
    client.fetch_token()
    return client


def create_raw(raw: RawClient, **properties: Any) -> dict[str, Any]:
    body = {"NotificationText": "Bearing noise", "NotificationType": "M2", **properties}
    reply = raw.request("POST", "/MaintenanceNotification", body=body)
    assert reply.status == 201, reply.body
    return reply.json()["d"]


# ---------------------------------------------------------------------------------------------------
# the adapter against the simulator
# ---------------------------------------------------------------------------------------------------


def test_adapter_satisfies_the_erp_adapter_protocol(adapter: SapAdapter) -> None:
    assert isinstance(adapter, ErpAdapter)
    assert adapter.name == "sap"


def test_create_writes_one_notification_with_sap_fields(sim: SapSimulator, adapter: SapAdapter) -> None:
    document = adapter.create_notification(make_request("PW0001"))

    assert document == ErpDocument(
        number="10000001", correlation_id="PW0001", created=True, status="outstanding"
    )
    [stored] = sim.notifications()
    assert stored["MaintenanceNotification"] == "10000001"
    assert stored["NotificationType"] == "M2"
    assert stored["NotificationText"] == "Outer race defect on pump-7"
    assert stored["MaintNotifLongTextForEdit"].startswith("BPFO 3.58x")
    assert stored["TechnicalObject"] == "PUMP-7"
    assert stored["TechObjIsEquipOrFuncnlLoc"] == "EAMS_EQUI"
    assert stored["MaintPriority"] == "2"
    assert stored["MaintNotifExtReferenceNumber"] == "PW0001"
    assert stored["NotifProcessingPhase"] == "1"
    assert stored["CreatedByUser"] == USER


def test_second_create_with_same_correlation_id_finds_first_and_posts_nothing(
    sim: SapSimulator, adapter: SapAdapter
) -> None:
    first = adapter.create_notification(make_request("PW0002"))
    posts_before = [r for r in sim.requests() if r.method == "POST"]

    second = adapter.create_notification(make_request("PW0002", title="Retried after a crash"))

    assert second == ErpDocument(
        number=first.number, correlation_id="PW0002", created=False, status="outstanding"
    )
    assert len(sim.notifications()) == 1
    assert [r for r in sim.requests() if r.method == "POST"] == posts_before


def test_find_returns_none_for_unknown_correlation_id(adapter: SapAdapter) -> None:
    adapter.create_notification(make_request("PW0003"))
    assert adapter.find_notification("PW9999") is None
    found = adapter.find_notification("PW0003")
    assert found is not None and found.created is False and found.number == "10000001"


def test_adapter_refetches_expired_csrf_token_once(sim: SapSimulator, adapter: SapAdapter) -> None:
    adapter.create_notification(make_request("PW0004"))
    sim.expire_csrf_tokens()

    document = adapter.create_notification(make_request("PW0005"))

    assert document.created is True
    statuses = [(r.method, r.status) for r in sim.requests()]
    # lookup, refused POST, token refetch, accepted POST
    assert statuses[-4:] == [("GET", 200), ("POST", 403), ("GET", 200), ("POST", 201)]
    assert len(sim.notifications()) == 2


def test_wrong_password_raises_non_retryable_error_with_sap_message(sim: SapSimulator) -> None:
    adapter = SapAdapter(base_url=sim.url, user=USER, password="wrong", timeout_s=TIMEOUT_S)

    with pytest.raises(ErpError) as caught:
        adapter.create_notification(make_request("PW0006"))

    error = caught.value
    assert error.status == 401
    assert error.retryable is False
    assert error.message == "Logon failed"
    assert str(error) == "sap 401: Logon failed"
    assert sim.notifications() == []


def test_check_passes_with_good_credentials_and_fails_with_bad(
    sim: SapSimulator, adapter: SapAdapter
) -> None:
    adapter.check()
    bad = SapAdapter(base_url=sim.url, user=USER, password="nope", timeout_s=TIMEOUT_S)
    with pytest.raises(ErpError) as caught:
        bad.check()
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("status", "retry_after", "retryable", "expected_delay_s"),
    [(503, 120, True, 120.0), (429, 7, True, 7.0), (500, None, True, None), (400, None, False, None)],
)
def test_server_errors_are_retryable_and_client_errors_are_not(
    sim: SapSimulator,
    adapter: SapAdapter,
    status: int,
    retry_after: int | None,
    retryable: bool,
    expected_delay_s: float | None,
) -> None:
    sim.fail_next(status, retry_after=retry_after)

    with pytest.raises(ErpError) as caught:
        adapter.create_notification(make_request("PW0007"))

    error = caught.value
    assert (error.status, error.retryable, error.retry_after_s) == (status, retryable, expected_delay_s)
    assert error.code == "SAPSIM/INJECTED_FAULT"  # parsed from SAP's error body
    assert sim.notifications() == []


def test_retry_after_as_http_date_is_measured_on_the_adapter_clock(sim: SapSimulator) -> None:
    clock = ManualClock(start=1_750_000_000.0)
    adapter = SapAdapter(base_url=sim.url, user=USER, password=PASSWORD, timeout_s=TIMEOUT_S, clock=clock)
    sim.fail_next(
        503, retry_after=format_datetime(datetime.fromtimestamp(clock.now() + 30, tz=UTC), usegmt=True)
    )

    with pytest.raises(ErpError) as caught:
        adapter.find_notification("PW0008")

    assert caught.value.retryable is True
    assert caught.value.retry_after_s == 30.0


def test_unreachable_sap_is_a_retryable_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = SapAdapter(
        base_url=f"http://127.0.0.1:{port}", user=USER, password=PASSWORD, timeout_s=TIMEOUT_S
    )

    with pytest.raises(ErpError) as caught:
        adapter.check()

    assert (caught.value.code, caught.value.retryable, caught.value.status) == ("unreachable", True, None)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"correlation_id": "PW-0001"}, "correlation_id"),
        ({"correlation_id": "pw0001"}, "correlation_id"),
        ({"correlation_id": "A" * 21}, "correlation_id"),
        ({"asset": "x" * 19}, "TechnicalObject"),
        ({"asset": "  "}, "TechnicalObject"),
        ({"priority": "12"}, "MaintPriority"),
        ({"severity": "panic"}, "severity"),
        ({"title": "\n\t"}, "NotificationText"),
    ],
)
def test_adapter_refuses_requests_that_cannot_fit_before_sending(
    sim: SapSimulator, adapter: SapAdapter, overrides: dict[str, str], problem: str
) -> None:
    request = make_request(**overrides)

    with pytest.raises(ErpError) as caught:
        adapter.create_notification(request)

    assert caught.value.code == "client_validation"
    assert caught.value.retryable is False
    assert problem in caught.value.message
    assert sim.requests() == []


def test_texts_are_shortened_to_sap_lengths_counted_in_utf16_units(
    sim: SapSimulator, adapter: SapAdapter
) -> None:
    title = "Outer race defect \N{ROCKET} on the main coolant pump of line four"
    long_text = "\n".join(f"evidence line {index}: BPFO amplitude rising" for index in range(100))

    adapter.create_notification(make_request("PW0009", title=title, long_text=long_text))

    [stored] = sim.notifications()
    assert stored["NotificationText"].endswith("…")
    assert utf16_length(stored["NotificationText"]) <= 40
    assert stored["NotificationText"] == shorten(title, 40, utf16_length)
    assert utf16_length(stored["MaintNotifLongTextForEdit"]) <= 1333
    assert stored["MaintNotifLongTextForEdit"].endswith("…")


def test_functional_location_adapter_allows_forty_character_technical_objects(sim: SapSimulator) -> None:
    adapter = SapAdapter(
        base_url=sim.url, user=USER, password=PASSWORD, timeout_s=TIMEOUT_S, technical_object_type="EAMS_FL"
    )
    adapter.create_notification(make_request("PW0010", asset="plant1-line4-pump-section-07"))
    assert sim.notifications()[0]["TechObjIsEquipOrFuncnlLoc"] == "EAMS_FL"


def test_status_follows_function_imports(raw: RawClient, adapter: SapAdapter) -> None:
    number = adapter.create_notification(make_request("PW0011")).number

    assert raw.request("POST", f"/SetMaintNotifToInProcess?MaintenanceNotification='{number}'").status == 200
    assert adapter.find_notification("PW0011") == ErpDocument(number, "PW0011", False, "in_process")
    assert raw.request("POST", f"/CompleteMaintNotification?MaintenanceNotification='{number}'").status == 200
    assert adapter.find_notification("PW0011") == ErpDocument(number, "PW0011", False, "completed")


def test_concurrent_creates_get_distinct_numbers(sim: SapSimulator, adapter: SapAdapter) -> None:
    documents: list[ErpDocument] = []
    errors: list[BaseException] = []

    def create(index: int) -> None:
        try:
            documents.append(adapter.create_notification(make_request(f"PWC{index:03d}")))
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=create, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT_S * 4)

    assert errors == []
    assert sorted(int(d.number) for d in documents) == list(range(10000001, 10000009))
    assert len(sim.notifications()) == 8


# ---------------------------------------------------------------------------------------------------
# the simulator's protocol, raw
# ---------------------------------------------------------------------------------------------------


def test_request_without_credentials_gets_basic_challenge(sim: SapSimulator) -> None:
    reply = RawClient(sim).request("GET", "/", auth=False)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == 'Basic realm="SAP NetWeaver Application Server"'


def test_csrf_fetch_returns_token_and_session_cookie(sim: SapSimulator) -> None:
    client = RawClient(sim)
    reply = client.fetch_token()
    assert reply.status == 200
    assert client.token
    assert reply.headers["Set-Cookie"].startswith("SAP_SESSIONID_")
    assert "path=/" in reply.headers["Set-Cookie"]
    assert reply.json() == {"d": {"EntitySets": ["MaintenanceNotification"]}}


@pytest.mark.parametrize("method", ["POST", "PATCH", "MERGE", "PUT"])
def test_modifying_request_without_csrf_token_is_refused(
    sim: SapSimulator, raw: RawClient, method: str
) -> None:
    path = "/MaintenanceNotification" if method == "POST" else "/MaintenanceNotification('10000001')"
    reply = raw.request(method, path, body={"NotificationText": "x"}, headers={"X-CSRF-Token": ""})

    assert reply.status == 403
    assert reply.headers["X-CSRF-Token"] == "Required"
    assert reply.body == b"CSRF token validation failed"
    assert sim.notifications() == []


def test_csrf_token_is_bound_to_its_session_cookie(sim: SapSimulator, raw: RawClient) -> None:
    other = RawClient(sim)
    other.fetch_token()
    # raw's token with other's cookie
    reply = raw.request(
        "POST",
        "/MaintenanceNotification",
        body={"NotificationText": "x"},
        headers={"Cookie": other.cookie or ""},
    )
    assert reply.status == 403
    assert reply.headers["X-CSRF-Token"] == "Required"


def test_create_answers_201_with_location_etag_and_sap_assigned_fields(raw: RawClient) -> None:
    reply = raw.request("POST", "/MaintenanceNotification", body={"NotificationText": "Bearing noise"})

    assert reply.status == 201
    entity = reply.json()["d"]
    assert entity["MaintenanceNotification"] == "10000001"
    assert entity["NotifProcessingPhase"] == "1"
    assert entity["CreationDate"].startswith("/Date(") and entity["CreationDate"].endswith(")/")
    assert entity["LastChangeDateTime"].endswith("+0000)/")
    assert entity["__metadata"]["type"] == "cds_api_maintnotification.MaintenanceNotificationType"
    assert entity["__metadata"]["etag"] == reply.headers["ETag"]
    assert reply.headers["ETag"].startswith("W/\"datetimeoffset'")
    assert reply.headers["Location"].endswith(f"{SERVICE_ROOT}/MaintenanceNotification('10000001')")
    assert entity["__metadata"]["uri"] == reply.headers["Location"]
    assert create_raw(raw)["MaintenanceNotification"] == "10000002"  # numbers increase


def test_too_long_notification_text_is_refused_with_sap_error_body(sim: SapSimulator, raw: RawClient) -> None:
    reply = raw.request("POST", "/MaintenanceNotification", body={"NotificationText": "x" * 41})

    assert reply.status == 400
    error = reply.json()["error"]
    assert error["code"]
    assert error["message"]["lang"] == "en"
    assert "NotificationText" in error["message"]["value"]
    assert "40" in error["message"]["value"]
    assert error["innererror"]["errordetails"][0]["target"] == "NotificationText"
    assert error["innererror"]["application"]["service_id"] == "API_MAINTNOTIFICATION"
    assert sim.notifications() == []


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"NotificationText": "x", "MaintenanceNotification": "42"}, "MaintenanceNotification"),
        ({"NotificationText": "x", "NotifProcessingPhase": "4"}, "NotifProcessingPhase"),
        ({"NotificationText": "x", "Colour": "red"}, "Colour"),
        ({"NotificationText": "x", "MaintNotifExtReferenceNumber": "R" * 21}, "MaintNotifExtReferenceNumber"),
        ({"NotificationText": "x", "MaintPriority": "12"}, "MaintPriority"),
        ({"NotificationText": "x", "NotificationType": "M22"}, "NotificationType"),
        ({"NotificationText": "x", "TechnicalObject": "T" * 41}, "TechnicalObject"),
        ({"NotificationText": "x", "TechObjIsEquipOrFuncnlLoc": "E" * 21}, "TechObjIsEquipOrFuncnlLoc"),
        ({"NotificationText": "x", "MaintNotifLongTextForEdit": "l" * 1334}, "MaintNotifLongTextForEdit"),
        ({"NotificationText": "x", "MaintPriority": 1}, "MaintPriority"),
        ({"NotificationText": "x", "MaintenanceObjectIsDown": "yes"}, "MaintenanceObjectIsDown"),
        ({"NotificationText": None}, "NotificationText"),
        ({"NotificationType": "M2"}, "NotificationText"),
    ],
)
def test_create_refuses_bodies_outside_the_contract(
    sim: SapSimulator, raw: RawClient, body: dict[str, Any], target: str
) -> None:
    reply = raw.request("POST", "/MaintenanceNotification", body=body)

    assert reply.status == 400
    assert reply.json()["error"]["innererror"]["errordetails"][0]["target"] == target
    assert sim.notifications() == []


def test_create_accepts_values_at_their_maximum_length(raw: RawClient) -> None:
    entity = create_raw(
        raw,
        NotificationText="x" * 40,
        MaintNotifExtReferenceNumber="r" * 20,
        TechnicalObject="t" * 40,
        MaintNotifLongTextForEdit="l" * 1333,
    )
    assert entity["MaintNotifExtReferenceNumber"] == "R" * 20  # display format UpperCase
    assert entity["NotificationText"] == "x" * 40  # no display format: kept as sent


def test_filter_reads_back_by_external_reference(raw: RawClient) -> None:
    create_raw(raw, MaintNotifExtReferenceNumber="PWA", MaintPriority="1")
    create_raw(raw, MaintNotifExtReferenceNumber="PWB", MaintPriority="1")
    create_raw(raw, MaintNotifExtReferenceNumber="PWB", MaintPriority="3")

    def numbers(query: str) -> list[str]:
        reply = raw.request("GET", "/MaintenanceNotification?" + query, headers={"Accept": "*/*"})
        assert reply.status == 200, reply.body
        return [entity["MaintenanceNotification"] for entity in reply.json()["d"]["results"]]

    only_a = "$filter=" + quote("MaintNotifExtReferenceNumber eq 'PWA'") + "&$format=json"
    b_and_3 = (
        "$filter=" + quote("MaintNotifExtReferenceNumber eq 'PWB' and MaintPriority eq '3'") + "&$format=json"
    )
    assert numbers(only_a) == ["10000001"]
    assert numbers(b_and_3) == ["10000003"]
    assert numbers("$filter=" + quote("MaintNotifExtReferenceNumber eq 'PWB'") + "&$top=1&$format=json") == [
        "10000002"
    ]
    assert numbers("$filter=" + quote("MaintNotifExtReferenceNumber eq 'NONE'") + "&$format=json") == []


def test_filter_on_unknown_property_is_refused(raw: RawClient) -> None:
    reply = raw.request("GET", "/MaintenanceNotification?$filter=" + quote("Colour eq 'red'"))
    assert reply.status == 400
    assert "Colour" in reply.json()["error"]["message"]["value"]


def test_data_request_without_json_is_not_acceptable(raw: RawClient) -> None:
    reply = raw.request("GET", "/MaintenanceNotification", headers={"Accept": "application/atom+xml"})
    assert reply.status == 406


def test_single_read_returns_etag_and_unknown_key_is_404(raw: RawClient) -> None:
    created = create_raw(raw)

    reply = raw.request("GET", "/MaintenanceNotification('10000001')")
    assert reply.status == 200
    assert reply.json()["d"]["MaintenanceNotification"] == "10000001"
    assert reply.headers["ETag"] == created["__metadata"]["etag"]

    missing = raw.request("GET", "/MaintenanceNotification('99999999')")
    assert missing.status == 404
    assert "99999999" in missing.json()["error"]["message"]["value"]


def test_update_without_if_match_is_428(raw: RawClient) -> None:
    create_raw(raw)
    reply = raw.request("PATCH", "/MaintenanceNotification('10000001')", body={"NotificationText": "changed"})
    assert reply.status == 428
    assert reply.json()["error"]["message"]["value"]


def test_update_with_stale_if_match_is_412_and_changes_nothing(sim: SapSimulator, raw: RawClient) -> None:
    stale = create_raw(raw)["__metadata"]["etag"]
    first = raw.request(
        "MERGE",
        "/MaintenanceNotification('10000001')",
        body={"MaintPriority": "1"},
        headers={"If-Match": stale},
    )
    assert first.status == 204
    assert first.headers["ETag"] != stale

    second = raw.request(
        "PATCH",
        "/MaintenanceNotification('10000001')",
        body={"MaintPriority": "4"},
        headers={"If-Match": stale},
    )

    assert second.status == 412
    assert sim.notifications()[0]["MaintPriority"] == "1"


def test_update_with_current_if_match_changes_only_updatable_properties(
    sim: SapSimulator, raw: RawClient
) -> None:
    etag = create_raw(raw)["__metadata"]["etag"]
    path = "/MaintenanceNotification('10000001')"

    refused = raw.request("PATCH", path, body={"NotificationType": "M1"}, headers={"If-Match": etag})
    assert refused.status == 400
    assert refused.json()["error"]["innererror"]["errordetails"][0]["target"] == "NotificationType"

    accepted = raw.request(
        "PATCH", path, body={"NotificationText": "Replaced", "MaintPriority": "1"}, headers={"If-Match": etag}
    )
    assert accepted.status == 204
    stored = sim.notifications()[0]
    assert (stored["NotificationText"], stored["MaintPriority"], stored["NotificationType"]) == (
        "Replaced",
        "1",
        "M2",
    )
    assert raw.request("GET", path).headers["ETag"] == accepted.headers["ETag"]


def test_function_imports_set_phase_and_return_the_entity(raw: RawClient) -> None:
    create_raw(raw)

    in_process = raw.request("POST", "/SetMaintNotifToInProcess?MaintenanceNotification='10000001'")
    assert in_process.status == 200
    assert in_process.json()["d"]["NotifProcessingPhase"] == "3"
    assert in_process.headers["ETag"]

    completed = raw.request("POST", "/CompleteMaintNotification?MaintenanceNotification='10000001'")
    assert completed.status == 200
    assert completed.json()["d"]["NotifProcessingPhase"] == "4"
    assert completed.json()["d"]["NotificationCompletionDate"].startswith("/Date(")

    again = raw.request("POST", "/CompleteMaintNotification?MaintenanceNotification='10000001'")
    assert again.status == 400


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/SetMaintNotifToInProcess?MaintenanceNotification='10000001'", {"x": 1}, 400),
        ("POST", "/SetMaintNotifToInProcess", None, 400),
        ("POST", "/SetMaintNotifToInProcess?MaintenanceNotification=10000001", None, 400),
        ("POST", "/SetMaintNotifToInProcess?MaintenanceNotification='77777777'", None, 404),
        ("GET", "/SetMaintNotifToInProcess?MaintenanceNotification='10000001'", None, 405),
        ("DELETE", "/MaintenanceNotification('10000001')", None, 405),
    ],
)
def test_function_imports_and_delete_are_refused_outside_the_contract(
    sim: SapSimulator, raw: RawClient, method: str, path: str, body: Any, status: int
) -> None:
    create_raw(raw)
    reply = raw.request(method, path, body=body)
    assert reply.status == status
    assert reply.json()["error"]["message"]["value"]
    assert sim.notifications()[0]["NotifProcessingPhase"] == "1"


def test_every_request_is_logged_once(
    sim: SapSimulator, raw: RawClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="plantwatch.simulators.sap"):
        raw.request("GET", "/MaintenanceNotification('1')")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sap_request")]
    assert len(lines) == 1
    assert "status=404" in lines[0] and "method=GET" in lines[0]


@given(stored=st.text(max_size=40), wanted=st.text(max_size=40))
def test_filter_string_literals_match_exactly(stored: str, wanted: str) -> None:
    literal = "'" + wanted.replace("'", "''") + "'"
    matches = parse_filter(f"NotificationText eq {literal}")
    assert matches({"NotificationText": wanted})
    assert matches({"NotificationText": stored}) == (stored == wanted)


# ---------------------------------------------------------------------------------------------------
# fidelity: the simulator against SAP's published metadata
# ---------------------------------------------------------------------------------------------------


def _sap_edmx() -> ET.Element:
    path = SPECS / "API_MAINTNOTIFICATION.edmx"
    if not path.is_file():
        pytest.skip(f"SAP's EDMX is not next to the repository ({path.name} under ../shared/specs/sap)")
    return ET.parse(path).getroot()


def _entity_type(root: ET.Element) -> ET.Element:
    for entity_type in root.iter(f"{EDM}EntityType"):
        if entity_type.get("Name") == "MaintenanceNotificationType":
            return entity_type
    raise AssertionError("MaintenanceNotificationType not found")


def _flags(element: ET.Element) -> dict[str, Any]:
    return {
        "type": element.get("Type"),
        "max_length": int(element.get("MaxLength")) if element.get("MaxLength") else None,
        "nullable": element.get("Nullable", "true") == "true",
        "creatable": element.get(f"{SAP}creatable", "true") == "true",
        "updatable": element.get(f"{SAP}updatable", "true") == "true",
        "upper_case": element.get(f"{SAP}display-format") == "UpperCase",
    }


def _spec_flags(name: str) -> dict[str, Any]:
    spec = PROPERTIES[name]
    return {
        "type": spec.edm_type,
        "max_length": spec.max_length,
        "nullable": spec.nullable,
        "creatable": spec.creatable,
        "updatable": spec.updatable,
        "upper_case": spec.upper_case,
    }


def test_simulator_properties_match_sap_edmx() -> None:
    declared = {p.get("Name"): p for p in _entity_type(_sap_edmx()).iter(f"{EDM}Property")}

    mismatches = {
        name: (_spec_flags(name), _flags(declared[name]) if name in declared else "missing in SAP's EDMX")
        for name in PROPERTIES
        if name not in declared or _spec_flags(name) != _flags(declared[name])
    }

    assert mismatches == {}


def test_simulator_function_imports_match_sap_edmx() -> None:
    root = _sap_edmx()
    sap_functions = {
        f.get("Name"): (f, {p.get("Name"): p for p in f.iter(f"{EDM}Parameter")})
        for f in root.iter(f"{EDM}FunctionImport")
    }
    for name, parameters in FUNCTION_PARAMETERS.items():
        function, sap_parameters = sap_functions[name]
        assert function.get(f"{M}HttpMethod") == "POST"
        assert function.get("ReturnType") == "cds_api_maintnotification.MaintenanceNotificationType"
        assert {
            p: (sap_parameters[p].get("Type"), sap_parameters[p].get("Nullable") == "true")
            for p in sap_parameters
        } == parameters


def test_simulator_concurrency_required_and_filter_rules_match_sap_annotations() -> None:
    root = _sap_edmx()
    target = "cds_api_maintnotification.cds_api_maintnotification_Entities/MaintenanceNotification"
    [annotations] = [a for a in root.iter(f"{EDM_V4}Annotations") if a.get("Target") == target]

    def paths(term: str, property_name: str | None = None) -> list[str]:
        [annotation] = [a for a in annotations if a.get("Term") == term]
        scope = annotation
        if property_name is not None:
            [scope] = [
                v for v in annotation.iter(f"{EDM_V4}PropertyValue") if v.get("Property") == property_name
            ]
        return [p.text or "" for p in scope.iter(f"{EDM_V4}PropertyPath")]

    assert paths("SAP__core.OptimisticConcurrency") == [ETAG_PROPERTY]
    assert paths("Capabilities.InsertRestrictions", "RequiredProperties") == list(REQUIRED_ON_CREATE)
    restricted = {
        v.get("PropertyPath")
        for v in annotations.iter(f"{EDM_V4}PropertyValue")
        if v.get("Property") == "Property" and v.get("PropertyPath")
    }
    restricted |= set(paths("Capabilities.FilterRestrictions", "NonFilterableProperties"))
    assert {name for name, spec in PROPERTIES.items() if not spec.filterable} == restricted & set(PROPERTIES)


def test_simulator_metadata_document_describes_what_it_serves(raw: RawClient) -> None:
    reply = raw.request("GET", "/$metadata", headers={"Accept": "application/xml"})
    assert reply.status == 200
    assert reply.body.decode() == metadata_document()

    declared = {p.get("Name"): p for p in _entity_type(ET.fromstring(reply.body)).iter(f"{EDM}Property")}
    assert set(declared) == set(PROPERTIES)
    assert all(_flags(declared[name]) == _spec_flags(name) for name in PROPERTIES)
