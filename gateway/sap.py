"""ERP adapter for SAP S/4HANA: maintenance notifications through OData V2 ``API_MAINTNOTIFICATION``.

Written against SAP's published contract (``../shared/specs/sap/SUMMARY.md``), not against the simulator:

- Basic auth on every request; a CSRF token fetched with ``X-CSRF-Token: Fetch`` on a GET of the service
  root and sent, with the session cookies it came with, on every POST. A 403 answered with
  ``X-CSRF-Token: Required`` (token expired, session gone) is followed by one refetch and one retry.
- Idempotency: before creating, the notification is looked up by ``MaintNotifExtReferenceNumber``
  (String(20), upper case), which carries plantwatch's ``correlation_id``. Two gateways that miss each
  other's lookup in the same instant could still both create; SAP offers no unique constraint on that
  field, so a site runs one writer per asset (DESIGN.md, "Scale").
- Lengths are checked here before anything is sent, in UTF-16 code units as ABAP counts them. Free texts
  are shortened with an ellipsis (a long alarm text must not block the notification); identifiers that
  would change meaning if cut (correlation id, asset, priority) raise ``ErpError`` with code
  ``client_validation`` instead.
- Errors: SAP's V2 error body (``error.message.value``) becomes ``ErpError.message``; 408, 429 and 5xx
  are retryable with ``Retry-After`` parsed; other 4xx are not. A network failure is retryable with code
  ``unreachable``.

``failure_mode`` and ``severity`` have no field of their own here: SAP's coding catalogs
(``MaintNotificationCode``) are customizing of each system, so they travel in the texts the gateway writes.
"""

from __future__ import annotations

import base64
import http.client
import http.cookiejar
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from plantwatch.clock import Clock, SystemClock
from plantwatch.gateway.erp import (
    CORRELATION_ID_PATTERN,
    SEVERITIES,
    ErpDocument,
    ErpError,
    NotificationRequest,
    is_retryable_status,
    parse_retry_after,
    shorten,
)
from plantwatch.log import event

log = logging.getLogger("plantwatch.gateway.sap")

BACKEND = "sap"
SERVICE_PATH = "/sap/opu/odata/sap/API_MAINTNOTIFICATION"
ENTITY_SET = "MaintenanceNotification"

# MaxLength of the properties written, from SAP's EDMX (SUMMARY.md §1), in UTF-16 code units.
NOTIFICATION_TEXT_MAX = 40
LONG_TEXT_MAX = 1333
TECHNICAL_OBJECT_MAX = 40
TECHNICAL_OBJECT_TYPE_MAX = 20
NOTIFICATION_TYPE_MAX = 2
PRIORITY_MAX = 1
# TechnicalObject holds an equipment or a functional location (40). An equipment number is at most 18
# (Equipment is String(18) in API_MAINTENANCEORDER), so with EAMS_EQUI a longer asset id cannot exist.
EQUIPMENT_MAX = 18

# Values of TechObjIsEquipOrFuncnlLoc. The EDMX gives only String(20); these two values are what SAP's
# API Hub sandbox returns (EAMS_EQUI for equipment, EAMS_FL for a functional location) and what public
# clients send, so they are a strong convention, not a documented contract.
TECHNICAL_OBJECT_EQUIPMENT = "EAMS_EQUI"
TECHNICAL_OBJECT_FUNCTIONAL_LOCATION = "EAMS_FL"

# NotifProcessingPhase -> ErpDocument.status (SUMMARY.md "Not from metadata" §9; third-party source).
PHASE_STATUS = {"1": "outstanding", "2": "postponed", "3": "in_process", "4": "completed"}

# Fields read back by the idempotency lookup; $select keeps SAP from sending all 109 properties.
_LOOKUP_FIELDS = ("MaintenanceNotification", "MaintNotifExtReferenceNumber", "NotifProcessingPhase")
# Longest piece of a non-JSON error page kept in an ErpError message.
_MAX_MESSAGE_CHARS = 300
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")


