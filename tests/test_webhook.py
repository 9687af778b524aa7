"""The signed webhook: signature scheme, the adapter against the receiver simulator over loopback HTTP,
error classification, and what a receiver that breaks the contract gets."""

from __future__ import annotations

import doctest
import hashlib
import hmac
import json
import math
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwatch.clock import ManualClock
from plantwatch.gateway import webhook
from plantwatch.gateway.erp import ErpAdapter, ErpError, HoldRequest, NotificationRequest, NotificationUpdate
from plantwatch.gateway.webhook import (
    DEFAULT_TOLERANCE_S,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    WebhookAdapter,
    sign,
    verify_signature,
)
from plantwatch.simulators.broker import free_port
from plantwatch.simulators.webhook import WebhookReceiver

pytestmark = pytest.mark.erp

SECRET = b"webhook-test-secret-0123456789ab"
NOW_S = 1_772_438_400.0  # 2026-03-02T08:00:00Z


def notification(correlation_id: str = "PW0001", **changes: Any) -> NotificationRequest:
    values = {
        "correlation_id": correlation_id,
        "asset": "pump-7",
        "failure_mode": "outer_race",
        "severity": "alarm",
        "priority": "2",
        "title": "Outer race defect on pump-7",
        "long_text": "BPFO 3.58×: 0.42 g, 9× baseline\nvelocity 7.1 mm/s (zone C)",
    }
    return NotificationRequest(**{**values, **changes})


def hold(correlation_id: str = "PWH0001", **changes: Any) -> HoldRequest:
    values: dict[str, Any] = {
        "correlation_id": correlation_id,
        "asset": "press-3",
        "production_order": "1000123",
        "lot": "L-2026-0042",
        "material": "BRK-DISC-220",
        "title": "Hold lot L-2026-0042: press-3 in alarm",
        "long_text": "press-3 in alarm from 06:10 to 06:55 while order 1000123 ran",
        "plant": "1010",
        "storage_location": "0001",
        "quantity": 1200.0,
        "unit": "PC",
    }
    return HoldRequest(**{**values, **changes})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=NOW_S)


@pytest.fixture
def receiver(clock: ManualClock) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET, clock=clock) as instance:
        yield instance


@pytest.fixture
def adapter(receiver: WebhookReceiver, clock: ManualClock) -> WebhookAdapter:
    return WebhookAdapter(receiver.url, SECRET, timeout_s=5.0, clock=clock)


# --- signature --------------------------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body_in_hex() -> None:
    body = b'{"correlation_id":"PW0001"}'
    expected = hmac.new(SECRET, b"1772438400." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body, 1772438400) == f"t=1772438400,v1={expected}"


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(webhook, raise_on_error=False).failed == 0


def test_a_signature_verifies_within_the_tolerance_either_side() -> None:
    header = sign(SECRET, b"{}", int(NOW_S))
    for now_s in (NOW_S, NOW_S + DEFAULT_TOLERANCE_S, NOW_S - DEFAULT_TOLERANCE_S):
        verify_signature(SECRET, header, b"{}", now_s)


@pytest.mark.parametrize(
    ("header", "body", "now_s", "reason"),
    [
        (None, b"{}", NOW_S, "no X-Plantwatch-Signature header"),
        ("", b"{}", NOW_S, "no X-Plantwatch-Signature header"),
        ("v1=" + "0" * 64, b"{}", NOW_S, "no t="),
        (f"t={int(NOW_S)}", b"{}", NOW_S, "no v1="),
        ("t=soon,v1=" + "0" * 64, b"{}", NOW_S, "no t="),
        ("t=1,t=2,v1=" + "0" * 64, b"{}", NOW_S, "more than one t="),
        ("garbage", b"{}", NOW_S, "not key=value"),
        (sign(SECRET, b"{}", int(NOW_S)), b"{}", NOW_S + DEFAULT_TOLERANCE_S + 1, r"\+301 s from"),
        (sign(SECRET, b"{}", int(NOW_S)), b"{}", NOW_S - DEFAULT_TOLERANCE_S - 1, "-301 s from"),
        (sign(SECRET, b"{}", int(NOW_S)), b"{ }", NOW_S, "does not match"),
        (sign(b"another-secret-0123456789", b"{}", int(NOW_S)), b"{}", NOW_S, "does not match"),
    ],
)
def test_a_bad_signature_is_refused_saying_why(
    header: str | None, body: bytes, now_s: float, reason: str
) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify_signature(SECRET, header, body, now_s)


