"""ERP adapter for "anything else": signed JSON over HTTPS to a receiver the plant writes itself.

A site whose ERP is neither SAP nor Tryton (or that wants a ticket system, a low-code flow or its own
service in between) runs a small HTTP receiver that implements the contract below; plantwatch signs every
request so the receiver knows it came from the gateway and was not changed or replayed later.

REST contract
-------------
Paths are relative to the adapter's ``url`` (e.g. ``https://erp.example.com/plantwatch``); ``{number}`` is
the receiver's document number, percent-encoded. Request and response bodies are UTF-8 JSON objects.

=======  ===========================================  ======================================================
method   path                                         adapter call, request body, answer
=======  ===========================================  ======================================================
POST     ``/notifications``                           :meth:`~WebhookAdapter.create_notification`; body
                                                      ``correlation_id, asset, failure_mode, severity,
                                                      priority, title, long_text``; ``Idempotency-Key``;
                                                      201 + document (new) or 200 + document (that
                                                      correlation id existed: ``created`` false)
GET      ``/notifications?correlation_id={id}``       :meth:`~WebhookAdapter.find_notification`;
                                                      200 + ``{"documents": [document, ...]}``, ``[]`` if none
GET      ``/notifications/{number}``                  :meth:`~WebhookAdapter.read_notification`; 200 + document
POST     ``/notifications/{number}/updates``          :meth:`~WebhookAdapter.update_notification`; body
                                                      ``correlation_id, priority, note``; 200 + document.
                                                      The receiver raises the priority (``"1"`` is highest,
                                                      it never lowers it) and appends the note.
POST     ``/holds``                                   :meth:`~WebhookAdapter.create_hold`; body
                                                      ``correlation_id, asset, production_order, lot,
                                                      material, plant, storage_location, quantity, unit,
                                                      title, long_text`` (those of :class:`HoldRequest`;
                                                      unknown ones null); ``Idempotency-Key``; 201 / 200
GET      ``/holds?correlation_id={id}``               :meth:`~WebhookAdapter.find_hold`; as for notifications
GET      ``/health``                                  :meth:`~WebhookAdapter.check`; 200 + any JSON object
=======  ===========================================  ======================================================

A **document** is ``{"number": str, "correlation_id": str, "created": bool, "status": str, "outcome": str |
null}``: ``status`` one of :data:`~plantwatch.gateway.erp.STATUSES` (another value is read as
``"unknown"``), ``outcome`` one of :data:`~plantwatch.gateway.erp.OUTCOMES` once a planner closed it
(another value is read as null, with a warning: a wrong label is worse than none).

**Idempotency.** Creates carry ``Idempotency-Key: <correlation_id>`` (equal to the body's
``correlation_id``). The receiver keeps one document per key and collection (notifications, holds): a
second create with the same key answers 200 with the existing document and changes nothing. The create is
one request, atomic at the receiver, so there is no lookup-then-create window as with SAP; the lookups
exist for the gateway's own checks. A lookup is a query that answers a list, never a 404, so a wrong
``url`` (404) is an error and never reads as "no document yet".

**Errors.** Any status outside 2xx is an error; the body should be ``{"error": {"code": str, "message":
str}}`` (the message becomes :class:`ErpError`'s). 401: the signature is missing, wrong or stale; 404:
unknown document or path; 409 / 422: a request the receiver refuses (naming the field); 408, 429 and
5xx are retryable, with ``Retry-After`` (seconds or an HTTP date) honoured; redirects are not followed.
A network failure is retryable with code ``unreachable``; an answer that breaks this contract raises
code ``bad_response``; a request that cannot be valid is refused before sending, code
``client_validation``.

Signature
---------
Every request, GETs included, carries ``X-Plantwatch-Signature: t=<unix seconds>,v1=<hex>``, where
``<hex>`` is HMAC-SHA256 with the shared secret over the bytes ``<t> + "." + <body>`` (the body exactly as
sent; empty for a GET), lower-case hex (the scheme of Stripe's webhooks). The receiver recomputes it
with :func:`verify_signature`, compares in constant time and refuses a timestamp more than
``tolerance_s`` (default 300 s) from its clock, so a captured request cannot be replayed later. Several
``v1=`` entries may be present (a receiver rotating secrets checks each); other schemes are ignored.

The signature authenticates the body and its time, not the method, path or query. Every body therefore
names what it is about (``correlation_id``), and a receiver checks it against the path (an update whose
``correlation_id`` is not the document's is refused with 409), so a signed body cannot be moved to
another document. Use HTTPS, so that nobody can capture a request to replay within the tolerance (creates
are idempotent anyway; a replayed update would add its note twice), and keep the
secret at least :data:`MIN_SECRET_BYTES` long (e.g. ``secrets.token_bytes(32)``), from a systemd
credential, never the TOML.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import math
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from plantwatch.clock import Clock, SystemClock
from plantwatch.gateway.erp import (
    CORRELATION_ID_PATTERN,
    OUTCOMES,
    PRIORITIES,
    SEVERITIES,
    STATUSES,
    ErpDocument,
    ErpError,
    HoldRequest,
    HttpReply,
    NoRedirect,
    NotificationRequest,
    NotificationUpdate,
    http_exchange,
    is_retryable_status,
    parse_retry_after,
)
from plantwatch.log import event

log = logging.getLogger("plantwatch.gateway.webhook")

SIGNATURE_HEADER = "X-Plantwatch-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300.0
"""How far a signature's timestamp may be from the receiver's clock, in seconds (Stripe's default): wide
enough for clock skew and a slow request, narrow enough that a captured request soon stops working."""
MIN_SECRET_BYTES = 16
"""Shortest secret accepted: below 128 bits an HMAC key can be guessed offline from one signed request."""
USER_AGENT = "plantwatch-gateway (webhook adapter)"

# Longest piece of a receiver's non-JSON error page kept in an ErpError message.
_MAX_MESSAGE_CHARS = 300


class SignatureError(ValueError):
    """A signature header that does not prove the request; ``str()`` says why (for the receiver's log)."""


def sign(secret: bytes, body: bytes, timestamp_s: int) -> str:
    """The value of the :data:`SIGNATURE_HEADER` for ``body`` sent at ``timestamp_s`` (Unix seconds).

    >>> sign(b"0123456789abcdef", b'{"a":1}', 1700000000)
    't=1700000000,v1=9eb18f493f8ec135d9eb2dad817c369bb4e9cbfa818657897a7437c1cd8c3a23'
    """
    digest = hmac.new(secret, str(timestamp_s).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp_s},{SIGNATURE_SCHEME}={digest}"


def verify_signature(
    secret: bytes, header: str | None, body: bytes, now_s: float, tolerance_s: float = DEFAULT_TOLERANCE_S
) -> None:
    """Check a :data:`SIGNATURE_HEADER` value against ``body`` and the receiver's clock ``now_s``.

    Returns None when one ``v1`` signature matches and ``t`` lies within ``tolerance_s`` seconds of
    ``now_s`` (either side: clocks drift); raises :class:`SignatureError` saying why otherwise. The
    comparison takes constant time. ``body``: the raw request body as received (empty for a GET).
    """
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    timestamp: str | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, separator, value = item.strip().partition("=")
        if not separator:
            raise SignatureError(f"{SIGNATURE_HEADER}: {item.strip()!r} is not key=value")
        if key == "t":
            if timestamp is not None:
                raise SignatureError(f"{SIGNATURE_HEADER}: more than one t=")
            timestamp = value
        elif key == SIGNATURE_SCHEME:
            candidates.append(value)
    if timestamp is None or not (timestamp.isascii() and timestamp.isdigit()):
        raise SignatureError(f"{SIGNATURE_HEADER}: no t=<unix seconds>")
    if not candidates:
        raise SignatureError(f"{SIGNATURE_HEADER}: no {SIGNATURE_SCHEME}= signature")
    age_s = now_s - int(timestamp)
    if abs(age_s) > tolerance_s:
        raise SignatureError(
            f"timestamp {timestamp} is {age_s:+.0f} s from the receiver's clock (tolerance {tolerance_s:g} s)"
        )
    expected = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    # every candidate is compared, so the time taken does not tell which one came close
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode("ascii"), candidate.lower().encode("ascii", "replace"))
    if not matched:
        raise SignatureError("signature does not match the body (wrong secret, or the body was changed)")


class WebhookAdapter:
    """Creates and reads documents through a signed JSON webhook (implements ``ErpAdapter``).

    - ``url``: the receiver's base URL (``http`` or ``https``); the paths of the module's contract are
      appended to it.
    - ``secret``: the shared HMAC key, at least :data:`MIN_SECRET_BYTES` bytes.
    - ``timeout_s``: socket timeout of one HTTP request, in seconds.
    - ``name``: the backend's name in errors and logs (several webhooks may serve one gateway).
    - ``clock``: the signatures' timestamps and HTTP-date ``Retry-After`` values come from it.

    Safe to call from several threads (the gateway's executor): each call is one independent request.
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout_s: float = 10.0,
        name: str = "webhook",
        clock: Clock | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http(s) URL with a host, got {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"url must have no query or fragment, got {url!r}")
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"secret must be at least {MIN_SECRET_BYTES} bytes")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError("timeout_s must be positive")
        if not name:
            raise ValueError("name must not be empty")
        self.name = name
        self._url = url.rstrip("/")
        self._secret = secret
        self._timeout_s = timeout_s
        self._clock: Clock = clock or SystemClock()
        self._opener = urllib.request.build_opener(NoRedirect())
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            event(
                log,
                logging.WARNING,
                "webhook_plain_http",
                backend=name,
                url=self._url,
                note="the signature does not hide the data; use https beyond this host",
            )

    # -- ErpAdapter ---------------------------------------------------------------------------------

    def create_notification(self, request: NotificationRequest) -> ErpDocument:
        """POST ``/notifications``; the existing document (``created`` False) if the id is known."""
        _check_correlation_id(self.name, request.correlation_id)
        if request.severity not in SEVERITIES:
            raise self._invalid(f"severity {request.severity!r} is not one of {', '.join(SEVERITIES)}")
        _check_priority(self.name, request.priority)
        if not request.asset:
            raise self._invalid("asset is empty")
        payload = {
            "correlation_id": request.correlation_id,
            "asset": request.asset,
            "failure_mode": request.failure_mode,
            "severity": request.severity,
            "priority": request.priority,
            "title": request.title,
            "long_text": request.long_text,
        }
        document = self._create("/notifications", request.correlation_id, payload)
        event(
            log,
            logging.INFO,
            "webhook_notification_created" if document.created else "webhook_notification_exists",
            backend=self.name,
            correlation_id=document.correlation_id,
            number=document.number,
            asset=request.asset,
        )
        return document

    def find_notification(self, correlation_id: str) -> ErpDocument | None:
        """GET ``/notifications?correlation_id=…``: the document with that id, or None."""
        return self._find("/notifications", correlation_id)

    def update_notification(self, update: NotificationUpdate) -> ErpDocument:
        """POST ``/notifications/{number}/updates``: raise the priority, add the note."""
        _check_correlation_id(self.name, update.correlation_id)
        _check_priority(self.name, update.priority)
        path = f"/notifications/{_segment(self.name, update.number)}/updates"
        payload = {"correlation_id": update.correlation_id, "priority": update.priority, "note": update.note}
        reply = self._send("POST", path, self._encode(payload))
        if reply.status != 200:
            raise self._error(reply)
        document = self._document(
            self._json(reply),
            reply.status,
            expected_correlation_id=update.correlation_id,
            created_required=False,
        )
        if document.number != update.number:
            raise self._bad_response(
                reply.status, f"update of {update.number!r} answered document {document.number!r}"
            )
        event(
            log,
            logging.INFO,
            "webhook_notification_updated",
            backend=self.name,
            number=document.number,
            priority=update.priority,
        )
        return document

    def read_notification(self, number: str) -> ErpDocument:
        """GET ``/notifications/{number}``: status and outcome (``created`` False)."""
        reply = self._send("GET", f"/notifications/{_segment(self.name, number)}")
        if reply.status != 200:
            raise self._error(reply)
        document = self._document(self._json(reply), reply.status, created_required=False)
        if document.number != number:
            raise self._bad_response(
                reply.status, f"read of {number!r} answered document {document.number!r}"
            )
        return document

    def create_hold(self, request: HoldRequest) -> ErpDocument:
        """POST ``/holds``; the existing hold (``created`` False) if the id is known."""
        _check_correlation_id(self.name, request.correlation_id)
        if not request.production_order:
            raise self._invalid("production_order is empty")
        if request.quantity is not None and not (math.isfinite(request.quantity) and request.quantity > 0):
            raise self._invalid(f"quantity {request.quantity!r} must be a positive number")
        payload = {
            "correlation_id": request.correlation_id,
            "asset": request.asset,
            "production_order": request.production_order,
            "lot": request.lot,
            "material": request.material,
            "plant": request.plant,
            "storage_location": request.storage_location,
            "quantity": request.quantity,
            "unit": request.unit,
            "title": request.title,
            "long_text": request.long_text,
        }
        document = self._create("/holds", request.correlation_id, payload)
        event(
            log,
            logging.INFO,
            "webhook_hold_created" if document.created else "webhook_hold_exists",
            backend=self.name,
            correlation_id=document.correlation_id,
            number=document.number,
            production_order=request.production_order,
            lot=request.lot or "-",
        )
        return document

    def find_hold(self, correlation_id: str) -> ErpDocument | None:
        """GET ``/holds?correlation_id=…``: the hold with that id, or None."""
        return self._find("/holds", correlation_id)

    def check(self) -> None:
        """GET ``/health`` signed; :class:`ErpError` if unreachable, the secret is refused, or no JSON."""
        reply = self._send("GET", "/health")
        if reply.status != 200:
            raise self._error(reply)
        self._json(reply)

    # -- the contract's requests ----------------------------------------------------------------------

    def _create(self, path: str, correlation_id: str, payload: Mapping[str, Any]) -> ErpDocument:
        reply = self._send("POST", path, self._encode(payload), {IDEMPOTENCY_HEADER: correlation_id})
        if reply.status not in (200, 201):
            raise self._error(reply)
        return self._document(self._json(reply), reply.status, expected_correlation_id=correlation_id)

    def _find(self, path: str, correlation_id: str) -> ErpDocument | None:
        _check_correlation_id(self.name, correlation_id)
        reply = self._send("GET", path + "?" + urlencode({"correlation_id": correlation_id}))
        if reply.status != 200:
            raise self._error(reply)
        documents = self._json(reply).get("documents")
        if not isinstance(documents, list):
            raise self._bad_response(reply.status, "lookup answer has no documents list")
        if not all(isinstance(item, dict) for item in documents):
            raise self._bad_response(reply.status, "lookup answer's documents are not all objects")
        found = [
            self._document(item, reply.status, expected_correlation_id=correlation_id, created_required=False)
            for item in documents
        ]
        if not found:
            return None
        if len(found) > 1:
            event(
                log,
                logging.WARNING,
                "webhook_duplicate_correlation_id",
                backend=self.name,
                correlation_id=correlation_id,
                numbers=",".join(document.number for document in found),
            )
        return found[0]

    # -- HTTP ---------------------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> HttpReply:
        url = self._url + path
        request = urllib.request.Request(url, data=body if method != "GET" else None, method=method)
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", USER_AGENT)
        if method != "GET":
            request.add_header("Content-Type", "application/json; charset=utf-8")
        # whole seconds: the header's t= is an integer, as Stripe's
        request.add_header(SIGNATURE_HEADER, sign(self._secret, body, int(self._clock.now())))
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        return http_exchange(
            self._opener, request, timeout_s=self._timeout_s, backend=self.name, target=self._url
        )

    # -- answers ------------------------------------------------------------------------------------

    def _json(self, reply: HttpReply) -> dict[str, Any]:
        try:
            parsed = json.loads(reply.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            content_type = _header(reply.headers, "Content-Type") or "no content type"
            raise self._bad_response(reply.status, f"expected JSON, got {content_type}") from None
        if not isinstance(parsed, dict):
            raise self._bad_response(reply.status, "expected a JSON object")
        return parsed

    def _document(
        self,
        body: Mapping[str, Any],
        status: int,
        *,
        expected_correlation_id: str | None = None,
        created_required: bool = True,
    ) -> ErpDocument:
        """The contract's document from ``body``; ``created`` is False unless a create says otherwise."""
        number = body.get("number")
        if not isinstance(number, str) or not number:
            raise self._bad_response(status, "document has no number")
        correlation_id = body.get("correlation_id")
        if not isinstance(correlation_id, str):
            raise self._bad_response(status, f"document {number} has no correlation_id")
        if expected_correlation_id is not None and correlation_id != expected_correlation_id:
            # the receiver's idempotency is broken: never take another finding's document for this one
            raise self._bad_response(
                status,
                f"document {number} has correlation_id {correlation_id!r}, asked for {expected_correlation_id!r}",
            )
        created = body.get("created")
        if not created_required:
            created = False  # lookups, reads and updates never create
        elif not isinstance(created, bool):
            raise self._bad_response(status, f"document {number}: created must be true or false")
        document_status = body.get("status")
        if document_status not in STATUSES:
            event(
                log,
                logging.WARNING,
                "webhook_unknown_status",
                backend=self.name,
                number=number,
                status=document_status,
            )
            document_status = "unknown"
        outcome = body.get("outcome")
        if outcome is not None and outcome not in OUTCOMES:
            event(
                log,
                logging.WARNING,
                "webhook_unknown_outcome",
                backend=self.name,
                number=number,
                outcome=outcome,
            )
            outcome = None
        return ErpDocument(number, correlation_id, created, str(document_status), outcome)

    def _error(self, reply: HttpReply) -> ErpError:
        if 200 <= reply.status < 300:  # a success the contract does not have for this request
            return self._bad_response(
                reply.status, f"unexpected status {reply.status} {_phrase(reply.status)}"
            )
        if 300 <= reply.status < 400:
            location = _header(reply.headers, "Location") or "nowhere"
            return ErpError(
                self.name, f"redirect to {location} not followed (check the url)", status=reply.status
            )
        code, message = _receiver_message(reply)
        retryable = is_retryable_status(reply.status)
        retry_after_s = (
            parse_retry_after(_header(reply.headers, "Retry-After"), self._clock.now()) if retryable else None
        )
        return ErpError(
            self.name,
            message,
            status=reply.status,
            code=code,
            retryable=retryable,
            retry_after_s=retry_after_s,
        )

    def _encode(self, payload: Mapping[str, Any]) -> bytes:
        try:
            text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except ValueError as error:  # NaN or infinity in a number
            raise self._invalid(f"request cannot be sent as JSON: {error}") from None
        return text.encode("utf-8")

    def _bad_response(self, status: int, message: str) -> ErpError:
        return ErpError(self.name, message, status=status, code="bad_response")

    def _invalid(self, message: str) -> ErpError:
        return ErpError(self.name, message, code="client_validation")


def _segment(backend: str, number: str) -> str:
    """``number`` as one percent-encoded path segment."""
    if not number or not number.strip():
        raise ErpError(backend, "document number is empty", code="client_validation")
    return quote(number, safe="")


def _check_correlation_id(backend: str, correlation_id: str) -> None:
    if not CORRELATION_ID_PATTERN.match(correlation_id):
        raise ErpError(
            backend, f"correlation_id {correlation_id!r} must be 1..20 of [A-Z0-9]", code="client_validation"
        )


def _check_priority(backend: str, priority: str) -> None:
    if priority not in PRIORITIES:
        raise ErpError(
            backend, f"priority {priority!r} is not one of {', '.join(PRIORITIES)}", code="client_validation"
        )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _receiver_message(reply: HttpReply) -> tuple[str | None, str]:
    """(code, message) from the contract's error body, else from the text of the page."""
    text = reply.body.decode("utf-8", errors="replace")
    try:
        error = json.loads(text)["error"]
        message = error["message"]
        if isinstance(message, str) and message:
            code = error.get("code")
            return (str(code) if code else None), message
    except (ValueError, KeyError, TypeError):
        pass  # not the contract's error body: a proxy's page or plain text
    content_type = (_header(reply.headers, "Content-Type") or "").lower()
    if "html" in content_type:
        text = re.sub(r"(?is)<(head|script|style)\b.*?</\1>", " ", text)
        text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())[:_MAX_MESSAGE_CHARS]
    return None, text or _phrase(reply.status) or "no message"


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
