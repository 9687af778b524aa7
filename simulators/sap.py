"""A simulator of SAP S/4HANA's OData V2 service ``API_MAINTNOTIFICATION``, served over loopback HTTP.

It stands in for SAP in demos and tests and follows SAP's published contract
(``../shared/specs/sap/SUMMARY.md``): the property names, Edm types, MaxLength and creatable /
updatable flags of :data:`PROPERTIES` are those of SAP's EDMX (a test compares them), and the protocol
rules are those listed there under "Not from metadata" (Basic auth, CSRF token bound to a session
cookie, V2 JSON, the V2 error body, ETag / If-Match, function imports parameterised in the URL only).

What it serves, under :data:`SERVICE_ROOT`:

- ``GET /`` (service document) and ``GET /$metadata`` (a small EDMX written from :data:`PROPERTIES`);
- ``GET/POST MaintenanceNotification`` with ``$filter`` (``eq``/``ne``, ``and``/``or``, parentheses,
  string literals in single quotes, ``true``/``false``), ``$top``, ``$skip``, ``$select``,
  ``$inlinecount`` and ``$format=json``;
- ``GET/PATCH/MERGE/PUT MaintenanceNotification('…')`` (updates need ``If-Match``);
- ``POST SetMaintNotifToInProcess?MaintenanceNotification='…'`` and
  ``POST CompleteMaintNotification?MaintenanceNotification='…'``.

Choices the sources do not settle, made here and named so a reader can tell them from SAP's contract:

- An update without ``If-Match`` gets 428 Precondition Required (SUMMARY "Not from metadata" §4: no
  source says what SAP does).
- Only JSON is spoken. A data request that asks for neither ``Accept: application/json`` nor
  ``$format=json`` gets 406, because SAP would answer in Atom XML and a client that forgot to ask for
  JSON must notice here, not in production. Error bodies are always JSON.
- Error ``code`` values are the simulator's own (``SAPSIM/...``); SAP's T100 message numbers for
  these errors are not in the sources. Messages name the property and the problem.
- Values of properties whose ``sap:display-format`` is ``UpperCase`` are stored upper-cased (the ABAP
  domains behind them have no lower-case flag). ``MaxLength`` counts UTF-16 code units, as ABAP does.
- A bad Basic login gets 401 with an HTML page, as SAP's ICF layer answers before OData is reached.
- ``LastChangeDateTime`` (the ETag property, precision 0 = whole seconds) moves forward by at least one
  second on every change of an entity, so two changes within a second never share an ETag.
- Deep insert (``to_Item``, ``to_Partner``), ``$batch``, ``$orderby``, ``$expand`` and the other entity
  sets are not simulated: they get 501 with an SAP error body, never a silent success.
- Phase transitions: ``SetMaintNotifToInProcess`` from phase 1 or 2, ``CompleteMaintNotification``
  from 1, 2 or 3; anything else is 400 (phases per SUMMARY §9: 1 outstanding, 2 postponed,
  3 in process, 4 completed).

Example::

    sim = SapSimulator(user="PLANTWATCH", password="secret")
    sim.start()
    try:
        ...  # talk to sim.url + SERVICE_ROOT
    finally:
        sim.stop()
"""

from __future__ import annotations

import base64
import copy
import hmac
import json
import logging
import re
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import quoteattr

from plantwatch.clock import Clock, SystemClock
from plantwatch.gateway.sap import utf16_length
from plantwatch.log import event

log = logging.getLogger("plantwatch.simulators.sap")

SERVICE_ROOT = "/sap/opu/odata/sap/API_MAINTNOTIFICATION"
NAMESPACE = "cds_api_maintnotification"
ENTITY_SET = "MaintenanceNotification"
ENTITY_TYPE = f"{NAMESPACE}.MaintenanceNotificationType"
ETAG_PROPERTY = "LastChangeDateTime"  # SAP__core.OptimisticConcurrency on the entity set
FUNCTION_IMPORTS = ("SetMaintNotifToInProcess", "CompleteMaintNotification")
# Sets SAP's service has but the simulator does not serve: a request for them gets 501, not 404,
# so that nobody mistakes a simulator gap for a wrong URL.
UNSIMULATED_SEGMENTS = (
    "MaintenanceNotificationItem",
    "MaintenanceNotificationPartner",
    "MaintNotificationItemActivity",
    "MaintNotificationItemCause",
    "$batch",
)

# SAP's ICF answers 401 with this realm for Basic auth.
AUTH_REALM = "SAP NetWeaver Application Server"
# SAP names the session cookie SAP_SESSIONID_<SID>_<client>; the SID and client here are made up.
SESSION_COOKIE = "SAP_SESSIONID_PWS_100"
FIRST_NOTIFICATION_NUMBER = 10000001
# Bodies above this are refused with 413; a notification is a few kilobytes.
MAX_BODY_BYTES = 1 << 20
# How often the serving thread looks for stop(); bounds how long stop() takes.
SHUTDOWN_POLL_S = 0.05
# Idle keep-alive connections are dropped after this, so stop() never waits on a silent client.
CONNECTION_TIMEOUT_S = 30.0

PHASE_TEXTS = {"1": "Outstanding", "2": "Postponed", "3": "In Process", "4": "Completed"}
PRIORITY_TEXTS = {"1": "Very High", "2": "High", "3": "Medium", "4": "Low"}


@dataclass(frozen=True)
class PropertySpec:
    """One property of ``MaintenanceNotificationType`` as SAP's EDMX declares it.

    ``max_length`` is ``None`` where the EDMX gives none; ``upper_case`` is
    ``sap:display-format="UpperCase"``; ``filterable`` is False where the entity set's
    ``Capabilities.FilterRestrictions`` allow no ``$filter`` comparison on it.
    """

    edm_type: str
    max_length: int | None = None
    nullable: bool = True
    creatable: bool = True
    updatable: bool = True
    upper_case: bool = False
    filterable: bool = True