def test_any_of_several_v1_signatures_may_match_and_other_schemes_are_ignored() -> None:
    good = sign(SECRET, b"{}", int(NOW_S)).split(",")[1]
    header = f"t={int(NOW_S)}, v0=abc, v1={'f' * 64}, {good.upper().replace('V1', 'v1')}"
    verify_signature(SECRET, header, b"{}", NOW_S)


@given(
    secret=st.binary(min_size=16, max_size=64),
    body=st.binary(max_size=200),
    timestamp=st.integers(min_value=0, max_value=2**40),
    flip=st.integers(min_value=0),
)
def test_signing_then_verifying_holds_and_any_changed_byte_breaks_it(
    secret: bytes, body: bytes, timestamp: int, flip: int
) -> None:
    header = sign(secret, body, timestamp)
    verify_signature(secret, header, body, float(timestamp))
    if body:
        index = flip % len(body)
        changed = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        with pytest.raises(SignatureError):
            verify_signature(secret, header, changed, float(timestamp))


# --- the adapter against the receiver ---------------------------------------------------------------


def test_the_adapter_implements_the_erp_adapter_protocol(adapter: WebhookAdapter) -> None:
    assert isinstance(adapter, ErpAdapter)
    assert adapter.name == "webhook"


def test_a_notification_is_created_once_signed_and_with_its_idempotency_key(
    adapter: WebhookAdapter, receiver: WebhookReceiver
) -> None:
    document = adapter.create_notification(notification())
    assert document.created and document.correlation_id == "PW0001"
    assert (document.status, document.outcome) == ("outstanding", None)
    again = adapter.create_notification(notification())
    assert (again.number, again.created) == (document.number, False)

    (stored,) = receiver.notifications()
    assert stored.number == document.number
    assert stored.fields == {
        "correlation_id": "PW0001",
        "asset": "pump-7",
        "failure_mode": "outer_race",
        "severity": "alarm",
        "priority": "2",
        "title": "Outer race defect on pump-7",
        "long_text": "BPFO 3.58×: 0.42 g, 9× baseline\nvelocity 7.1 mm/s (zone C)",
    }
    requests = receiver.requests()
    assert [(r.method, r.path, r.status) for r in requests] == [
        ("POST", "/plantwatch/notifications", 201),
        ("POST", "/plantwatch/notifications", 200),
    ]
    assert all(r.signature_ok and r.idempotency_key == "PW0001" for r in requests)


def test_find_notification_finds_by_correlation_id_or_says_none(
    adapter: WebhookAdapter, receiver: WebhookReceiver
) -> None:
    assert adapter.find_notification("PW0001") is None
    created = adapter.create_notification(notification())
    found = adapter.find_notification("PW0001")
    assert found is not None
    assert (found.number, found.created, found.status) == (created.number, False, "outstanding")
    assert receiver.requests()[0].path == "/plantwatch/notifications"
    assert receiver.requests()[0].idempotency_key is None


def test_an_update_raises_the_priority_never_lowers_it_and_keeps_every_note(
    adapter: WebhookAdapter, receiver: WebhookReceiver
) -> None:
    document = adapter.create_notification(notification(priority="3"))
    raised = adapter.update_notification(NotificationUpdate(document.number, "PW0001", "1", "now in alarm"))
    assert (raised.number, raised.created) == (document.number, False)
    adapter.update_notification(NotificationUpdate(document.number, "PW0001", "4", "repeat"))
    (stored,) = receiver.notifications()
    assert stored.priority == "1"
    assert stored.notes == ["now in alarm", "repeat"]


def test_an_update_of_another_findings_document_is_refused_as_a_conflict(adapter: WebhookAdapter) -> None:
    document = adapter.create_notification(notification())
    with pytest.raises(ErpError) as caught:
        adapter.update_notification(NotificationUpdate(document.number, "PW0002", "1", "wrong one"))
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (409, "conflict", False)
    assert "PW0001" in caught.value.message


def test_read_notification_gives_the_planners_outcome(
    adapter: WebhookAdapter, receiver: WebhookReceiver
) -> None:
    document = adapter.create_notification(notification())
    assert adapter.read_notification(document.number).status == "outstanding"
    receiver.set_status(document.number, "in_process")
    assert adapter.read_notification(document.number).status == "in_process"
    receiver.close(document.number, "no_fault_found")
    read = adapter.read_notification(document.number)
    assert (read.status, read.outcome, read.created) == ("completed", "no_fault_found", False)


