"""ERP adapter for SAP S/4HANA over OData: maintenance notifications, orders and quality holds.

Written against SAP's published contract (``../shared/specs/sap/SUMMARY.md``), not against the simulator.

Services (paths under ``base_url``):

- ``API_MAINTNOTIFICATION`` (V2): maintenance notifications: create, find, update, read back.
- ``API_MAINTENANCEORDER;v=0002`` (V2): with ``create_order=True``, one order (``order_type``, PM01 by
  default) for each new notification, its operation inside the POST (deep insert through
  ``to_MaintenanceOrderOperation``: the metadata marks the set ``MaintenanceOrderOperation`` not creatable).
- ``CE_QUALITYNOTIFICATION_0001`` (V4): quality holds: a quality notification of type Q3 (internal problem).
  **SAP's metadata of this service was not available** (SUMMARY §3); the names in the ``QN_*`` constants
  below are marked where they are assumed, and must be checked against ``<root>/$metadata`` of the target
  system before production use.
- ``API_MATERIAL_DOCUMENT_SRV`` (V2) or ``API_BATCH_SRV`` (V2), by ``hold_method``: the hold itself, either a
  transfer posting of the lot to blocked stock (goods movement code 04, movement type 344, the item inside
  the header POST: items cannot be created on their own) or the batch set to restricted use
  (``MatlBatchIsInRstrcdUseStock``).

Protocol:

- Basic auth on every request; a CSRF token fetched with ``X-CSRF-Token: Fetch`` on a GET of the
  notification service root and sent, with the session cookies it came with, on every modifying request
  (SAP binds the token to the session, not to one service). A 403 answered with ``X-CSRF-Token: Required``
  (token expired, session gone) is followed by one refetch and one retry.
- Updates read the entity first and send its ETag in ``If-Match`` (``MaintenanceNotification`` declares
  ``LastChangeDateTime`` as its concurrency token); a 412 (someone changed it in between) is answered by one
  fresh read, a fresh decision and one more try. A second 412 is a retryable :class:`ErpError`.
- Idempotency by ``correlation_id`` (String(20), upper case), looked up before anything is created:
  notification by ``MaintNotifExtReferenceNumber``; order by the notification's own ``MaintenanceOrder``;
  quality notification by its reference field (assumed name, :data:`QN_REFERENCE`); goods movement by
  ``MaterialDocumentHeaderText`` (String(25); ``ReferenceDocument`` is only 16 and carries the quality
  notification's number instead); batch restriction by the batch's own flag. A retry after a crash between
  two steps (notification but no order, quality notification but no movement) finds the first and does the
  missing one. Two gateways that miss each other's lookup in the same instant could still both create; SAP
  offers no unique constraint on those fields, so a site runs one writer per asset (DESIGN.md, "Scale").
- Lengths are checked here before anything is sent, in UTF-16 code units as ABAP counts them. Free texts
  are shortened with an ellipsis (a long alarm text must not block the notification); identifiers that
  would change meaning if cut (correlation id, asset, priority, material, batch, order) raise ``ErpError``
  with code ``client_validation`` instead.
- Errors: SAP's V2 error body (``error.message.value``) and the V4 error format (``error.message``) become
  ``ErpError.message``; 408, 429 and 5xx are retryable with ``Retry-After`` parsed; other 4xx are not. A
  network failure is retryable with code ``unreachable``.

Updates (:meth:`SapAdapter.update_notification`). The metadata keeps the notification's long text on the
entity itself (no long-text entity set in this service, unlike API_MAINTENANCEORDER): the writable
``MaintNotifLongTextForEdit`` (String(1333)) and the read-only ``MaintNotificationLongText``. The adapter
reads ``MaintNotifLongTextForEdit``, adds the note as new lines at its end (cutting the oldest text, never
the note, when 1333 would be exceeded) and writes the whole text back, so the note lands whether SAP treats
the field as the whole text or not; a note already in the text is not added twice (a retried update).
``MaintPriority`` is only ever raised ("1" is the highest); a completed notification is not changed.

Status and outcome (:meth:`SapAdapter.read_notification`). Status from ``NotifProcessingPhase``
(1 outstanding, 2 postponed, 3 in process, 4 completed; SUMMARY §9) and, where the phase is empty or
unknown, from the system status in ``ConcatenatedActiveSystStsName`` (OSNO, NOPT, NOPR, NOCO). The
planner's outcome is read from the notification header's coding, the one catalog code the metadata gives
the notification as a whole (``MaintNotificationCodeGroup`` String(8) + ``MaintNotificationCode`` String(4),
catalog ``MaintNotificationCatalog`` "Coding", D in SAP's standard), and only once the notification is
completed (``CompleteMaintNotification``). Code groups are customizing, so the mapping is an option,
:class:`OutcomeCoding`; by default code group ``PLANTWCH``, code ``FLT`` = ``fault_confirmed``, ``NFF`` =
``no_fault_found``; any other coding, or none, gives no outcome. Damage codes on items were not chosen: an
item is optional and a notification may have several, so they say what was damaged, not what the planner
concluded about the alarm.

``failure_mode`` and ``severity`` have no field of their own: they travel in the texts the gateway writes.
"""

from __future__ import annotations

import base64
import http.client
import http.cookiejar
import json
import logging
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

from plantwatch.clock import Clock, SystemClock
from plantwatch.gateway.erp import (
    CORRELATION_ID_PATTERN,
    PRIORITIES,
    SEVERITIES,
    ErpDocument,
    ErpError,
    HoldRequest,
    HttpReply,
    NoRedirect,
    NotificationRequest,
    NotificationUpdate,
    appended_long_text,
    http_exchange,
    is_retryable_status,
    parse_retry_after,
    raised_priority,
    shorten,
)
from plantwatch.log import event

log = logging.getLogger("plantwatch.gateway.sap")