def _text(
    max_length: int | None, *, upper: bool = True, read_only: bool = False, **flags: Any
) -> PropertySpec:
    if read_only:
        flags.update(creatable=False, updatable=False)
    return PropertySpec("Edm.String", max_length, upper_case=upper, **flags)


_READ_ONLY = {"creatable": False, "updatable": False}

# The subset of SAP's 109 header properties the simulator supports, copied from the EDMX
# (tests/test_sap.py checks every entry against it). Order = order in responses.
PROPERTIES: dict[str, PropertySpec] = {
    "MaintenanceNotification": _text(12, nullable=False, read_only=True),
    "NotificationText": _text(40, upper=False, nullable=False),
    "MaintPriority": _text(1),
    "NotificationType": _text(2, updatable=False),
    "NotifProcessingPhase": _text(1, read_only=True),
    "NotifProcessingPhaseDesc": _text(60, upper=False, read_only=True),
    "MaintPriorityDesc": _text(20, upper=False, read_only=True),
    "CreationDate": PropertySpec("Edm.DateTime", **_READ_ONLY),
    "LastChangeTime": PropertySpec("Edm.Time", **_READ_ONLY),
    "LastChangeDate": PropertySpec("Edm.DateTime", **_READ_ONLY),
    "LastChangeDateTime": PropertySpec("Edm.DateTimeOffset", **_READ_ONLY),
    "CreationTime": PropertySpec("Edm.Time", **_READ_ONLY),
    "ReportedByUser": _text(12),
    "PersonResponsible": _text(12),
    "MalfunctionEffect": _text(1),
    "MalfunctionStartDate": PropertySpec("Edm.DateTime"),
    "MalfunctionStartTime": PropertySpec("Edm.Time"),
    "MaintenanceObjectIsDown": PropertySpec("Edm.Boolean"),
    "MaintNotificationLongText": PropertySpec("Edm.String", filterable=False, **_READ_ONLY),
    "MaintNotifLongTextForEdit": _text(1333, upper=False),
    "TechnicalObject": _text(40),
    "TechObjIsEquipOrFuncnlLoc": _text(20),
    "TechnicalObjectLabel": _text(40, read_only=True),
    "MaintenancePlanningPlant": _text(4),
    "MaintenancePlannerGroup": _text(3),
    "MainWorkCenterPlant": _text(4),
    "MainWorkCenter": _text(8),
    "MaintenancePlant": _text(4),
    "MaintenanceOrder": _text(12),
    "NotificationCompletionDate": PropertySpec("Edm.DateTime", **_READ_ONLY),
    "CompletionTime": PropertySpec("Edm.Time", **_READ_ONLY),
    "MaintNotifExtReferenceNumber": _text(20),
    "CreatedByUser": _text(12, read_only=True),
}
REQUIRED_ON_CREATE = ("NotificationText",)  # Capabilities.InsertRestrictions/RequiredProperties

# Parameters of the function imports (name -> Edm type, nullable) as in the EDMX.
FUNCTION_PARAMETERS: dict[str, dict[str, tuple[str, bool]]] = {
    "SetMaintNotifToInProcess": {"MaintenanceNotification": ("Edm.String", False)},
    "CompleteMaintNotification": {
        "MaintenanceNotification": ("Edm.String", False),
        "MaintNotifReferenceDateTime": ("Edm.DateTimeOffset", True),
        "NotificationReferenceDate": ("Edm.DateTime", True),
        "NotificationReferenceTime": ("Edm.Time", True),
    },
}
# Phase a function import moves a notification to, and the phases it may start from.
FUNCTION_TRANSITIONS = {
    "SetMaintNotifToInProcess": ("3", ("1", "2")),
    "CompleteMaintNotification": ("4", ("1", "2", "3")),
}

_DATE_RE = re.compile(r"^/Date\((-?\d+)\)/$")
_TIME_RE = re.compile(r"^PT(?:(\d{1,2})H)?(?:(\d{1,2})M)?(?:(\d{1,2})S)?$")
_URI_LITERALS = {
    "Edm.String": re.compile(r"^'(?:[^']|'')*'$"),
    "Edm.DateTime": re.compile(r"^datetime'\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?'$"),
    "Edm.DateTimeOffset": re.compile(
        r"^datetimeoffset'\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})'$"
    ),
    "Edm.Time": re.compile(r"^time'PT(\d+H)?(\d+M)?(\d+(\.\d+)?S)?'$"),
}


@dataclass(frozen=True)
class RequestRecord:
    """One request the simulator answered (for tests that assert what a client sent)."""

    method: str
    path: str
    status: int


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: str | None
    method: str | None