def test_reading_an_unknown_document_is_a_404_with_the_receivers_message(adapter: WebhookAdapter) -> None:
    with pytest.raises(ErpError) as caught:
        adapter.read_notification("N/0000001")  # the slash stays inside one path segment
    error = caught.value
    assert (error.status, error.code, error.retryable, error.backend) == (404, "not_found", False, "webhook")
    assert str(error) == "webhook 404: no notification 'N/0000001'"


def test_a_hold_is_created_once_and_found(adapter: WebhookAdapter, receiver: WebhookReceiver) -> None:
    document = adapter.create_hold(hold())
    assert document.created and document.number.startswith("H")
    assert not adapter.create_hold(hold()).created
    found = adapter.find_hold("PWH0001")
    assert found is not None and found.number == document.number
    assert adapter.find_hold("PWH0002") is None
    (stored,) = receiver.holds()
    assert stored.fields["lot"] == "L-2026-0042" and stored.fields["quantity"] == 1200.0


def test_a_hold_without_lot_or_quantity_sends_nulls(
    adapter: WebhookAdapter, receiver: WebhookReceiver
) -> None:
    adapter.create_hold(
        hold(lot=None, material=None, plant=None, storage_location=None, quantity=None, unit=None)
    )
    (stored,) = receiver.holds()
    assert stored.fields["lot"] is None and stored.fields["quantity"] is None


def test_notifications_and_holds_keep_separate_correlation_ids(
    adapter: WebhookAdapter, receiver: WebhookReceiver
) -> None:
    adapter.create_notification(notification("PW0009"))
    assert adapter.create_hold(hold("PW0009")).created
    assert len(receiver.notifications()) == len(receiver.holds()) == 1


def test_concurrent_creates_of_one_correlation_id_make_one_document(
    adapter: WebhookAdapter, receiver: WebhookReceiver
) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        documents = list(pool.map(lambda _: adapter.create_notification(notification("PW0777")), range(16)))
    assert len({document.number for document in documents}) == 1
    assert sum(document.created for document in documents) == 1
    assert len(receiver.notifications()) == 1


def test_check_passes_with_the_right_secret(adapter: WebhookAdapter, receiver: WebhookReceiver) -> None:
    adapter.check()
    assert receiver.requests()[-1].path == "/plantwatch/health"


def test_a_wrong_secret_is_refused_with_401_and_not_retried(
    receiver: WebhookReceiver, clock: ManualClock
) -> None:
    stranger = WebhookAdapter(receiver.url, b"not-the-shared-secret-0000", clock=clock)
    with pytest.raises(ErpError) as caught:
        stranger.check()
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (401, "bad_signature", False)
    assert "does not match" in caught.value.message
    with pytest.raises(ErpError, match="401"):
        stranger.create_notification(notification())
    assert receiver.notifications() == []
    assert not any(request.signature_ok for request in receiver.requests())


def test_a_request_signed_with_a_stale_clock_is_refused(receiver: WebhookReceiver) -> None:
    late = WebhookAdapter(receiver.url, SECRET, clock=ManualClock(start=NOW_S - 3600))
    with pytest.raises(ErpError, match=r"webhook 401: timestamp \d+ is \+3600 s from the receiver's clock"):
        late.create_notification(notification())
    assert receiver.notifications() == []


def test_a_busy_receiver_is_retryable_with_its_retry_after(
    adapter: WebhookAdapter, receiver: WebhookReceiver
) -> None:
    receiver.fail_next(503, retry_after=7)
    with pytest.raises(ErpError) as caught:
        adapter.create_notification(notification())
    error = caught.value
    assert (error.status, error.retryable, error.retry_after_s, error.code) == (
        503,
        True,
        7.0,
        "injected_fault",
    )
    assert error.message == "Service Unavailable (injected)"
    assert adapter.create_notification(notification()).created  # the next attempt goes through


def test_retry_after_as_an_http_date_is_read_against_the_adapters_clock(
    adapter: WebhookAdapter, receiver: WebhookReceiver
) -> None:
    receiver.fail_next(429, retry_after=formatdate(NOW_S + 90, usegmt=True))
    with pytest.raises(ErpError) as caught:
        adapter.find_notification("PW0001")
    assert (caught.value.status, caught.value.retryable, caught.value.retry_after_s) == (429, True, 90.0)