def utf16_length(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of an ABAP CHAR field's length."""
    return len(text.encode("utf-16-le")) // 2


def odata_string_literal(value: str) -> str:
    """``value`` as an OData V2 string literal: single quotes, inner quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect from an OData API means a login page or a wrong URL; never follow it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class SapAdapter:
    """Creates and finds maintenance notifications in SAP S/4HANA (implements ``ErpAdapter``).

    Keyword-only options:

    - ``base_url``: scheme and host of the SAP system, e.g. ``https://s4.example.com:44300``.
    - ``user``, ``password``: the communication user (Basic auth).
    - ``timeout_s``: socket timeout of one HTTP request, in seconds.
    - ``notification_type``: ``NotificationType`` of created notifications (customizing; M2 =
      malfunction report in SAP's standard).
    - ``technical_object_type``: ``TechObjIsEquipOrFuncnlLoc``; ``EAMS_EQUI`` when assets are equipment,
      ``EAMS_FL`` for functional locations.
    - ``service_path``: path of the service root, for systems behind an API gateway with a prefix.
    - ``clock``: turns an HTTP-date ``Retry-After`` into seconds.

    Safe to call from several threads (the gateway's executor).
    """

    name = BACKEND

    def __init__(
        self,
        *,
        base_url: str,
        user: str,
        password: str,
        timeout_s: float = 10.0,
        notification_type: str = "M2",
        technical_object_type: str = TECHNICAL_OBJECT_EQUIPMENT,
        service_path: str = SERVICE_PATH,
        clock: Clock | None = None,
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
        if not 0 < utf16_length(notification_type) <= NOTIFICATION_TYPE_MAX:
            raise ValueError(f"notification_type must be 1..{NOTIFICATION_TYPE_MAX} characters")
        if not 0 < utf16_length(technical_object_type) <= TECHNICAL_OBJECT_TYPE_MAX:
            raise ValueError(f"technical_object_type must be 1..{TECHNICAL_OBJECT_TYPE_MAX} characters")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._service_url = base_url.rstrip("/") + "/" + service_path.strip("/")
        self._authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._timeout_s = timeout_s
        self._notification_type = notification_type.upper()
        self._technical_object_type = technical_object_type.upper()
        self._technical_object_max = (
            EQUIPMENT_MAX
            if self._technical_object_type == TECHNICAL_OBJECT_EQUIPMENT
            else TECHNICAL_OBJECT_MAX
        )
        self._clock: Clock = clock or SystemClock()
        self._cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self._cookies), _NoRedirect()
        )
        self._csrf_lock = threading.Lock()
        self._csrf_token: str | None = None
        self._csrf_fetched = False

    # -- ErpAdapter ---------------------------------------------------------------------------------

    def create_notification(self, request: NotificationRequest) -> ErpDocument:
        """Create a maintenance notification for ``request`` unless one has its correlation id already.

        Raises :class:`ErpError` (code ``client_validation`` before anything is sent if the request
        cannot fit SAP's fields).
        """
        payload = self.notification_payload(request)
        existing = self.find_notification(request.correlation_id)
        if existing is not None:
            event(
                log,
                logging.INFO,
                "sap_notification_exists",
                correlation_id=request.correlation_id,
                number=existing.number,
                status=existing.status,
            )
            return existing
        reply = self._modify("POST", self._service_url + "/" + ENTITY_SET, payload)
        if reply.status != 201:
            raise self._error(reply)
        document = self._document(self._entity(reply), created=True)
        event(
            log,
            logging.INFO,
            "sap_notification_created",
            correlation_id=request.correlation_id,
            number=document.number,
            asset=request.asset,
        )
        return document

    def find_notification(self, correlation_id: str) -> ErpDocument | None:
        """The notification whose ``MaintNotifExtReferenceNumber`` is ``correlation_id``, or None.

        If SAP holds several (created outside plantwatch's control), the oldest one is returned.
        """
        _check_correlation_id(correlation_id)
        query = {
            "$filter": f"MaintNotifExtReferenceNumber eq {odata_string_literal(correlation_id)}",
            "$select": ",".join(_LOOKUP_FIELDS),
            "$top": "10",
        }
        url = self._service_url + "/" + ENTITY_SET + "?" + urlencode(query, quote_via=quote, safe="'(),$")
        reply = self._send("GET", url, {"Accept": "application/json"})
        if reply.status != 200:
            raise self._error(reply)
        results = self._json(reply).get("d", {}).get("results")
        if not isinstance(results, list):
            raise ErpError(
                BACKEND, "lookup answer has no d.results list", status=reply.status, code="bad_response"
            )
        matches = [
            entity
            for entity in results
            if isinstance(entity, dict) and entity.get("MaintNotifExtReferenceNumber") == correlation_id
        ]
        if not matches:
            return None
        matches.sort(key=lambda entity: _number_order(str(entity.get("MaintenanceNotification", ""))))
        if len(matches) > 1:
            event(
                log,
                logging.WARNING,
                "sap_duplicate_reference",
                correlation_id=correlation_id,
                numbers=",".join(str(entity.get("MaintenanceNotification")) for entity in matches),
            )
        return self._document(matches[0], created=False)

    def check(self) -> None:
        """Fetch a fresh CSRF token and the service document; raise :class:`ErpError` on any failure."""
        body = self._fetch_csrf_token()
        try:
            entity_sets = json.loads(body.decode("utf-8"))["d"]["EntitySets"]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            raise ErpError(
                BACKEND,
                "service root did not answer with an OData V2 JSON service document",
                code="bad_response",
            ) from None
        if ENTITY_SET not in entity_sets:
            raise ErpError(
                BACKEND, f"service at {self._service_url} has no entity set {ENTITY_SET}", code="bad_service"
            )

    # -- the request as SAP fields --------------------------------------------------------------------

    def notification_payload(self, request: NotificationRequest) -> dict[str, str]:
        """The JSON body of the POST for ``request``; raises ``ErpError`` (``client_validation``)."""
        _check_correlation_id(request.correlation_id)
        technical_object = request.asset.strip().upper()
        if not technical_object or utf16_length(technical_object) > self._technical_object_max:
            raise _invalid(
                f"asset {request.asset!r} does not fit TechnicalObject (1..{self._technical_object_max} characters"
                f" for {self._technical_object_type})"
            )
        if utf16_length(request.priority) != PRIORITY_MAX:
            raise _invalid(f"priority {request.priority!r} does not fit MaintPriority (exactly 1 character)")
        if request.severity not in SEVERITIES:
            raise _invalid(f"severity {request.severity!r} is not one of {', '.join(SEVERITIES)}")
        # A short text is one line in SAP's UI; line breaks and tabs would be stored as garbage.
        title = _CONTROL_CHARACTERS.sub(" ", request.title).strip()
        if not title:
            raise _invalid("title is empty; NotificationText is required")
        short_text = shorten(title, NOTIFICATION_TEXT_MAX, utf16_length)
        long_text = shorten(request.long_text, LONG_TEXT_MAX, utf16_length)
        if long_text != request.long_text:
            event(
                log,
                logging.WARNING,
                "sap_long_text_shortened",
                correlation_id=request.correlation_id,
                length=utf16_length(request.long_text),
                limit=LONG_TEXT_MAX,
            )
        return {
            "NotificationType": self._notification_type,
            "NotificationText": short_text,
            "MaintNotifLongTextForEdit": long_text,
            "TechnicalObject": technical_object,
            "TechObjIsEquipOrFuncnlLoc": self._technical_object_type,
            "MaintPriority": request.priority,
            "MaintNotifExtReferenceNumber": request.correlation_id,
        }

    # -- HTTP -------------------------------------------------------------------------------------

    def _send(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None) -> _Reply:
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Authorization", self._authorization)
        for name, value in headers.items():
            request.add_header(name, value)
        started = time.monotonic()
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                reply = _Reply(response.status, dict(response.headers.items()), response.read())
        except urllib.error.HTTPError as error:
            with error:
                reply = _Reply(error.code, dict(error.headers.items()) if error.headers else {}, error.read())
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", error)
            event(log, logging.WARNING, "sap_unreachable", method=method, url=url, error=reason)
            raise ErpError(
                BACKEND, f"{self._service_url} unreachable: {reason}", code="unreachable", retryable=True
            ) from error
        event(
            log,
            logging.DEBUG,
            "sap_http",
            method=method,
            url=url,
            status=reply.status,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return reply

    def _fetch_csrf_token(self) -> bytes:
        """GET the service root with ``X-CSRF-Token: Fetch``; keep the token, return the body."""
        with self._csrf_lock:
            reply = self._send(
                "GET", self._service_url + "/", {"X-CSRF-Token": "Fetch", "Accept": "application/json"}
            )
            if reply.status != 200:
                raise self._error(reply)
            token = _header(reply.headers, "X-CSRF-Token")
            # A system with CSRF protection switched off sends no token; requests then go without one.
            self._csrf_token = token if token and token.lower() != "required" else None
            self._csrf_fetched = True
            return reply.body

    def _modify(self, method: str, url: str, payload: Mapping[str, Any]) -> _Reply:
        """Send a modifying request with the CSRF token, refetching the token once if SAP wants it."""
        body = json.dumps(payload).encode("utf-8")
        if not self._csrf_fetched:
            self._fetch_csrf_token()
        for attempt in (1, 2):
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self._csrf_token:
                headers["X-CSRF-Token"] = self._csrf_token
            reply = self._send(method, url, headers, body)
            csrf_refused = (
                reply.status == 403 and (_header(reply.headers, "X-CSRF-Token") or "").lower() == "required"
            )
            if not csrf_refused or attempt == 2:
                return reply
            event(log, logging.INFO, "sap_csrf_refetch", method=method, url=url)
            self._fetch_csrf_token()
        raise AssertionError("unreachable")  # the loop always returns

    # -- answers ------------------------------------------------------------------------------------

    def _json(self, reply: _Reply) -> dict[str, Any]:
        try:
            parsed = json.loads(reply.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ErpError(
                BACKEND,
                f"expected JSON, got {_header(reply.headers, 'Content-Type') or 'no content type'}",
                status=reply.status,
                code="bad_response",
            ) from None
        if not isinstance(parsed, dict):
            raise ErpError(BACKEND, "expected a JSON object", status=reply.status, code="bad_response")
        return parsed

    def _entity(self, reply: _Reply) -> dict[str, Any]:
        entity = self._json(reply).get("d")
        if not isinstance(entity, dict) or not entity.get("MaintenanceNotification"):
            raise ErpError(
                BACKEND, "answer has no d.MaintenanceNotification", status=reply.status, code="bad_response"
            )
        return entity

    def _document(self, entity: Mapping[str, Any], *, created: bool) -> ErpDocument:
        phase = str(entity.get("NotifProcessingPhase") or "")
        return ErpDocument(
            number=str(entity["MaintenanceNotification"]),
            correlation_id=str(entity.get("MaintNotifExtReferenceNumber") or ""),
            created=created,
            status=PHASE_STATUS.get(phase, "unknown"),
        )

    def _error(self, reply: _Reply) -> ErpError:
        code, message = _sap_message(reply)
        retryable = is_retryable_status(reply.status)
        retry_after_s = (
            parse_retry_after(_header(reply.headers, "Retry-After"), self._clock.now()) if retryable else None
        )
        return ErpError(
            BACKEND, message, status=reply.status, code=code, retryable=retryable, retry_after_s=retry_after_s
        )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _sap_message(reply: _Reply) -> tuple[str | None, str]:
    """(code, message) from SAP's V2 (or V4) error body, else from the text of the page."""
    text = reply.body.decode("utf-8", errors="replace")
    try:
        error = json.loads(text)["error"]
        value = error["message"]
        message = value["value"] if isinstance(value, dict) else value
        if isinstance(message, str) and message:
            return (str(error["code"]) if error.get("code") else None), message
    except (ValueError, KeyError, TypeError):
        pass  # not SAP's JSON error body: an HTML page from ICF or a proxy, or plain text
    content_type = (_header(reply.headers, "Content-Type") or "").lower()
    if "html" in content_type:
        text = re.sub(r"(?is)<(head|script|style)\b.*?</\1>", " ", text)
        text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())[:_MAX_MESSAGE_CHARS]
    if not text:
        try:
            text = http.HTTPStatus(reply.status).phrase
        except ValueError:
            text = "no message"
    return None, text


def _check_correlation_id(correlation_id: str) -> None:
    if not CORRELATION_ID_PATTERN.match(correlation_id):
        raise _invalid(
            f"correlation_id {correlation_id!r} does not fit MaintNotifExtReferenceNumber (1..20 of [A-Z0-9])"
        )


def _invalid(message: str) -> ErpError:
    return ErpError(BACKEND, message, code="client_validation", retryable=False)


def _number_order(number: str) -> tuple[int, str]:
    return (int(number), number) if number.isdigit() else (1 << 62, number)