class ODataError(Exception):
    """An error the simulator answers with SAP's V2 error body (SUMMARY "Not from metadata" §2)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.headers = dict(headers or {})


def error_body(
    code: str, message: str, *, target: str = "", timestamp_s: float | None = None
) -> dict[str, Any]:
    """SAP Gateway's V2 JSON error body for one error message.

    >>> body = error_body("SAPSIM/NOT_FOUND", "Resource not found", timestamp_s=0.0)
    >>> body["error"]["message"]
    {'lang': 'en', 'value': 'Resource not found'}
    """
    moment = datetime.fromtimestamp(time.time() if timestamp_s is None else timestamp_s, tz=UTC)
    return {
        "error": {
            "code": code,
            "message": {"lang": "en", "value": message},
            "innererror": {
                "application": {
                    "component_id": "PM-WOC-MN",
                    "service_namespace": "/SAP/",
                    "service_id": "API_MAINTNOTIFICATION",
                    "service_version": "0001",
                },
                "transactionid": uuid.uuid4().hex.upper(),
                "timestamp": moment.strftime("%Y%m%d%H%M%S.") + f"{moment.microsecond:06d}0",
                "Error_Resolution": {
                    "SAP_Transaction": "Run transaction /IWFND/ERROR_LOG on the SAP Gateway hub system",
                    "SAP_Note": "",
                },
                "errordetails": [
                    {
                        "code": code,
                        "message": message,
                        "propertyref": target,
                        "severity": "error",
                        "target": target,
                        "transition": False,
                    }
                ],
            },
        }
    }


def date_literal(epoch_s: float) -> str:
    """``Edm.DateTime`` (display format Date) in V2 JSON: midnight UTC as ``/Date(<ms>)/``."""
    day_s = int(epoch_s // 86400) * 86400
    return f"/Date({day_s * 1000})/"


def datetimeoffset_literal(epoch_s: int) -> str:
    """``Edm.DateTimeOffset`` with precision 0 in V2 JSON: ``/Date(<ms>+0000)/``."""
    return f"/Date({epoch_s * 1000}+0000)/"


def time_literal(epoch_s: float) -> str:
    """``Edm.Time`` in V2 JSON: the UTC time of day as ``PT14H30M05S``."""
    seconds = int(epoch_s) % 86400
    return f"PT{seconds // 3600:02d}H{seconds // 60 % 60:02d}M{seconds % 60:02d}S"


def etag_for(last_change_s: int) -> str:
    """The weak ETag SAP Gateway derives from a DateTimeOffset ETag property."""
    moment = datetime.fromtimestamp(last_change_s, tz=UTC)
    return "W/\"datetimeoffset'" + moment.strftime("%Y-%m-%dT%H%%3A%M%%3A%SZ") + "'\""


def _string_literal_value(literal: str) -> str:
    return literal[1:-1].replace("''", "'")


# ---------------------------------------------------------------------------------------------------
# $filter
# ---------------------------------------------------------------------------------------------------

_FILTER_TOKEN = re.compile(
    r"\s*(?:(?P<paren>[()])|(?P<string>'(?:[^']|'')*')|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)

Predicate = Callable[[Mapping[str, Any]], bool]


def parse_filter(expression: str, properties: Mapping[str, PropertySpec] = PROPERTIES) -> Predicate:
    """Compile an OData V2 ``$filter`` expression into a predicate over an entity's properties.

    Supported: ``<Property> eq|ne <literal>``, ``and``, ``or`` (``and`` binds tighter), parentheses;
    literals are strings in single quotes (``''`` is a quote) or ``true``/``false``. Anything else
    raises :class:`ODataError` (400) naming the problem.

    >>> match = parse_filter("MaintNotifExtReferenceNumber eq 'A1' and NotifProcessingPhase ne '4'")
    >>> match({"MaintNotifExtReferenceNumber": "A1", "NotifProcessingPhase": "1"})
    True
    """
    tokens: list[tuple[str, str]] = []
    position = 0
    text = expression.rstrip()
    while position < len(text):
        found = _FILTER_TOKEN.match(text, position)
        if found is None or found.end() == position:
            raise _filter_error(f"unexpected character at position {position}")
        kind = found.lastgroup or ""
        tokens.append((kind, found.group(kind)))
        position = found.end()
    parser = _FilterParser(tokens, properties)
    predicate = parser.parse_or()
    if parser.index != len(tokens):
        raise _filter_error(f"unexpected '{tokens[parser.index][1]}'")
    return predicate


def _filter_error(problem: str) -> ODataError:
    return ODataError(
        400, "SAPSIM/INVALID_FILTER", f"Invalid $filter expression: {problem}", target="$filter"
    )


class _FilterParser:
    def __init__(self, tokens: list[tuple[str, str]], properties: Mapping[str, PropertySpec]) -> None:
        self.tokens = tokens
        self.index = 0
        self.properties = properties

    def _peek_word(self) -> str | None:
        if self.index < len(self.tokens) and self.tokens[self.index][0] == "word":
            return self.tokens[self.index][1]
        return None

    def _take(self) -> tuple[str, str]:
        if self.index >= len(self.tokens):
            raise _filter_error("expression ends too early")
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse_or(self) -> Predicate:
        terms = [self.parse_and()]
        while self._peek_word() == "or":
            self.index += 1
            terms.append(self.parse_and())
        if len(terms) == 1:
            return terms[0]
        return lambda entity: any(term(entity) for term in terms)

    def parse_and(self) -> Predicate:
        terms = [self.parse_atom()]
        while self._peek_word() == "and":
            self.index += 1
            terms.append(self.parse_atom())
        if len(terms) == 1:
            return terms[0]
        return lambda entity: all(term(entity) for term in terms)

    def parse_atom(self) -> Predicate:
        kind, value = self._take()
        if kind == "paren" and value == "(":
            inner = self.parse_or()
            if self._take() != ("paren", ")"):
                raise _filter_error("missing ')'")
            return inner
        if kind != "word":
            raise _filter_error(f"expected a property name, got {value}")
        spec = self.properties.get(value)
        if spec is None:
            raise _filter_error(f"property '{value}' does not exist in type '{ENTITY_TYPE}'")
        if not spec.filterable:
            raise _filter_error(f"property '{value}' cannot be used in a comparison")
        operator = self._take()
        if operator not in (("word", "eq"), ("word", "ne")):
            raise _filter_error(f"operator '{operator[1]}' is not supported (eq, ne)")
        literal_kind, literal = self._take()
        expected: Any
        if literal_kind == "string" and spec.edm_type == "Edm.String":
            expected = _string_literal_value(literal)
        elif literal_kind == "word" and literal in ("true", "false") and spec.edm_type == "Edm.Boolean":
            expected = literal == "true"
        else:
            raise _filter_error(f"literal {literal} does not fit property '{value}' of type {spec.edm_type}")
        name = value
        if operator[1] == "eq":
            return lambda entity: entity.get(name) == expected
        return lambda entity: entity.get(name) != expected


# ---------------------------------------------------------------------------------------------------
# $metadata and the service document
# ---------------------------------------------------------------------------------------------------


def metadata_document(properties: Mapping[str, PropertySpec] = PROPERTIES) -> str:
    """A small EDMX (OData V2) describing what the simulator serves, written from ``properties``."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx"'
        ' xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"'
        ' xmlns:sap="http://www.sap.com/Protocols/SAPData">',
        '  <edmx:DataServices m:DataServiceVersion="2.0">',
        f'    <Schema Namespace="{NAMESPACE}" xml:lang="en" sap:schema-version="1"'
        ' xmlns="http://schemas.microsoft.com/ado/2008/09/edm">',
        '      <EntityType Name="MaintenanceNotificationType" sap:content-version="1">',
        '        <Key><PropertyRef Name="MaintenanceNotification"/></Key>',
    ]
    for name, spec in properties.items():
        attributes = [f"Name={quoteattr(name)}", f"Type={quoteattr(spec.edm_type)}"]
        if not spec.nullable:
            attributes.append('Nullable="false"')
        if spec.max_length is not None:
            attributes.append(f'MaxLength="{spec.max_length}"')
        if spec.edm_type in ("Edm.DateTime", "Edm.DateTimeOffset", "Edm.Time"):
            attributes.append('Precision="0"')
        if spec.upper_case:
            attributes.append('sap:display-format="UpperCase"')
        if not spec.creatable:
            attributes.append('sap:creatable="false"')
        if not spec.updatable:
            attributes.append('sap:updatable="false"')
        if not spec.filterable:
            attributes.append('sap:filterable="false"')
        lines.append(f"        <Property {' '.join(attributes)}/>")
    lines += [
        "      </EntityType>",
        f'      <EntityContainer Name="{NAMESPACE}_Entities" m:IsDefaultEntityContainer="true"'
        ' sap:supported-formats="json">',
        f'        <EntitySet Name="{ENTITY_SET}" EntityType="{ENTITY_TYPE}" sap:deletable="false"'
        ' sap:content-version="1"/>',
    ]
    for function, parameters in FUNCTION_PARAMETERS.items():
        lines.append(
            f'        <FunctionImport Name="{function}" ReturnType="{ENTITY_TYPE}" EntitySet="{ENTITY_SET}"'
            f' m:HttpMethod="POST" sap:action-for="{ENTITY_TYPE}">'
        )
        for parameter, (edm_type, nullable) in parameters.items():
            extra = ' MaxLength="12"' if parameter == "MaintenanceNotification" else ' Precision="0"'
            lines.append(
                f'          <Parameter Name="{parameter}" Type="{edm_type}" Mode="In"{extra}'
                f' Nullable="{"true" if nullable else "false"}"/>'
            )
        lines.append("        </FunctionImport>")
    lines += ["      </EntityContainer>", "    </Schema>", "  </edmx:DataServices>", "</edmx:Edmx>", ""]
    return "\n".join(lines)


