"""A webhook receiver that implements the contract of :mod:`plantwatch.gateway.webhook`, in memory.

It stands in for the small service a plant writes behind the webhook adapter, for tests and demos: it
serves the contract's paths under ``base_path`` on a free 127.0.0.1 port (stdlib ``http.server`` in a
thread), checks every request's signature with
:func:`~plantwatch.gateway.webhook.verify_signature` (401 on a missing, wrong or stale one), keeps one
document per correlation id and collection (a repeated create answers 200 with the first document), and
validates bodies the way a careful receiver would (422 naming the field, 422 when ``Idempotency-Key``
and the body's ``correlation_id`` differ).

Test hooks: :meth:`WebhookReceiver.fail_next` (answer the next requests with an error status, optionally
with ``Retry-After``, before the signature is even looked at, as a proxy in front of the receiver
would), :meth:`WebhookReceiver.close` (a planner closes a document with an outcome), and for inspection
:meth:`WebhookReceiver.notifications`, :meth:`WebhookReceiver.holds`, :meth:`WebhookReceiver.requests`.

Example::

    with WebhookReceiver(secret) as receiver:
        adapter = WebhookAdapter(receiver.url, secret)
        ...
"""

from __future__ import annotations

import copy
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from plantwatch.clock import Clock, SystemClock
from plantwatch.gateway.erp import CORRELATION_ID_PATTERN, OUTCOMES, PRIORITIES, SEVERITIES, STATUSES
from plantwatch.gateway.webhook import (
    DEFAULT_TOLERANCE_S,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    verify_signature,
)
from plantwatch.httpserver import BackgroundHttpServer
from plantwatch.log import event

log = logging.getLogger("plantwatch.simulators.webhook")

MAX_BODY_BYTES = 1_000_000
"""Largest request body accepted (413 beyond): a notification's texts are a few kB."""
CONNECTION_TIMEOUT_S = 30.0
"""An idle keep-alive connection is closed after this long, so stop() never waits on a silent client."""

_NOTIFICATION_FIELDS = {
    "correlation_id": str,
    "asset": str,
    "failure_mode": str,
    "severity": str,
    "priority": str,
    "title": str,
    "long_text": str,
}
_HOLD_FIELDS: dict[str, Any] = {
    "correlation_id": str,
    "asset": str,
    "production_order": str,
    "lot": (str, type(None)),
    "material": (str, type(None)),
    "plant": (str, type(None)),
    "storage_location": (str, type(None)),
    "quantity": (int, float, type(None)),
    "unit": (str, type(None)),
    "title": str,
    "long_text": str,
}
_UPDATE_FIELDS = {"correlation_id": str, "priority": str, "note": str}