def test_fail_next_times_fails_that_many_requests(adapter: WebhookAdapter, receiver: WebhookReceiver) -> None:
    receiver.fail_next(502, times=2)
    for _ in range(2):
        with pytest.raises(ErpError) as caught:
            adapter.check()
        assert caught.value.retryable and caught.value.retry_after_s is None
    adapter.check()


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_client_errors_are_not_retryable(
    adapter: WebhookAdapter, receiver: WebhookReceiver, status: int
) -> None:
    receiver.fail_next(status, retry_after=30)
    with pytest.raises(ErpError) as caught:
        adapter.create_notification(notification())
    assert (caught.value.status, caught.value.retryable, caught.value.retry_after_s) == (status, False, None)


def test_an_unreachable_receiver_is_retryable() -> None:
    adapter = WebhookAdapter(f"http://127.0.0.1:{free_port()}/plantwatch", SECRET, timeout_s=2.0)
    with pytest.raises(ErpError) as caught:
        adapter.check()
    assert (caught.value.code, caught.value.retryable, caught.value.status) == ("unreachable", True, None)
    assert "unreachable" in str(caught.value)


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda a: a.create_notification(notification("pw-0001")), "correlation_id"),
        (lambda a: a.create_notification(notification(priority="0")), "priority"),
        (lambda a: a.create_notification(notification(severity="normal")), "severity"),
        (lambda a: a.create_notification(notification(asset="")), "asset"),
        (lambda a: a.update_notification(NotificationUpdate("N1", "PW0001", "5", "x")), "priority"),
        (lambda a: a.update_notification(NotificationUpdate("", "PW0001", "1", "x")), "number"),
        (lambda a: a.find_hold("A" * 21), "correlation_id"),
        (lambda a: a.create_hold(hold(quantity=math.nan)), "quantity"),
        (lambda a: a.create_hold(hold(quantity=0.0)), "quantity"),
        (lambda a: a.create_hold(hold(production_order="")), "production_order"),
    ],
)
def test_a_request_that_cannot_be_valid_is_refused_before_it_is_sent(
    adapter: WebhookAdapter, receiver: WebhookReceiver, call: Any, problem: str
) -> None:
    with pytest.raises(ErpError, match=problem) as caught:
        call(adapter)
    assert (caught.value.code, caught.value.retryable) == ("client_validation", False)
    assert receiver.requests() == []


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (("ftp://erp.example.com", SECRET), "http"),
        (("https:///path", SECRET), "host"),
        (("https://erp.example.com/hook?x=1", SECRET), "query"),
        (("https://erp.example.com", b"short"), "secret"),
        (("https://erp.example.com", "a text, not bytes, 0123456789"), "secret"),
    ],
)
def test_bad_adapter_settings_are_refused(arguments: tuple[Any, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        WebhookAdapter(*arguments)


# --- the receiver refuses what breaks the contract ---------------------------------------------------


def raw_request(
    receiver: WebhookReceiver,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        receiver.url + path, data=body or None, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def signed(body: bytes, **headers: str) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(SECRET, body, int(NOW_S)), "Content-Type": "application/json", **headers}


def test_the_receiver_refuses_an_unsigned_request(receiver: WebhookReceiver) -> None:
    status, answer = raw_request(receiver, "GET", "/health")
    assert status == 401
    assert answer == {"error": {"code": "bad_signature", "message": "no X-Plantwatch-Signature header"}}


@pytest.mark.parametrize(
    ("changes", "idempotency_key", "status", "message"),
    [
        ({}, None, 422, "Idempotency-Key: header missing"),
        ({}, "PW0002", 422, "Idempotency-Key: 'PW0002' differs"),
        ({"severity": "bad"}, "PW0001", 422, "severity: "),
        ({"priority": 2}, "PW0001", 422, "priority: wrong type int"),
        ({"title": None}, "PW0001", 422, "title: wrong type"),
        ({"correlation_id": "pw-1"}, "pw-1", 422, "correlation_id: "),
    ],
)
def test_the_receiver_refuses_a_bad_create_naming_the_field(
    receiver: WebhookReceiver, changes: dict[str, Any], idempotency_key: str | None, status: int, message: str
) -> None:
    body_values = {**notification().__dict__, **changes}
    body = json.dumps(body_values).encode()
    headers = signed(body, **({IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else {}))
    got_status, answer = raw_request(receiver, "POST", "/notifications", body, headers)
    assert got_status == status
    assert answer["error"]["message"].startswith(message)
    assert receiver.notifications() == []


def test_the_receiver_refuses_a_missing_field_and_a_non_object_body(receiver: WebhookReceiver) -> None:
    values = dict(notification().__dict__)
    del values["long_text"]
    body = json.dumps(values).encode()
    status, answer = raw_request(
        receiver, "POST", "/notifications", body, signed(body, **{IDEMPOTENCY_HEADER: "PW0001"})
    )
    assert (status, answer["error"]["message"]) == (422, "long_text: missing")
    status, answer = raw_request(receiver, "POST", "/holds", b"[1]", signed(b"[1]"))
    assert (status, answer["error"]["code"]) == (400, "bad_json")


def test_the_receiver_answers_unknown_paths_and_methods_with_404_and_405(receiver: WebhookReceiver) -> None:
    assert raw_request(receiver, "GET", "/orders", headers=signed(b""))[0] == 404
    assert raw_request(receiver, "DELETE", "/notifications", headers=signed(b""))[0] == 405
    assert raw_request(receiver, "GET", "/notifications", headers=signed(b""))[0] == 422  # no correlation_id


def test_close_refuses_an_unknown_outcome_or_document(
    adapter: WebhookAdapter, receiver: WebhookReceiver
) -> None:
    document = adapter.create_notification(notification())
    with pytest.raises(ValueError, match="outcome"):
        receiver.close(document.number, "broken")
    with pytest.raises(KeyError):
        receiver.close("N9999999", "fault_confirmed")


# --- a receiver that breaks the contract ------------------------------------------------------------


class CannedReceiver:
    """An HTTP server on loopback that answers every request with one fixed (status, headers, body)."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        canned = (status, body, headers or {"Content-Type": "application/json"})

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(canned[0])
                for name, value in canned[2].items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(canned[1])))
                self.end_headers()
                self.wfile.write(canned[1])

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def canned() -> Iterator[Any]:
    started: list[CannedReceiver] = []

    def start(status: int, body: bytes, headers: dict[str, str] | None = None) -> WebhookAdapter:
        server = CannedReceiver(status, body, headers)
        started.append(server)
        return WebhookAdapter(server.url, SECRET, timeout_s=5.0)

    yield start
    for server in started:
        server.close()


def document_json(**changes: Any) -> bytes:
    values = {
        "number": "N1",
        "correlation_id": "PW0001",
        "created": True,
        "status": "outstanding",
        "outcome": None,
    }
    return json.dumps({**values, **changes}).encode()


@pytest.mark.parametrize(
    ("status", "body", "problem"),
    [
        (201, b"<html>ok</html>", "expected JSON"),
        (201, b"[]", "expected a JSON object"),
        (201, document_json(number=""), "no number"),
        (201, document_json(correlation_id="PW0002"), "asked for 'PW0001'"),
        (201, document_json(created="yes"), "created must be true or false"),
        (202, document_json(), "Accepted"),
    ],
)
def test_an_answer_that_breaks_the_contract_is_a_bad_response(
    canned: Any, status: int, body: bytes, problem: str
) -> None:
    adapter = canned(status, body)
    with pytest.raises(ErpError, match=problem) as caught:
        adapter.create_notification(notification())
    assert not caught.value.retryable


def test_an_unknown_status_reads_as_unknown_and_an_unknown_outcome_as_none(canned: Any) -> None:
    adapter = canned(
        200,
        json.dumps({"documents": [json.loads(document_json(status="archived", outcome="maybe"))]}).encode(),
    )
    found = adapter.find_notification("PW0001")
    assert found is not None
    assert (found.status, found.outcome, found.created) == ("unknown", None, False)


def test_a_lookup_answer_without_a_documents_list_is_a_bad_response(canned: Any) -> None:
    adapter = canned(200, document_json())
    with pytest.raises(ErpError, match="no documents list") as caught:
        adapter.find_notification("PW0001")
    assert caught.value.code == "bad_response"


def test_a_redirect_is_not_followed(canned: Any) -> None:
    adapter = canned(302, b"", {"Location": "https://login.example.com/"})
    with pytest.raises(ErpError, match="redirect to https://login.example.com/ not followed") as caught:
        adapter.create_notification(notification())
    assert (caught.value.status, caught.value.retryable) == (302, False)


def test_an_html_error_page_becomes_its_text(canned: Any) -> None:
    page = b"<html><head><title>x</title><style>p{}</style></head><body><h1>Bad Gateway</h1> upstream down</body></html>"
    adapter = canned(502, page, {"Content-Type": "text/html"})
    with pytest.raises(ErpError) as caught:
        adapter.check()
    assert str(caught.value) == "webhook 502: Bad Gateway upstream down"
    assert caught.value.retryable