def _service_document_xml(base: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<app:service xml:base="{base}/" xmlns:app="http://www.w3.org/2007/app"'
        ' xmlns:atom="http://www.w3.org/2005/Atom">\n'
        f'  <app:workspace><atom:title>Data</atom:title><app:collection href="{ENTITY_SET}">'
        f"<atom:title>{ENTITY_SET}</atom:title></app:collection></app:workspace>\n"
        "</app:service>\n"
    )


# ---------------------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------------------


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] | None = None


@dataclass
class _Session:
    user: str
    token: str


class SapSimulator:
    """SAP's ``API_MAINTNOTIFICATION`` on a loopback HTTP port, with an in-memory store.

    Keyword-only options:

    - ``host``, ``port``: where to listen; port 0 picks a free port (read it back from :attr:`url`).
    - ``user``, ``password``: the one Basic-auth login accepted.
    - ``clock``: where creation and change times come from (default: the wall clock).

    All methods are thread-safe. Fault-injection hooks for tests: :meth:`fail_next`,
    :meth:`expire_csrf_tokens`; inspection: :meth:`notifications`, :meth:`requests`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        user: str = "PLANTWATCH",
        password: str = "secret",
        clock: Clock | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._user = user
        self._password = password
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._entities: dict[str, dict[str, Any]] = {}
        self._next_number = FIRST_NOTIFICATION_NUMBER
        self._sessions: dict[str, _Session] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RequestRecord] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the port and serve in a background thread. Raises ``OSError`` if the port is taken."""
        if self._server is not None:
            raise RuntimeError("the SAP simulator is already running")
        simulator = self

        class Handler(_Handler):
            sim = simulator

        server = ThreadingHTTPServer((self._host, self._port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_S},
            name="sap-simulator",
            daemon=True,
        )
        self._thread.start()
        event(log, logging.INFO, "sap_simulator_started", url=self.url)

    def stop(self) -> None:
        """Stop serving and release the port. Safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)
        event(log, logging.INFO, "sap_simulator_stopped")

    def __enter__(self) -> SapSimulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://host:port`` of the running simulator (the service is under :data:`SERVICE_ROOT`)."""
        if self._server is None:
            raise RuntimeError("the SAP simulator is not running")
        host, port = self._server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        if ":" in host_text:
            host_text = f"[{host_text}]"
        return f"http://{host_text}:{port}"

    # -- inspection and fault injection ----------------------------------------------------------

    def notifications(self) -> list[dict[str, Any]]:
        """Copies of the stored notifications (V2 JSON values), in number order."""
        with self._lock:
            return [copy.deepcopy(self._entities[number]) for number in sorted(self._entities, key=int)]

    def requests(self) -> list[RequestRecord]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def fail_next(
        self,
        status: int = 503,
        count: int = 1,
        retry_after: float | str | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (only those with ``method`` if given) with ``status``.

        The answer carries SAP's error body and, if ``retry_after`` is given, a ``Retry-After`` header
        (seconds, or an HTTP date as a string). The fault comes before authentication, as a
        load balancer's or an overloaded system's answer would.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        if retry_after is None:
            header = None
        elif isinstance(retry_after, str):
            header = retry_after
        else:
            header = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        with self._lock:
            self._faults.append(_Fault(status, count, header, method.upper() if method else None))

    def expire_csrf_tokens(self) -> None:
        """Forget every session and CSRF token, as a restarted or timed-out SAP session would."""
        with self._lock:
            self._sessions.clear()

    # -- request handling (called from handler threads) -------------------------------------------

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._requests.append(RequestRecord(method, path, status))

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method is None or fault.method == method:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _authenticate(self, header: str | None) -> str | None:
        if not header or not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        user_ok = hmac.compare_digest(user.upper().encode(), self._user.upper().encode())
        password_ok = hmac.compare_digest(password.encode(), self._password.encode())
        return self._user if user_ok and password_ok else None

    def _fetch_token(self, session_id: str | None, user: str) -> tuple[str, str, bool]:
        """Token for the caller's session, creating a session if needed: (session id, token, new?)."""
        with self._lock:
            session = self._sessions.get(session_id or "")
            if session is not None and session.user == user and session_id:
                return session_id, session.token, False
            new_id = secrets.token_urlsafe(24)
            token = secrets.token_urlsafe(18)
            self._sessions[new_id] = _Session(user, token)
            return new_id, token, True

    def _token_valid(self, session_id: str | None, user: str, token: str | None) -> bool:
        if not session_id or not token:
            return False
        with self._lock:
            session = self._sessions.get(session_id)
        return (
            session is not None
            and session.user == user
            and hmac.compare_digest(session.token.encode(), token.encode())
        )

    def _now_s(self) -> float:
        return self._clock.now()

    def _touch(self, entity: dict[str, Any]) -> None:
        """Stamp a change: LastChange* move to now, or one second past the previous change."""
        previous = _epoch_of(entity.get("LastChangeDateTime"))
        now_s = int(self._now_s())
        changed_s = now_s if previous is None or now_s > previous else previous + 1
        entity["LastChangeDateTime"] = datetimeoffset_literal(changed_s)
        entity["LastChangeDate"] = date_literal(changed_s)
        entity["LastChangeTime"] = time_literal(changed_s)

    def _create(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        values = _validate_payload(payload, for_update=False)
        for required in REQUIRED_ON_CREATE:
            if values.get(required) is None:
                raise ODataError(
                    400,
                    "SAPSIM/REQUIRED_PROPERTY",
                    f"Property '{required}' is required when creating a {ENTITY_SET}",
                    target=required,
                )
        now_s = self._now_s()
        with self._lock:
            number = str(self._next_number)
            self._next_number += 1
            entity = _initial_entity()
            entity.update(values)
            entity.update(
                MaintenanceNotification=number,
                NotifProcessingPhase="1",
                CreationDate=date_literal(now_s),
                CreationTime=time_literal(now_s),
                CreatedByUser=self._user,
                ReportedByUser=entity["ReportedByUser"] or self._user,
            )
            _derive(entity)
            self._touch(entity)
            self._entities[number] = entity
            return copy.deepcopy(entity)

    def _read(self, number: str) -> dict[str, Any]:
        with self._lock:
            entity = self._entities.get(_canonical_number(number))
            if entity is None:
                raise _not_found(number)
            return copy.deepcopy(entity)

    def _query(self, predicate: Predicate | None) -> list[dict[str, Any]]:
        with self._lock:
            found = [
                copy.deepcopy(entity)
                for number, entity in sorted(self._entities.items(), key=lambda item: int(item[0]))
                if predicate is None or predicate(entity)
            ]
        return found

    def _update(
        self, number: str, if_match: str | None, payload: Mapping[str, Any], *, replace: bool
    ) -> dict[str, Any]:
        values = _validate_payload(payload, for_update=True, key=_canonical_number(number))
        with self._lock:
            entity = self._entities.get(_canonical_number(number))
            if entity is None:
                raise _not_found(number)
            _check_if_match(entity, if_match)
            if replace:
                initial = _initial_entity()
                for name, spec in PROPERTIES.items():
                    if spec.updatable:
                        entity[name] = initial[name]
            entity.update(values)
            _derive(entity)
            self._touch(entity)
            return copy.deepcopy(entity)

    def _call_function(self, function: str, parameters: Mapping[str, str]) -> dict[str, Any]:
        known = FUNCTION_PARAMETERS[function]
        for name, literal in parameters.items():
            if name not in known:
                raise ODataError(
                    400,
                    "SAPSIM/INVALID_PARAMETER",
                    f"Parameter '{name}' is not defined for '{function}'",
                    target=name,
                )
            edm_type = known[name][0]
            if not _URI_LITERALS[edm_type].match(literal):
                raise ODataError(
                    400,
                    "SAPSIM/INVALID_PARAMETER",
                    f"Parameter '{name}' needs an {edm_type} URI literal, got {literal}",
                    target=name,
                )
        for name, (_edm_type, nullable) in known.items():
            if not nullable and name not in parameters:
                raise ODataError(
                    400,
                    "SAPSIM/MISSING_PARAMETER",
                    f"Parameter '{name}' is missing for '{function}'",
                    target=name,
                )
        number = _string_literal_value(parameters["MaintenanceNotification"])
        target_phase, from_phases = FUNCTION_TRANSITIONS[function]
        now_s = self._now_s()
        with self._lock:
            entity = self._entities.get(_canonical_number(number))
            if entity is None:
                raise _not_found(number)
            phase = entity["NotifProcessingPhase"]
            if phase not in from_phases:
                raise ODataError(
                    400,
                    "SAPSIM/INVALID_PHASE",
                    f"Notification {entity['MaintenanceNotification']} is {PHASE_TEXTS.get(phase, phase)};"
                    f" '{function}' is not allowed",
                    target="NotifProcessingPhase",
                )
            entity["NotifProcessingPhase"] = target_phase
            if target_phase == "4":
                entity["NotificationCompletionDate"] = date_literal(now_s)
                entity["CompletionTime"] = time_literal(now_s)
            _derive(entity)
            self._touch(entity)
            return copy.deepcopy(entity)


def _epoch_of(literal: Any) -> int | None:
    if not isinstance(literal, str):
        return None
    found = re.match(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$", literal)
    return int(found.group(1)) // 1000 if found else None


def _canonical_number(number: str) -> str:
    # Notification numbers have SAP's ALPHA conversion: '000010000001' and '10000001' are one key.
    if not number.isdigit():
        return number
    return number.lstrip("0") or "0"


def _not_found(number: str) -> ODataError:
    return ODataError(
        404,
        "SAPSIM/NOT_FOUND",
        f"Resource not found for the key MaintenanceNotification='{number}'",
        target=ENTITY_SET,
    )


def _initial_entity() -> dict[str, Any]:
    initial: dict[str, Any] = {}
    for name, spec in PROPERTIES.items():
        if spec.edm_type == "Edm.String":
            initial[name] = ""
        elif spec.edm_type == "Edm.Boolean":
            initial[name] = False
        elif spec.edm_type == "Edm.Time":
            initial[name] = "PT00H00M00S"
        else:
            initial[name] = None
    return initial


def _derive(entity: dict[str, Any]) -> None:
    """Fill the read-only texts SAP derives from other fields."""
    entity["NotifProcessingPhaseDesc"] = PHASE_TEXTS.get(entity["NotifProcessingPhase"], "")
    entity["MaintPriorityDesc"] = PRIORITY_TEXTS.get(entity["MaintPriority"], "")
    entity["TechnicalObjectLabel"] = entity["TechnicalObject"]
    entity["MaintNotificationLongText"] = entity["MaintNotifLongTextForEdit"]


def _check_if_match(entity: Mapping[str, Any], if_match: str | None) -> None:
    if if_match is None:
        raise ODataError(
            428,
            "SAPSIM/PRECONDITION_REQUIRED",
            "Modifying a MaintenanceNotification requires an If-Match header with its ETag",
            target="If-Match",
        )
    current = etag_for(_epoch_of(entity[ETAG_PROPERTY]) or 0)
    offered = [tag.strip() for tag in if_match.split(",")]
    if "*" not in offered and current not in offered:
        raise ODataError(
            412,
            "SAPSIM/PRECONDITION_FAILED",
            f"The ETag in If-Match does not match the current ETag {current}; read the entity again",
            target="If-Match",
        )


def _validate_payload(
    payload: Mapping[str, Any], *, for_update: bool, key: str | None = None
) -> dict[str, Any]:
    """Check a create or update body against :data:`PROPERTIES`; return the values to store."""
    values: dict[str, Any] = {}
    for name, value in payload.items():
        if name == "__metadata":
            continue
        if name in ("to_Item", "to_Partner"):
            raise ODataError(
                501, "SAPSIM/NOT_SIMULATED", f"Deep insert via '{name}' is not simulated", target=name
            )
        spec = PROPERTIES.get(name)
        if spec is None:
            raise ODataError(
                400,
                "SAPSIM/UNKNOWN_PROPERTY",
                f"Property '{name}' is invalid for type '{ENTITY_TYPE}'",
                target=name,
            )
        if for_update and name == "MaintenanceNotification" and value == key:
            continue  # clients often repeat the key in an update body; SAP accepts it unchanged
        if for_update and not spec.updatable:
            raise ODataError(400, "SAPSIM/NOT_UPDATABLE", f"Property '{name}' is not updatable", target=name)
        if not for_update and not spec.creatable:
            raise ODataError(
                400,
                "SAPSIM/NOT_CREATABLE",
                f"Property '{name}' is not creatable; SAP assigns it",
                target=name,
            )
        values[name] = _validate_value(name, spec, value)
    return values


def _validate_value(name: str, spec: PropertySpec, value: Any) -> Any:
    def invalid(problem: str) -> ODataError:
        return ODataError(400, "SAPSIM/INVALID_VALUE", f"Property '{name}' {problem}", target=name)

    if value is None:
        if not spec.nullable:
            raise invalid("must not be null")
        return None
    if spec.edm_type == "Edm.String":
        if not isinstance(value, str):
            raise invalid(f"must be a string (Edm.String), got {type(value).__name__}")
        if spec.max_length is not None and utf16_length(value) > spec.max_length:
            raise invalid(f"is longer than its maximum length {spec.max_length} ({utf16_length(value)})")
        return value.upper() if spec.upper_case else value
    if spec.edm_type == "Edm.Boolean":
        if not isinstance(value, bool):
            raise invalid("must be true or false (Edm.Boolean)")
        return value
    if spec.edm_type == "Edm.DateTime":
        if not isinstance(value, str) or not _DATE_RE.match(value):
            raise invalid("must be an Edm.DateTime like '/Date(1735689600000)/'")
        return value
    if spec.edm_type == "Edm.Time":
        found = _TIME_RE.match(value) if isinstance(value, str) else None
        if not found or value == "PT":
            raise invalid("must be an Edm.Time like 'PT14H30M00S'")
        hours, minutes, seconds = (int(part or 0) for part in found.groups())
        if hours > 23 or minutes > 59 or seconds > 59:
            raise invalid("is not a time of day")
        return f"PT{hours:02d}H{minutes:02d}M{seconds:02d}S"
    raise invalid(f"cannot be written ({spec.edm_type})")


# ---------------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------------

_KEY_SEGMENT = re.compile(rf"^{ENTITY_SET}\((?:MaintenanceNotification=)?'((?:[^']|'')*)'\)(/.*)?$")


class _Handler(BaseHTTPRequestHandler):
    sim: SapSimulator
    protocol_version = "HTTP/1.1"
    server_version = "SAP NetWeaver Application Server (plantwatch simulator)"
    timeout = CONNECTION_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the stdlib's stderr log; one ``sap_request`` line per request is logged instead."""

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_MERGE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # -------------------------------------------------------------------------------------------

    def _handle(self) -> None:
        started = time.monotonic()
        method = self.command.upper()
        user = "-"
        extra_headers: dict[str, str] = {}
        try:
            body = self._read_body()
            fault = self.sim._take_fault(method)
            if fault is not None:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                phrase = (
                    HTTPStatus(fault.status).phrase if fault.status in HTTPStatus._value2member_map_ else ""
                )
                raise ODataError(
                    fault.status, "SAPSIM/INJECTED_FAULT", f"{phrase} (injected)", headers=headers
                )
            authenticated = self.sim._authenticate(self.headers.get("Authorization"))
            if authenticated is None:
                response = _logon_failed()
            else:
                user = authenticated
                extra_headers = self._csrf_fetch(method, user)
                response = self._dispatch(method, user, body)
        except ODataError as error:
            response = _error_response(error, self.sim._now_s())
        except Exception:  # a simulator bug must still answer, and say so in the log
            log.exception("sap_simulator_error method=%s path=%s", method, self.path)
            response = _error_response(
                ODataError(500, "SAPSIM/INTERNAL", "Internal error in the SAP simulator"), self.sim._now_s()
            )
        if response.headers is None:
            response.headers = {}
        response.headers.update(extra_headers)
        # Recorded before the answer leaves, so a client that has its answer sees the record.
        self.sim._record(method, self.path, response.status)
        # logged before the answer leaves too: a client holding its answer finds the line in the log
        event(
            log,
            logging.INFO,
            "sap_request",
            method=method,
            path=self.path,
            status=response.status,
            user=user,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        self._send(method, response)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise ODataError(
                411, "SAPSIM/LENGTH_REQUIRED", "Send a Content-Length; chunked bodies are not simulated"
            )
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise ODataError(400, "SAPSIM/BAD_REQUEST", "Content-Length is not a number") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ODataError(413, "SAPSIM/TOO_LARGE", f"Request body larger than {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length) if length > 0 else b""

    def _session_id(self) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        cookies = SimpleCookie()
        try:
            cookies.load(raw)
        except CookieError:
            return None
        morsel = cookies.get(SESSION_COOKIE)
        return morsel.value if morsel is not None else None

    def _csrf_fetch(self, method: str, user: str) -> dict[str, str]:
        if method not in ("GET", "HEAD") or (self.headers.get("X-CSRF-Token") or "").lower() != "fetch":
            return {}
        session_id, token, new = self.sim._fetch_token(self._session_id(), user)
        headers = {"X-CSRF-Token": token}
        if new:
            headers["Set-Cookie"] = f"{SESSION_COOKIE}={session_id}; path=/; HttpOnly"
        return headers

    def _base_url(self) -> str:
        return f"http://{self.headers.get('Host') or self.sim.url.removeprefix('http://')}{SERVICE_ROOT}"

    def _wants_json(self, query: Mapping[str, str]) -> bool:
        requested = query.get("$format")
        if requested is not None:
            return requested.lower() == "json"
        accept = (self.headers.get("Accept") or "").lower()
        return "application/json" in accept

    def _dispatch(self, method: str, user: str, body: bytes) -> _Response:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if not path.lower().startswith(SERVICE_ROOT.lower()):
            raise ODataError(404, "SAPSIM/NO_SERVICE", f"No service found for path '{path}'")
        segment = path[len(SERVICE_ROOT) :].strip("/")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))

        if method in ("POST", "PUT", "PATCH", "MERGE", "DELETE") and not self.sim._token_valid(
            self._session_id(), user, self.headers.get("X-CSRF-Token")
        ):
            return _Response(
                403,
                b"CSRF token validation failed",
                "text/plain; charset=utf-8",
                {"X-CSRF-Token": "Required"},
            )

        if segment == "$metadata":
            _require(method, ("GET", "HEAD"))
            return _Response(200, metadata_document().encode(), "application/xml")
        if segment == "":
            _require(method, ("GET", "HEAD"))
            if self._wants_json(query):
                return _json_response(200, {"d": {"EntitySets": [ENTITY_SET]}})
            return _Response(200, _service_document_xml(self._base_url()).encode(), "application/xml")
        first = segment.split("/")[0].split("(")[0]
        if first in UNSIMULATED_SEGMENTS:
            raise ODataError(
                501, "SAPSIM/NOT_SIMULATED", f"'{first}' is part of SAP's service but not simulated"
            )
        if first not in (ENTITY_SET, *FUNCTION_IMPORTS):
            raise ODataError(
                404, "SAPSIM/NOT_FOUND", f"Resource not found for segment '{first}'", target=first
            )
        if not self._wants_json(query):
            raise ODataError(
                406,
                "SAPSIM/NOT_ACCEPTABLE",
                "The simulator speaks JSON only; send 'Accept: application/json' or '$format=json'",
            )
        if first in FUNCTION_IMPORTS:
            if segment != first:
                raise ODataError(404, "SAPSIM/NOT_FOUND", f"Resource not found for segment '{segment}'")
            _require(method, ("POST",))
            if body:
                raise ODataError(
                    400,
                    "SAPSIM/BODY_NOT_ALLOWED",
                    "Function imports are only parameterized via URL parameters; no request body is allowed",
                )
            parameters = {name: value for name, value in query.items() if not name.startswith("$")}
            entity = self.sim._call_function(first, parameters)
            return self._entity_response(200, entity)
        if segment == ENTITY_SET:
            if method == "POST":
                entity = self.sim._create(self._json_body(body))
                response = self._entity_response(201, entity)
                assert response.headers is not None
                response.headers["Location"] = self._entity_uri(entity)
                return response
            _require(method, ("GET", "HEAD", "POST"))
            return self._collection(query)
        keyed = _KEY_SEGMENT.match(segment)
        if keyed is None:
            raise ODataError(
                400, "SAPSIM/BAD_KEY", f"Invalid key in '{segment}'; use {ENTITY_SET}('<number>')"
            )
        if keyed.group(2):
            raise ODataError(501, "SAPSIM/NOT_SIMULATED", f"Navigation '{keyed.group(2)}' is not simulated")
        number = keyed.group(1).replace("''", "'")
        if method in ("GET", "HEAD"):
            return self._entity_response(200, self.sim._read(number), select=query.get("$select"))
        if method in ("PATCH", "MERGE", "PUT"):
            self.sim._update(
                number, self.headers.get("If-Match"), self._json_body(body), replace=method == "PUT"
            )
            entity = self.sim._read(number)
            return _Response(204, headers={"ETag": _etag_of(entity)})
        raise ODataError(
            405, "SAPSIM/METHOD_NOT_ALLOWED", f"{method} is not allowed on {ENTITY_SET}; it is not deletable"
        )

    def _json_body(self, body: bytes) -> Mapping[str, Any]:
        content_type = (self.headers.get("Content-Type") or "").lower()
        if not content_type.startswith("application/json"):
            raise ODataError(
                415, "SAPSIM/UNSUPPORTED_MEDIA_TYPE", "Send the body as 'Content-Type: application/json'"
            )
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ODataError(
                400, "SAPSIM/MALFORMED_JSON", f"The request body is not valid JSON: {error}"
            ) from None
        if not isinstance(payload, dict):
            raise ODataError(400, "SAPSIM/MALFORMED_JSON", "The request body must be a JSON object")
        return payload

    def _entity_uri(self, entity: Mapping[str, Any]) -> str:
        return f"{self._base_url()}/{ENTITY_SET}('{entity['MaintenanceNotification']}')"

    def _wire_entity(self, entity: Mapping[str, Any], select: str | None = None) -> dict[str, Any]:
        etag = _etag_of(entity)
        wire: dict[str, Any] = {
            "__metadata": {"id": self._entity_uri(entity), "uri": self._entity_uri(entity)}
        }
        wire["__metadata"].update(type=ENTITY_TYPE, etag=etag)
        names = _selected(select)
        wire.update({name: value for name, value in entity.items() if names is None or name in names})
        return wire

    def _entity_response(
        self, status: int, entity: Mapping[str, Any], select: str | None = None
    ) -> _Response:
        response = _json_response(status, {"d": self._wire_entity(entity, select)})
        assert response.headers is not None
        response.headers["ETag"] = _etag_of(entity)
        return response

    def _collection(self, query: Mapping[str, str]) -> _Response:
        supported = {"$filter", "$top", "$skip", "$select", "$inlinecount", "$format"}
        for option in query:
            if option.startswith("$") and option not in supported:
                raise ODataError(
                    501, "SAPSIM/NOT_SIMULATED", f"System query option '{option}' is not simulated"
                )
        predicate = parse_filter(query["$filter"]) if query.get("$filter", "").strip() else None
        found = self.sim._query(predicate)
        count = len(found)
        skip = _non_negative(query, "$skip")
        top = _non_negative(query, "$top")
        found = found[skip or 0 :]
        if top is not None:
            found = found[:top]
        select = query.get("$select")
        _selected(select)  # validates names before anything is answered
        result: dict[str, Any] = {"results": [self._wire_entity(entity, select) for entity in found]}
        inline = query.get("$inlinecount")
        if inline not in (None, "allpages", "none"):
            raise ODataError(
                400, "SAPSIM/BAD_QUERY", "$inlinecount must be 'allpages' or 'none'", target="$inlinecount"
            )
        if inline == "allpages":
            result["__count"] = str(count)
        return _json_response(200, {"d": result})

    def _send(self, method: str, response: _Response) -> None:
        try:
            self.send_response(response.status)
            headers = dict(response.headers or {})
            if response.content_type:
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            if response.status < 300 and response.content_type == "application/json; charset=utf-8":
                self.send_header("DataServiceVersion", "2.0")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if method != "HEAD" and response.body:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError) as error:
            event(log, logging.WARNING, "sap_client_gone", method=method, path=self.path, error=error)
            self.close_connection = True


def _require(method: str, allowed: tuple[str, ...]) -> None:
    if method not in allowed:
        raise ODataError(
            405,
            "SAPSIM/METHOD_NOT_ALLOWED",
            f"Method {method} is not allowed here (allowed: {', '.join(allowed)})",
            headers={"Allow": ", ".join(allowed)},
        )


def _selected(select: str | None) -> set[str] | None:
    if select is None or not select.strip():
        return None
    names = {name.strip() for name in select.split(",")}
    unknown = sorted(name for name in names if name not in PROPERTIES)
    if unknown:
        raise ODataError(
            400, "SAPSIM/BAD_QUERY", f"$select names unknown property '{unknown[0]}'", target="$select"
        )
    return names


def _non_negative(query: Mapping[str, str], option: str) -> int | None:
    raw = query.get(option)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ODataError(
            400, "SAPSIM/BAD_QUERY", f"{option} must be a non-negative integer, got '{raw}'", target=option
        )
    return int(raw)


def _etag_of(entity: Mapping[str, Any]) -> str:
    return etag_for(_epoch_of(entity[ETAG_PROPERTY]) or 0)


def _json_response(status: int, payload: Any) -> _Response:
    return _Response(status, json.dumps(payload).encode("utf-8"), "application/json; charset=utf-8", {})


def _error_response(error: ODataError, now_s: float) -> _Response:
    response = _json_response(
        error.status, error_body(error.code, error.message, target=error.target, timestamp_s=now_s)
    )
    assert response.headers is not None
    response.headers.update(error.headers)
    return response


def _logon_failed() -> _Response:
    page = "<html><head><title>Logon Error Message</title></head><body><p>Logon failed</p></body></html>"
    return _Response(
        401,
        page.encode("utf-8"),
        "text/html; charset=utf-8",
        {"WWW-Authenticate": f'Basic realm="{AUTH_REALM}"'},
    )


def serve(host: str = "127.0.0.1", port: int = 0, user: str = "PLANTWATCH", password: str = "secret") -> None:
    """Run the SAP simulator in the foreground until SIGINT or SIGTERM (``plantwatch-sim sap``)."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        event(log, logging.INFO, "sap_simulator_signal", signal=signal.Signals(signum).name)
        stopping.set()

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)}
    simulator = SapSimulator(host=host, port=port, user=user, password=password)
    simulator.start()
    try:
        event(log, logging.INFO, "sap_simulator_listening", url=simulator.url + SERVICE_ROOT + "/", user=user)
        stopping.wait()
    finally:
        simulator.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
