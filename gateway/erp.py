"""The ERP adapter interface every backend implements (SAP, Tryton, a signed webhook).

Two kinds of document: a **maintenance notification / work order** for a finding on an asset
(:class:`NotificationRequest`, later raised in priority or given more evidence by a
:class:`NotificationUpdate`, and read back for the planner's outcome), and a **quality hold** on one
production order / lot that ran on the asset during an excursion (:class:`HoldRequest`). The gateway hands
an adapter a request and gets back an :class:`ErpDocument`, or an :class:`ErpError` that says whether
trying again later can help. Adapters are synchronous; the gateway
runs them in a bounded executor. Every adapter is idempotent by ``correlation_id``: it looks the id up
in the ERP before it creates, so a retry after a crash never creates a second document (DESIGN.md,
"ERP side").

The helpers here (:func:`http_exchange`, :func:`is_retryable_status`, :func:`parse_retry_after`,
:func:`shorten`, :func:`raised_priority`, :func:`appended_long_text`) are shared by the HTTP-based adapters
so that all of them send, classify failures, raise priorities and add notes the same way.
"""

from __future__ import annotations

import http.client
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

from plantwatch.log import event

log = logging.getLogger("plantwatch.gateway.erp")

# An idempotency key must survive every backend's reference field: SAP's
# MaintNotifExtReferenceNumber is 20 characters with an upper-case display format.
CORRELATION_ID_PATTERN = re.compile(r"^[A-Z0-9]{1,20}$")
SEVERITIES = ("warning", "alarm")
PRIORITIES = ("1", "2", "3", "4")
# Document statuses adapters report; "unknown" when the ERP reports something unmapped.
STATUSES = ("outstanding", "postponed", "in_process", "completed", "unknown")
# What the planner found when closing a document: the label kept for retraining (None while open or when
# the ERP says nothing about it).
OUTCOMES = ("fault_confirmed", "no_fault_found")
ELLIPSIS = "…"


@dataclass(frozen=True)
class NotificationRequest:
    """What the gateway asks an ERP to record: one maintenance notification for one finding.

    - ``correlation_id``: idempotency key, 1–20 characters of ``[A-Z0-9]`` (:data:`CORRELATION_ID_PATTERN`).
    - ``asset``: technical object (equipment) id, as plantwatch names it.
    - ``failure_mode``: e.g. ``"outer_race"`` (see ``plantwatch.contract.FAILURE_MODES``).
    - ``severity``: ``"warning"`` or ``"alarm"``.
    - ``priority``: ERP priority ``"1"`` … ``"4"`` (1 = very high).
    - ``title``: short text; adapters shorten it to their limit.
    - ``long_text``: the evidence for the planner, several lines.
    """

    correlation_id: str
    asset: str
    failure_mode: str
    severity: str
    priority: str
    title: str
    long_text: str


@dataclass(frozen=True)
class NotificationUpdate:
    """More of the same finding for an open document: a repeat or a rise in severity.

    - ``number`` / ``correlation_id``: the document to update.
    - ``priority``: the priority it should have now (only ever raised by the gateway).
    - ``note``: a few lines to add to the document's text (what came, when, the new evidence).
    """

    number: str
    correlation_id: str
    priority: str
    note: str


@dataclass(frozen=True)
class HoldRequest:
    """Hold one production order / lot made on ``asset`` while it was out of its normal state.

    - ``correlation_id``: idempotency key as for notifications, one per (excursion, lot).
    - ``production_order``: the order as the MES names it (Tryton: the production's number; SAP: the
      manufacturing order).
    - ``lot``: the lot / batch made by it, or None when the MES sent none.
    - ``material``: the material (product code) of the lot, or None.
    - ``plant``, ``storage_location``: where the lot's stock lies (SAP's goods movement needs them), or None.
    - ``quantity`` / ``unit``: how much to block, or None when the ERP should take what the lot has.
    - ``title`` / ``long_text``: what and why, for the quality engineer.
    """

    correlation_id: str
    asset: str
    production_order: str
    lot: str | None
    material: str | None
    title: str
    long_text: str
    plant: str | None = None
    storage_location: str | None = None
    quantity: float | None = None
    unit: str | None = None


@dataclass(frozen=True)
class ErpDocument:
    """A document the ERP holds for a request.

    ``created`` is False when an existing document was found by ``correlation_id``; ``status`` is one of
    :data:`STATUSES`; ``outcome`` is one of :data:`OUTCOMES` once a planner closed it with one, else None.
    """

    number: str
    correlation_id: str
    created: bool
    status: str
    outcome: str | None = None