BACKEND = "sap"
SERVICE_PATH = "/sap/opu/odata/sap/API_MAINTNOTIFICATION"
ENTITY_SET = "MaintenanceNotification"
ORDER_SERVICE_PATH = "/sap/opu/odata/sap/API_MAINTENANCEORDER;v=0002"
ORDER_ENTITY_SET = "MaintenanceOrder"
MATERIAL_DOCUMENT_SERVICE_PATH = "/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV"
MATERIAL_DOCUMENT_ENTITY_SET = "A_MaterialDocumentHeader"
BATCH_SERVICE_PATH = "/sap/opu/odata/sap/API_BATCH_SRV"
BATCH_ENTITY_SET = "Batch"
QUALITY_NOTIFICATION_SERVICE_PATH = (
    "/sap/opu/odata4/sap/api_qualitynotification/srvd_a2x/sap/qualitynotification/0001"
)
QUALITY_NOTIFICATION_ENTITY_SET = "QualityNotification"

# MaxLength of the properties written, from SAP's EDMX (SUMMARY.md §1, §2, §4), in UTF-16 code units.
NOTIFICATION_NUMBER_MAX = 12
NOTIFICATION_TEXT_MAX = 40
LONG_TEXT_MAX = 1333
TECHNICAL_OBJECT_MAX = 40
TECHNICAL_OBJECT_TYPE_MAX = 20
NOTIFICATION_TYPE_MAX = 2
PRIORITY_MAX = 1
CODE_GROUP_MAX = 8
CODE_MAX = 4
ORDER_TYPE_MAX = 4
ORDER_DESCRIPTION_MAX = 40
OPERATION_DESCRIPTION_MAX = 40
FUNCTIONAL_LOCATION_MAX = 30  # MaintenanceOrder.FunctionalLocation (the notification's TechnicalObject is 40)
MATERIAL_MAX = 40
BATCH_MAX = 10
PLANT_MAX = 4
STORAGE_LOCATION_MAX = 4
UNIT_MAX = 3
MATERIAL_DOCUMENT_HEADER_TEXT_MAX = 25
REFERENCE_DOCUMENT_MAX = 16
MATERIAL_DOCUMENT_ITEM_TEXT_MAX = 50
MANUFACTURING_ORDER_MAX = 12
# QuantityInEntryUnit is Edm.Decimal(13,3).
QUANTITY_SCALE = 3
QUANTITY_LIMIT = Decimal(10) ** (13 - QUANTITY_SCALE)
# TechnicalObject holds an equipment or a functional location (40). An equipment number is at most 18
# (Equipment is String(18) in API_MAINTENANCEORDER), so with EAMS_EQUI a longer asset id cannot exist.
EQUIPMENT_MAX = 18

# Values of TechObjIsEquipOrFuncnlLoc. The EDMX gives only String(20); these two values are what SAP's
# API Hub sandbox returns (EAMS_EQUI for equipment, EAMS_FL for a functional location) and what public
# clients send, so they are a strong convention, not a documented contract.
TECHNICAL_OBJECT_EQUIPMENT = "EAMS_EQUI"
TECHNICAL_OBJECT_FUNCTIONAL_LOCATION = "EAMS_FL"

# The first operation of an order. MaintenanceOrderSubOperation is a key (not nullable); the value of a
# plain operation is not stated in the metadata: empty, as SAP shows operations without sub-operations.
FIRST_OPERATION = "0010"
NO_SUB_OPERATION = ""

# Goods movement to blocked stock (SUMMARY "Not from metadata" §10): code 04 = transfer posting,
# movement type 344 = unrestricted-use -> blocked.
GOODS_MOVEMENT_TRANSFER_POSTING = "04"
MOVEMENT_TYPE_TO_BLOCKED = "344"

# CE_QUALITYNOTIFICATION_0001 (OData V4). Metadata NOT available (SUMMARY.md §3): the service root, the
# entity set, the key and NotifProcessingPhase were seen in public client code; the other names are
# ASSUMED, named after the same fields of API_MAINTNOTIFICATION (both notification kinds share SAP's
# notification table), with the lengths of those fields. Check them against <root>/$metadata.
QN_KEY = "QualityNotification"  # seen in public client code
QN_PHASE = "NotifProcessingPhase"  # seen in public client code ("1".."4" as for maintenance notifications)
QN_TYPE = "NotificationType"  # ASSUMED, String(2)
QN_TEXT = "NotificationText"  # ASSUMED, String(40)
QN_REFERENCE = "ExternalReferenceNumber"  # ASSUMED, String(20), carries the correlation id
QN_MATERIAL = "Material"  # ASSUMED, String(40)
QN_PLANT = "Plant"  # ASSUMED, String(4)
QN_BATCH = "Batch"  # ASSUMED, String(10)
QN_MANUFACTURING_ORDER = "ManufacturingOrder"  # ASSUMED, String(12)

# NotifProcessingPhase -> ErpDocument.status (SUMMARY.md "Not from metadata" §9; third-party source).
PHASE_STATUS = {"1": "outstanding", "2": "postponed", "3": "in_process", "4": "completed"}
# System statuses in ConcatenatedActiveSystStsName, strongest first, for a notification without a phase.
SYSTEM_STATUS_STATUS = (
    ("NOCO", "completed"),
    ("NOPT", "postponed"),
    ("NOPR", "in_process"),
    ("OSNO", "outstanding"),
)

HoldMethod = Literal["goods_movement", "batch_restriction"]
HOLD_METHODS: tuple[HoldMethod, ...] = ("goods_movement", "batch_restriction")

# Fields read back by lookups and reads; $select keeps SAP from sending all 109 properties. The ETag
# property is selected too, so that SAP can compute the ETag of what it sends.
_STATUS_FIELDS = (
    "MaintenanceNotification",
    "MaintNotifExtReferenceNumber",
    "NotifProcessingPhase",
    "ConcatenatedActiveSystStsName",
    "MaintNotificationCodeGroup",
    "MaintNotificationCode",
    "MaintenanceOrder",
    "LastChangeDateTime",
)
_UPDATE_FIELDS = (*_STATUS_FIELDS, "MaintPriority", "MaintNotifLongTextForEdit")
# How many lookup matches are read; more than one means duplicates created outside plantwatch's control.
_LOOKUP_TOP = "10"
# Longest piece of a non-JSON error page kept in an ErpError message.
_MAX_MESSAGE_CHARS = 300
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")
_UNRESERVED_IN_QUERY = "'(),$"
_UNRESERVED_IN_KEY = "'(),="


