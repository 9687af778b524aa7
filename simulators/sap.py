"""A simulator of the SAP S/4HANA OData services plantwatch talks to, served over loopback HTTP.

It stands in for SAP in demos and tests and follows SAP's published contract
(``../shared/specs/sap/SUMMARY.md``): the property names, Edm types, MaxLength and creatable /
updatable flags of the ``*_PROPERTIES`` tables are those of SAP's EDMX files (tests compare them), and the
protocol rules are those listed there under "Not from metadata" (Basic auth, CSRF token bound to a session
cookie, V2 and V4 JSON, SAP's V2 error body and the V4 error format, ETag / If-Match, function imports
parameterised in the URL only).

Services and what is served (everything else SAP's service has gets 501, never a silent success):

- ``API_MAINTNOTIFICATION`` (V2, :data:`SERVICE_ROOT`): ``GET /``, ``GET /$metadata``,
  ``GET/POST MaintenanceNotification`` with ``$filter`` (``eq``/``ne``, ``and``/``or``, parentheses, string
  literals, ``true``/``false``), ``$top``, ``$skip``, ``$select``, ``$inlinecount``, ``$format=json``;
  ``GET/PATCH/MERGE/PUT MaintenanceNotification('…')`` (updates need ``If-Match``);
  ``POST SetMaintNotifToInProcess?…`` and ``POST CompleteMaintNotification?…``.
- ``API_MAINTENANCEORDER;v=0002`` (V2, :data:`ORDER_SERVICE_ROOT`): ``GET/POST MaintenanceOrder`` with its
  operations only by deep insert (``to_MaintenanceOrderOperation``; the set ``MaintenanceOrderOperation``
  is ``sap:creatable="false"``, a direct POST gets 405), ``GET MaintenanceOrderOperation``.
- ``API_MATERIAL_DOCUMENT_SRV`` (V2, :data:`MATERIAL_DOCUMENT_SERVICE_ROOT`): ``GET/POST
  A_MaterialDocumentHeader`` with items only by deep insert (``to_MaterialDocumentItem``), ``GET
  A_MaterialDocumentItem``. Goods movement code 04 (transfer posting) with movement types 344
  (unrestricted-use → blocked) and 343 (back) move the simulated stock.
- ``API_BATCH_SRV`` (V2, :data:`BATCH_SERVICE_ROOT`; schema from SAP's generated client, SUMMARY §5):
  ``GET Batch``, ``PATCH/MERGE Batch(Material='…',BatchIdentifyingPlant='…',Batch='…')``; batches are
  seeded with :meth:`SapSimulator.add_batch`.
- ``CE_QUALITYNOTIFICATION_0001`` (V4, :data:`QUALITY_NOTIFICATION_SERVICE_ROOT`): ``GET/POST
  QualityNotification``. **SAP's metadata for this service is not available** (SUMMARY §3): the root, the
  entity set, the key ``QualityNotification`` and ``NotifProcessingPhase`` are from public client code; every
  other property in :data:`QUALITY_NOTIFICATION_PROPERTIES` is ASSUMED (named after the same fields of
  ``API_MAINTNOTIFICATION``, which sits on the same notification table), and so is everything this simulator
  does with them.

The planner's outcome. ``API_MAINTNOTIFICATION`` gives the notification header one code from the coding
catalog (``MaintNotificationCatalog``, "Catalog Type - Coding", read-only; ``MaintNotificationCodeGroup``
String(8) and ``MaintNotificationCode`` String(4), both writable). A planner who closes a notification
codes it and completes it through ``CompleteMaintNotification``. The code groups are customizing of each
system; this simulated system has the coding catalog :data:`CODING_CATALOG` with plantwatch's code group
``PLANTWCH``: ``FLT`` = fault confirmed, ``NFF`` = no fault found (:data:`OUTCOME_CODING`), which is what the
adapter's default ``OutcomeCoding`` reads back. :meth:`SapSimulator.complete_notification` does what the
planner does.

Choices the sources do not settle, made here and named so a reader can tell them from SAP's contract:

- An update of an entity with an ETag (notification, batch) without ``If-Match`` gets 412, like one with a
  stale ETag (SUMMARY "Not from metadata" §4: no source says what SAP does; 428 would be as plausible).
  Whether API_BATCH_SRV wants If-Match at all is not stated either; here it does.
- V2 data requests must ask for JSON (``Accept: application/json`` or ``$format=json``), else 406; SAP would
  answer in Atom XML. V4 answers JSON anyway. Error bodies are always JSON.
- Error ``code`` values are the simulator's own (``SAPSIM/...``); SAP's T100 message numbers for these
  errors are not in the sources. Messages name the property and the problem.
- Values of properties whose ``sap:display-format`` is ``UpperCase`` are stored upper-cased. ``MaxLength``
  counts UTF-16 code units, as ABAP does. ``Edm.Decimal`` is sent as a JSON string (V2).
- A bad Basic login gets 401 with an HTML page, as SAP's ICF layer answers before OData is reached. A CSRF
  token is valid for every service within its session (one ICF session per login).
- ``LastChangeDateTime`` (ETag property, whole seconds) moves forward by at least one second on every
  change, so two changes within a second never share an ETag.
- Notification phases: ``SetMaintNotifToInProcess`` from phase 1 or 2, ``CompleteMaintNotification`` from 1,
  2 or 3; anything else is 400 (phases per SUMMARY §9). The system status text
  (``ConcatenatedActiveSystStsName``) follows: OSNO / NOPT / NOPR / NOCO, plus ORAS once an order is
  assigned. A completed notification refuses updates (400), as a notification with status NOCO does.
- Long text: ``MaintNotifLongTextForEdit`` holds the whole editable text (an update replaces it) and the
  read-only ``MaintNotificationLongText`` mirrors it. The EDMX says no more than that.
- Header coding: code group and code must both be given and exist in :data:`CODING_CATALOG` (the simulated
  system's customizing); ``MaintNotificationCatalog`` reads ``D`` once coded.
- Orders: numbered internally (a ``MaintenanceOrder`` in the POST is refused), ``MaintenanceOrderType`` is
  required and one of :data:`ORDER_TYPES`; a notification gets at most one order; creating an order for a
  notification sets the notification's ``MaintenanceOrder`` and its ORAS status. Operations without a number
  get 0010, 0020, …; ``MaintenanceOrderSubOperation`` is empty for a plain operation.
- A POST to an entity set with ``sap:creatable="false"`` gets 405.
- Material documents: ``GoodsMovementCode`` is required; all simulated stock is batch-managed, so items
  need material, plant, storage location and batch; the entry unit must be the stock's unit (no unit
  conversion); a deficit is refused with SAP's wording ("Deficit of SL Unrestricted-use …").
- Batches: restricting a batch (``MatlBatchIsInRstrcdUseStock``) moves its unrestricted-use stock to
  restricted-use stock, and lifting the restriction moves it back, as the batch status change does in SAP.
- Quality notifications (all assumed): ``NotificationType`` (one of :data:`QUALITY_NOTIFICATION_TYPES`) and
  ``NotificationText`` are required; no updates (405; the service is titled "Read, Create").

Test hooks: :meth:`SapSimulator.fail_next`, :meth:`~SapSimulator.before_next`,
:meth:`~SapSimulator.expire_csrf_tokens`, :meth:`~SapSimulator.add_batch`,
:meth:`~SapSimulator.edit_notification`, :meth:`~SapSimulator.complete_notification`; inspection:
:meth:`~SapSimulator.notifications`, :meth:`~SapSimulator.orders`,
:meth:`~SapSimulator.quality_notifications`, :meth:`~SapSimulator.material_documents`,
:meth:`~SapSimulator.batches`, :meth:`~SapSimulator.stock`, :meth:`~SapSimulator.requests`.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

from plantwatch.clock import Clock, SystemClock
from plantwatch.gateway.sap import utf16_length
from plantwatch.httpserver import BackgroundHttpServer
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

ORDER_SERVICE_ROOT = "/sap/opu/odata/sap/API_MAINTENANCEORDER;v=0002"
ORDER_NAMESPACE = "cds_api_maintenanceorder_2"
MATERIAL_DOCUMENT_SERVICE_ROOT = "/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV"
MATERIAL_DOCUMENT_NAMESPACE = "API_MATERIAL_DOCUMENT_SRV"
BATCH_SERVICE_ROOT = "/sap/opu/odata/sap/API_BATCH_SRV"
BATCH_NAMESPACE = "API_BATCH_SRV"
QUALITY_NOTIFICATION_SERVICE_ROOT = (
    "/sap/opu/odata4/sap/api_qualitynotification/srvd_a2x/sap/qualitynotification/0001"
)
# ASSUMED: the usual namespace of an SAP RAP A2X V4 service; the real one is in the missing metadata.
QUALITY_NOTIFICATION_NAMESPACE = "com.sap.gateway.srvd_a2x.api_qualitynotification.v0001"

# SAP's ICF answers 401 with this realm for Basic auth.
AUTH_REALM = "SAP NetWeaver Application Server"
# SAP names the session cookie SAP_SESSIONID_<SID>_<client>; the SID and client here are made up.
SESSION_COOKIE = "SAP_SESSIONID_PWS_100"
# First numbers of the simulated number ranges (internal numbering; the values are customizing in SAP).
FIRST_NOTIFICATION_NUMBER = 10000001
FIRST_ORDER_NUMBER = 4000001
FIRST_MATERIAL_DOCUMENT_NUMBER = 4900000001
FIRST_QUALITY_NOTIFICATION_NUMBER = 200000001
# Bodies above this are refused with 413; a notification is a few kilobytes.
MAX_BODY_BYTES = 1 << 20
# How often the serving thread looks for stop(); bounds how long stop() takes.
# Idle keep-alive connections are dropped after this, so stop() never waits on a silent client.
CONNECTION_TIMEOUT_S = 30.0

PHASE_TEXTS = {"1": "Outstanding", "2": "Postponed", "3": "In Process", "4": "Completed"}
# System status per phase (SUMMARY §9 for NOPR and NOCO; OSNO and NOPT are SAP's standard status codes).
PHASE_SYSTEM_STATUS = {"1": "OSNO", "2": "NOPT", "3": "NOPR", "4": "NOCO"}
ORDER_ASSIGNED_STATUS = "ORAS"
PRIORITY_TEXTS = {"1": "Very High", "2": "High", "3": "Medium", "4": "Low"}
CODING_CATALOG_TYPE = "D"  # SAP's standard catalog type for the notification header's coding

# The simulated system's coding catalog (customizing): code group -> code -> text.
CODING_CATALOG: dict[str, dict[str, str]] = {
    "PLANTWCH": {"FLT": "Fault confirmed", "NFF": "No fault found"},
    "PM-GEN": {"0001": "Mechanical damage", "0002": "Electrical fault", "0003": "Operating error"},
}
# What a planner codes for each plantwatch outcome in this simulated system (see the module docstring).
OUTCOME_CODING: dict[str, tuple[str, str]] = {
    "fault_confirmed": ("PLANTWCH", "FLT"),
    "no_fault_found": ("PLANTWCH", "NFF"),
}
# Maintenance order types of the simulated system (customizing; PM01 = SAP's standard repair order).
ORDER_TYPES = ("PM01", "PM02", "PM03")
# Goods movement codes (BAPI_GOODSMVT_CREATE values, SUMMARY "Not from metadata" §10) and the simulated ones.
GOODS_MOVEMENT_CODES = ("01", "02", "03", "04", "05", "06", "07")
TRANSFER_POSTING = "04"
TO_BLOCKED, FROM_BLOCKED = "344", "343"
# ASSUMED quality notification types (SAP's standard: Q1 customer complaint, Q2 complaint against the vendor,
# Q3 internal problem report).
QUALITY_NOTIFICATION_TYPES = ("Q1", "Q2", "Q3")

Version = Literal["2", "4"]


@dataclass(frozen=True)
class PropertySpec:
    """One property of an entity type as SAP's metadata declares it.

    ``max_length`` is ``None`` where the EDMX gives none; ``precision`` / ``scale`` are those of an
    ``Edm.Decimal``; ``upper_case`` is ``sap:display-format="UpperCase"``; ``filterable`` is False where the
    entity set's ``Capabilities.FilterRestrictions`` allow no ``$filter`` comparison on it.
    """

    edm_type: str
    max_length: int | None = None
    nullable: bool = True
    creatable: bool = True
    updatable: bool = True
    upper_case: bool = False
    filterable: bool = True
    precision: int | None = None
    scale: int | None = None


def _text(
    max_length: int | None, *, upper: bool = True, read_only: bool = False, **flags: Any
) -> PropertySpec:
    if read_only:
        flags.update(creatable=False, updatable=False)
    return PropertySpec("Edm.String", max_length, upper_case=upper, **flags)


def _decimal(precision: int, scale: int, **flags: Any) -> PropertySpec:
    return PropertySpec("Edm.Decimal", precision=precision, scale=scale, **flags)


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
    "MaintNotificationCatalog": _text(1, read_only=True),
    "MaintNotificationCode": _text(4),
    "MaintNotificationCodeGroup": _text(8),
    "MaintenancePlanningPlant": _text(4),
    "MaintenancePlannerGroup": _text(3),
    "MainWorkCenterPlant": _text(4),
    "MainWorkCenter": _text(8),
    "MaintenancePlant": _text(4),
    "MaintenanceOrder": _text(12),
    "MaintenanceOrderType": _text(4, read_only=True),
    "ConcatenatedActiveSystStsName": _text(224, upper=False, read_only=True, filterable=False),
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

# API_MAINTENANCEORDER;v=0002, MaintenanceOrderType (101 properties) and MaintenanceOrderOperationType
# (111): the subsets served, copied from the EDMX (tests compare them).
ORDER_PROPERTIES: dict[str, PropertySpec] = {
    "MaintenanceOrder": _text(12, nullable=False, updatable=False),
    "MaintenanceOrderType": _text(4, updatable=False),
    "MaintenanceOrderDesc": _text(40, upper=False),
    "MaintenanceNotification": _text(12),
    "MainWorkCenter": _text(8),
    "MainWorkCenterPlant": _text(4),
    "MaintenancePlanningPlant": _text(4, updatable=False),
    "MaintenancePlant": _text(4),
    "Equipment": _text(18),
    "FunctionalLocation": _text(30, upper=False),
    "MaintenanceActivityType": _text(3),
    "MaintPriority": _text(1),
    "CreatedByUser": _text(12, read_only=True),
    "MaintOrderCreationDateTime": PropertySpec("Edm.DateTimeOffset", **_READ_ONLY),
    "LastChangeDateTime": PropertySpec("Edm.DateTimeOffset", **_READ_ONLY),
    "SystemStatusText": _text(40, upper=False, read_only=True, filterable=False),
    "TechnicalObject": _text(40, read_only=True),
    "TechObjIsEquipOrFuncnlLoc": _text(20, read_only=True),
}
OPERATION_PROPERTIES: dict[str, PropertySpec] = {
    "MaintenanceOrder": _text(12, nullable=False, read_only=True),
    "MaintenanceOrderOperation": _text(4, nullable=False, updatable=False),
    "MaintenanceOrderSubOperation": _text(4, nullable=False, updatable=False),
    "OperationControlKey": _text(4),
    "WorkCenter": _text(8),
    "Plant": _text(4),
    "OperationDescription": _text(40, upper=False),
    "NumberOfCapacities": PropertySpec("Edm.Byte"),
    "MaintOrdOperationWorkDuration": _decimal(7, 1),
    "MaintOrdOpWorkDurationUnit": _text(3, upper=False),
    "SystemStatusText": _text(40, upper=False, read_only=True, filterable=False),
}
ORDER_FUNCTION_IMPORTS = (
    "ApproveMaintenanceOrder",
    "AssignMaintNotificationToOrder",
    "RejectMaintenanceOrder",
    "ReleaseMaintenanceOrder",
    "ResetMaintOrderStatusClosed",
    "ResetMaintOrderStsRdyForSchedg",
    "ResetMaintOrdOpsStsDispatched",
    "ResetMaintOrdStsMainWorkCmplt",
    "ResetMaintOrdStsMrkdForDeltn",
    "ResetMaintOrdStsTechCompleted",
    "ScheduleMaintenanceOrder",
    "SetMaintOrderOpsToDispatched",
    "SetMaintOrderStatusToClosed",
    "SetMaintOrderStatusToLocked",
    "SetMaintOrderStatusToUnlocked",
    "SetMaintOrderToDoNotExecute",
    "SetMaintOrderToReadyForSchedg",
    "SetMaintOrdStsToMrkdForDeltn",
    "SetMaintOrdToMainWorkComplete",
    "SetMaintOrdToTechCompleted",
    "SubmitMaintOrderForApproval",
    "ResetMaintOrderOpStsDispatched",
    "SetMaintOrderOpToDispatched",
    "ActvtMaintOrderPhaseControl",
    "DactvtMaintOrderPhaseControl",
    "ActvtMaintOrderOpPhaseControl",
    "DactvtMaintOrderOpPhaseControl",
)

# API_MATERIAL_DOCUMENT_SRV: header (14 properties, all served) and the item subset, from the EDMX.
MATERIAL_DOCUMENT_HEADER_PROPERTIES: dict[str, PropertySpec] = {
    "MaterialDocumentYear": _text(4, upper=False, nullable=False),
    "MaterialDocument": _text(10, nullable=False),
    "InventoryTransactionType": _text(2),
    "DocumentDate": PropertySpec("Edm.DateTime"),
    "PostingDate": PropertySpec("Edm.DateTime"),
    "CreationDate": PropertySpec("Edm.DateTime"),
    "CreationTime": PropertySpec("Edm.Time"),
    "CreatedByUser": _text(12),
    "MaterialDocumentHeaderText": _text(25, upper=False),
    "ReferenceDocument": _text(16),
    "VersionForPrintingSlip": _text(1),
    "ManualPrintIsTriggered": _text(1),
    "CtrlPostgForExtWhseMgmtSyst": _text(1),
    "GoodsMovementCode": _text(2),
}
MATERIAL_DOCUMENT_ITEM_PROPERTIES: dict[str, PropertySpec] = {
    "MaterialDocumentYear": _text(4, upper=False, nullable=False),
    "MaterialDocument": _text(10, nullable=False),
    "MaterialDocumentItem": _text(4, upper=False, nullable=False),
    "Material": _text(40),
    "Plant": _text(4),
    "StorageLocation": _text(4),
    "Batch": _text(10),
    "GoodsMovementType": _text(3),
    "InventoryStockType": _text(2),
    "ManufacturingOrder": _text(12),
    "GoodsMovementReasonCode": _text(4, upper=False),
    "MaterialBaseUnit": _text(3, upper=False),
    "QuantityInBaseUnit": _decimal(13, 3),
    "EntryUnit": _text(3, upper=False),
    "QuantityInEntryUnit": _decimal(13, 3),
    "MaterialDocumentItemText": _text(50, upper=False),
    "GoodsMovementIsCancelled": PropertySpec("Edm.Boolean"),
}

# API_BATCH_SRV: EDMX not available; names, types and lengths from SAP's generated client (SUMMARY §5).
# Its CSN carries no creatable/updatable flags; keys are marked not updatable and the two time stamps
# read-only here (as SAP sets them), which is an assumption.
BATCH_PROPERTIES: dict[str, PropertySpec] = {
    "Material": _text(16, nullable=False, updatable=False),
    "BatchIdentifyingPlant": _text(4, nullable=False, updatable=False),
    "Batch": _text(10, nullable=False, updatable=False),
    "BatchIsMarkedForDeletion": PropertySpec("Edm.Boolean"),
    "MatlBatchIsInRstrcdUseStock": PropertySpec("Edm.Boolean"),
    "Supplier": _text(10),
    "CountryOfOrigin": _text(3),
    "ShelfLifeExpirationDate": PropertySpec("Edm.DateTime"),
    "ManufactureDate": PropertySpec("Edm.DateTime"),
    "CreationDateTime": PropertySpec("Edm.DateTimeOffset", **_READ_ONLY),
    "LastChangeDateTime": PropertySpec("Edm.DateTimeOffset", **_READ_ONLY),
}

# CE_QUALITYNOTIFICATION_0001 (V4): metadata NOT available (SUMMARY §3). QualityNotification and
# NotifProcessingPhase were seen in public client code; every other name, type and length is ASSUMED
# (the corresponding fields of API_MAINTNOTIFICATION; quality and maintenance notifications share SAP's
# notification table) and must be checked against <root>/$metadata of a real system.
QUALITY_NOTIFICATION_PROPERTIES: dict[str, PropertySpec] = {
    "QualityNotification": _text(12, nullable=False, read_only=True),  # seen in public client code
    "NotifProcessingPhase": _text(1, read_only=True),  # seen in public client code
    "NotificationType": _text(2, updatable=False),  # ASSUMED
    "NotificationText": _text(40, upper=False),  # ASSUMED
    "ExternalReferenceNumber": _text(20),  # ASSUMED (cf. MaintNotifExtReferenceNumber)
    "Material": _text(40),  # ASSUMED
    "Plant": _text(4),  # ASSUMED
    "Batch": _text(10),  # ASSUMED
    "ManufacturingOrder": _text(12),  # ASSUMED
    "CreatedByUser": _text(12, read_only=True),  # ASSUMED
    "CreationDate": PropertySpec("Edm.Date", **_READ_ONLY),  # ASSUMED
    "LastChangeDateTime": PropertySpec("Edm.DateTimeOffset", **_READ_ONLY),  # ASSUMED (ETag)
}


@dataclass(frozen=True)
class EntitySetSpec:
    """One entity set of a simulated service.

    ``navigations`` are the navigation properties SAP declares (a request through one that is not
    simulated gets 501); ``deep_insert`` maps those the simulator accepts in a POST body to the entity set
    of their children. ``alpha_keys`` are keys with SAP's ALPHA conversion ('000010000001' = '10000001').
    """

    name: str
    type_name: str
    keys: tuple[str, ...]
    properties: Mapping[str, PropertySpec]
    creatable: bool = True
    updatable: bool = True
    deletable: bool = False
    etag_property: str | None = None
    required_on_create: tuple[str, ...] = ()
    navigations: tuple[str, ...] = ()
    deep_insert: Mapping[str, str] = field(default_factory=dict)
    alpha_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSpec:
    """One simulated OData service: where it lives, its version and what of it is served."""

    service_id: str
    root: str
    namespace: str
    version: Version
    component_id: str
    service_version: str
    entity_sets: Mapping[str, EntitySetSpec]
    functions: Mapping[str, Mapping[str, tuple[str, bool]]] = field(default_factory=dict)
    unsimulated: tuple[str, ...] = ()


NOTIFICATION_SET = EntitySetSpec(
    name=ENTITY_SET,
    type_name=ENTITY_TYPE,
    keys=("MaintenanceNotification",),
    properties=PROPERTIES,
    etag_property=ETAG_PROPERTY,
    required_on_create=REQUIRED_ON_CREATE,
    navigations=("to_Item", "to_Partner"),
    alpha_keys=("MaintenanceNotification",),
)
ORDER_SET = EntitySetSpec(
    name="MaintenanceOrder",
    type_name=f"{ORDER_NAMESPACE}.MaintenanceOrderType",
    keys=("MaintenanceOrder",),
    properties=ORDER_PROPERTIES,
    navigations=(
        "to_MaintenanceOrderLongText",
        "to_MaintenanceOrderOperation",
        "to_MaintenanceOrderPartner",
        "to_MaintenanceOrderPhaseControl",
        "to_MaintOrderObjectListItem",
        "to_MaintOrderSettlmtDistrRule_2",
    ),
    deep_insert={"to_MaintenanceOrderOperation": "MaintenanceOrderOperation"},
    alpha_keys=("MaintenanceOrder",),
)
OPERATION_SET = EntitySetSpec(
    name="MaintenanceOrderOperation",
    type_name=f"{ORDER_NAMESPACE}.MaintenanceOrderOperationType",
    keys=("MaintenanceOrder", "MaintenanceOrderOperation", "MaintenanceOrderSubOperation"),
    properties=OPERATION_PROPERTIES,
    creatable=False,
    deletable=True,
    navigations=(
        "to_MaintenanceOrder",
        "to_MaintOrderOpComponent_2",
        "to_MaintOrderOpLongText",
        "to_MaintOrderOpPhaseControl",
        "to_MaintOrderOpProdnRsceTool",
        "to_MaintOrderOpRelationship",
    ),
    alpha_keys=("MaintenanceOrder",),
)
MATERIAL_DOCUMENT_HEADER_SET = EntitySetSpec(
    name="A_MaterialDocumentHeader",
    type_name=f"{MATERIAL_DOCUMENT_NAMESPACE}.A_MaterialDocumentHeaderType",
    keys=("MaterialDocumentYear", "MaterialDocument"),
    properties=MATERIAL_DOCUMENT_HEADER_PROPERTIES,
    updatable=False,
    navigations=("to_MaterialDocumentItem",),
    deep_insert={"to_MaterialDocumentItem": "A_MaterialDocumentItem"},
    alpha_keys=("MaterialDocument",),
)
MATERIAL_DOCUMENT_ITEM_SET = EntitySetSpec(
    name="A_MaterialDocumentItem",
    type_name=f"{MATERIAL_DOCUMENT_NAMESPACE}.A_MaterialDocumentItemType",
    keys=("MaterialDocumentYear", "MaterialDocument", "MaterialDocumentItem"),
    properties=MATERIAL_DOCUMENT_ITEM_PROPERTIES,
    creatable=False,
    updatable=False,
    navigations=("to_MaterialDocumentHeader", "to_SerialNumbers"),
    alpha_keys=("MaterialDocument",),
)
BATCH_SET = EntitySetSpec(
    name="Batch",
    type_name=f"{BATCH_NAMESPACE}.A_BatchType",
    keys=("Material", "BatchIdentifyingPlant", "Batch"),
    properties=BATCH_PROPERTIES,
    etag_property="LastChangeDateTime",
    navigations=("to_BatchCharc", "to_BatchClass", "to_BatchPlant"),
)
QUALITY_NOTIFICATION_SET = EntitySetSpec(
    name="QualityNotification",
    type_name=f"{QUALITY_NOTIFICATION_NAMESPACE}.QualityNotificationType",
    keys=("QualityNotification",),
    properties=QUALITY_NOTIFICATION_PROPERTIES,
    updatable=False,
    etag_property="LastChangeDateTime",
    required_on_create=("NotificationType", "NotificationText"),
    alpha_keys=("QualityNotification",),
)

NOTIFICATION_SERVICE = ServiceSpec(
    service_id="API_MAINTNOTIFICATION",
    root=SERVICE_ROOT,
    namespace=NAMESPACE,
    version="2",
    component_id="PM-WOC-MN",
    service_version="0001",
    entity_sets={ENTITY_SET: NOTIFICATION_SET},
    functions=FUNCTION_PARAMETERS,
    unsimulated=UNSIMULATED_SEGMENTS,
)
ORDER_SERVICE = ServiceSpec(
    service_id="API_MAINTENANCEORDER",
    root=ORDER_SERVICE_ROOT,
    namespace=ORDER_NAMESPACE,
    version="2",
    component_id="PM-WOC-MO",
    service_version="0002",
    entity_sets={"MaintenanceOrder": ORDER_SET, "MaintenanceOrderOperation": OPERATION_SET},
    unsimulated=(
        "MaintenanceOrderLongText",
        "MaintenanceOrderPartner",
        "MaintenanceOrderPhaseControl",
        "MaintOrderActlPlndCostItmSet",
        "MaintOrderActlPlndCostItm",
        "MaintOrderObjectListItem",
        "MaintOrderOpCompLongText",
        "MaintOrderOpComponent",
        "MaintOrderOpLongText",
        "MaintOrderOpPhaseControl",
        "MaintOrderOpProdnRsceTool",
        "MaintOrderOpRelationship",
        "MaintOrderSettlmtDistrRule",
        *ORDER_FUNCTION_IMPORTS,
        "$batch",
    ),
)
MATERIAL_DOCUMENT_SERVICE = ServiceSpec(
    service_id="API_MATERIAL_DOCUMENT_SRV",
    root=MATERIAL_DOCUMENT_SERVICE_ROOT,
    namespace=MATERIAL_DOCUMENT_NAMESPACE,
    version="2",
    component_id="MM-IM-GF",
    service_version="0001",
    entity_sets={
        "A_MaterialDocumentHeader": MATERIAL_DOCUMENT_HEADER_SET,
        "A_MaterialDocumentItem": MATERIAL_DOCUMENT_ITEM_SET,
    },
    unsimulated=("A_SerialNumberMaterialDocument", "Cancel", "CancelItem", "$batch"),
)
BATCH_SERVICE = ServiceSpec(
    service_id="API_BATCH_SRV",
    root=BATCH_SERVICE_ROOT,
    namespace=BATCH_NAMESPACE,
    version="2",
    component_id="LO-BM",
    service_version="0001",
    entity_sets={"Batch": BATCH_SET},
    unsimulated=("BatchCharc", "BatchCharcValue", "BatchClass", "BatchPlant", "$batch"),
)
QUALITY_NOTIFICATION_SERVICE = ServiceSpec(
    service_id="CE_QUALITYNOTIFICATION_0001",
    root=QUALITY_NOTIFICATION_SERVICE_ROOT,
    namespace=QUALITY_NOTIFICATION_NAMESPACE,
    version="4",
    component_id="QM-QN",
    service_version="0001",
    entity_sets={"QualityNotification": QUALITY_NOTIFICATION_SET},
    unsimulated=("QltyNotificationItemLongText", "QltyNotificationTaskLongText", "$batch"),
)
SERVICES: tuple[ServiceSpec, ...] = (
    NOTIFICATION_SERVICE,
    ORDER_SERVICE,
    MATERIAL_DOCUMENT_SERVICE,
    BATCH_SERVICE,
    QUALITY_NOTIFICATION_SERVICE,
)
ENTITY_SETS: dict[str, EntitySetSpec] = {
    spec.name: spec for service in SERVICES for spec in service.entity_sets.values()
}

_DATE_RE = re.compile(r"^/Date\((-?\d+)\)/$")
_DATETIMEOFFSET_RE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{4}))?\)/$")
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
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
    path_contains: str | None


@dataclass
class _Hook:
    method: str | None
    path_contains: str | None
    action: Callable[[], object]


@dataclass
class _Stock:
    unit: str
    unrestricted: Decimal = Decimal(0)
    restricted: Decimal = Decimal(0)
    blocked: Decimal = Decimal(0)


class ODataError(Exception):
    """An error the simulator answers with SAP's error body (SUMMARY "Not from metadata" §2 and §3)."""

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
    code: str,
    message: str,
    *,
    target: str = "",
    timestamp_s: float | None = None,
    service: ServiceSpec = NOTIFICATION_SERVICE,
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
                    "component_id": service.component_id,
                    "service_namespace": "/SAP/",
                    "service_id": service.service_id,
                    "service_version": service.service_version,
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