class ErpError(Exception):
    """An ERP refused or could not be reached.

    ``str()`` is ``"<backend> <http status or code>: <the ERP's own message>"``. ``retryable`` says
    whether the same request may succeed later (server busy, network down); ``retry_after_s`` is the
    server's ``Retry-After`` in seconds when it sent one.

    >>> str(ErpError("sap", "Property 'NotificationText' is too long", status=400, code="SY/530"))
    "sap 400: Property 'NotificationText' is too long"
    """

    def __init__(
        self,
        backend: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        self.backend = backend
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        super().__init__(f"{backend} {status if status is not None else code}: {message}")


@runtime_checkable
class ErpAdapter(Protocol):
    """One ERP backend. Implementations are synchronous and safe to call from several threads."""

    name: str

    def create_notification(self, request: NotificationRequest) -> ErpDocument:
        """Create the document for ``request``, or return the one that already has its correlation id."""
        ...

    def find_notification(self, correlation_id: str) -> ErpDocument | None:
        """The document carrying ``correlation_id``, or None."""
        ...

    def update_notification(self, update: NotificationUpdate) -> ErpDocument:
        """Raise the document's priority to ``update.priority`` (never lower it) and add ``update.note``."""
        ...

    def read_notification(self, number: str) -> ErpDocument:
        """The document's current status and, once closed, the planner's outcome (``created`` False)."""
        ...

    def create_hold(self, request: HoldRequest) -> ErpDocument:
        """Hold ``request``'s lot, or return the hold that already has its correlation id."""
        ...

    def find_hold(self, correlation_id: str) -> ErpDocument | None:
        """The hold carrying ``correlation_id``, or None."""
        ...

    def check(self) -> None:
        """Raise :class:`ErpError` if the ERP is unreachable or refuses the credentials."""
        ...


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status means "try again later": 408, 429 and every 5xx."""
    return status in (408, 429) or 500 <= status <= 599


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3), or None if absent or garbled.

    The header is either a number of seconds or an HTTP date; ``now_s`` (epoch seconds) turns a date
    into a delay. A date in the past gives 0.

    >>> parse_retry_after("120", now_s=0.0)
    120.0
    >>> parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now_s=30.0)
    30.0
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            return None
        return max(0.0, moment.timestamp() - now_s)
    return seconds if seconds >= 0 else None


def shorten(text: str, limit: int, length: Callable[[str], int] = len) -> str:
    """``text`` cut to at most ``limit`` units of ``length``, ending in an ellipsis if it was cut.

    >>> shorten("Outer race defect on pump 7", 12)
    'Outer race…'
    """
    if length(text) <= limit:
        return text
    cut = text[:limit]  # every character is at least one unit, so nothing longer can fit
    while cut and length(cut.rstrip() + ELLIPSIS) > limit:
        cut = cut[:-1]
    return cut.rstrip() + ELLIPSIS if limit >= length(ELLIPSIS) else ""


def raised_priority(current: str, wanted: str) -> str | None:
    """The priority to write so that ``current`` is raised to ``wanted``, or None to leave it alone.

    "1" is the highest. An empty priority is set; a priority outside "1".."4" (customized) is left alone.

    >>> [raised_priority(current, "2") for current in ("3", "1", "2", "")]
    ['2', None, None, '2']
    """
    if wanted not in PRIORITIES:
        return None
    if not current:
        return wanted
    if current not in PRIORITIES:
        return None
    return wanted if int(wanted) < int(current) else None


def appended_long_text(current: str, note: str, limit: int, length: Callable[[str], int] = len) -> str | None:
    """``current`` with ``note`` added as new lines at its end, within ``limit`` units of ``length``, or None if the
    note is already there (a retried update) or empty. When the sum is too long the oldest text is cut
    (ending in an ellipsis), never the note.

    >>> appended_long_text("BPFO 0.42 g", "Repeat: BPFO 0.51 g", 1333)
    'BPFO 0.42 g\\nRepeat: BPFO 0.51 g'
    >>> appended_long_text("BPFO 0.42 g\\nRepeat: BPFO 0.51 g", "Repeat: BPFO 0.51 g", 1333) is None
    True
    """
    note = note.strip("\n")
    if not note.strip() or note in current:
        return None
    if not current:
        return shorten(note, limit, length)
    separator = "\n"
    room = limit - length(separator + note)
    if room <= 0:
        return shorten(note, limit, length)
    return shorten(current, room, length).rstrip("\n") + separator + note


@dataclass(frozen=True)
class HttpReply:
    """An HTTP answer, whatever its status."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: from an ERP's API it means a login page, a proxy or a wrong URL, and it
    would resend credentials or a signed request somewhere nobody configured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def http_exchange(
    opener: urllib.request.OpenerDirector,
    request: urllib.request.Request,
    *,
    timeout_s: float,
    backend: str,
    target: str,
) -> HttpReply:
    """Send ``request``; every HTTP status is an answer, a network failure a retryable :class:`ErpError`
    (code ``unreachable``) naming ``target``, the service's address."""
    started = time.monotonic()
    try:
        with opener.open(request, timeout=timeout_s) as response:
            reply = HttpReply(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        with error:
            reply = HttpReply(error.code, dict(error.headers.items()) if error.headers else {}, error.read())
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", error)
        event(
            log,
            logging.WARNING,
            "erp_unreachable",
            backend=backend,
            method=request.get_method(),
            url=request.full_url,
            error=reason,
        )
        raise ErpError(
            backend, f"{target} unreachable: {reason}", code="unreachable", retryable=True
        ) from error
    event(
        log,
        logging.DEBUG,
        "erp_http",
        backend=backend,
        method=request.get_method(),
        url=request.full_url,
        status=reply.status,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )
    return reply