def utf16_length(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of an ABAP CHAR field's length."""
    return len(text.encode("utf-16-le")) // 2


def odata_string_literal(value: str) -> str:
    """``value`` as an OData string literal: single quotes, inner quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def v2_date_literal(epoch_s: float) -> str:
    """``Edm.DateTime`` (display format Date) in V2 JSON: the UTC day of ``epoch_s`` as ``/Date(<ms>)/``.

    >>> v2_date_literal(86400 * 20000 + 3600)
    '/Date(1728000000000)/'
    """
    return f"/Date({int(epoch_s // 86400) * 86400 * 1000})/"


def notification_status(phase: str, system_status: str = "") -> str:
    """:data:`plantwatch.gateway.erp.STATUSES` entry for a phase and system status text.

    >>> notification_status("3")
    'in_process'
    >>> notification_status("", "NOCO ORAS")
    'completed'
    """
    if phase in PHASE_STATUS:
        return PHASE_STATUS[phase]
    tokens = system_status.split()
    for token, status in SYSTEM_STATUS_STATUS:
        if token in tokens:
            return status
    return "unknown"


@dataclass(frozen=True)
class OutcomeCoding:
    """Which notification header coding means which planner outcome (customizing of the SAP system).

    The planner codes the notification (``MaintNotificationCodeGroup`` / ``MaintNotificationCode``, catalog
    D "Coding") before completing it; any other coding, or none, gives no outcome.

    >>> OutcomeCoding().outcome("PLANTWCH", "NFF")
    'no_fault_found'
    """

    code_group: str = "PLANTWCH"
    fault_confirmed: str = "FLT"
    no_fault_found: str = "NFF"

    def __post_init__(self) -> None:
        if not 0 < utf16_length(self.code_group) <= CODE_GROUP_MAX:
            raise ValueError(f"code_group must be 1..{CODE_GROUP_MAX} characters")
        for code in (self.fault_confirmed, self.no_fault_found):
            if not 0 < utf16_length(code) <= CODE_MAX:
                raise ValueError(f"codes must be 1..{CODE_MAX} characters, got {code!r}")
        if self.fault_confirmed.upper() == self.no_fault_found.upper():
            raise ValueError("fault_confirmed and no_fault_found must be different codes")

    def outcome(self, code_group: str, code: str) -> str | None:
        """``"fault_confirmed"``, ``"no_fault_found"`` or None for a coding read from SAP."""
        if code_group.upper() != self.code_group.upper():
            return None
        if code.upper() == self.fault_confirmed.upper():
            return "fault_confirmed"
        if code.upper() == self.no_fault_found.upper():
            return "no_fault_found"
        return None


@dataclass(frozen=True)
class _Lot:
    """The stock a hold acts on, checked against SAP's field lengths."""

    material: str
    batch: str
    plant: str | None
    storage_location: str | None
    quantity: str | None  # Edm.Decimal(13,3) literal
    unit: str | None


class SapAdapter:
    """Maintenance notifications, maintenance orders and quality holds in SAP S/4HANA (an ``ErpAdapter``).

    Keyword-only options:

    - ``base_url``: scheme and host of the SAP system, e.g. ``https://s4.example.com:44300``.
    - ``user``, ``password``: the communication user (Basic auth).
    - ``timeout_s``: socket timeout of one HTTP request, in seconds.
    - ``notification_type``: ``NotificationType`` of created notifications (customizing; M2 =
      malfunction report in SAP's standard).
    - ``technical_object_type``: ``TechObjIsEquipOrFuncnlLoc``; ``EAMS_EQUI`` when assets are equipment,
      ``EAMS_FL`` for functional locations.
    - ``service_path``: path of the notification service root, for systems behind an API gateway with a
      prefix.
    - ``clock``: turns an HTTP-date ``Retry-After`` into seconds and dates goods movements.
    - ``create_order``: also create a maintenance order for each new notification.
    - ``order_type``: ``MaintenanceOrderType`` of those orders (customizing; PM01 = repair order in SAP's
      standard).
    - ``hold_method``: how a hold blocks the lot: ``"goods_movement"`` (movement type 344 to blocked stock;
      needs material, lot, plant, storage location, quantity and unit) or ``"batch_restriction"`` (the
      batch's restricted-use flag; needs material and lot).
    - ``quality_notification_type``: type of the hold's quality notification (Q3 = internal problem).
    - ``outcome_coding``: which header coding means which planner outcome (:class:`OutcomeCoding`).

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
        create_order: bool = False,
        order_type: str = "PM01",
        hold_method: HoldMethod = "goods_movement",
        quality_notification_type: str = "Q3",
        outcome_coding: OutcomeCoding | None = None,
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
        if not 0 < utf16_length(notification_type) <= NOTIFICATION_TYPE_MAX:
            raise ValueError(f"notification_type must be 1..{NOTIFICATION_TYPE_MAX} characters")
        if not 0 < utf16_length(quality_notification_type) <= NOTIFICATION_TYPE_MAX:
            raise ValueError(f"quality_notification_type must be 1..{NOTIFICATION_TYPE_MAX} characters")
        if not 0 < utf16_length(technical_object_type) <= TECHNICAL_OBJECT_TYPE_MAX:
            raise ValueError(f"technical_object_type must be 1..{TECHNICAL_OBJECT_TYPE_MAX} characters")
        if not 0 < utf16_length(order_type) <= ORDER_TYPE_MAX:
            raise ValueError(f"order_type must be 1..{ORDER_TYPE_MAX} characters")
        if hold_method not in HOLD_METHODS:
            raise ValueError(f"hold_method must be one of {', '.join(HOLD_METHODS)}, got {hold_method!r}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        root = base_url.rstrip("/")
        self._service_url = root + "/" + service_path.strip("/")
        self._order_service_url = root + ORDER_SERVICE_PATH
        self._material_document_service_url = root + MATERIAL_DOCUMENT_SERVICE_PATH
        self._batch_service_url = root + BATCH_SERVICE_PATH
        self._quality_service_url = root + QUALITY_NOTIFICATION_SERVICE_PATH
        self._authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._timeout_s = timeout_s
        self._notification_type = notification_type.upper()
        self._quality_notification_type = quality_notification_type.upper()
        self._technical_object_type = technical_object_type.upper()
        self._technical_object_max = (
            EQUIPMENT_MAX
            if self._technical_object_type == TECHNICAL_OBJECT_EQUIPMENT
            else TECHNICAL_OBJECT_MAX
        )
        self._create_order = create_order
        self._order_type = order_type.upper()
        self._hold_method: HoldMethod = hold_method
        self._outcome_coding = outcome_coding or OutcomeCoding()
        self._clock: Clock = clock or SystemClock()
        self._cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self._cookies), NoRedirect()
        )
        self._csrf_lock = threading.Lock()
        self._csrf_token: str | None = None
        self._csrf_fetched = False

    # -- ErpAdapter: maintenance notifications -------------------------------------------------------

    def create_notification(self, request: NotificationRequest) -> ErpDocument:
        """Create a maintenance notification for ``request`` unless one has its correlation id already.

        With ``create_order``, also an order for it (and for a found notification without one, the retry
        after a crash between the two). Raises :class:`ErpError` (code ``client_validation`` before
        anything is sent if the request cannot fit SAP's fields).
        """
        payload = self.notification_payload(request)
        if self._create_order:
            self.order_payload(request, "0")  # refuses what cannot fit before anything is created
        existing = self._find_notification_entity(request.correlation_id)
        if existing is not None:
            document = self._notification_document(existing, created=False)
            event(
                log,
                logging.INFO,
                "sap_notification_exists",
                correlation_id=request.correlation_id,
                number=document.number,
                status=document.status,
            )
            entity = existing
        else:
            reply = self._modify("POST", self._service_url + "/" + ENTITY_SET, payload)
            if reply.status != 201:
                raise self._error(reply)
            entity = self._v2_entity(reply, "MaintenanceNotification")
            document = self._notification_document(entity, created=True)
            event(
                log,
                logging.INFO,
                "sap_notification_created",
                correlation_id=request.correlation_id,
                number=document.number,
                asset=request.asset,
            )
        if self._create_order and document.status != "completed":
            self._ensure_order(request, entity)
        return document

    def find_notification(self, correlation_id: str) -> ErpDocument | None:
        """The notification whose ``MaintNotifExtReferenceNumber`` is ``correlation_id``, or None.

        If SAP holds several (created outside plantwatch's control), the oldest one is returned.
        """
        entity = self._find_notification_entity(correlation_id)
        return None if entity is None else self._notification_document(entity, created=False)

    def update_notification(self, update: NotificationUpdate) -> ErpDocument:
        """Raise the notification's priority to ``update.priority`` (never lower it) and add ``update.note``
        to its long text, with the ETag read just before (one re-read and retry on 412).

        A completed notification is returned unchanged. Raises :class:`ErpError`; code ``wrong_document``
        if the notification carries another correlation id.
        """
        _check_correlation_id(update.correlation_id)
        _check_number(update.number)
        if update.priority not in PRIORITIES:
            raise _invalid(f"priority {update.priority!r} is not one of {', '.join(PRIORITIES)}")
        url = self._key_url(self._service_url, ENTITY_SET, {"MaintenanceNotification": update.number})

        def read() -> tuple[dict[str, Any], str | None]:
            return self._read_notification_entity(update.number, _UPDATE_FIELDS)

        def changes(entity: Mapping[str, Any]) -> dict[str, str] | None:
            reference = str(entity.get("MaintNotifExtReferenceNumber") or "")
            if reference != update.correlation_id:
                raise ErpError(
                    BACKEND,
                    f"notification {update.number} carries reference {reference!r},"
                    f" not {update.correlation_id!r}",
                    code="wrong_document",
                )
            if self._notification_document(entity, created=False).status == "completed":
                return None
            payload: dict[str, str] = {}
            priority = raised_priority(str(entity.get("MaintPriority") or ""), update.priority)
            if priority is not None:
                payload["MaintPriority"] = priority
            text = appended_long_text(
                str(entity.get("MaintNotifLongTextForEdit") or ""), update.note, LONG_TEXT_MAX, utf16_length
            )
            if text is not None:
                payload["MaintNotifLongTextForEdit"] = text
            return payload or None

        entity, changed = self._update_with_etag("notification", url, read, changes)
        document = self._notification_document(entity, created=False)
        event(
            log,
            logging.INFO,
            "sap_notification_updated" if changed else "sap_notification_unchanged",
            correlation_id=update.correlation_id,
            number=document.number,
            status=document.status,
            fields=",".join(sorted(changed)) if changed else "-",
        )
        return document

    def read_notification(self, number: str) -> ErpDocument:
        """The notification's status and, once completed, the planner's outcome from its coding."""
        _check_number(number)
        entity, _etag = self._read_notification_entity(number, _STATUS_FIELDS)
        return self._notification_document(entity, created=False)

    # -- ErpAdapter: quality holds ------------------------------------------------------------------

    def create_hold(self, request: HoldRequest) -> ErpDocument:
        """Hold ``request``'s lot: a quality notification carrying the correlation id, then the stock step
        of ``hold_method``; or return the hold that already has the correlation id, completing a missing
        stock step (a crash between the two).

        Raises :class:`ErpError` (``client_validation`` before anything is sent when the request lacks
        what the hold method needs or cannot fit SAP's fields). ``request.long_text`` is not sent: the only
        long-text sets known of the quality notification service are per item and per task, and inventing a
        header long-text field without the metadata would be worse than leaving it out.
        """
        payload = self.quality_notification_payload(request)
        lot = self._lot(request)
        entity = self._find_quality_notification_entity(request.correlation_id)
        created = entity is None
        if entity is None:
            reply = self._modify(
                "POST", self._quality_service_url + "/" + QUALITY_NOTIFICATION_ENTITY_SET, payload
            )
            if reply.status != 201:
                raise self._error(reply)
            entity = self._json(reply)
            if not entity.get(QN_KEY):
                raise ErpError(BACKEND, f"answer has no {QN_KEY}", status=reply.status, code="bad_response")
            event(
                log,
                logging.INFO,
                "sap_quality_notification_created",
                correlation_id=request.correlation_id,
                number=entity[QN_KEY],
                production_order=request.production_order,
                lot=request.lot,
            )
        number = str(entity[QN_KEY])
        if self._hold_method == "goods_movement":
            self._ensure_goods_movement(request, lot, number)
        else:
            self._ensure_batch_restriction(request, lot)
        return self._quality_document(entity, created=created)

    def find_hold(self, correlation_id: str) -> ErpDocument | None:
        """The quality notification carrying ``correlation_id``, or None.

        It does not look at the stock step: a hold whose movement or restriction is missing (a crash in
        between) is completed by :meth:`create_hold`, which the gateway calls on every retry.
        """
        entity = self._find_quality_notification_entity(correlation_id)
        return None if entity is None else self._quality_document(entity, created=False)

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

    # -- requests as SAP fields ---------------------------------------------------------------------

    def notification_payload(self, request: NotificationRequest) -> dict[str, str]:
        """The JSON body of the POST for ``request``; raises ``ErpError`` (``client_validation``)."""
        _check_correlation_id(request.correlation_id)
        technical_object = self._technical_object(request.asset)
        if utf16_length(request.priority) != PRIORITY_MAX:
            raise _invalid(f"priority {request.priority!r} does not fit MaintPriority (exactly 1 character)")
        if request.severity not in SEVERITIES:
            raise _invalid(f"severity {request.severity!r} is not one of {', '.join(SEVERITIES)}")
        short_text = _short_text(request.title, NOTIFICATION_TEXT_MAX, "NotificationText")
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

    def order_payload(self, request: NotificationRequest, notification_number: str) -> dict[str, Any]:
        """The JSON body of the order POST (deep insert of its one operation) for ``request``'s notification.

        Raises ``ErpError`` (``client_validation``).
        """
        technical_object = self._technical_object(request.asset)
        if self._technical_object_type == TECHNICAL_OBJECT_EQUIPMENT:
            reference = {"Equipment": technical_object}
        else:
            if utf16_length(technical_object) > FUNCTIONAL_LOCATION_MAX:
                raise _invalid(
                    f"asset {request.asset!r} does not fit the order's FunctionalLocation"
                    f" (1..{FUNCTIONAL_LOCATION_MAX} characters)"
                )
            reference = {"FunctionalLocation": technical_object}
        description = _short_text(request.title, ORDER_DESCRIPTION_MAX, "MaintenanceOrderDesc")
        return {
            "MaintenanceOrderType": self._order_type,
            "MaintenanceOrderDesc": description,
            "MaintenanceNotification": notification_number,
            **reference,
            "MaintPriority": request.priority,
            "to_MaintenanceOrderOperation": [
                {
                    "MaintenanceOrderOperation": FIRST_OPERATION,
                    "MaintenanceOrderSubOperation": NO_SUB_OPERATION,
                    "OperationDescription": shorten(description, OPERATION_DESCRIPTION_MAX, utf16_length),
                }
            ],
        }

    def quality_notification_payload(self, request: HoldRequest) -> dict[str, str]:
        """The JSON body of the quality notification POST for ``request`` (field names partly ASSUMED, see
        the ``QN_*`` constants). Raises ``ErpError`` (``client_validation``)."""
        _check_correlation_id(request.correlation_id)
        order = request.production_order.strip().upper()
        if not order or utf16_length(order) > MANUFACTURING_ORDER_MAX:
            raise _invalid(
                f"production_order {request.production_order!r} does not fit {QN_MANUFACTURING_ORDER}"
                f" (1..{MANUFACTURING_ORDER_MAX} characters)"
            )
        payload = {
            QN_TYPE: self._quality_notification_type,
            QN_TEXT: _short_text(request.title, NOTIFICATION_TEXT_MAX, QN_TEXT),
            QN_REFERENCE: request.correlation_id,
            QN_MANUFACTURING_ORDER: order,
        }
        for name, value, limit in (
            (QN_MATERIAL, request.material, MATERIAL_MAX),
            (QN_PLANT, request.plant, PLANT_MAX),
            (QN_BATCH, request.lot, BATCH_MAX),
        ):
            if value is not None and value.strip():
                payload[name] = _identifier(value, limit, name)
        return payload

    def goods_movement_payload(self, request: HoldRequest, quality_notification: str) -> dict[str, Any]:
        """The JSON body of the material document POST moving ``request``'s lot to blocked stock (344)."""
        lot = self._lot(request, method="goods_movement")
        day = v2_date_literal(self._clock.now())
        if utf16_length(quality_notification) > REFERENCE_DOCUMENT_MAX:
            raise _invalid(f"quality notification {quality_notification!r} does not fit ReferenceDocument")
        return {
            "GoodsMovementCode": GOODS_MOVEMENT_TRANSFER_POSTING,
            "PostingDate": day,
            "DocumentDate": day,
            "MaterialDocumentHeaderText": request.correlation_id,
            "ReferenceDocument": quality_notification,
            "to_MaterialDocumentItem": [
                {
                    "Material": lot.material,
                    "Plant": lot.plant,
                    "StorageLocation": lot.storage_location,
                    "Batch": lot.batch,
                    "GoodsMovementType": MOVEMENT_TYPE_TO_BLOCKED,
                    "QuantityInEntryUnit": lot.quantity,
                    "EntryUnit": lot.unit,
                    "MaterialDocumentItemText": _short_text(
                        request.title, MATERIAL_DOCUMENT_ITEM_TEXT_MAX, "MaterialDocumentItemText"
                    ),
                }
            ],
        }

    def _technical_object(self, asset: str) -> str:
        technical_object = asset.strip().upper()
        if not technical_object or utf16_length(technical_object) > self._technical_object_max:
            raise _invalid(
                f"asset {asset!r} does not fit TechnicalObject (1..{self._technical_object_max} characters"
                f" for {self._technical_object_type})"
            )
        return technical_object

    def _lot(self, request: HoldRequest, method: HoldMethod | None = None) -> _Lot:
        """The lot's stock fields for ``method`` (default: the adapter's), checked; raises
        ``client_validation`` naming what is missing."""
        method = method or self._hold_method
        needed = {"material": request.material, "lot": request.lot}
        if method == "goods_movement":
            needed.update(
                plant=request.plant,
                storage_location=request.storage_location,
                quantity=None if request.quantity is None else str(request.quantity),
                unit=request.unit,
            )
        missing = [name for name, value in needed.items() if value is None or not str(value).strip()]
        if missing:
            raise _invalid(
                f"a hold by {method} needs {', '.join(missing)} (correlation_id {request.correlation_id})"
            )
        assert request.material is not None and request.lot is not None  # checked just above
        quantity = None
        if method == "goods_movement":
            assert request.quantity is not None
            quantity = _quantity_literal(request.quantity)
        return _Lot(
            material=_identifier(request.material, MATERIAL_MAX, "Material"),
            batch=_identifier(request.lot, BATCH_MAX, "Batch"),
            plant=None if request.plant is None else _identifier(request.plant, PLANT_MAX, "Plant"),
            storage_location=(
                None
                if request.storage_location is None
                else _identifier(request.storage_location, STORAGE_LOCATION_MAX, "StorageLocation")
            ),
            quantity=quantity,
            unit=None
            if request.unit is None
            else _identifier(request.unit, UNIT_MAX, "EntryUnit", upper=False),
        )

    # -- steps --------------------------------------------------------------------------------------

    def _find_notification_entity(self, correlation_id: str) -> dict[str, Any] | None:
        _check_correlation_id(correlation_id)
        matches = self._lookup(
            self._service_url,
            ENTITY_SET,
            "MaintNotifExtReferenceNumber",
            correlation_id,
            _STATUS_FIELDS,
            version="2",
        )
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
        return matches[0]

    def _read_notification_entity(
        self, number: str, fields: tuple[str, ...]
    ) -> tuple[dict[str, Any], str | None]:
        url = self._key_url(self._service_url, ENTITY_SET, {"MaintenanceNotification": number})
        reply = self._send(
            "GET", url + "?" + _query({"$select": ",".join(fields)}), {"Accept": "application/json"}
        )
        if reply.status != 200:
            raise self._error(reply)
        entity = self._v2_entity(reply, "MaintenanceNotification")
        return entity, _etag(reply, entity)

    def _ensure_order(self, request: NotificationRequest, notification: Mapping[str, Any]) -> str:
        """The notification's order: the one SAP shows on the notification, or a new one."""
        number = str(notification["MaintenanceNotification"])
        existing = str(notification.get("MaintenanceOrder") or "")
        if existing:
            event(
                log,
                logging.INFO,
                "sap_order_exists",
                correlation_id=request.correlation_id,
                notification=number,
                order=existing,
            )
            return existing
        reply = self._modify(
            "POST", self._order_service_url + "/" + ORDER_ENTITY_SET, self.order_payload(request, number)
        )
        if reply.status != 201:
            raise self._error(reply)
        order = str(self._v2_entity(reply, "MaintenanceOrder")["MaintenanceOrder"])
        event(
            log,
            logging.INFO,
            "sap_order_created",
            correlation_id=request.correlation_id,
            notification=number,
            order=order,
            order_type=self._order_type,
        )
        return order

    def _find_quality_notification_entity(self, correlation_id: str) -> dict[str, Any] | None:
        _check_correlation_id(correlation_id)
        matches = self._lookup(
            self._quality_service_url,
            QUALITY_NOTIFICATION_ENTITY_SET,
            QN_REFERENCE,
            correlation_id,
            (QN_KEY, QN_REFERENCE, QN_PHASE),
            version="4",
        )
        if not matches:
            return None
        matches.sort(key=lambda entity: _number_order(str(entity.get(QN_KEY, ""))))
        if len(matches) > 1:
            event(
                log,
                logging.WARNING,
                "sap_duplicate_reference",
                correlation_id=correlation_id,
                numbers=",".join(str(entity.get(QN_KEY)) for entity in matches),
            )
        return matches[0]

    def _ensure_goods_movement(self, request: HoldRequest, lot: _Lot, quality_notification: str) -> None:
        """Post the transfer to blocked stock unless a material document carries the correlation id."""
        found = self._lookup(
            self._material_document_service_url,
            MATERIAL_DOCUMENT_ENTITY_SET,
            "MaterialDocumentHeaderText",
            request.correlation_id,
            ("MaterialDocumentYear", "MaterialDocument", "MaterialDocumentHeaderText"),
            version="2",
        )
        if found:
            event(
                log,
                logging.INFO,
                "sap_goods_movement_exists",
                correlation_id=request.correlation_id,
                material_document=found[0].get("MaterialDocument"),
                year=found[0].get("MaterialDocumentYear"),
            )
            return
        reply = self._modify(
            "POST",
            self._material_document_service_url + "/" + MATERIAL_DOCUMENT_ENTITY_SET,
            self.goods_movement_payload(request, quality_notification),
        )
        if reply.status != 201:
            raise self._error(reply)
        header = self._v2_entity(reply, "MaterialDocument")
        event(
            log,
            logging.INFO,
            "sap_goods_movement_posted",
            correlation_id=request.correlation_id,
            material_document=header["MaterialDocument"],
            year=header.get("MaterialDocumentYear"),
            material=lot.material,
            batch=lot.batch,
            quantity=lot.quantity,
            unit=lot.unit,
        )

    def _ensure_batch_restriction(self, request: HoldRequest, lot: _Lot) -> None:
        """Set the batch to restricted use unless it is already (ETag as read; one retry on 412)."""

        entity = self._find_batch(lot)
        first_read = [entity]  # the read that gave the key is the first read of the update

        def read() -> tuple[dict[str, Any], str | None]:
            found = first_read.pop() if first_read else self._find_batch(lot)
            return found, _etag(None, found)

        def changes(found: Mapping[str, Any]) -> dict[str, bool] | None:
            if found.get("MatlBatchIsInRstrcdUseStock") is True:
                return None
            return {"MatlBatchIsInRstrcdUseStock": True}

        url = self._key_url(
            self._batch_service_url,
            BATCH_ENTITY_SET,
            {
                "Material": str(entity["Material"]),
                "BatchIdentifyingPlant": str(entity.get("BatchIdentifyingPlant") or ""),
                "Batch": str(entity["Batch"]),
            },
        )
        _entity, changed = self._update_with_etag("batch", url, read, changes)
        event(
            log,
            logging.INFO,
            "sap_batch_restricted" if changed else "sap_batch_already_restricted",
            correlation_id=request.correlation_id,
            material=lot.material,
            batch=lot.batch,
        )

    def _find_batch(self, lot: _Lot) -> dict[str, Any]:
        """The batch entity of ``lot``: the plant's own if batches are unique per plant, else the
        material's (``BatchIdentifyingPlant`` empty)."""
        query = {
            "$filter": f"Material eq {odata_string_literal(lot.material)}"
            f" and Batch eq {odata_string_literal(lot.batch)}",
            "$top": _LOOKUP_TOP,
        }
        url = self._batch_service_url + "/" + BATCH_ENTITY_SET + "?" + _query(query)
        reply = self._send("GET", url, {"Accept": "application/json"})
        if reply.status != 200:
            raise self._error(reply)
        candidates = [
            entity
            for entity in self._v2_results(reply)
            if entity.get("Material") == lot.material and entity.get("Batch") == lot.batch
        ]
        for entity in candidates:
            if lot.plant and entity.get("BatchIdentifyingPlant") == lot.plant:
                return entity
        for entity in candidates:
            if not entity.get("BatchIdentifyingPlant"):
                return entity
        raise ErpError(
            BACKEND,
            f"batch {lot.batch} of material {lot.material} not found"
            + (f" for plant {lot.plant}" if lot.plant else ""),
            status=reply.status,
            code="not_found",
        )

    def _update_with_etag(
        self,
        what: str,
        url: str,
        read: Callable[[], tuple[dict[str, Any], str | None]],
        changes: Callable[[Mapping[str, Any]], Mapping[str, Any] | None],
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Read (entity, ETag), decide the changes, PATCH them with ``If-Match``; on 412 do it all once more.

        Returns the entity as last read and the names of the properties changed (empty: nothing to do).
        """
        for attempt in (1, 2):
            entity, etag = read()
            payload = changes(entity)
            if not payload:
                return entity, ()
            headers = {"If-Match": etag} if etag else {}
            reply = self._modify("PATCH", url, payload, headers)
            if reply.status in (200, 204):
                return entity, tuple(payload)
            if reply.status == 412 and attempt == 1:
                event(log, logging.INFO, "sap_etag_stale", what=what, url=url)
                continue
            # A second 412 means someone keeps changing it; later may well work.
            raise self._error(reply, retryable=True if reply.status == 412 else None)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _lookup(
        self,
        service_url: str,
        entity_set: str,
        reference_field: str,
        correlation_id: str,
        fields: tuple[str, ...],
        *,
        version: Literal["2", "4"],
    ) -> list[dict[str, Any]]:
        """Entities of ``entity_set`` whose ``reference_field`` is ``correlation_id`` (exact match)."""
        query = {
            "$filter": f"{reference_field} eq {odata_string_literal(correlation_id)}",
            "$select": ",".join(fields),
            "$top": _LOOKUP_TOP,
        }
        url = service_url + "/" + entity_set + "?" + _query(query)
        reply = self._send("GET", url, {"Accept": "application/json"})
        if reply.status != 200:
            raise self._error(reply)
        results = self._v2_results(reply) if version == "2" else self._v4_values(reply)
        return [entity for entity in results if entity.get(reference_field) == correlation_id]

    # -- HTTP -------------------------------------------------------------------------------------

    def _key_url(self, service_url: str, entity_set: str, keys: Mapping[str, str]) -> str:
        if len(keys) == 1:
            predicate = odata_string_literal(next(iter(keys.values())))
        else:
            predicate = ",".join(f"{name}={odata_string_literal(value)}" for name, value in keys.items())
        return service_url + "/" + quote(f"{entity_set}({predicate})", safe=_UNRESERVED_IN_KEY)

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> HttpReply:
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Authorization", self._authorization)
        for name, value in headers.items():
            request.add_header(name, value)
        return http_exchange(
            self._opener, request, timeout_s=self._timeout_s, backend=BACKEND, target=self._service_url
        )

    def _fetch_csrf_token(self) -> bytes:
        """GET the notification service root with ``X-CSRF-Token: Fetch``; keep the token, return the body."""
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

    def _modify(
        self, method: str, url: str, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> HttpReply:
        """Send a modifying request with the CSRF token, refetching the token once if SAP wants it."""
        body = json.dumps(payload).encode("utf-8")
        if not self._csrf_fetched:
            self._fetch_csrf_token()
        for attempt in (1, 2):
            sent = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
            if self._csrf_token:
                sent["X-CSRF-Token"] = self._csrf_token
            reply = self._send(method, url, sent, body)
            csrf_refused = (
                reply.status == 403 and (_header(reply.headers, "X-CSRF-Token") or "").lower() == "required"
            )
            if not csrf_refused or attempt == 2:
                return reply
            event(log, logging.INFO, "sap_csrf_refetch", method=method, url=url)
            self._fetch_csrf_token()
        raise AssertionError("unreachable")  # the loop always returns

    # -- answers ------------------------------------------------------------------------------------

    def _json(self, reply: HttpReply) -> dict[str, Any]:
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

    def _v2_entity(self, reply: HttpReply, key: str) -> dict[str, Any]:
        entity = self._json(reply).get("d")
        if not isinstance(entity, dict) or not entity.get(key):
            raise ErpError(BACKEND, f"answer has no d.{key}", status=reply.status, code="bad_response")
        return entity

    def _v2_results(self, reply: HttpReply) -> list[dict[str, Any]]:
        results = self._json(reply).get("d", {}).get("results")
        if not isinstance(results, list):
            raise ErpError(BACKEND, "answer has no d.results list", status=reply.status, code="bad_response")
        return [entity for entity in results if isinstance(entity, dict)]

    def _v4_values(self, reply: HttpReply) -> list[dict[str, Any]]:
        values = self._json(reply).get("value")
        if not isinstance(values, list):
            raise ErpError(BACKEND, "answer has no value list", status=reply.status, code="bad_response")
        return [entity for entity in values if isinstance(entity, dict)]

    def _notification_document(self, entity: Mapping[str, Any], *, created: bool) -> ErpDocument:
        status = notification_status(
            str(entity.get("NotifProcessingPhase") or ""),
            str(entity.get("ConcatenatedActiveSystStsName") or ""),
        )
        outcome = None
        if status == "completed":
            outcome = self._outcome_coding.outcome(
                str(entity.get("MaintNotificationCodeGroup") or ""),
                str(entity.get("MaintNotificationCode") or ""),
            )
        return ErpDocument(
            number=str(entity["MaintenanceNotification"]),
            correlation_id=str(entity.get("MaintNotifExtReferenceNumber") or ""),
            created=created,
            status=status,
            outcome=outcome,
        )

    def _quality_document(self, entity: Mapping[str, Any], *, created: bool) -> ErpDocument:
        return ErpDocument(
            number=str(entity[QN_KEY]),
            correlation_id=str(entity.get(QN_REFERENCE) or ""),
            created=created,
            status=notification_status(str(entity.get(QN_PHASE) or "")),
        )

    def _error(self, reply: HttpReply, *, retryable: bool | None = None) -> ErpError:
        code, message = _sap_message(reply)
        if retryable is None:
            retryable = is_retryable_status(reply.status)
        retry_after_s = (
            parse_retry_after(_header(reply.headers, "Retry-After"), self._clock.now()) if retryable else None
        )
        return ErpError(
            BACKEND, message, status=reply.status, code=code, retryable=retryable, retry_after_s=retry_after_s
        )


def _query(options: Mapping[str, str]) -> str:
    return urlencode(options, quote_via=quote, safe=_UNRESERVED_IN_QUERY)


def _etag(reply: HttpReply | None, entity: Mapping[str, Any]) -> str | None:
    """The ETag of an entity: the ``ETag`` header of a single read, else ``__metadata.etag`` (V2) or
    ``@odata.etag`` (V4) in the entity."""
    if reply is not None:
        header = _header(reply.headers, "ETag")
        if header:
            return header
    metadata = entity.get("__metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("etag"), str):
        return str(metadata["etag"])
    etag = entity.get("@odata.etag")
    return etag if isinstance(etag, str) else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _sap_message(reply: HttpReply) -> tuple[str | None, str]:
    """(code, message) from SAP's V2 or V4 error body, else from the text of the page."""
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


def _short_text(title: str, limit: int, field_name: str) -> str:
    # A short text is one line in SAP's UI; line breaks and tabs would be stored as garbage.
    text = _CONTROL_CHARACTERS.sub(" ", title).strip()
    if not text:
        raise _invalid(f"title is empty; {field_name} is required")
    return shorten(text, limit, utf16_length)


def _identifier(value: str, limit: int, field_name: str, *, upper: bool = True) -> str:
    text = value.strip().upper() if upper else value.strip()
    if not text or utf16_length(text) > limit or _CONTROL_CHARACTERS.search(text):
        raise _invalid(f"{value!r} does not fit {field_name} (1..{limit} characters)")
    return text


def _quantity_literal(quantity: float) -> str:
    """``quantity`` as an Edm.Decimal(13,3) literal; more decimals would change it, so they are refused."""
    rounded = round(quantity, QUANTITY_SCALE)
    if not quantity > 0 or abs(rounded - quantity) > 1e-9 or Decimal(str(rounded)) >= QUANTITY_LIMIT:
        raise _invalid(f"quantity {quantity!r} does not fit QuantityInEntryUnit (> 0, Decimal(13,3))")
    return f"{Decimal(str(rounded)):.{QUANTITY_SCALE}f}"


def _check_correlation_id(correlation_id: str) -> None:
    if not CORRELATION_ID_PATTERN.match(correlation_id):
        raise _invalid(
            f"correlation_id {correlation_id!r} does not fit MaintNotifExtReferenceNumber (1..20 of [A-Z0-9])"
        )


def _check_number(number: str) -> None:
    if not number or utf16_length(number) > NOTIFICATION_NUMBER_MAX or _CONTROL_CHARACTERS.search(number):
        raise _invalid(
            f"notification number {number!r} does not fit MaintenanceNotification (1..12 characters)"
        )


def _invalid(message: str) -> ErpError:
    return ErpError(BACKEND, message, code="client_validation", retryable=False)


def _number_order(number: str) -> tuple[int, str]:
    return (int(number), number) if number.isdigit() else (1 << 62, number)
