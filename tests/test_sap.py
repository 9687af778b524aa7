"""SAP adapter against the SAP simulator over loopback HTTP, and the simulator against SAP's EDMX."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwatch.clock import ManualClock
from plantwatch.gateway.erp import (
    ErpAdapter,
    ErpDocument,
    ErpError,
    HoldRequest,
    NotificationRequest,
    NotificationUpdate,
    appended_long_text,
    shorten,
)
from plantwatch.gateway.sap import LONG_TEXT_MAX, OutcomeCoding, SapAdapter, utf16_length
from plantwatch.simulators.sap import (
    BATCH_SERVICE_ROOT,
    ETAG_PROPERTY,
    FUNCTION_PARAMETERS,
    MATERIAL_DOCUMENT_HEADER_SET,
    MATERIAL_DOCUMENT_ITEM_SET,
    MATERIAL_DOCUMENT_SERVICE_ROOT,
    NOTIFICATION_SET,
    OPERATION_SET,
    ORDER_SERVICE_ROOT,
    ORDER_SET,
    PROPERTIES,
    QUALITY_NOTIFICATION_SERVICE_ROOT,
    REQUIRED_ON_CREATE,
    SERVICE_ROOT,
    EntitySetSpec,
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
        root: str = SERVICE_ROOT,
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
            connection.request(method, root + path, body=data, headers=sent)
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


def test_update_without_if_match_is_412_and_changes_nothing(sim: SapSimulator, raw: RawClient) -> None:
    create_raw(raw)
    reply = raw.request("PATCH", "/MaintenanceNotification('10000001')", body={"NotificationText": "changed"})
    assert reply.status == 412
    assert "If-Match" in reply.json()["error"]["message"]["value"]
    assert sim.notifications()[0]["NotificationText"] == "Bearing noise"


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
# depth: updates with ETags, read-back with the planner's outcome, orders, quality holds
# ---------------------------------------------------------------------------------------------------


def make_adapter(sim: SapSimulator, **options: Any) -> SapAdapter:
    return SapAdapter(base_url=sim.url, user=USER, password=PASSWORD, timeout_s=TIMEOUT_S, **options)


def make_update(number: str, correlation_id: str = "PW0001", **overrides: str) -> NotificationUpdate:
    fields = {
        "number": number,
        "correlation_id": correlation_id,
        "priority": "1",
        "note": "Repeat: BPFO 0.51 g",
    }
    fields.update(overrides)
    return NotificationUpdate(**fields)


def make_hold(correlation_id: str = "PWH0001", **overrides: Any) -> HoldRequest:
    fields: dict[str, Any] = {
        "correlation_id": correlation_id,
        "asset": "press-3",
        "production_order": "1000123",
        "lot": "LOT-0042",
        "material": "BRACKET-7",
        "title": "Press-3 force excursion during order 1000123",
        "long_text": "Peak force 12 % over baseline for 40 min",
        "plant": "1010",
        "storage_location": "0001",
        "quantity": 40.0,
        "unit": "PC",
    }
    fields.update(overrides)
    return HoldRequest(**fields)


def method_statuses(sim: SapSimulator, *, after: int = 0) -> list[tuple[str, int]]:
    return [(r.method, r.status) for r in sim.requests()[after:]]


@pytest.mark.erp
def test_update_raises_priority_and_appends_the_note_under_the_etag(
    sim: SapSimulator, adapter: SapAdapter
) -> None:
    number = adapter.create_notification(make_request("PW0001", priority="3")).number
    before = len(sim.requests())

    document = adapter.update_notification(make_update(number, priority="2"))

    assert document == ErpDocument(number, "PW0001", False, "outstanding")
    [stored] = sim.notifications()
    assert stored["MaintPriority"] == "2"
    assert stored["MaintNotifLongTextForEdit"] == make_request().long_text + "\nRepeat: BPFO 0.51 g"
    assert stored["MaintNotificationLongText"] == stored["MaintNotifLongTextForEdit"]
    assert method_statuses(sim, after=before) == [("GET", 200), ("PATCH", 204)]


@pytest.mark.erp
def test_update_never_lowers_priority_and_a_repeated_update_sends_nothing(
    sim: SapSimulator, adapter: SapAdapter
) -> None:
    number = adapter.create_notification(make_request("PW0001", priority="2")).number
    adapter.update_notification(make_update(number, priority="4"))
    assert sim.notifications()[0]["MaintPriority"] == "2"
    before = len(sim.requests())

    adapter.update_notification(make_update(number, priority="4"))  # a retry of the same update

    assert method_statuses(sim, after=before) == [("GET", 200)]
    assert sim.notifications()[0]["MaintNotifLongTextForEdit"].count("Repeat: BPFO 0.51 g") == 1


@pytest.mark.erp
def test_update_rereads_after_412_and_never_lowers_what_the_planner_raised(
    sim: SapSimulator, adapter: SapAdapter
) -> None:
    number = adapter.create_notification(make_request("PW0001", priority="3")).number
    # A planner raises the priority in SAP between the adapter's read and its PATCH: the ETag goes stale.
    sim.before_next(lambda: sim.edit_notification(number, MaintPriority="1"), method="PATCH")
    before = len(sim.requests())

    adapter.update_notification(make_update(number, priority="2"))

    assert method_statuses(sim, after=before) == [("GET", 200), ("PATCH", 412), ("GET", 200), ("PATCH", 204)]
    [stored] = sim.notifications()
    assert stored["MaintPriority"] == "1"
    assert stored["MaintNotifLongTextForEdit"].endswith("\nRepeat: BPFO 0.51 g")


@pytest.mark.erp
def test_update_gives_up_after_a_second_412_with_a_retryable_error(
    sim: SapSimulator, adapter: SapAdapter
) -> None:
    number = adapter.create_notification(make_request("PW0001", priority="3")).number
    for text in ("first planner edit", "second planner edit"):
        sim.before_next(
            lambda text=text: sim.edit_notification(number, NotificationText=text), method="PATCH"
        )

    with pytest.raises(ErpError) as caught:
        adapter.update_notification(make_update(number, priority="2"))

    assert (caught.value.status, caught.value.retryable) == (412, True)
    assert "ETag" in caught.value.message  # SAP's own message
    assert sim.notifications()[0]["MaintPriority"] == "3"


@pytest.mark.erp
def test_update_of_a_completed_notification_changes_nothing(sim: SapSimulator, adapter: SapAdapter) -> None:
    number = adapter.create_notification(make_request("PW0001", priority="3")).number
    sim.complete_notification(number, "fault_confirmed")
    before = len(sim.requests())

    document = adapter.update_notification(make_update(number))

    assert (document.status, document.outcome) == ("completed", "fault_confirmed")
    assert method_statuses(sim, after=before) == [("GET", 200)]
    assert sim.notifications()[0]["MaintPriority"] == "3"


@pytest.mark.erp
def test_update_refuses_a_notification_of_another_correlation_id(
    sim: SapSimulator, adapter: SapAdapter
) -> None:
    number = adapter.create_notification(make_request("PW0001")).number

    with pytest.raises(ErpError) as caught:
        adapter.update_notification(make_update(number, correlation_id="PW0002"))

    assert caught.value.code == "wrong_document"
    assert [r.method for r in sim.requests()].count("PATCH") == 0


def test_appended_long_text_keeps_the_note_whole_and_cuts_the_oldest_text() -> None:
    history = "\n".join(f"evidence line {index}: BPFO amplitude rising" for index in range(40))
    note = "Repeat at 2026-11-23T17:45Z: BPFO 0.61 g, velocity 7.9 mm/s"

    text = appended_long_text(history, note, LONG_TEXT_MAX, utf16_length)

    assert text is not None and utf16_length(text) <= LONG_TEXT_MAX
    assert text.endswith("…\n" + note)
    assert text.startswith("evidence line 0:")
    assert (
        appended_long_text(text, note, LONG_TEXT_MAX, utf16_length) is None
    )  # already there: a retried update adds nothing
    assert appended_long_text("", "  ", LONG_TEXT_MAX, utf16_length) is None


@pytest.mark.erp
@pytest.mark.parametrize("outcome", ["fault_confirmed", "no_fault_found"])
def test_read_back_follows_the_phase_and_gives_the_planners_outcome_once_completed(
    sim: SapSimulator, adapter: SapAdapter, raw: RawClient, outcome: str
) -> None:
    number = adapter.create_notification(make_request("PW0001")).number
    assert adapter.read_notification(number) == ErpDocument(number, "PW0001", False, "outstanding")

    assert raw.request("POST", f"/SetMaintNotifToInProcess?MaintenanceNotification='{number}'").status == 200
    assert adapter.read_notification(number) == ErpDocument(number, "PW0001", False, "in_process")

    completed = sim.complete_notification(number, outcome)

    assert completed["NotifProcessingPhase"] == "4"
    assert completed["ConcatenatedActiveSystStsName"] == "NOCO"
    assert completed["MaintNotificationCatalog"] == "D"
    assert adapter.read_notification(number) == ErpDocument(number, "PW0001", False, "completed", outcome)
    assert adapter.find_notification("PW0001") == ErpDocument(number, "PW0001", False, "completed", outcome)


@pytest.mark.erp
def test_planner_completion_over_http_coding_then_function_import(
    adapter: SapAdapter, raw: RawClient
) -> None:
    number = adapter.create_notification(make_request("PW0001")).number
    path = f"/MaintenanceNotification('{number}')"
    etag = raw.request("GET", path).headers["ETag"]
    coded = raw.request(
        "MERGE",
        path,
        body={"MaintNotificationCodeGroup": "plantwch", "MaintNotificationCode": "nff"},
        headers={"If-Match": etag},
    )
    assert coded.status == 204
    # Coding alone is not an outcome: the notification is still open.
    assert adapter.read_notification(number).outcome is None

    reply = raw.request(
        "POST",
        f"/CompleteMaintNotification?MaintenanceNotification='{number}'"
        "&MaintNotifReferenceDateTime=datetimeoffset'2026-11-23T17:45:00Z'",
    )

    assert reply.status == 200
    assert adapter.read_notification(number).outcome == "no_fault_found"


@pytest.mark.erp
@pytest.mark.parametrize(
    ("code_group", "code"), [(None, None), ("PM-GEN", "0001")], ids=["uncoded", "other-code-group"]
)
def test_completion_without_plantwatch_coding_has_no_outcome(
    sim: SapSimulator, adapter: SapAdapter, code_group: str | None, code: str | None
) -> None:
    number = adapter.create_notification(make_request("PW0001")).number
    sim.complete_notification(number, code_group=code_group, code=code)

    assert adapter.read_notification(number) == ErpDocument(number, "PW0001", False, "completed", None)


@pytest.mark.erp
def test_outcome_coding_follows_the_sites_catalog(sim: SapSimulator) -> None:
    adapter = make_adapter(
        sim, outcome_coding=OutcomeCoding(code_group="PM-GEN", fault_confirmed="0002", no_fault_found="0003")
    )
    number = adapter.create_notification(make_request("PW0001")).number
    sim.complete_notification(number, code_group="PM-GEN", code="0002")

    assert adapter.read_notification(number).outcome == "fault_confirmed"


@pytest.mark.erp
def test_coding_outside_the_catalog_is_refused_with_saps_message(sim: SapSimulator, raw: RawClient) -> None:
    number = create_raw(raw)["MaintenanceNotification"]
    path = f"/MaintenanceNotification('{number}')"
    etag = raw.request("GET", path).headers["ETag"]

    reply = raw.request(
        "PATCH",
        path,
        body={"MaintNotificationCodeGroup": "PLANTWCH", "MaintNotificationCode": "OOPS"},
        headers={"If-Match": etag},
    )

    assert reply.status == 400
    error = reply.json()["error"]
    assert error["innererror"]["errordetails"][0]["target"] == "MaintNotificationCode"
    assert "OOPS" in error["message"]["value"] and "PLANTWCH" in error["message"]["value"]
    assert sim.notifications()[0]["MaintNotificationCode"] == ""


@pytest.mark.erp
def test_reading_an_unknown_notification_is_a_non_retryable_404_with_saps_message(
    adapter: SapAdapter,
) -> None:
    with pytest.raises(ErpError) as caught:
        adapter.read_notification("99999999")

    assert (caught.value.status, caught.value.retryable) == (404, False)
    assert "99999999" in caught.value.message


@pytest.mark.erp
def test_order_is_created_with_its_operation_by_deep_insert(sim: SapSimulator) -> None:
    adapter = make_adapter(sim, create_order=True)

    document = adapter.create_notification(make_request("PW0001"))

    [order] = sim.orders()
    assert order["MaintenanceOrderType"] == "PM01"
    assert order["MaintenanceNotification"] == document.number
    assert order["Equipment"] == "PUMP-7"
    assert order["MaintenanceOrderDesc"] == "Outer race defect on pump-7"
    assert order["MaintPriority"] == "2"
    [operation] = order["to_MaintenanceOrderOperation"]
    assert (operation["MaintenanceOrderOperation"], operation["MaintenanceOrderSubOperation"]) == ("0010", "")
    assert operation["OperationDescription"] == "Outer race defect on pump-7"
    [notification] = sim.notifications()
    assert notification["MaintenanceOrder"] == order["MaintenanceOrder"]
    assert notification["ConcatenatedActiveSystStsName"] == "OSNO ORAS"
    posts = [r.path for r in sim.requests() if r.method == "POST"]
    assert posts == [f"{SERVICE_ROOT}/MaintenanceNotification", f"{ORDER_SERVICE_ROOT}/MaintenanceOrder"]

    again = adapter.create_notification(make_request("PW0001"))

    assert again.created is False
    assert len(sim.orders()) == 1


@pytest.mark.erp
def test_order_missing_after_a_crash_is_created_by_the_retry(sim: SapSimulator) -> None:
    adapter = make_adapter(sim, create_order=True)
    sim.fail_next(503, method="POST", path_contains="API_MAINTENANCEORDER")

    with pytest.raises(ErpError) as caught:
        adapter.create_notification(make_request("PW0001"))
    assert caught.value.retryable is True
    assert len(sim.notifications()) == 1 and sim.orders() == []

    document = adapter.create_notification(make_request("PW0001"))

    assert document.created is False
    [order] = sim.orders()
    assert order["MaintenanceNotification"] == document.number
    assert len(sim.notifications()) == 1


@pytest.mark.erp
def test_order_that_cannot_fit_is_refused_before_the_notification_is_created(sim: SapSimulator) -> None:
    adapter = make_adapter(sim, create_order=True, technical_object_type="EAMS_FL")

    with pytest.raises(ErpError) as caught:
        adapter.create_notification(make_request("PW0001", asset="plant1-line4-pump-section-07-b12"))

    assert caught.value.code == "client_validation"
    assert "FunctionalLocation" in caught.value.message
    assert sim.requests() == []


@pytest.mark.erp
@pytest.mark.parametrize(
    ("path", "body", "status", "target"),
    [
        (
            "/MaintenanceOrderOperation",
            {
                "MaintenanceOrderOperation": "0010",
                "MaintenanceOrderSubOperation": "",
                "OperationDescription": "x",
            },
            405,
            "MaintenanceOrderOperation",
        ),
        ("/MaintenanceOrder", {"MaintenanceOrderDesc": "no type"}, 400, "MaintenanceOrderType"),
        (
            "/MaintenanceOrder",
            {"MaintenanceOrderType": "PM01", "MaintenanceOrder": "4711"},
            400,
            "MaintenanceOrder",
        ),
        (
            "/MaintenanceOrder",
            {"MaintenanceOrderType": "PM01", "to_MaintenanceOrderOperation": [{"MaintenanceOrder": "1"}]},
            400,
            "MaintenanceOrder",
        ),
        (
            "/MaintenanceOrder",
            {"MaintenanceOrderType": "PM01", "MaintenanceOrderDesc": "d" * 41},
            400,
            "MaintenanceOrderDesc",
        ),
        (
            "/MaintenanceOrder",
            {"MaintenanceOrderType": "PM01", "to_MaintenanceOrderPartner": []},
            501,
            "to_MaintenanceOrderPartner",
        ),
    ],
    ids=[
        "operation-alone",
        "no-order-type",
        "external-number",
        "operation-key-of-order",
        "long-text",
        "partner",
    ],
)
def test_orders_outside_the_contract_are_refused(
    sim: SapSimulator, raw: RawClient, path: str, body: dict[str, Any], status: int, target: str
) -> None:
    reply = raw.request("POST", path, body=body, root=ORDER_SERVICE_ROOT)

    assert reply.status == status
    error = reply.json()["error"]
    assert error["innererror"]["application"]["service_id"] == "API_MAINTENANCEORDER"
    assert error["innererror"]["errordetails"][0]["target"] == target
    assert sim.orders() == []


@pytest.mark.erp
def test_a_notification_gets_at_most_one_order(raw: RawClient) -> None:
    number = create_raw(raw)["MaintenanceNotification"]
    body = {"MaintenanceOrderType": "PM01", "MaintenanceNotification": number}
    assert raw.request("POST", "/MaintenanceOrder", body=body, root=ORDER_SERVICE_ROOT).status == 201

    second = raw.request("POST", "/MaintenanceOrder", body=body, root=ORDER_SERVICE_ROOT)

    assert second.status == 400
    assert "already assigned" in second.json()["error"]["message"]["value"]


@pytest.mark.erp
def test_goods_movement_hold_creates_a_q3_notification_and_moves_the_lot_to_blocked_stock(
    sim: SapSimulator, adapter: SapAdapter
) -> None:
    sim.add_batch("BRACKET-7", "LOT-0042", "1010", quantity=100, unit="PC")

    document = adapter.create_hold(make_hold())

    [notification] = sim.quality_notifications()
    assert document == ErpDocument(notification["QualityNotification"], "PWH0001", True, "outstanding")
    assert notification["NotificationType"] == "Q3"
    assert notification["ExternalReferenceNumber"] == "PWH0001"
    assert (notification["Material"], notification["Batch"], notification["Plant"]) == (
        "BRACKET-7",
        "LOT-0042",
        "1010",
    )
    assert notification["ManufacturingOrder"] == "1000123"
    [material_document] = sim.material_documents()
    assert material_document["GoodsMovementCode"] == "04"
    assert material_document["MaterialDocumentHeaderText"] == "PWH0001"
    assert material_document["ReferenceDocument"] == notification["QualityNotification"]
    [item] = material_document["to_MaterialDocumentItem"]
    assert (item["GoodsMovementType"], item["QuantityInEntryUnit"], item["EntryUnit"]) == (
        "344",
        "40.000",
        "PC",
    )
    assert (item["Material"], item["Batch"], item["Plant"], item["StorageLocation"]) == (
        "BRACKET-7",
        "LOT-0042",
        "1010",
        "0001",
    )
    stock = sim.stock("BRACKET-7", "LOT-0042", "1010", "0001")
    assert (stock["unrestricted"], stock["blocked"]) == (Decimal(60), Decimal(40))


@pytest.mark.erp
def test_batch_restriction_hold_restricts_the_whole_batch(sim: SapSimulator) -> None:
    adapter = make_adapter(sim, hold_method="batch_restriction")
    sim.add_batch("BRACKET-7", "LOT-0042", "1010", quantity=100)
    sim.add_batch("BRACKET-7", "LOT-0043", "1010", quantity=5)

    document = adapter.create_hold(make_hold(quantity=None, unit=None, storage_location=None))

    assert document.created is True
    restricted = {b["Batch"]: b["MatlBatchIsInRstrcdUseStock"] for b in sim.batches()}
    assert restricted == {"LOT-0042": True, "LOT-0043": False}
    assert sim.stock("BRACKET-7", "LOT-0042", "1010")["restricted"] == Decimal(100)
    assert sim.stock("BRACKET-7", "LOT-0042", "1010")["unrestricted"] == Decimal(0)
    assert sim.material_documents() == []
    patches = [r for r in sim.requests() if r.method == "PATCH"]
    assert [(r.path.split("?")[0], r.status) for r in patches] == [
        (f"{BATCH_SERVICE_ROOT}/Batch(Material='BRACKET-7',BatchIdentifyingPlant='',Batch='LOT-0042')", 204)
    ]


@pytest.mark.erp
@pytest.mark.parametrize("hold_method", ["goods_movement", "batch_restriction"])
def test_a_second_hold_with_the_same_correlation_id_creates_nothing(
    sim: SapSimulator, hold_method: str
) -> None:
    adapter = make_adapter(sim, hold_method=hold_method)
    sim.add_batch("BRACKET-7", "LOT-0042", "1010", quantity=100)
    first = adapter.create_hold(make_hold())
    posts_before = [r for r in sim.requests() if r.method in ("POST", "PATCH")]

    second = adapter.create_hold(make_hold())

    assert second == ErpDocument(first.number, "PWH0001", False, "outstanding")
    assert [r for r in sim.requests() if r.method in ("POST", "PATCH")] == posts_before
    assert adapter.find_hold("PWH0001") == second
    assert adapter.find_hold("PWH9999") is None
    assert len(sim.quality_notifications()) == 1


@pytest.mark.erp
@pytest.mark.parametrize(
    ("hold_method", "failing"),
    [("goods_movement", ("POST", "A_MaterialDocumentHeader")), ("batch_restriction", ("PATCH", "/Batch("))],
)
def test_hold_interrupted_between_quality_notification_and_stock_step_is_completed_by_the_retry(
    sim: SapSimulator, hold_method: str, failing: tuple[str, str]
) -> None:
    adapter = make_adapter(sim, hold_method=hold_method)
    sim.add_batch("BRACKET-7", "LOT-0042", "1010", quantity=100)
    method, path = failing
    sim.fail_next(503, method=method, path_contains=path)

    with pytest.raises(ErpError) as caught:
        adapter.create_hold(make_hold())

    assert caught.value.retryable is True
    [notification] = sim.quality_notifications()
    assert sim.stock("BRACKET-7", "LOT-0042", "1010")["unrestricted"] == Decimal(100)
    assert adapter.find_hold("PWH0001") == ErpDocument(
        notification["QualityNotification"], "PWH0001", False, "outstanding"
    )

    document = adapter.create_hold(make_hold())

    assert document == ErpDocument(notification["QualityNotification"], "PWH0001", False, "outstanding")
    assert len(sim.quality_notifications()) == 1
    stock = sim.stock("BRACKET-7", "LOT-0042", "1010")
    if hold_method == "goods_movement":
        assert len(sim.material_documents()) == 1
        assert (stock["unrestricted"], stock["blocked"]) == (Decimal(60), Decimal(40))
    else:
        assert (stock["unrestricted"], stock["restricted"]) == (Decimal(0), Decimal(100))


@pytest.mark.erp
@pytest.mark.parametrize(
    ("hold_method", "overrides", "missing"),
    [
        ("goods_movement", {"quantity": None}, "quantity"),
        ("goods_movement", {"storage_location": None, "unit": None}, "storage_location, unit"),
        ("batch_restriction", {"lot": None}, "lot"),
        ("goods_movement", {"lot": "L" * 11}, "Batch"),
        ("goods_movement", {"quantity": 1.0005}, "QuantityInEntryUnit"),
        ("goods_movement", {"production_order": "O" * 13}, "ManufacturingOrder"),
    ],
)
def test_hold_that_cannot_be_done_is_refused_before_anything_is_sent(
    sim: SapSimulator, hold_method: str, overrides: dict[str, Any], missing: str
) -> None:
    adapter = make_adapter(sim, hold_method=hold_method)

    with pytest.raises(ErpError) as caught:
        adapter.create_hold(make_hold(**overrides))

    assert (caught.value.code, caught.value.retryable) == ("client_validation", False)
    assert missing in caught.value.message
    assert sim.requests() == []


@pytest.mark.erp
def test_stock_deficit_is_refused_with_saps_message(sim: SapSimulator, adapter: SapAdapter) -> None:
    sim.add_batch("BRACKET-7", "LOT-0042", "1010", quantity=25)

    with pytest.raises(ErpError) as caught:
        adapter.create_hold(make_hold(quantity=40))

    error = caught.value
    assert (error.status, error.retryable) == (400, False)
    assert error.message == "Deficit of SL Unrestricted-use 15.000 PC : BRACKET-7 1010 0001 LOT-0042"
    assert sim.material_documents() == []
    assert sim.stock("BRACKET-7", "LOT-0042", "1010")["unrestricted"] == Decimal(25)


@pytest.mark.erp
def test_quality_notification_errors_carry_the_v4_message(sim: SapSimulator) -> None:
    adapter = make_adapter(sim, quality_notification_type="Q9")
    sim.add_batch("BRACKET-7", "LOT-0042", "1010", quantity=100)

    with pytest.raises(ErpError) as caught:
        adapter.create_hold(make_hold())

    assert (caught.value.status, caught.value.code) == (400, "SAPSIM/INVALID_NOTIFICATION_TYPE")
    assert "Q9" in caught.value.message
    assert str(caught.value).startswith("sap 400: Notification type 'Q9'")
    assert sim.quality_notifications() == []


@pytest.mark.erp
@pytest.mark.parametrize("operation", ["create_hold", "update_notification", "read_notification"])
def test_429_with_retry_after_is_retryable_with_the_delay(sim: SapSimulator, operation: str) -> None:
    adapter = make_adapter(sim)
    sim.add_batch("BRACKET-7", "LOT-0042", "1010", quantity=100)
    number = adapter.create_notification(make_request("PW0001")).number
    calls: dict[str, tuple[str, Callable[[], object]]] = {
        "create_hold": ("POST", lambda: adapter.create_hold(make_hold())),
        "update_notification": ("PATCH", lambda: adapter.update_notification(make_update(number))),
        "read_notification": ("GET", lambda: adapter.read_notification(number)),
    }
    method, call = calls[operation]
    sim.fail_next(429, retry_after=7, method=method)

    with pytest.raises(ErpError) as caught:
        call()

    assert (caught.value.status, caught.value.retryable, caught.value.retry_after_s) == (429, True, 7.0)
    assert caught.value.code == "SAPSIM/INJECTED_FAULT"


@pytest.mark.erp
def test_quality_notification_service_speaks_odata_v4(sim: SapSimulator, raw: RawClient) -> None:
    body = {"NotificationType": "Q3", "NotificationText": "Lot on hold", "ExternalReferenceNumber": "pwq1"}
    refused = raw.request(
        "POST",
        "/QualityNotification",
        body=body,
        headers={"X-CSRF-Token": ""},
        root=QUALITY_NOTIFICATION_SERVICE_ROOT,
    )
    assert (refused.status, refused.headers["X-CSRF-Token"]) == (403, "Required")

    created = raw.request("POST", "/QualityNotification", body=body, root=QUALITY_NOTIFICATION_SERVICE_ROOT)
    assert created.status == 201
    assert created.headers["OData-Version"] == "4.0"
    entity = created.json()
    assert entity["ExternalReferenceNumber"] == "PWQ1"
    assert entity["@odata.etag"] == created.headers["ETag"]
    assert created.headers["Location"].endswith(f"/QualityNotification('{entity['QualityNotification']}')")

    found = raw.request(
        "GET",
        "/QualityNotification?$filter=" + quote("ExternalReferenceNumber eq 'PWQ1'") + "&$count=true",
        root=QUALITY_NOTIFICATION_SERVICE_ROOT,
    )
    assert found.status == 200
    assert found.json()["@odata.count"] == 1
    assert [e["QualityNotification"] for e in found.json()["value"]] == [entity["QualityNotification"]]

    too_long = raw.request(
        "POST",
        "/QualityNotification",
        body={**body, "NotificationText": "x" * 41},
        root=QUALITY_NOTIFICATION_SERVICE_ROOT,
    )
    assert too_long.status == 400
    error = too_long.json()["error"]
    assert isinstance(error["message"], str) and "NotificationText" in error["message"]
    assert error["target"] == "NotificationText"

    patched = raw.request(
        "PATCH",
        f"/QualityNotification('{entity['QualityNotification']}')",
        body={"NotificationText": "changed"},
        headers={"If-Match": entity["@odata.etag"]},
        root=QUALITY_NOTIFICATION_SERVICE_ROOT,
    )
    assert patched.status == 405
    assert len(sim.quality_notifications()) == 1


@pytest.mark.erp
@pytest.mark.parametrize(
    ("method", "path", "body", "status", "target"),
    [
        (
            "POST",
            "/A_MaterialDocumentHeader",
            {
                "GoodsMovementCode": "04",
                "MaterialDocumentHeaderText": "x" * 26,
                "to_MaterialDocumentItem": [],
            },
            400,
            "MaterialDocumentHeaderText",
        ),
        ("POST", "/A_MaterialDocumentHeader", {"GoodsMovementCode": "04"}, 400, "to_MaterialDocumentItem"),
        ("POST", "/A_MaterialDocumentItem", {"Material": "BRACKET-7"}, 405, "A_MaterialDocumentItem"),
        (
            "POST",
            "/A_MaterialDocumentHeader",
            {
                "GoodsMovementCode": "04",
                "to_MaterialDocumentItem": [
                    {
                        "Material": "BRACKET-7",
                        "Plant": "1010",
                        "StorageLocation": "0001",
                        "Batch": "LOT-0042",
                        "GoodsMovementType": "344",
                        "QuantityInEntryUnit": "1.0001",
                    }
                ],
            },
            400,
            "QuantityInEntryUnit",
        ),
        (
            "PATCH",
            "/A_MaterialDocumentHeader(MaterialDocumentYear='2026',MaterialDocument='4900000001')",
            {"MaterialDocumentHeaderText": "x"},
            405,
            "A_MaterialDocumentHeader",
        ),
    ],
    ids=["header-text-too-long", "no-items", "item-alone", "quantity-scale", "header-update"],
)
def test_material_documents_outside_the_contract_are_refused(
    sim: SapSimulator, raw: RawClient, method: str, path: str, body: dict[str, Any], status: int, target: str
) -> None:
    sim.add_batch("BRACKET-7", "LOT-0042", "1010", quantity=100)

    reply = raw.request(method, path, body=body, root=MATERIAL_DOCUMENT_SERVICE_ROOT)

    assert reply.status == status
    error = reply.json()["error"]
    assert error["message"]["value"]
    assert error["innererror"]["errordetails"][0]["target"] == target
    assert sim.material_documents() == []
    assert sim.stock("BRACKET-7", "LOT-0042", "1010")["unrestricted"] == Decimal(100)


@pytest.mark.erp
@pytest.mark.parametrize(
    ("root", "entity_sets"),
    [
        (SERVICE_ROOT, ["MaintenanceNotification"]),
        (ORDER_SERVICE_ROOT, ["MaintenanceOrder", "MaintenanceOrderOperation"]),
        (MATERIAL_DOCUMENT_SERVICE_ROOT, ["A_MaterialDocumentHeader", "A_MaterialDocumentItem"]),
        (BATCH_SERVICE_ROOT, ["Batch"]),
        (QUALITY_NOTIFICATION_SERVICE_ROOT, ["QualityNotification"]),
    ],
)
def test_every_service_answers_its_service_document_and_metadata(
    raw: RawClient, root: str, entity_sets: list[str]
) -> None:
    document = raw.request("GET", "/", root=root).json()
    names = document["d"]["EntitySets"] if "d" in document else [s["name"] for s in document["value"]]
    assert names == entity_sets

    metadata = raw.request("GET", "/$metadata", headers={"Accept": "application/xml"}, root=root)
    assert metadata.status == 200
    declared = {s.get("Name") for s in ET.fromstring(metadata.body).iter() if s.tag.endswith("}EntitySet")}
    assert declared == set(entity_sets)


@pytest.mark.erp
def test_batch_update_needs_the_current_etag(sim: SapSimulator, raw: RawClient) -> None:
    sim.add_batch("BRACKET-7", "LOT-0042", "1010", quantity=100)
    path = "/Batch(Material='BRACKET-7',BatchIdentifyingPlant='',Batch='LOT-0042')"
    body = {"MatlBatchIsInRstrcdUseStock": True}

    without = raw.request("PATCH", path, body=body, root=BATCH_SERVICE_ROOT)
    assert without.status == 412
    assert sim.batches()[0]["MatlBatchIsInRstrcdUseStock"] is False

    etag = raw.request("GET", path, root=BATCH_SERVICE_ROOT).headers["ETag"]
    accepted = raw.request("PATCH", path, body=body, headers={"If-Match": etag}, root=BATCH_SERVICE_ROOT)
    assert accepted.status == 204
    assert accepted.headers["ETag"] != etag
    assert sim.batches()[0]["MatlBatchIsInRstrcdUseStock"] is True

    stale = raw.request(
        "PATCH",
        path,
        body={"MatlBatchIsInRstrcdUseStock": False},
        headers={"If-Match": etag},
        root=BATCH_SERVICE_ROOT,
    )
    assert stale.status == 412
    assert sim.stock("BRACKET-7", "LOT-0042", "1010")["restricted"] == Decimal(100)


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


def _edmx(name: str) -> ET.Element:
    path = SPECS / name
    if not path.is_file():
        pytest.skip(f"SAP's EDMX is not next to the repository ({name} under ../shared/specs/sap)")
    return ET.parse(path).getroot()


@pytest.mark.parametrize(
    ("edmx", "spec"),
    [
        ("API_MAINTNOTIFICATION.edmx", NOTIFICATION_SET),
        ("API_MAINTENANCEORDER.edmx", ORDER_SET),
        ("API_MAINTENANCEORDER.edmx", OPERATION_SET),
        ("API_MATERIAL_DOCUMENT_SRV.edmx", MATERIAL_DOCUMENT_HEADER_SET),
        ("API_MATERIAL_DOCUMENT_SRV.edmx", MATERIAL_DOCUMENT_ITEM_SET),
    ],
    ids=lambda value: value.name if isinstance(value, EntitySetSpec) else value,
)
def test_simulated_entity_sets_match_sap_edmx(edmx: str, spec: EntitySetSpec) -> None:
    root = _edmx(edmx)
    type_name = spec.type_name.rsplit(".", 1)[1]
    [entity_type] = [t for t in root.iter(f"{EDM}EntityType") if t.get("Name") == type_name]
    [entity_set] = [s for s in root.iter(f"{EDM}EntitySet") if s.get("Name") == spec.name]
    declared = {p.get("Name"): p for p in entity_type.iter(f"{EDM}Property")}

    def flags(element: ET.Element) -> dict[str, Any]:
        found = _flags(element)
        found["precision"] = (
            int(element.get("Precision") or 0) if element.get("Type") == "Edm.Decimal" else None
        )
        found["scale"] = int(element.get("Scale") or 0) if element.get("Type") == "Edm.Decimal" else None
        return found

    def spec_flags(name: str) -> dict[str, Any]:
        prop = spec.properties[name]
        return {
            "type": prop.edm_type,
            "max_length": prop.max_length,
            "nullable": prop.nullable,
            "creatable": prop.creatable,
            "updatable": prop.updatable,
            "upper_case": prop.upper_case,
            "precision": prop.precision,
            "scale": prop.scale,
        }

    mismatches = {
        name: (spec_flags(name), flags(declared[name]) if name in declared else "missing in SAP's EDMX")
        for name in spec.properties
        if name not in declared or spec_flags(name) != flags(declared[name])
    }
    assert mismatches == {}
    assert tuple(k.get("Name") for k in entity_type.iter(f"{EDM}PropertyRef")) == spec.keys
    assert {
        "creatable": entity_set.get(f"{SAP}creatable", "true") == "true",
        "updatable": entity_set.get(f"{SAP}updatable", "true") == "true",
        "deletable": entity_set.get(f"{SAP}deletable", "true") == "true",
    } == {"creatable": spec.creatable, "updatable": spec.updatable, "deletable": spec.deletable}
    navigations = {n.get("Name") for n in entity_type.iter(f"{EDM}NavigationProperty")}
    assert set(spec.navigations) == navigations
    assert set(spec.deep_insert) <= navigations


def test_simulated_deep_inserts_are_the_ones_sap_declares_insertable() -> None:
    # Orders: to_MaintenanceOrderOperation is Insertable=true in NavigationRestrictions of MaintenanceOrder.
    order_annotations = [
        a
        for a in _edmx("API_MAINTENANCEORDER.edmx").iter(f"{EDM_V4}Annotations")
        if a.get("Target")
        == "cds_api_maintenanceorder_2.cds_api_maintenanceorder_2_Entities/MaintenanceOrder"
    ]
    insertable = {
        record.find(f"{EDM_V4}PropertyValue[@Property='NavigationProperty']").get("NavigationPropertyPath")
        for annotations in order_annotations
        for record in annotations.iter(f"{EDM_V4}Record")
        if record.find(f"{EDM_V4}PropertyValue[@Property='NavigationProperty']") is not None
        and any(
            v.get("Bool") == "true"
            for v in record.iter(f"{EDM_V4}PropertyValue")
            if v.get("Property") == "Insertable"
        )
    }
    assert set(ORDER_SET.deep_insert) <= insertable
    # Material documents: the item set is not creatable, so items exist only by deep insert.
    assert MATERIAL_DOCUMENT_ITEM_SET.creatable is False
    assert "to_MaterialDocumentItem" in MATERIAL_DOCUMENT_HEADER_SET.deep_insert