@dataclass
class StoredDocument:
    """A document the receiver holds: ``kind`` is ``"notification"`` or ``"hold"``; ``fields`` the body of
    the create; ``notes`` the updates' notes, oldest first."""

    kind: str
    number: str
    correlation_id: str
    status: str
    outcome: str | None
    fields: dict[str, Any]
    priority: str | None = None
    notes: list[str] = field(default_factory=list)

    def answer(self, *, created: bool) -> dict[str, Any]:
        """The contract's document JSON."""
        return {
            "number": self.number,
            "correlation_id": self.correlation_id,
            "created": created,
            "status": self.status,
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the receiver answered: what came, whether its signature held, what it answered."""

    method: str
    path: str
    status: int
    signature_ok: bool
    idempotency_key: str | None


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: str | None


class _Refusal(Exception):
    """An error answer: status, the contract's error code and message, extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class WebhookReceiver:
    """The webhook contract on a loopback HTTP port, with an in-memory store.

    - ``secret``: the shared HMAC key the adapter signs with.
    - ``base_path``: where the contract's paths start (``url`` includes it).
    - ``host``, ``port``: where to listen; port 0 picks a free port.
    - ``tolerance_s``: how far a signature's timestamp may be from ``clock``.
    - ``clock``: the receiver's clock for signature ages (default: the wall clock).

    Thread-safe. Use as a context manager, or :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        base_path: str = "/plantwatch",
        host: str = "127.0.0.1",
        port: int = 0,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        clock: Clock | None = None,
    ) -> None:
        self._secret = secret
        self._base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self._host = host
        self._port = port
        self._tolerance_s = tolerance_s
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._documents: dict[str, StoredDocument] = {}
        self._by_key: dict[tuple[str, str], str] = {}
        self._counters = {"notification": 0, "hold": 0}
        self._faults: list[_Fault] = []
        self._requests: list[ReceivedRequest] = []
        self._server: BackgroundHttpServer | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the port and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("the webhook receiver is already running")
        receiver = self

        class Handler(_Handler):
            owner = receiver

        self._server = BackgroundHttpServer(
            Handler, host=self._host, port=self._port, name="webhook-receiver"
        )
        self._server.start()
        event(log, logging.INFO, "webhook_receiver_started", url=self.url)

    def stop(self) -> None:
        """Stop serving and release the port. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        event(log, logging.INFO, "webhook_receiver_stopped")

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give the adapter: ``http://127.0.0.1:<port><base_path>``."""
        if self._server is None:
            raise RuntimeError("the webhook receiver is not running")
        return f"{self._server.base_url}{self._base_path}"

    # -- test hooks ---------------------------------------------------------------------------------

    def fail_next(self, status: int, retry_after: float | str | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` and the contract's error body.

        ``retry_after``: a ``Retry-After`` header (seconds, or an HTTP date given as a string).
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400..599), got {status}")
        if retry_after is None or isinstance(retry_after, str):
            header = retry_after
        else:
            header = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        with self._lock:
            self._faults.append(_Fault(status, times, header))

    def close(self, number: str, outcome: str | None) -> None:
        """A planner closes document ``number``: status ``completed``, ``outcome`` (one of OUTCOMES or None)."""
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        with self._lock:
            if number not in self._documents:
                raise KeyError(f"no document {number!r}")
            document = self._documents[number]
            document.status = "completed"
            document.outcome = outcome

    def set_status(self, number: str, status: str) -> None:
        """Move document ``number`` to ``status`` (one of STATUSES), as the ERP's users would."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        with self._lock:
            if number not in self._documents:
                raise KeyError(f"no document {number!r}")
            self._documents[number].status = status

    def notifications(self) -> list[StoredDocument]:
        """Copies of the stored notifications, in the order they were created."""
        return self._documents_of("notification")

    def holds(self) -> list[StoredDocument]:
        """Copies of the stored holds, in the order they were created."""
        return self._documents_of("hold")

    def requests(self) -> list[ReceivedRequest]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def _documents_of(self, kind: str) -> list[StoredDocument]:
        with self._lock:
            return [copy.deepcopy(document) for document in self._documents.values() if document.kind == kind]

    # -- request handling (handler threads) -----------------------------------------------------------

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.remaining -= 1
            if fault.remaining == 0:
                self._faults.pop(0)
            return fault

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _verify(self, header: str | None, body: bytes) -> None:
        try:
            verify_signature(self._secret, header, body, self._clock.now(), self._tolerance_s)
        except SignatureError as error:
            raise _Refusal(401, "bad_signature", str(error)) from None

    def _route(
        self, method: str, path: str, query: str, body: bytes, idempotency_key: str | None
    ) -> tuple[int, Any]:
        """Answer one verified request: (status, JSON body). Raises :class:`_Refusal` for errors."""
        if not path.startswith(self._base_path + "/") and path != self._base_path:
            raise _Refusal(
                404, "not_found", f"no such path {path!r} (the contract lives under {self._base_path}/)"
            )
        parts = [unquote(part) for part in path[len(self._base_path) :].strip("/").split("/")]
        collections = {"notifications": "notification", "holds": "hold"}
        if parts == ["health"]:
            _allow(method, "GET")
            return 200, {"status": "ok"}
        if len(parts) == 1 and parts[0] in collections:
            kind = collections[parts[0]]
            if method == "GET":
                return 200, {"documents": self._lookup(kind, query)}
            _allow(method, "GET", "POST")
            return self._create(kind, _json_object(body), idempotency_key)
        if len(parts) == 2 and parts[0] in collections:
            _allow(method, "GET")
            return 200, self._read(collections[parts[0]], parts[1])
        if len(parts) == 3 and parts[0] == "notifications" and parts[2] == "updates":
            _allow(method, "POST")
            return 200, self._update(parts[1], _json_object(body))
        raise _Refusal(404, "not_found", f"no such path {path!r}")

    def _lookup(self, kind: str, query: str) -> list[dict[str, Any]]:
        values = parse_qs(query).get("correlation_id")
        if not values or len(values) != 1:
            raise _Refusal(422, "invalid", "correlation_id: exactly one query parameter is required")
        with self._lock:
            number = self._by_key.get((kind, values[0]))
            return [] if number is None else [self._documents[number].answer(created=False)]

    def _read(self, kind: str, number: str) -> dict[str, Any]:
        with self._lock:
            document = self._documents.get(number)
            if document is None or document.kind != kind:
                raise _Refusal(404, "not_found", f"no {kind} {number!r}")
            return document.answer(created=False)

    def _create(self, kind: str, body: dict[str, Any], idempotency_key: str | None) -> tuple[int, Any]:
        _check_fields(body, _NOTIFICATION_FIELDS if kind == "notification" else _HOLD_FIELDS)
        correlation_id = body["correlation_id"]
        if not CORRELATION_ID_PATTERN.match(correlation_id):
            raise _Refusal(422, "invalid", f"correlation_id: {correlation_id!r} must be 1..20 of [A-Z0-9]")
        if idempotency_key is None:
            raise _Refusal(422, "invalid", f"{IDEMPOTENCY_HEADER}: header missing on a create")
        if idempotency_key != correlation_id:
            raise _Refusal(
                422,
                "invalid",
                f"{IDEMPOTENCY_HEADER}: {idempotency_key!r} differs from correlation_id {correlation_id!r}",
            )
        if kind == "notification":
            if body["severity"] not in SEVERITIES:
                raise _Refusal(
                    422, "invalid", f"severity: {body['severity']!r} is not one of {', '.join(SEVERITIES)}"
                )
            if body["priority"] not in PRIORITIES:
                raise _Refusal(
                    422, "invalid", f"priority: {body['priority']!r} is not one of {', '.join(PRIORITIES)}"
                )
        elif body["quantity"] is not None and not (math.isfinite(body["quantity"]) and body["quantity"] > 0):
            raise _Refusal(
                422, "invalid", f"quantity: {body['quantity']!r} must be a positive number or null"
            )
        with self._lock:
            existing = self._by_key.get((kind, correlation_id))
            if existing is not None:
                return 200, self._documents[existing].answer(created=False)
            self._counters[kind] += 1
            number = f"{'N' if kind == 'notification' else 'H'}{self._counters[kind]:07d}"
            document = StoredDocument(
                kind=kind,
                number=number,
                correlation_id=correlation_id,
                status="outstanding",
                outcome=None,
                fields=dict(body),
                priority=body.get("priority") if kind == "notification" else None,
            )
            self._documents[number] = document
            self._by_key[(kind, correlation_id)] = number
            return 201, document.answer(created=True)

    def _update(self, number: str, body: dict[str, Any]) -> dict[str, Any]:
        _check_fields(body, _UPDATE_FIELDS)
        if body["priority"] not in PRIORITIES:
            raise _Refusal(
                422, "invalid", f"priority: {body['priority']!r} is not one of {', '.join(PRIORITIES)}"
            )
        with self._lock:
            document = self._documents.get(number)
            if document is None or document.kind != "notification":
                raise _Refusal(404, "not_found", f"no notification {number!r}")
            if document.correlation_id != body["correlation_id"]:
                raise _Refusal(
                    409,
                    "conflict",
                    f"correlation_id: notification {number} carries {document.correlation_id!r},"
                    f" not {body['correlation_id']!r}",
                )
            # "1" is the highest priority: the lower string wins, so an update never lowers it
            document.priority = min(document.priority or body["priority"], body["priority"])
            document.notes.append(body["note"])
            return document.answer(created=False)


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise _Refusal(
            405, "method_not_allowed", f"{method} not allowed here (allowed: {', '.join(allowed)})"
        )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise _Refusal(400, "bad_json", f"body: not UTF-8 JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise _Refusal(400, "bad_json", "body: not a JSON object")
    return parsed


def _check_fields(body: dict[str, Any], spec: dict[str, Any]) -> None:
    for name, kind in spec.items():
        if name not in body:
            raise _Refusal(422, "invalid", f"{name}: missing")
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise _Refusal(422, "invalid", f"{name}: wrong type {type(value).__name__}")


class _Handler(BaseHTTPRequestHandler):
    owner: WebhookReceiver
    protocol_version = "HTTP/1.1"
    server_version = "plantwatch-webhook-receiver"
    timeout = CONNECTION_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the stdlib's stderr log; one ``webhook_request`` line per request is logged instead."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        started = time.monotonic()
        method = self.command.upper()
        split = urlsplit(self.path)
        idempotency_key = self.headers.get(IDEMPOTENCY_HEADER)
        signature_ok = False
        headers: dict[str, str] = {}
        try:
            body = self._read_body(method)
            fault = self.owner._take_fault()
            if fault is not None:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                phrase = (
                    HTTPStatus(fault.status).phrase if fault.status in HTTPStatus._value2member_map_ else ""
                )
                raise _Refusal(fault.status, "injected_fault", f"{phrase} (injected)", extra)
            self.owner._verify(self.headers.get(SIGNATURE_HEADER), body)
            signature_ok = True
            status, answer = self.owner._route(method, split.path, split.query, body, idempotency_key)
        except _Refusal as refusal:
            status = refusal.status
            answer = {"error": {"code": refusal.code, "message": refusal.message}}
            headers = refusal.headers
        # recorded before the answer goes out, so a test that has the answer also sees the record
        self.owner._record(ReceivedRequest(method, split.path, status, signature_ok, idempotency_key))
        payload = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        event(
            log,
            logging.DEBUG,
            "webhook_request",
            method=method,
            path=split.path,
            status=status,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _read_body(self, method: str) -> bytes:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            if method in ("POST", "PUT", "PATCH"):
                self.close_connection = True
                raise _Refusal(411, "length_required", "Content-Length header missing")
            return b""
        try:
            length = int(length_text)
        except ValueError:
            self.close_connection = True
            raise _Refusal(400, "bad_request", f"Content-Length {length_text!r} is not a number") from None
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read, so the connection cannot be reused
            raise _Refusal(413, "too_large", f"body of {length} bytes exceeds {MAX_BODY_BYTES}")
        return self.rfile.read(length)