def error_body_v4(code: str, message: str, *, target: str = "") -> dict[str, Any]:
    """The OData V4 JSON error body (OASIS OData JSON Format 4.01, "Error Response"): ``message`` is a string.

    >>> error_body_v4("SAPSIM/NOT_FOUND", "Resource not found")["error"]["message"]
    'Resource not found'
    """
    error: dict[str, Any] = {"code": code, "message": message}
    if target:
        error["target"] = target
    error["details"] = [{"code": code, "message": message, **({"target": target} if target else {})}]
    error["innererror"] = {"transactionid": uuid.uuid4().hex.upper()}
    return {"error": error}


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


def _iso_timestamp(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _string_literal_value(literal: str) -> str:
    return literal[1:-1].replace("''", "'")


# ---------------------------------------------------------------------------------------------------
# $filter
# ---------------------------------------------------------------------------------------------------

_FILTER_TOKEN = re.compile(
    r"\s*(?:(?P<paren>[()])|(?P<string>'(?:[^']|'')*')|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)

Predicate = Callable[[Mapping[str, Any]], bool]


def parse_filter(
    expression: str, properties: Mapping[str, PropertySpec] = PROPERTIES, type_name: str = ENTITY_TYPE
) -> Predicate:
    """Compile an OData ``$filter`` expression into a predicate over an entity's properties.

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
    parser = _FilterParser(tokens, properties, type_name)
    predicate = parser.parse_or()
    if parser.index != len(tokens):
        raise _filter_error(f"unexpected '{tokens[parser.index][1]}'")
    return predicate


def _filter_error(problem: str) -> ODataError:
    return ODataError(
        400, "SAPSIM/INVALID_FILTER", f"Invalid $filter expression: {problem}", target="$filter"
    )


class _FilterParser:
    def __init__(
        self, tokens: list[tuple[str, str]], properties: Mapping[str, PropertySpec], type_name: str
    ) -> None:
        self.tokens = tokens
        self.index = 0
        self.properties = properties
        self.type_name = type_name

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
            raise _filter_error(f"property '{value}' does not exist in type '{self.type_name}'")
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
# $metadata and the service documents
# ---------------------------------------------------------------------------------------------------


def _property_attributes(name: str, spec: PropertySpec, *, v2: bool) -> str:
    attributes = [f"Name={quoteattr(name)}", f"Type={quoteattr(spec.edm_type)}"]
    if not spec.nullable:
        attributes.append('Nullable="false"')
    if spec.max_length is not None:
        attributes.append(f'MaxLength="{spec.max_length}"')
    if spec.precision is not None:
        attributes.append(f'Precision="{spec.precision}" Scale="{spec.scale or 0}"')
    elif spec.edm_type in ("Edm.DateTime", "Edm.DateTimeOffset", "Edm.Time"):
        attributes.append('Precision="0"')
    if v2:
        if spec.upper_case:
            attributes.append('sap:display-format="UpperCase"')
        if not spec.creatable:
            attributes.append('sap:creatable="false"')
        if not spec.updatable:
            attributes.append('sap:updatable="false"')
        if not spec.filterable:
            attributes.append('sap:filterable="false"')
    return " ".join(attributes)


def service_metadata(
    service: ServiceSpec, properties: Mapping[str, Mapping[str, PropertySpec]] | None = None
) -> str:
    """A small EDMX describing what the simulator serves of ``service`` (V2 EDMX or V4 CSDL XML).

    ``properties`` replaces the property table of the named entity sets (used by :func:`metadata_document`).
    Navigation properties are not described; the deep inserts served are listed in the module docstring.
    """
    overrides = properties or {}
    if service.version == "4":
        return _v4_metadata(service, overrides)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx"'
        ' xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"'
        ' xmlns:sap="http://www.sap.com/Protocols/SAPData">',
        '  <edmx:DataServices m:DataServiceVersion="2.0">',
        f'    <Schema Namespace="{service.namespace}" xml:lang="en" sap:schema-version="1"'
        ' xmlns="http://schemas.microsoft.com/ado/2008/09/edm">',
    ]
    for entity_set in service.entity_sets.values():
        type_name = entity_set.type_name.rsplit(".", 1)[1]
        lines.append(f'      <EntityType Name="{type_name}" sap:content-version="1">')
        keys = "".join(f'<PropertyRef Name="{key}"/>' for key in entity_set.keys)
        lines.append(f"        <Key>{keys}</Key>")
        for name, spec in overrides.get(entity_set.name, entity_set.properties).items():
            lines.append(f"        <Property {_property_attributes(name, spec, v2=True)}/>")
        lines.append("      </EntityType>")
    lines.append(
        f'      <EntityContainer Name="{service.namespace}_Entities" m:IsDefaultEntityContainer="true"'
        ' sap:supported-formats="json">'
    )
    for entity_set in service.entity_sets.values():
        flags = "".join(
            f' sap:{flag}="false"'
            for flag, allowed in (
                ("creatable", entity_set.creatable),
                ("updatable", entity_set.updatable),
                ("deletable", entity_set.deletable),
            )
            if not allowed
        )
        lines.append(
            f'        <EntitySet Name="{entity_set.name}" EntityType="{entity_set.type_name}"{flags}'
            ' sap:content-version="1"/>'
        )
    [main_set] = list(service.entity_sets.values())[:1]
    for function, parameters in service.functions.items():
        lines.append(
            f'        <FunctionImport Name="{function}" ReturnType="{main_set.type_name}"'
            f' EntitySet="{main_set.name}" m:HttpMethod="POST" sap:action-for="{main_set.type_name}">'
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


def _v4_metadata(service: ServiceSpec, overrides: Mapping[str, Mapping[str, PropertySpec]]) -> str:
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
        "  <!-- plantwatch SAP simulator: SAP's metadata of this service was not available; property names"
        " other than the key and NotifProcessingPhase are ASSUMED. -->",
        "  <edmx:DataServices>",
        f'    <Schema Namespace="{service.namespace}" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
    ]
    for entity_set in service.entity_sets.values():
        type_name = entity_set.type_name.rsplit(".", 1)[1]
        lines.append(f'      <EntityType Name="{type_name}">')
        keys = "".join(f'<PropertyRef Name="{key}"/>' for key in entity_set.keys)
        lines.append(f"        <Key>{keys}</Key>")
        for name, spec in overrides.get(entity_set.name, entity_set.properties).items():
            lines.append(f"        <Property {_property_attributes(name, spec, v2=False)}/>")
        lines.append("      </EntityType>")
    lines.append('      <EntityContainer Name="Container">')
    for entity_set in service.entity_sets.values():
        lines.append(f'        <EntitySet Name="{entity_set.name}" EntityType="{entity_set.type_name}"/>')
    lines += ["      </EntityContainer>", "    </Schema>", "  </edmx:DataServices>", "</edmx:Edmx>", ""]
    return "\n".join(lines)


def metadata_document(properties: Mapping[str, PropertySpec] = PROPERTIES) -> str:
    """The EDMX (OData V2) of the simulated ``API_MAINTNOTIFICATION``, written from ``properties``."""
    return service_metadata(NOTIFICATION_SERVICE, {ENTITY_SET: properties})


def _service_document_xml(base: str, service: ServiceSpec) -> str:
    collections = "".join(
        f'<app:collection href="{name}"><atom:title>{name}</atom:title></app:collection>'
        for name in service.entity_sets
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<app:service xml:base="{escape(base)}/" xmlns:app="http://www.w3.org/2007/app"'
        ' xmlns:atom="http://www.w3.org/2005/Atom">\n'
        f"  <app:workspace><atom:title>Data</atom:title>{collections}</app:workspace>\n"
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


Key = tuple[str, ...]


class SapSimulator:
    """SAP's maintenance, order, material document, batch and quality notification services on one port.

    Keyword-only options:

    - ``host``, ``port``: where to listen; port 0 picks a free port (read it back from :attr:`url`).
    - ``user``, ``password``: the one Basic-auth login accepted.
    - ``clock``: where creation, change and posting times come from (default: the wall clock).
    - ``coding_catalog``: the notification header's coding catalog, code group -> code -> text
      (default :data:`CODING_CATALOG`).

    All methods are thread-safe. Test hooks: :meth:`fail_next`, :meth:`before_next`,
    :meth:`expire_csrf_tokens`, :meth:`add_batch`, :meth:`edit_notification`, :meth:`complete_notification`;
    inspection: :meth:`notifications`, :meth:`orders`, :meth:`quality_notifications`,
    :meth:`material_documents`, :meth:`batches`, :meth:`stock`, :meth:`requests`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        user: str = "PLANTWATCH",
        password: str = "secret",
        clock: Clock | None = None,
        coding_catalog: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._user = user
        self._password = password
        self._clock: Clock = clock or SystemClock()
        self._coding_catalog = {
            group.upper(): {code.upper(): text for code, text in codes.items()}
            for group, codes in (CODING_CATALOG if coding_catalog is None else coding_catalog).items()
        }
        self._lock = threading.Lock()
        self._tables: dict[str, dict[Key, dict[str, Any]]] = {name: {} for name in ENTITY_SETS}
        self._next_numbers = {
            ENTITY_SET: FIRST_NOTIFICATION_NUMBER,
            ORDER_SET.name: FIRST_ORDER_NUMBER,
            MATERIAL_DOCUMENT_HEADER_SET.name: FIRST_MATERIAL_DOCUMENT_NUMBER,
            QUALITY_NOTIFICATION_SET.name: FIRST_QUALITY_NOTIFICATION_NUMBER,
        }
        self._stock: dict[tuple[str, str, str, str], _Stock] = {}
        self._sessions: dict[str, _Session] = {}
        self._faults: list[_Fault] = []
        self._hooks: list[_Hook] = []
        self._requests: list[RequestRecord] = []
        self._server: BackgroundHttpServer | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the port and serve in a background thread. Raises ``OSError`` if the port is taken."""
        if self._server is not None:
            raise RuntimeError("the SAP simulator is already running")
        simulator = self

        class Handler(_Handler):
            sim = simulator

        self._server = BackgroundHttpServer(Handler, host=self._host, port=self._port, name="sap-simulator")
        self._server.start()
        event(log, logging.INFO, "sap_simulator_started", url=self.url)

    def stop(self) -> None:
        """Stop serving and release the port. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        event(log, logging.INFO, "sap_simulator_stopped")

    def __enter__(self) -> SapSimulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://host:port`` of the running simulator (the services are under their roots)."""
        if self._server is None:
            raise RuntimeError("the SAP simulator is not running")
        return self._server.base_url

    # -- inspection ---------------------------------------------------------------------------------

    def notifications(self) -> list[dict[str, Any]]:
        """Copies of the stored maintenance notifications (V2 JSON values), in number order."""
        return self._rows(ENTITY_SET)

    def orders(self) -> list[dict[str, Any]]:
        """Copies of the stored maintenance orders, each with its operations under
        ``to_MaintenanceOrderOperation`` (a list), in number order."""
        with self._lock:
            operations = list(self._tables[OPERATION_SET.name].values())
            return [
                {
                    **copy.deepcopy(order),
                    "to_MaintenanceOrderOperation": [
                        copy.deepcopy(op) for op in operations if op["MaintenanceOrder"] == key[0]
                    ],
                }
                for key, order in self._tables[ORDER_SET.name].items()
            ]

    def material_documents(self) -> list[dict[str, Any]]:
        """Copies of the posted material documents, each with its items under ``to_MaterialDocumentItem``."""
        with self._lock:
            items = list(self._tables[MATERIAL_DOCUMENT_ITEM_SET.name].values())
            return [
                {
                    **copy.deepcopy(header),
                    "to_MaterialDocumentItem": [
                        copy.deepcopy(item)
                        for item in items
                        if (item["MaterialDocumentYear"], item["MaterialDocument"]) == key
                    ],
                }
                for key, header in self._tables[MATERIAL_DOCUMENT_HEADER_SET.name].items()
            ]

    def quality_notifications(self) -> list[dict[str, Any]]:
        """Copies of the stored quality notifications (V4 JSON values; assumed fields), in number order."""
        return self._rows(QUALITY_NOTIFICATION_SET.name)

    def batches(self) -> list[dict[str, Any]]:
        """Copies of the batches (V2 JSON values), in the order they were added."""
        return self._rows(BATCH_SET.name)

    def stock(
        self, material: str, batch: str, plant: str, storage_location: str = "0001"
    ) -> dict[str, Decimal | str]:
        """A batch's stock in one storage location: ``unrestricted``, ``restricted`` (restricted-use, from a
        batch restriction), ``blocked`` (from movement type 344) as Decimals, and its ``unit``."""
        with self._lock:
            row = self._stock.get(_stock_key(material, plant, storage_location, batch))
            if row is None:
                raise KeyError(f"no stock of {material} batch {batch} in {plant}/{storage_location}")
            return {
                "unit": row.unit,
                "unrestricted": row.unrestricted,
                "restricted": row.restricted,
                "blocked": row.blocked,
            }

    def requests(self) -> list[RequestRecord]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def _rows(self, set_name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(row) for row in self._tables[set_name].values()]

    # -- test hooks ---------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 503,
        count: int = 1,
        retry_after: float | str | None = None,
        *,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (only those with ``method`` / whose path contains
        ``path_contains``, if given) with ``status``.

        The answer carries SAP's error body (V2, or V4 on a V4 service) and, if ``retry_after`` is given, a
        ``Retry-After`` header (seconds, or an HTTP date as a string). The fault comes before authentication
        and before anything is stored, as a load balancer's or an overloaded system's answer would.
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
            self._faults.append(
                _Fault(status, count, header, method.upper() if method else None, path_contains)
            )

    def before_next(
        self, action: Callable[[], object], *, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Run ``action`` once, just before the next matching request is handled (e.g. a planner's change
        between a client's read and its update, to make the client's ETag stale)."""
        with self._lock:
            self._hooks.append(_Hook(method.upper() if method else None, path_contains, action))

    def expire_csrf_tokens(self) -> None:
        """Forget every session and CSRF token, as a restarted or timed-out SAP session would."""
        with self._lock:
            self._sessions.clear()

    def add_batch(
        self,
        material: str,
        batch: str,
        plant: str,
        *,
        storage_location: str = "0001",
        quantity: float | str | Decimal = 0,
        unit: str = "PC",
        restricted: bool = False,
        plant_level: bool = False,
    ) -> dict[str, Any]:
        """Seed a batch and its unrestricted-use stock in one storage location (adds to it if it exists).

        ``plant_level``: batches are unique per plant (``BatchIdentifyingPlant`` = ``plant``); else per
        material, SAP's standard (``BatchIdentifyingPlant`` empty). Values are checked against
        :data:`BATCH_PROPERTIES`. Returns the batch entity.
        """
        values = {
            "Material": material,
            "Batch": batch,
            "BatchIdentifyingPlant": plant if plant_level else "",
            "MatlBatchIsInRstrcdUseStock": restricted,
        }
        checked = {
            name: _validate_value(name, BATCH_PROPERTIES[name], value) for name, value in values.items()
        }
        for name, value in (("Plant", plant), ("StorageLocation", storage_location)):
            _validate_value(name, MATERIAL_DOCUMENT_ITEM_PROPERTIES[name], value)
        amount = Decimal(str(quantity))
        if amount < 0:
            raise ValueError("quantity must not be negative")
        key = (checked["Material"], checked["BatchIdentifyingPlant"], checked["Batch"])
        now_s = int(self._now_s())
        with self._lock:
            entity = self._tables[BATCH_SET.name].get(key)
            if entity is None:
                entity = _initial_entity(BATCH_PROPERTIES)
                entity.update(checked, CreationDateTime=datetimeoffset_literal(now_s))
                self._touch(entity, BATCH_SET)
                self._tables[BATCH_SET.name][key] = entity
            row = self._stock.setdefault(
                _stock_key(material, plant, storage_location, batch), _Stock(unit=unit)
            )
            if row.unit != unit:
                raise ValueError(f"stock of {material} batch {batch} is kept in {row.unit}, not {unit}")
            if entity["MatlBatchIsInRstrcdUseStock"]:
                row.restricted += amount
            else:
                row.unrestricted += amount
            return copy.deepcopy(entity)

    def edit_notification(self, number: str, **values: Any) -> dict[str, Any]:
        """Change a notification as a planner does in SAP's own UI: no ETag needed, the ETag moves on.

        ``values`` are checked like an update over OData (updatable properties, lengths, catalog).
        """
        return self._update(NOTIFICATION_SET, (number,), None, values, replace=False, check_etag=False)

    def complete_notification(
        self,
        number: str,
        outcome: str | None = None,
        *,
        code_group: str | None = None,
        code: str | None = None,
    ) -> dict[str, Any]:
        """Do what a planner does to close a notification: code it, then run ``CompleteMaintNotification``.

        ``outcome`` (``"fault_confirmed"`` / ``"no_fault_found"``) picks the code from :data:`OUTCOME_CODING`;
        or give ``code_group`` and ``code`` from the coding catalog; or neither, to complete it uncoded.
        The completion goes through the function import's own rules (phase check, completion date).
        Returns the completed notification.
        """
        if outcome is not None:
            if code_group is not None or code is not None:
                raise ValueError("give outcome or code_group/code, not both")
            code_group, code = OUTCOME_CODING[outcome]
        if code_group is not None or code is not None:
            self.edit_notification(number, MaintNotificationCodeGroup=code_group, MaintNotificationCode=code)
        return self._call_function(
            "CompleteMaintNotification", {"MaintenanceNotification": "'" + number.replace("'", "''") + "'"}
        )

    # -- request handling (called from handler threads) -------------------------------------------

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._requests.append(RequestRecord(method, path, status))

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if (fault.method is None or fault.method == method) and (
                    fault.path_contains is None or fault.path_contains in path
                ):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _take_hook(self, method: str, path: str) -> _Hook | None:
        with self._lock:
            for hook in self._hooks:
                if (hook.method is None or hook.method == method) and (
                    hook.path_contains is None or hook.path_contains in path
                ):
                    self._hooks.remove(hook)
                    return hook
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

    def _touch(self, entity: dict[str, Any], spec: EntitySetSpec) -> None:
        """Stamp a change: the ETag property moves to now, or one second past the previous change."""
        if spec.etag_property is None:
            return
        previous = _changed_epoch(entity, spec)
        now_s = int(self._now_s())
        changed_s = now_s if previous is None or now_s > previous else previous + 1
        if spec is QUALITY_NOTIFICATION_SET:
            entity[spec.etag_property] = _iso_timestamp(changed_s)
            return
        entity[spec.etag_property] = datetimeoffset_literal(changed_s)
        if spec is NOTIFICATION_SET:
            entity["LastChangeDate"] = date_literal(changed_s)
            entity["LastChangeTime"] = time_literal(changed_s)

    def _next_number(self, set_name: str) -> str:
        number = self._next_numbers[set_name]
        self._next_numbers[set_name] = number + 1
        return str(number)

    def _create(
        self, spec: EntitySetSpec, values: dict[str, Any], deep: Mapping[str, list[dict[str, Any]]]
    ) -> dict[str, Any]:
        for required in spec.required_on_create:
            if values.get(required) in (None, ""):
                raise ODataError(
                    400,
                    "SAPSIM/REQUIRED_PROPERTY",
                    f"Property '{required}' is required when creating a {spec.name}",
                    target=required,
                )
        creators: dict[
            str, Callable[[dict[str, Any], Mapping[str, list[dict[str, Any]]]], dict[str, Any]]
        ] = {
            ENTITY_SET: self._create_notification,
            ORDER_SET.name: self._create_order,
            MATERIAL_DOCUMENT_HEADER_SET.name: self._post_material_document,
            QUALITY_NOTIFICATION_SET.name: self._create_quality_notification,
        }
        creator = creators.get(spec.name)
        if creator is None:
            raise ODataError(501, "SAPSIM/NOT_SIMULATED", f"Creating a {spec.name} is not simulated")
        return creator(values, deep)

    def _create_notification(
        self, values: dict[str, Any], deep: Mapping[str, list[dict[str, Any]]]
    ) -> dict[str, Any]:
        now_s = self._now_s()
        with self._lock:
            entity = _initial_entity(PROPERTIES)
            entity.update(values)
            self._check_coding(entity)
            number = self._next_number(ENTITY_SET)
            entity.update(
                MaintenanceNotification=number,
                NotifProcessingPhase="1",
                CreationDate=date_literal(now_s),
                CreationTime=time_literal(now_s),
                CreatedByUser=self._user,
                ReportedByUser=entity["ReportedByUser"] or self._user,
            )
            _derive_notification(entity)
            self._touch(entity, NOTIFICATION_SET)
            self._tables[ENTITY_SET][(number,)] = entity
            return copy.deepcopy(entity)

    def _check_coding(self, entity: Mapping[str, Any]) -> None:
        group, code = entity["MaintNotificationCodeGroup"], entity["MaintNotificationCode"]
        if not group and not code:
            return
        if not group or not code:
            missing = "MaintNotificationCodeGroup" if not group else "MaintNotificationCode"
            raise ODataError(
                400,
                "SAPSIM/CODING_INCOMPLETE",
                "Coding needs both a code group and a code (catalog D)",
                target=missing,
            )
        codes = self._coding_catalog.get(group)
        if codes is None:
            raise ODataError(
                400,
                "SAPSIM/INVALID_CODE",
                f"Code group {group} does not exist in catalog {CODING_CATALOG_TYPE} (Coding)",
                target="MaintNotificationCodeGroup",
            )
        if code not in codes:
            raise ODataError(
                400,
                "SAPSIM/INVALID_CODE",
                f"Code {code} does not exist in code group {group} of catalog {CODING_CATALOG_TYPE} (Coding)",
                target="MaintNotificationCode",
            )

    def _create_order(
        self, values: dict[str, Any], deep: Mapping[str, list[dict[str, Any]]]
    ) -> dict[str, Any]:
        if values.get("MaintenanceOrder"):
            raise ODataError(
                400,
                "SAPSIM/INTERNAL_NUMBERING",
                "Order numbers are assigned internally; do not send MaintenanceOrder",
                target="MaintenanceOrder",
            )
        order_type = values.get("MaintenanceOrderType") or ""
        if order_type not in ORDER_TYPES:
            raise ODataError(
                400,
                "SAPSIM/INVALID_ORDER_TYPE",
                f"Order type '{order_type}' is not defined (defined: {', '.join(ORDER_TYPES)})",
                target="MaintenanceOrderType",
            )
        operations = [
            _validate_payload(child, OPERATION_SET, for_update=False)[0]
            for child in deep.get("to_MaintenanceOrderOperation", [])
        ]
        now_s = int(self._now_s())
        with self._lock:
            notification = None
            number_of_notification = values.get("MaintenanceNotification") or ""
            if number_of_notification:
                notification = self._tables[ENTITY_SET].get((_canonical_number(number_of_notification),))
                if notification is None:
                    raise ODataError(
                        400,
                        "SAPSIM/NOTIFICATION_NOT_FOUND",
                        f"Notification {number_of_notification} does not exist",
                        target="MaintenanceNotification",
                    )
                if notification["MaintenanceOrder"]:
                    raise ODataError(
                        400,
                        "SAPSIM/NOTIFICATION_HAS_ORDER",
                        f"Notification {notification['MaintenanceNotification']} is already assigned to order"
                        f" {notification['MaintenanceOrder']}",
                        target="MaintenanceNotification",
                    )
            order = _initial_entity(ORDER_PROPERTIES)
            order.update(values)
            number = self._next_number(ORDER_SET.name)
            order.update(
                MaintenanceOrder=number,
                MaintenanceNotification=notification["MaintenanceNotification"] if notification else "",
                CreatedByUser=self._user,
                MaintOrderCreationDateTime=datetimeoffset_literal(now_s),
                LastChangeDateTime=datetimeoffset_literal(now_s),
                SystemStatusText="CRTD",
                TechnicalObject=order["Equipment"] or order["FunctionalLocation"],
                TechObjIsEquipOrFuncnlLoc=(
                    "EAMS_EQUI" if order["Equipment"] else "EAMS_FL" if order["FunctionalLocation"] else ""
                ),
            )
            stored_operations: dict[Key, dict[str, Any]] = {}
            for index, operation_values in enumerate(operations, start=1):
                operation = _initial_entity(OPERATION_PROPERTIES)
                operation.update(operation_values)
                operation["MaintenanceOrder"] = number
                operation["MaintenanceOrderOperation"] = (
                    operation["MaintenanceOrderOperation"] or f"{index * 10:04d}"
                )
                operation["SystemStatusText"] = "CRTD"
                key = (
                    number,
                    operation["MaintenanceOrderOperation"],
                    operation["MaintenanceOrderSubOperation"],
                )
                if key in stored_operations:
                    raise ODataError(
                        400,
                        "SAPSIM/DUPLICATE_OPERATION",
                        f"Operation {key[1]} occurs twice in order {number}",
                        target="MaintenanceOrderOperation",
                    )
                stored_operations[key] = operation
            self._tables[ORDER_SET.name][(number,)] = order
            self._tables[OPERATION_SET.name].update(stored_operations)
            if notification is not None:
                notification["MaintenanceOrder"] = number
                notification["MaintenanceOrderType"] = order_type
                _derive_notification(notification)
                self._touch(notification, NOTIFICATION_SET)
            return {
                **copy.deepcopy(order),
                "to_MaintenanceOrderOperation": {"results": copy.deepcopy(list(stored_operations.values()))},
            }

    def _post_material_document(
        self, values: dict[str, Any], deep: Mapping[str, list[dict[str, Any]]]
    ) -> dict[str, Any]:
        code = values.get("GoodsMovementCode") or ""
        if code not in GOODS_MOVEMENT_CODES:
            raise ODataError(
                400,
                "SAPSIM/INVALID_GM_CODE",
                f"Goods movement code '{code}' is not valid (valid: {', '.join(GOODS_MOVEMENT_CODES)})",
                target="GoodsMovementCode",
            )
        if code != TRANSFER_POSTING:
            raise ODataError(
                501, "SAPSIM/NOT_SIMULATED", f"Goods movement code {code} is not simulated (only 04)"
            )
        items = [
            _validate_payload(child, MATERIAL_DOCUMENT_ITEM_SET, for_update=False)[0]
            for child in deep.get("to_MaterialDocumentItem", [])
        ]
        if not items:
            raise ODataError(
                400,
                "SAPSIM/NO_ITEMS",
                "A material document needs at least one item in to_MaterialDocumentItem",
                target="to_MaterialDocumentItem",
            )
        now_s = self._now_s()
        posting_s = _epoch_of(values.get("PostingDate"))
        posting_s = int(now_s) if posting_s is None else posting_s
        with self._lock:
            moves: list[tuple[_Stock, str, Decimal]] = []
            taken: dict[tuple[int, str], Decimal] = {}  # what earlier items of this document take
            for index, item in enumerate(items, start=1):
                row, movement_type, quantity = self._plan_move(index, item, taken)
                taken[(id(row), movement_type)] = taken.get((id(row), movement_type), Decimal(0)) + quantity
                moves.append((row, movement_type, quantity))
            for row, movement_type, quantity in moves:
                if movement_type == TO_BLOCKED:
                    row.unrestricted -= quantity
                    row.blocked += quantity
                else:
                    row.blocked -= quantity
                    row.unrestricted += quantity
            year = str(datetime.fromtimestamp(posting_s, tz=UTC).year)
            number = self._next_number(MATERIAL_DOCUMENT_HEADER_SET.name)
            header = _initial_entity(MATERIAL_DOCUMENT_HEADER_PROPERTIES)
            header.update(values)
            header.update(
                MaterialDocumentYear=year,
                MaterialDocument=number,
                PostingDate=date_literal(posting_s),
                DocumentDate=header["DocumentDate"] or date_literal(posting_s),
                CreationDate=date_literal(now_s),
                CreationTime=time_literal(now_s),
                CreatedByUser=self._user,
            )
            stored_items = []
            for index, (item, (row, _movement_type, quantity)) in enumerate(
                zip(items, moves, strict=True), start=1
            ):
                stored = _initial_entity(MATERIAL_DOCUMENT_ITEM_PROPERTIES)
                stored.update(item)
                stored.update(
                    MaterialDocumentYear=year,
                    MaterialDocument=number,
                    MaterialDocumentItem=f"{index:04d}",
                    EntryUnit=row.unit,
                    MaterialBaseUnit=row.unit,
                    QuantityInBaseUnit=f"{quantity:.3f}",
                    QuantityInEntryUnit=f"{quantity:.3f}",
                )
                self._tables[MATERIAL_DOCUMENT_ITEM_SET.name][
                    (year, number, stored["MaterialDocumentItem"])
                ] = stored
                stored_items.append(stored)
            self._tables[MATERIAL_DOCUMENT_HEADER_SET.name][(year, number)] = header
            return {
                **copy.deepcopy(header),
                "to_MaterialDocumentItem": {"results": copy.deepcopy(stored_items)},
            }

    def _plan_move(
        self, index: int, item: Mapping[str, Any], taken: Mapping[tuple[int, str], Decimal]
    ) -> tuple[_Stock, str, Decimal]:
        """Check one item of a transfer posting against the stock less what ``taken`` by earlier items
        (under the lock); nothing changes yet."""
        movement_type = item.get("GoodsMovementType") or ""
        if movement_type not in (TO_BLOCKED, FROM_BLOCKED):
            raise ODataError(
                501,
                "SAPSIM/NOT_SIMULATED",
                f"Item {index}: movement type '{movement_type}' is not simulated (343, 344)",
                target="GoodsMovementType",
            )
        for required in ("Material", "Plant", "StorageLocation", "Batch", "QuantityInEntryUnit"):
            if item.get(required) in (None, ""):
                raise ODataError(
                    400,
                    "SAPSIM/REQUIRED_PROPERTY",
                    f"Item {index}: enter {required} for movement type {movement_type}",
                    target=required,
                )
        material, plant, location, batch = (
            item["Material"],
            item["Plant"],
            item["StorageLocation"],
            item["Batch"],
        )
        if not any(
            key[0] == material and key[2] == batch and key[1] in ("", plant)
            for key in self._tables[BATCH_SET.name]
        ):
            raise ODataError(
                400,
                "SAPSIM/BATCH_NOT_FOUND",
                f"Batch {batch} does not exist for material {material} in plant {plant}",
                target="Batch",
            )
        quantity = Decimal(item["QuantityInEntryUnit"])
        if quantity <= 0:
            raise ODataError(
                400,
                "SAPSIM/INVALID_QUANTITY",
                f"Item {index}: enter a quantity greater than zero",
                target="QuantityInEntryUnit",
            )
        # A storage location the batch was never in has no stock row: nothing to move, so a deficit.
        row = self._stock.get(_stock_key(material, plant, location, batch)) or _Stock(
            unit=item.get("EntryUnit") or "PC"
        )
        unit = item.get("EntryUnit") or row.unit
        if unit != row.unit:
            raise ODataError(
                400,
                "SAPSIM/UNIT_NOT_CONVERTIBLE",
                f"Item {index}: unit {unit} cannot be converted to the stock unit {row.unit} (not simulated)",
                target="EntryUnit",
            )
        available, stock_name = (
            (row.unrestricted, "Unrestricted-use")
            if movement_type == TO_BLOCKED
            else (row.blocked, "Blocked stock")
        )
        available -= taken.get((id(row), movement_type), Decimal(0))
        if available < quantity:
            raise ODataError(
                400,
                "SAPSIM/DEFICIT",
                f"Deficit of SL {stock_name} {quantity - available:f} {row.unit} :"
                f" {material} {plant} {location} {batch}",
                target="QuantityInEntryUnit",
            )
        return row, movement_type, quantity

    def _create_quality_notification(
        self, values: dict[str, Any], deep: Mapping[str, list[dict[str, Any]]]
    ) -> dict[str, Any]:
        notification_type = values["NotificationType"]
        if notification_type not in QUALITY_NOTIFICATION_TYPES:
            raise ODataError(
                400,
                "SAPSIM/INVALID_NOTIFICATION_TYPE",
                f"Notification type '{notification_type}' is not a quality notification type"
                f" ({', '.join(QUALITY_NOTIFICATION_TYPES)})",
                target="NotificationType",
            )
        now_s = self._now_s()
        with self._lock:
            entity = _initial_entity(QUALITY_NOTIFICATION_PROPERTIES)
            entity.update(values)
            number = self._next_number(QUALITY_NOTIFICATION_SET.name)
            entity.update(
                QualityNotification=number,
                NotifProcessingPhase="1",
                CreatedByUser=self._user,
                CreationDate=datetime.fromtimestamp(now_s, tz=UTC).strftime("%Y-%m-%d"),
            )
            self._touch(entity, QUALITY_NOTIFICATION_SET)
            self._tables[QUALITY_NOTIFICATION_SET.name][(number,)] = entity
            return copy.deepcopy(entity)

    def _read(self, spec: EntitySetSpec, key: Key) -> dict[str, Any]:
        with self._lock:
            entity = self._tables[spec.name].get(_canonical_key(spec, key))
            if entity is None:
                raise _not_found(spec, key)
            return copy.deepcopy(entity)

    def _query(self, spec: EntitySetSpec, predicate: Predicate | None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(entity)
                for entity in self._tables[spec.name].values()
                if predicate is None or predicate(entity)
            ]

    def _update(
        self,
        spec: EntitySetSpec,
        key: Key,
        if_match: str | None,
        payload: Mapping[str, Any],
        *,
        replace: bool,
        check_etag: bool = True,
    ) -> dict[str, Any]:
        canonical = _canonical_key(spec, key)
        values, _deep = _validate_payload(
            payload, spec, for_update=True, key=dict(zip(spec.keys, canonical, strict=True))
        )
        if spec.name not in (NOTIFICATION_SET.name, BATCH_SET.name):
            raise ODataError(501, "SAPSIM/NOT_SIMULATED", f"Updating a {spec.name} is not simulated")
        with self._lock:
            entity = self._tables[spec.name].get(canonical)
            if entity is None:
                raise _not_found(spec, key)
            if check_etag:
                _check_if_match(entity, spec, if_match)
            if spec is NOTIFICATION_SET and entity["NotifProcessingPhase"] == "4":
                raise ODataError(
                    400,
                    "SAPSIM/NOTIFICATION_COMPLETED",
                    f"Notification {entity['MaintenanceNotification']} is completed;"
                    " changes are not possible",
                    target="NotifProcessingPhase",
                )
            changed = dict(entity)
            if replace:
                initial = _initial_entity(spec.properties)
                for name, property_spec in spec.properties.items():
                    if property_spec.updatable:
                        changed[name] = initial[name]
            changed.update(values)
            if spec is NOTIFICATION_SET:
                self._check_coding(changed)
                _derive_notification(changed)
            else:
                self._restrict_batch_stock(entity, changed)
            entity.update(changed)
            self._touch(entity, spec)
            return copy.deepcopy(entity)

    def _restrict_batch_stock(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        """A batch restriction moves the batch's unrestricted-use stock to restricted-use stock, and back."""
        was, now = before["MatlBatchIsInRstrcdUseStock"], after["MatlBatchIsInRstrcdUseStock"]
        if bool(was) == bool(now):
            return
        for (material, plant, _location, batch), row in self._stock.items():
            if material != before["Material"] or batch != before["Batch"]:
                continue
            if before["BatchIdentifyingPlant"] and plant != before["BatchIdentifyingPlant"]:
                continue
            if now:
                row.restricted += row.unrestricted
                row.unrestricted = Decimal(0)
            else:
                row.unrestricted += row.restricted
                row.restricted = Decimal(0)

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
            entity = self._tables[ENTITY_SET].get((_canonical_number(number),))
            if entity is None:
                raise _not_found(NOTIFICATION_SET, (number,))
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
            _derive_notification(entity)
            self._touch(entity, NOTIFICATION_SET)
            return copy.deepcopy(entity)


def _stock_key(material: str, plant: str, storage_location: str, batch: str) -> tuple[str, str, str, str]:
    return (material.upper(), plant.upper(), storage_location.upper(), batch.upper())


def _epoch_of(literal: Any) -> int | None:
    if not isinstance(literal, str):
        return None
    found = _DATETIMEOFFSET_RE.match(literal)
    return int(found.group(1)) // 1000 if found else None


def _changed_epoch(entity: Mapping[str, Any], spec: EntitySetSpec) -> int | None:
    if spec.etag_property is None:
        return None
    value = entity.get(spec.etag_property)
    if spec is QUALITY_NOTIFICATION_SET:
        if not isinstance(value, str) or not value:
            return None
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    return _epoch_of(value)


def _canonical_number(number: str) -> str:
    # Document numbers have SAP's ALPHA conversion: '000010000001' and '10000001' are one key.
    if not number.isdigit():
        return number
    return number.lstrip("0") or "0"


def _canonical_key(spec: EntitySetSpec, key: Key) -> Key:
    return tuple(
        _canonical_number(value)
        if name in spec.alpha_keys
        else value.upper()
        if spec.properties[name].upper_case
        else value
        for name, value in zip(spec.keys, key, strict=True)
    )


def _key_text(spec: EntitySetSpec, key: Key) -> str:
    if len(spec.keys) == 1:
        return f"{spec.keys[0]}='{key[0]}'"
    return ",".join(f"{name}='{value}'" for name, value in zip(spec.keys, key, strict=True))


def _not_found(spec: EntitySetSpec, key: Key) -> ODataError:
    return ODataError(
        404,
        "SAPSIM/NOT_FOUND",
        f"Resource not found for the key {_key_text(spec, key)}",
        target=spec.name,
    )


def _initial_entity(properties: Mapping[str, PropertySpec]) -> dict[str, Any]:
    initial: dict[str, Any] = {}
    for name, spec in properties.items():
        if spec.edm_type == "Edm.String":
            initial[name] = ""
        elif spec.edm_type == "Edm.Boolean":
            initial[name] = False
        elif spec.edm_type == "Edm.Time":
            initial[name] = "PT00H00M00S"
        elif spec.edm_type == "Edm.Decimal":
            initial[name] = f"{Decimal(0):.{spec.scale or 0}f}"
        elif spec.edm_type == "Edm.Byte":
            initial[name] = 0
        else:
            initial[name] = None
    return initial


def _derive_notification(entity: dict[str, Any]) -> None:
    """Fill the read-only fields SAP derives from other fields of a maintenance notification."""
    phase = entity["NotifProcessingPhase"]
    entity["NotifProcessingPhaseDesc"] = PHASE_TEXTS.get(phase, "")
    entity["MaintPriorityDesc"] = PRIORITY_TEXTS.get(entity["MaintPriority"], "")
    entity["TechnicalObjectLabel"] = entity["TechnicalObject"]
    entity["MaintNotificationLongText"] = entity["MaintNotifLongTextForEdit"]
    entity["MaintNotificationCatalog"] = CODING_CATALOG_TYPE if entity["MaintNotificationCodeGroup"] else ""
    statuses = [PHASE_SYSTEM_STATUS.get(phase, "")]
    if entity["MaintenanceOrder"]:
        statuses.append(ORDER_ASSIGNED_STATUS)
    entity["ConcatenatedActiveSystStsName"] = " ".join(status for status in statuses if status)


def _etag_of(entity: Mapping[str, Any], spec: EntitySetSpec) -> str | None:
    changed = _changed_epoch(entity, spec)
    if changed is None:
        return None
    if spec is QUALITY_NOTIFICATION_SET:
        return f'W/"{_iso_timestamp(changed)}"'
    return etag_for(changed)


def _check_if_match(entity: Mapping[str, Any], spec: EntitySetSpec, if_match: str | None) -> None:
    current = _etag_of(entity, spec)
    if current is None:
        return
    if if_match is None or not if_match.strip():
        raise ODataError(
            412,
            "SAPSIM/PRECONDITION_FAILED",
            f"Modifying a {spec.name} requires an If-Match header with its ETag; read the entity first",
            target="If-Match",
        )
    offered = [tag.strip() for tag in if_match.split(",")]
    if "*" not in offered and current not in offered:
        raise ODataError(
            412,
            "SAPSIM/PRECONDITION_FAILED",
            f"The ETag in If-Match does not match the current ETag {current}; read the entity again",
            target="If-Match",
        )


def _validate_payload(
    payload: Mapping[str, Any],
    spec: EntitySetSpec,
    *,
    for_update: bool,
    key: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Check a create or update body against ``spec``; return the values to store and the deep-insert
    children by navigation property (unchecked; the creator checks them against their own set)."""
    values: dict[str, Any] = {}
    deep: dict[str, list[dict[str, Any]]] = {}
    for name, value in payload.items():
        if name == "__metadata" or name.startswith("@odata."):
            continue
        if name in spec.navigations:
            if for_update:
                raise ODataError(
                    400,
                    "SAPSIM/NOT_UPDATABLE",
                    f"Navigation property '{name}' cannot be updated",
                    target=name,
                )
            if name not in spec.deep_insert:
                raise ODataError(
                    501, "SAPSIM/NOT_SIMULATED", f"Deep insert via '{name}' is not simulated", target=name
                )
            children = value.get("results") if isinstance(value, dict) else value
            if not isinstance(children, list) or not all(isinstance(child, dict) for child in children):
                raise ODataError(
                    400,
                    "SAPSIM/MALFORMED_DEEP_INSERT",
                    f"Navigation property '{name}' must hold a JSON array of entities",
                    target=name,
                )
            deep[name] = children
            continue
        property_spec = spec.properties.get(name)
        if property_spec is None:
            raise ODataError(
                400,
                "SAPSIM/UNKNOWN_PROPERTY",
                f"Property '{name}' is invalid for type '{spec.type_name}'",
                target=name,
            )
        if for_update and key is not None and name in key and isinstance(value, str):
            repeated = _canonical_number(value) if name in spec.alpha_keys else value.upper()
            if repeated == key[name]:
                continue  # clients often repeat the key in an update body; SAP accepts it unchanged
        if for_update and not property_spec.updatable:
            raise ODataError(400, "SAPSIM/NOT_UPDATABLE", f"Property '{name}' is not updatable", target=name)
        if not for_update and not property_spec.creatable:
            raise ODataError(
                400,
                "SAPSIM/NOT_CREATABLE",
                f"Property '{name}' is not creatable; SAP assigns it",
                target=name,
            )
        values[name] = _validate_value(name, property_spec, value)
    return values, deep


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
    if spec.edm_type == "Edm.DateTimeOffset":
        found = _DATETIMEOFFSET_RE.match(value) if isinstance(value, str) else None
        if not found:
            raise invalid("must be an Edm.DateTimeOffset like '/Date(1735689600000+0000)/'")
        return datetimeoffset_literal(int(found.group(1)) // 1000)
    if spec.edm_type == "Edm.Date":
        if not isinstance(value, str) or not _ISO_DATE_RE.match(value):
            raise invalid("must be an Edm.Date like '2025-01-31'")
        return value
    if spec.edm_type == "Edm.Time":
        found = _TIME_RE.match(value) if isinstance(value, str) else None
        if not found or value == "PT":
            raise invalid("must be an Edm.Time like 'PT14H30M00S'")
        hours, minutes, seconds = (int(part or 0) for part in found.groups())
        if hours > 23 or minutes > 59 or seconds > 59:
            raise invalid("is not a time of day")
        return f"PT{hours:02d}H{minutes:02d}M{seconds:02d}S"
    if spec.edm_type == "Edm.Decimal":
        return _validate_decimal(spec, value, invalid)
    if spec.edm_type == "Edm.Byte":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise invalid("must be an integer 0..255 (Edm.Byte)")
        return value
    raise invalid(f"cannot be written ({spec.edm_type})")


def _validate_decimal(spec: PropertySpec, value: Any, invalid: Callable[[str], ODataError]) -> str:
    precision, scale = spec.precision or 38, spec.scale or 0
    shape = f"Edm.Decimal({precision},{scale})"
    if isinstance(value, bool) or not isinstance(value, str):
        raise invalid(f'must be an {shape} in a JSON string, like "12.500"')
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise invalid(f"must be an {shape}, got '{value}'") from None
    if not number.is_finite():
        raise invalid(f"must be a finite {shape}")
    step = Decimal(1).scaleb(-scale)
    if number.quantize(step) != number:
        raise invalid(f"has more than {scale} decimals ({shape})")
    if abs(number) >= Decimal(10) ** (precision - scale):
        raise invalid(f"does not fit {shape}")
    return f"{number.quantize(step):f}"


# ---------------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------------

_KEYED_SEGMENT = re.compile(
    r"^(?P<set>[A-Za-z_][A-Za-z0-9_]*)\((?P<keys>(?:[^'()]|'(?:[^']|'')*')*)\)(?P<rest>/.*)?$"
)
_KEY_PART = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*)?(?P<value>'(?:[^']|'')*')\s*(?:,|$)")


def _parse_key_predicate(text: str, spec: EntitySetSpec) -> Key:
    """The key values of ``Set('v')`` or ``Set(K1='a',K2='b')`` in the order of ``spec.keys``."""
    position = 0
    named: dict[str, str] = {}
    unnamed: list[str] = []
    while position < len(text):
        found = _KEY_PART.match(text, position)
        if found is None or found.end() == position:
            raise ODataError(400, "SAPSIM/BAD_KEY", f"Invalid key predicate '({text})' for {spec.name}")
        value = _string_literal_value(found.group("value"))
        if found.group("name"):
            named[found.group("name")] = value
        else:
            unnamed.append(value)
        position = found.end()
    if unnamed and not named and len(unnamed) == 1 and len(spec.keys) == 1:
        return (unnamed[0],)
    if unnamed or set(named) != set(spec.keys):
        expected = ",".join(f"{name}='…'" for name in spec.keys)
        raise ODataError(
            400, "SAPSIM/BAD_KEY", f"Invalid key predicate '({text})'; use {spec.name}({expected})"
        )
    return tuple(named[name] for name in spec.keys)


def _service_for(path: str) -> ServiceSpec | None:
    lowered = path.lower()
    for service in SERVICES:
        root = service.root.lower()
        if lowered == root or lowered.startswith(root + "/"):
            return service
    return None


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
        service = _service_for(unquote(urlsplit(self.path).path))
        try:
            body = self._read_body()
            fault = self.sim._take_fault(method, self.path)
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
                hook = self.sim._take_hook(method, self.path)
                if hook is not None:
                    hook.action()
                response = self._dispatch(method, user, body, service)
        except ODataError as error:
            response = _error_response(error, self.sim._now_s(), service)
        except Exception:  # a simulator bug must still answer, and say so in the log
            log.exception("sap_simulator_error method=%s path=%s", method, self.path)
            response = _error_response(
                ODataError(500, "SAPSIM/INTERNAL", "Internal error in the SAP simulator"),
                self.sim._now_s(),
                service,
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

    def _base_url(self, service: ServiceSpec) -> str:
        return f"http://{self.headers.get('Host') or self.sim.url.removeprefix('http://')}{service.root}"

    def _wants_json(self, query: Mapping[str, str]) -> bool:
        requested = query.get("$format")
        if requested is not None:
            return requested.lower() == "json"
        accept = (self.headers.get("Accept") or "").lower()
        return "application/json" in accept

    def _dispatch(self, method: str, user: str, body: bytes, service: ServiceSpec | None) -> _Response:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if service is None:
            raise ODataError(404, "SAPSIM/NO_SERVICE", f"No service found for path '{path}'")
        segment = path[len(service.root) :].strip("/")
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
            return _Response(200, service_metadata(service).encode(), "application/xml")
        if segment == "":
            _require(method, ("GET", "HEAD"))
            if service.version == "4":
                names = [{"name": name, "url": name} for name in service.entity_sets]
                return _json_response(200, {"@odata.context": "$metadata", "value": names}, service)
            if self._wants_json(query):
                return _json_response(200, {"d": {"EntitySets": list(service.entity_sets)}}, service)
            return _Response(
                200, _service_document_xml(self._base_url(service), service).encode(), "application/xml"
            )
        first = segment.split("/")[0].split("(")[0]
        if first in service.unsimulated:
            raise ODataError(
                501, "SAPSIM/NOT_SIMULATED", f"'{first}' is part of SAP's service but not simulated"
            )
        if first not in service.entity_sets and first not in service.functions:
            raise ODataError(
                404, "SAPSIM/NOT_FOUND", f"Resource not found for segment '{first}'", target=first
            )
        if service.version == "2" and not self._wants_json(query):
            raise ODataError(
                406,
                "SAPSIM/NOT_ACCEPTABLE",
                "The simulator speaks JSON only; send 'Accept: application/json' or '$format=json'",
            )
        if first in service.functions:
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
            return self._entity_response(200, service, NOTIFICATION_SET, entity)
        spec = service.entity_sets[first]
        if segment == first:
            if method == "POST":
                if not spec.creatable:
                    raise ODataError(
                        405,
                        "SAPSIM/NOT_CREATABLE",
                        f"Entity set '{spec.name}' is not creatable (sap:creatable=\"false\")"
                        + (
                            "; create it inside its parent by deep insert"
                            if spec.name in (OPERATION_SET.name, MATERIAL_DOCUMENT_ITEM_SET.name)
                            else ""
                        ),
                        target=spec.name,
                    )
                values, deep = _validate_payload(self._json_body(body), spec, for_update=False)
                entity = self.sim._create(spec, values, deep)
                response = self._entity_response(201, service, spec, entity)
                assert response.headers is not None
                response.headers["Location"] = self._entity_uri(service, spec, entity)
                return response
            _require(method, ("GET", "HEAD", "POST"))
            return self._collection(service, spec, query)
        keyed = _KEYED_SEGMENT.match(segment)
        if keyed is None or keyed.group("set") != first:
            raise ODataError(400, "SAPSIM/BAD_KEY", f"Invalid key in '{segment}'; use {spec.name}(<key>)")
        key = _parse_key_predicate(keyed.group("keys"), spec)
        if keyed.group("rest"):
            raise ODataError(
                501, "SAPSIM/NOT_SIMULATED", f"Navigation '{keyed.group('rest')}' is not simulated"
            )
        if method in ("GET", "HEAD"):
            return self._entity_response(
                200, service, spec, self.sim._read(spec, key), select=query.get("$select")
            )
        if method in ("PATCH", "MERGE", "PUT"):
            if not spec.updatable:
                raise ODataError(
                    405,
                    "SAPSIM/NOT_UPDATABLE",
                    f"Entity set '{spec.name}' is not updatable",
                    target=spec.name,
                )
            entity = self.sim._update(
                spec, key, self.headers.get("If-Match"), self._json_body(body), replace=method == "PUT"
            )
            etag = _etag_of(entity, spec)
            return _Response(204, headers={"ETag": etag} if etag else {})
        if method == "DELETE" and spec.deletable:
            raise ODataError(501, "SAPSIM/NOT_SIMULATED", f"Deleting a {spec.name} is not simulated")
        raise ODataError(
            405, "SAPSIM/METHOD_NOT_ALLOWED", f"{method} is not allowed on {spec.name}; it is not deletable"
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

    def _entity_uri(self, service: ServiceSpec, spec: EntitySetSpec, entity: Mapping[str, Any]) -> str:
        key = tuple(str(entity[name]) for name in spec.keys)
        predicate = f"'{key[0]}'" if len(key) == 1 else _key_text(spec, key)
        return f"{self._base_url(service)}/{spec.name}({predicate})"

    def _wire_entity(
        self,
        service: ServiceSpec,
        spec: EntitySetSpec,
        entity: Mapping[str, Any],
        select: str | None = None,
    ) -> dict[str, Any]:
        etag = _etag_of(entity, spec)
        names = _selected(select, spec)
        wire: dict[str, Any] = {}
        if service.version == "4":
            if etag:
                wire["@odata.etag"] = etag
        else:
            uri = self._entity_uri(service, spec, entity)
            wire["__metadata"] = {"id": uri, "uri": uri, "type": spec.type_name}
            if etag:
                wire["__metadata"]["etag"] = etag
        for name, value in entity.items():
            if name in spec.properties and (names is None or name in names):
                wire[name] = value
        if service.version == "2" and names is None:
            uri = self._entity_uri(service, spec, entity)
            for navigation in spec.navigations:
                nested = entity.get(navigation)
                if isinstance(nested, dict) and "results" in nested:
                    child_spec = ENTITY_SETS[spec.deep_insert[navigation]]
                    wire[navigation] = {
                        "results": [
                            self._wire_entity(service, child_spec, child) for child in nested["results"]
                        ]
                    }
                else:
                    wire[navigation] = {"__deferred": {"uri": f"{uri}/{navigation}"}}
        return wire

    def _entity_response(
        self,
        status: int,
        service: ServiceSpec,
        spec: EntitySetSpec,
        entity: Mapping[str, Any],
        select: str | None = None,
    ) -> _Response:
        wire = self._wire_entity(service, spec, entity, select)
        if service.version == "4":
            payload: dict[str, Any] = {"@odata.context": f"$metadata#{spec.name}/$entity", **wire}
        else:
            payload = {"d": wire}
        response = _json_response(status, payload, service)
        assert response.headers is not None
        etag = _etag_of(entity, spec)
        if etag:
            response.headers["ETag"] = etag
        return response

    def _collection(self, service: ServiceSpec, spec: EntitySetSpec, query: Mapping[str, str]) -> _Response:
        supported = (
            {"$filter", "$top", "$skip", "$select", "$count"}
            if service.version == "4"
            else {"$filter", "$top", "$skip", "$select", "$inlinecount", "$format"}
        )
        for option in query:
            if option.startswith("$") and option not in supported:
                raise ODataError(
                    501, "SAPSIM/NOT_SIMULATED", f"System query option '{option}' is not simulated"
                )
        predicate = (
            parse_filter(query["$filter"], spec.properties, spec.type_name)
            if query.get("$filter", "").strip()
            else None
        )
        found = self.sim._query(spec, predicate)
        count = len(found)
        skip = _non_negative(query, "$skip")
        top = _non_negative(query, "$top")
        found = found[skip or 0 :]
        if top is not None:
            found = found[:top]
        select = query.get("$select")
        _selected(select, spec)  # validates names before anything is answered
        entities = [self._wire_entity(service, spec, entity, select) for entity in found]
        if service.version == "4":
            counted = query.get("$count")
            if counted not in (None, "true", "false"):
                raise ODataError(400, "SAPSIM/BAD_QUERY", "$count must be 'true' or 'false'", target="$count")
            payload: dict[str, Any] = {"@odata.context": f"$metadata#{spec.name}"}
            if counted == "true":
                payload["@odata.count"] = count
            payload["value"] = entities
            return _json_response(200, payload, service)
        result: dict[str, Any] = {"results": entities}
        inline = query.get("$inlinecount")
        if inline not in (None, "allpages", "none"):
            raise ODataError(
                400, "SAPSIM/BAD_QUERY", "$inlinecount must be 'allpages' or 'none'", target="$inlinecount"
            )
        if inline == "allpages":
            result["__count"] = str(count)
        return _json_response(200, {"d": result}, service)

    def _send(self, method: str, response: _Response) -> None:
        try:
            self.send_response(response.status)
            headers = dict(response.headers or {})
            if response.content_type:
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
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


def _selected(select: str | None, spec: EntitySetSpec = NOTIFICATION_SET) -> set[str] | None:
    if select is None or not select.strip():
        return None
    names = {name.strip() for name in select.split(",")}
    unknown = sorted(name for name in names if name not in spec.properties)
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


def _json_response(status: int, payload: Any, service: ServiceSpec | None = None) -> _Response:
    if service is not None and service.version == "4":
        return _Response(
            status,
            json.dumps(payload).encode("utf-8"),
            "application/json;odata.metadata=minimal;charset=utf-8",
            {"OData-Version": "4.0"},
        )
    headers = {"DataServiceVersion": "2.0"} if status < 300 else {}
    return _Response(status, json.dumps(payload).encode("utf-8"), "application/json; charset=utf-8", headers)


def _error_response(error: ODataError, now_s: float, service: ServiceSpec | None) -> _Response:
    if service is not None and service.version == "4":
        payload = error_body_v4(error.code, error.message, target=error.target)
    else:
        payload = error_body(
            error.code,
            error.message,
            target=error.target,
            timestamp_s=now_s,
            service=service or NOTIFICATION_SERVICE,
        )
    response = _json_response(error.status, payload, service)
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
