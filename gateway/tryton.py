"""ERP adapter for Tryton 8.2 over JSON-RPC: maintenance tasks and quality holds.

Tryton needs plantwatch's own module (``gateway/tryton_module``, activated as ``plantwatch``): it gives
``project.work`` and ``quality.inspection`` the ``plantwatch_correlation_id`` field with a unique SQL
constraint, and ``project.work`` the asset, failure mode, priority and outcome fields. The database needs
a user with the groups "Project Administration" and "Quality", a company in its preferences, and a quality
control named :data:`HOLD_CONTROL` with ``operations`` empty and one boolean point :data:`HOLD_POINT`
(``simulators/tryton.py`` seeds all of that).

Documents:

- A **maintenance notification** is a ``project.work`` task: ``name`` is the title on one line, ``comment``
  the evidence (updates append to it), plus correlation id, asset, failure mode and priority. Its number is
  the task's ``number``. Status from the task's ``project.work.status`` by that status' ``progress``: none
  or 0 is outstanding, 1 (Tryton's "Done") completed, in between in process. The planner's outcome is
  ``plantwatch_outcome``, read once the task is completed.
- A **quality hold** is a ``quality.inspection`` of the hold control whose origin is the production order
  (``production``, found by its ``reference``, where plantwatch keeps the MES's order name, or else by its
  ``number``), its point ``hold`` false, then processed: it fails, Tryton opens a ``quality.alert`` (given
  the hold's title and text), and ``production.run`` / ``production.do`` refuse with "To continue, alerts
  from failed inspections must be resolved." until the alert is resolved or deferred or the inspection is
  passed. Its number is the inspection's ``number``; its status follows the alert (open outstanding,
  processing in process, deferred postponed, resolved completed) or the inspection (passed completed).

Idempotency by ``correlation_id``: looked up before anything is created, under one lock per adapter; two
gateways that miss each other's lookup are stopped by the unique constraint, and the refused one finds the
winner's document and returns it (``created`` False). A hold found still pending (a crash between create
and process) is processed.

Protocol (``trytond/protocols/dispatcher.py``): ``common.db.login`` once, then every call with
``Authorization: Session base64(login:user_id:token)`` and the context of ``res.user.get_preferences`` as
last parameter; a 401 (session expired) is answered by one new login and one retry. Writes are
serialised: Tryton on SQLite hands out one sequence number twice under concurrent writes ("The number on
work must be unique."), which is retried as a transient error.

Errors (:class:`~plantwatch.gateway.erp.ErpError`): no connection, timeouts, 408/429/5xx (``Retry-After``
honoured), Tryton exceptions other than user errors (a server fault) and the sequence race are retryable; a
refused login (401 on ``common.db.login``), an unknown database (404), Tryton's ``UserError`` (its own
message), an unknown production order and a database without plantwatch's module or hold control are not.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

from plantwatch.clock import Clock, SystemClock
from plantwatch.gateway.erp import (
    CORRELATION_ID_PATTERN,
    OUTCOMES,
    PRIORITIES,
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

log = logging.getLogger("plantwatch.gateway.tryton")

BACKEND = "tryton"
WORK_MODEL = "project.work"
INSPECTION_MODEL = "quality.inspection"
# The quality control a hold is an inspection of, and its one boolean point (false = held).
HOLD_CONTROL = "plantwatch hold"
HOLD_POINT = "hold"
# project.work.name, quality.inspection.reference and quality.alert.title have no size in Tryton 8.2;
# titles are cut so that they stay one line in Tryton's lists.
TITLE_MAX = 100
# project.work.comment is unbounded; a long-lived finding with many repeats keeps its newest lines.
COMMENT_MAX = 20_000
# Tryton's own login language; messages come back in it.
LANGUAGE = "en"
# Tryton's sequence race on SQLite (project's msg_work_number_unique and the like): the same number handed
# out twice to concurrent writers. Nothing was written, so the same request can succeed.
_SEQUENCE_RACE = re.compile(r"\bnumber\b.*\bmust be unique\b", re.IGNORECASE)
# Tryton's structured exceptions (``TrytonException.args``); any other error is a server fault.
_USER_ERRORS = ("UserError", "UserWarning", "LoginException")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")
# Longest piece of a non-JSON answer (an HTML error page) kept in an ErpError message.
_MAX_MESSAGE_CHARS = 300
_WORK_FIELDS = ("number", "plantwatch_correlation_id", "status", "plantwatch_outcome")
_INSPECTION_FIELDS = ("number", "plantwatch_correlation_id", "state", "alerts")
# quality.alert.state -> ErpDocument.status, strongest first: one open alert keeps the hold outstanding.
_ALERT_STATUSES = (
    ("open", "outstanding"),
    ("processing", "in_process"),
    ("deferred", "postponed"),
    ("resolved", "completed"),
)


def status_from_progress(progress: float | None) -> str:
    """:data:`~plantwatch.gateway.erp.STATUSES` entry for a ``project.work.status`` by its ``progress``
    (the least progress a task in that status has, 0..1, or None).

    >>> [status_from_progress(p) for p in (None, 0.0, 0.5, 1.0)]
    ['outstanding', 'outstanding', 'in_process', 'completed']
    """
    if progress is None or progress <= 0:
        return "outstanding"
    return "completed" if progress >= 1 else "in_process"


def hold_status(inspection_state: str, alert_states: Sequence[str]) -> str:
    """:data:`~plantwatch.gateway.erp.STATUSES` entry for a hold: its inspection's state and its alerts'.

    >>> hold_status("failed", ["open"]), hold_status("failed", ["resolved"]), hold_status("passed", [])
    ('outstanding', 'completed', 'completed')
    """
    if inspection_state == "pending":
        return "outstanding"
    if inspection_state == "passed":
        return "completed"
    if inspection_state != "failed":
        return "unknown"
    if not alert_states:
        return "outstanding"  # a failed inspection without an alert blocks the production too
    for state, status in _ALERT_STATUSES:
        if state in alert_states:
            return status
    return "unknown"


class _JsonEncoder(json.JSONEncoder):
    """Tryton's JSON-RPC types: ``{"__class__": "Decimal", "decimal": "0.01"}`` and the like."""

    def default(self, o: Any) -> Any:
        if isinstance(o, Decimal):
            return {"__class__": "Decimal", "decimal": str(o)}
        if isinstance(o, dt.datetime):
            fields = ("year", "month", "day", "hour", "minute", "second", "microsecond")
            return {"__class__": "datetime", **{name: getattr(o, name) for name in fields}}
        if isinstance(o, dt.date):
            return {"__class__": "date", "year": o.year, "month": o.month, "day": o.day}
        return super().default(o)


def _json_object(value: dict[str, Any]) -> Any:
    kind = value.get("__class__")
    if kind == "Decimal":
        return Decimal(value["decimal"])
    if kind == "datetime":
        fields = ("year", "month", "day", "hour", "minute", "second", "microsecond")
        return dt.datetime(*(int(value.get(name, 0)) for name in fields))
    if kind == "date":
        return dt.date(value["year"], value["month"], value["day"])
    return value


@dataclass(frozen=True)
class _Session:
    user_id: int
    authorization: str
    context: dict[str, Any]


class TrytonRpc:
    """A JSON-RPC client of one Tryton database, logged in as one user (the session is kept and renewed
    once on 401). Safe to call from several threads.

    :meth:`call` takes the method (``"model.project.work.search_read"``) and its parameters without the
    context, which is added as the last one. Failures raise :class:`ErpError` classified as the module
    docstring says.
    """

    def __init__(
        self,
        base_url: str,
        database: str,
        user: str,
        password: str,
        *,
        timeout_s: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
        if not database or database == "rpc" or "/" in database:
            raise ValueError(f"database must be a Tryton database name other than 'rpc', got {database!r}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.database = database
        self.user = user
        self._password = password
        self._url = base_url.rstrip("/") + "/" + quote(database, safe="") + "/rpc/"
        self._timeout_s = timeout_s
        self._clock: Clock = clock or SystemClock()
        self._session: _Session | None = None
        self._session_lock = threading.Lock()
        self._opener = urllib.request.build_opener(NoRedirect())
        self._ids = iter(range(1, 1 << 62))

    @property
    def context(self) -> dict[str, Any]:
        """The user's context (``res.user.get_preferences``), logging in if needed."""
        return dict(self._ensure_session().context)

    @property
    def user_id(self) -> int:
        """The logged-in user's id, logging in if needed."""
        return self._ensure_session().user_id

    def call(self, method: str, *params: Any, context: Mapping[str, Any] | None = None) -> Any:
        """Call ``method`` with ``params`` and the session's context (updated by ``context``); the result."""
        session = self._ensure_session()
        for attempt in (1, 2):
            reply = self._post(method, [*params, {**session.context, **(context or {})}], session)
            if reply.status == 401 and attempt == 1:
                event(log, logging.INFO, "tryton_session_renew", database=self.database, user=self.user)
                session = self._login(expired=session)
                continue
            return self._result(method, reply)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def login(self) -> None:
        """Log in now (again), so that a wrong password or an unknown database shows at once."""
        self._login(expired=self._session)

    def _ensure_session(self) -> _Session:
        session = self._session
        return session if session is not None else self._login(expired=None)

    def _login(self, *, expired: _Session | None) -> _Session:
        with self._session_lock:
            if self._session is not None and self._session is not expired:
                return self._session  # another thread logged in meanwhile
            started = time.monotonic()
            reply = self._post("common.db.login", [self.user, {"password": self._password}, LANGUAGE], None)
            if reply.status == 401:
                raise ErpError(
                    BACKEND,
                    f"login refused for user {self.user!r} on database {self.database!r}:"
                    " wrong user or password",
                    status=401,
                    code="login_refused",
                )
            if reply.status == 404:
                raise ErpError(
                    BACKEND,
                    f"database {self.database!r} not found on {self._url}",
                    status=404,
                    code="no_database",
                )
            if reply.status == 429:
                raise self._http_error(
                    reply, f"too many login attempts for user {self.user!r}; Tryton refuses logins for now"
                )
            result = self._result("common.db.login", reply)
            if not (isinstance(result, list) and len(result) >= 2 and isinstance(result[0], int)):
                raise ErpError(BACKEND, f"unexpected login answer {result!r:.100}", code="bad_response")
            user_id, token = result[0], str(result[1])
            credentials = base64.b64encode(f"{self.user}:{user_id}:{token}".encode()).decode("ascii")
            session = _Session(user_id, "Session " + credentials, {})
            preferences = self._result(
                "model.res.user.get_preferences",
                self._post("model.res.user.get_preferences", [True, {}], session),
            )
            if not isinstance(preferences, dict):
                raise ErpError(BACKEND, "get_preferences did not answer a context", code="bad_response")
            self._session = _Session(user_id, session.authorization, preferences)
            event(
                log,
                logging.INFO,
                "tryton_login",
                database=self.database,
                user=self.user,
                user_id=user_id,
                company=preferences.get("company"),
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
            return self._session

    def _post(self, method: str, params: list[Any], session: _Session | None) -> HttpReply:
        body = json.dumps({"id": next(self._ids), "method": method, "params": params}, cls=_JsonEncoder)
        request = urllib.request.Request(self._url, data=body.encode("utf-8"), method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/json")
        if session is not None:
            request.add_header("Authorization", session.authorization)
        return http_exchange(
            self._opener, request, timeout_s=self._timeout_s, backend=BACKEND, target=self._url
        )

    def _result(self, method: str, reply: HttpReply) -> Any:
        if reply.status != 200:
            raise self._http_error(reply)
        try:
            answer = json.loads(reply.body.decode("utf-8"), object_hook=_json_object)
        except (UnicodeDecodeError, ValueError):
            raise ErpError(
                BACKEND, f"{method}: expected a JSON answer", status=reply.status, code="bad_response"
            ) from None
        if not isinstance(answer, dict):
            raise ErpError(
                BACKEND, f"{method}: expected a JSON object", status=reply.status, code="bad_response"
            )
        if "error" in answer:
            raise tryton_error(method, answer["error"])
        return answer.get("result")

    def _http_error(self, reply: HttpReply, message: str | None = None) -> ErpError:
        retryable = is_retryable_status(reply.status)
        retry_after_s = (
            parse_retry_after(_header(reply.headers, "Retry-After"), self._clock.now()) if retryable else None
        )
        return ErpError(
            BACKEND,
            message or _page_text(reply),
            status=reply.status,
            retryable=retryable,
            retry_after_s=retry_after_s,
        )


class TrytonAdapter:
    """Maintenance tasks (``project.work``) and quality holds (``quality.inspection``) in Tryton 8.2, an
    ``ErpAdapter``.

    - ``base_url``: scheme, host and port of trytond, e.g. ``http://erp.plant1.local:8000``.
    - ``database``: the Tryton database (never ``rpc``, which is the server's root route).
    - ``user``, ``password``: the user plantwatch logs in as (groups Project Administration and Quality).
    - ``timeout_s``: socket timeout of one JSON-RPC call, in seconds.
    - ``clock``: turns an HTTP-date ``Retry-After`` into seconds.

    Safe to call from several threads; writes go one at a time.
    """

    name = BACKEND

    def __init__(
        self,
        base_url: str,
        database: str,
        user: str,
        password: str,
        timeout_s: float = 10.0,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._rpc = TrytonRpc(base_url, database, user, password, timeout_s=timeout_s, clock=clock)
        self._write_lock = threading.RLock()
        self._status_progress: dict[int, float | None] = {}
        self._hold_control: int | None = None

    # -- ErpAdapter: maintenance notifications -------------------------------------------------------

    def create_notification(self, request: NotificationRequest) -> ErpDocument:
        """Create a ``project.work`` task for ``request`` unless one carries its correlation id already
        (then that one, ``created`` False)."""
        _check_correlation_id(request.correlation_id)
        if request.priority not in PRIORITIES:
            raise _invalid(f"priority {request.priority!r} is not one of {', '.join(PRIORITIES)}")
        values = {
            "name": _one_line(request.title, "title"),
            "type": "task",
            "comment": request.long_text,
            "plantwatch_correlation_id": request.correlation_id,
            "plantwatch_asset": request.asset,
            "plantwatch_failure_mode": request.failure_mode,
            "plantwatch_priority": request.priority,
        }
        with self._write_lock:
            existing = self._find_work(request.correlation_id)
            if existing is None:
                try:
                    (work_id,) = self._call(WORK_MODEL, "create", [values])
                except ErpError as error:
                    existing = self._refused_duplicate(error, self._find_work, request.correlation_id)
                else:
                    document = self._work_document(self._read_work(work_id), created=True)
                    event(
                        log,
                        logging.INFO,
                        "tryton_notification_created",
                        correlation_id=request.correlation_id,
                        number=document.number,
                        asset=request.asset,
                    )
                    return document
        document = self._work_document(existing, created=False)
        event(
            log,
            logging.INFO,
            "tryton_notification_exists",
            correlation_id=request.correlation_id,
            number=document.number,
            status=document.status,
        )
        return document

    def find_notification(self, correlation_id: str) -> ErpDocument | None:
        """The task whose ``plantwatch_correlation_id`` is ``correlation_id``, or None."""
        _check_correlation_id(correlation_id)
        work = self._find_work(correlation_id)
        return None if work is None else self._work_document(work, created=False)

    def update_notification(self, update: NotificationUpdate) -> ErpDocument:
        """Raise the task's priority to ``update.priority`` (never lower it) and append ``update.note`` to
        its comment (not twice: a retried update finds it there). A completed task is left unchanged.

        Raises :class:`ErpError`: ``not_found`` for an unknown number, ``wrong_document`` if the task
        carries another correlation id.
        """
        _check_correlation_id(update.correlation_id)
        if update.priority not in PRIORITIES:
            raise _invalid(f"priority {update.priority!r} is not one of {', '.join(PRIORITIES)}")
        with self._write_lock:
            work = self._work_by_number(update.number, ("plantwatch_priority", "comment"))
            reference = work.get("plantwatch_correlation_id") or ""
            if reference != update.correlation_id:
                raise ErpError(
                    BACKEND,
                    f"task {update.number} carries correlation id {reference!r}, not {update.correlation_id!r}",
                    code="wrong_document",
                )
            document = self._work_document(work, created=False)
            changes: dict[str, str] = {}
            if document.status != "completed":
                priority = raised_priority(work.get("plantwatch_priority") or "", update.priority)
                if priority is not None:
                    changes["plantwatch_priority"] = priority
                comment = appended_long_text(work.get("comment") or "", update.note, COMMENT_MAX)
                if comment is not None:
                    changes["comment"] = comment
            if changes:
                self._call(WORK_MODEL, "write", [work["id"]], changes)
        event(
            log,
            logging.INFO,
            "tryton_notification_updated" if changes else "tryton_notification_unchanged",
            correlation_id=update.correlation_id,
            number=document.number,
            status=document.status,
            fields=",".join(sorted(changes)) if changes else "-",
        )
        return document

    def read_notification(self, number: str) -> ErpDocument:
        """The task's status and, once completed, the planner's outcome (``plantwatch_outcome``)."""
        return self._work_document(self._work_by_number(number, ()), created=False)

    # -- ErpAdapter: quality holds ------------------------------------------------------------------

    def create_hold(self, request: HoldRequest) -> ErpDocument:
        """Hold ``request.production_order``: a failed inspection of the hold control on that production
        (and its open alert titled and described by the request); or return the hold that already has the
        correlation id, processing it if a crash left it pending.

        Raises :class:`ErpError` (``unknown_production_order``, not retryable, when no production has that
        reference or number).
        """
        _check_correlation_id(request.correlation_id)
        title = _one_line(request.title, "title")
        with self._write_lock:
            inspection = self._find_inspection(request.correlation_id)
            created = inspection is None
            if inspection is None:
                production_id = self._production_id(request.production_order)
                values = {
                    "control": self._hold_control_id(),
                    "origin": f"production,{production_id}",
                    "points": {HOLD_POINT: False},
                    "reference": title,
                    "plantwatch_correlation_id": request.correlation_id,
                }
                try:
                    (inspection_id,) = self._call(INSPECTION_MODEL, "create", [values])
                except ErpError as error:
                    inspection = self._refused_duplicate(error, self._find_inspection, request.correlation_id)
                    created = False
                else:
                    inspection = self._read_inspection(inspection_id)
            if inspection["state"] == "pending":
                self._call(INSPECTION_MODEL, "process", [inspection["id"]])
                inspection = self._read_inspection(inspection["id"])
            alerts = self._describe_alerts(inspection, title, request.long_text)
        document = ErpDocument(
            number=str(inspection["number"]),
            correlation_id=request.correlation_id,
            created=created,
            status=hold_status(inspection["state"], [alert["state"] for alert in alerts]),
        )
        event(
            log,
            logging.INFO,
            "tryton_hold_created" if created else "tryton_hold_exists",
            correlation_id=request.correlation_id,
            number=document.number,
            production_order=request.production_order,
            state=inspection["state"],
            status=document.status,
        )
        return document

    def find_hold(self, correlation_id: str) -> ErpDocument | None:
        """The inspection whose ``plantwatch_correlation_id`` is ``correlation_id``, or None."""
        _check_correlation_id(correlation_id)
        inspection = self._find_inspection(correlation_id)
        if inspection is None:
            return None
        alerts = self._read_alerts(inspection.get("alerts") or [])
        return ErpDocument(
            number=str(inspection["number"]),
            correlation_id=correlation_id,
            created=False,
            status=hold_status(inspection["state"], [alert["state"] for alert in alerts]),
        )

    def check(self) -> None:
        """Check that Tryton answers, takes the credentials and has plantwatch's module activated."""
        self._rpc.call("model.res.user.get_preferences", True)
        described = self._call(WORK_MODEL, "fields_get", ["plantwatch_correlation_id"])
        if "plantwatch_correlation_id" not in (described or {}):
            raise ErpError(
                BACKEND,
                f"module plantwatch is not activated in database {self._rpc.database!r}"
                " (trytond-admin -u plantwatch)",
                code="not_configured",
            )

    # -- lookups ----------------------------------------------------------------------------------

    def _call(self, model: str, method: str, *params: Any) -> Any:
        return self._rpc.call(f"model.{model}.{method}", *params)

    def _search_read(
        self, model: str, domain: list[Any], fields: Sequence[str], *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        rows = self._call(model, "search_read", domain, 0, limit, [["id", "ASC"]], list(fields))
        return [row for row in rows or [] if isinstance(row, dict)]

    def _find_work(self, correlation_id: str) -> dict[str, Any] | None:
        rows = self._search_read(
            WORK_MODEL, [["plantwatch_correlation_id", "=", correlation_id]], _WORK_FIELDS, limit=1
        )
        return rows[0] if rows else None

    def _read_work(self, work_id: int) -> dict[str, Any]:
        rows = self._call(WORK_MODEL, "read", [work_id], list(_WORK_FIELDS))
        if not rows:
            raise ErpError(BACKEND, f"task id {work_id} vanished after create", code="bad_response")
        return dict(rows[0])

    def _work_by_number(self, number: str, fields: Sequence[str]) -> dict[str, Any]:
        if not number or _CONTROL_CHARACTERS.search(number):
            raise _invalid(f"task number {number!r} is empty or not one line")
        rows = self._search_read(WORK_MODEL, [["number", "=", number]], (*_WORK_FIELDS, *fields), limit=1)
        if not rows:
            raise ErpError(BACKEND, f"no task with number {number!r}", code="not_found")
        return rows[0]

    def _find_inspection(self, correlation_id: str) -> dict[str, Any] | None:
        rows = self._search_read(
            INSPECTION_MODEL,
            [["plantwatch_correlation_id", "=", correlation_id]],
            _INSPECTION_FIELDS,
            limit=1,
        )
        return rows[0] if rows else None

    def _read_inspection(self, inspection_id: int) -> dict[str, Any]:
        rows = self._call(INSPECTION_MODEL, "read", [inspection_id], list(_INSPECTION_FIELDS))
        if not rows:
            raise ErpError(BACKEND, f"inspection id {inspection_id} vanished", code="bad_response")
        return dict(rows[0])

    def _read_alerts(self, alert_ids: Sequence[int]) -> list[dict[str, Any]]:
        if not alert_ids:
            return []
        return list(self._call("quality.alert", "read", list(alert_ids), ["state", "title", "description"]))

    def _describe_alerts(self, inspection: Mapping[str, Any], title: str, text: str) -> list[dict[str, Any]]:
        """Give the hold's open alerts that have no title yet the hold's title and text (what the quality
        engineer reads); the alerts as they are now."""
        alerts = self._read_alerts(inspection.get("alerts") or [])
        bare = [alert["id"] for alert in alerts if alert["state"] == "open" and not alert.get("title")]
        if bare:
            self._call("quality.alert", "write", bare, {"title": title, "description": text})
        return alerts

    def _production_id(self, production_order: str) -> int:
        """The production the MES calls ``production_order``: by ``reference``, else by ``number``."""
        if not production_order or _CONTROL_CHARACTERS.search(production_order):
            raise _invalid(f"production order {production_order!r} is empty or not one line")
        for field in ("reference", "number"):
            rows = self._search_read(
                "production", [[field, "=", production_order]], ("number", "reference", "state")
            )
            if len(rows) > 1:
                event(
                    log,
                    logging.WARNING,
                    "tryton_production_ambiguous",
                    production_order=production_order,
                    field=field,
                    ids=",".join(str(row["id"]) for row in rows),
                )
            if rows:
                return int(rows[-1]["id"])  # the newest of namesakes
        raise ErpError(
            BACKEND,
            f"production order {production_order!r} not found (no production has it as reference or number)",
            code="unknown_production_order",
        )

    def _hold_control_id(self) -> int:
        if self._hold_control is None:
            rows = self._search_read("quality.control", [["name", "=", HOLD_CONTROL]], ("name",), limit=1)
            if not rows:
                raise ErpError(
                    BACKEND,
                    f"quality control {HOLD_CONTROL!r} not found in database {self._rpc.database!r}"
                    f" (needs operations [] and a boolean point {HOLD_POINT!r})",
                    code="not_configured",
                )
            self._hold_control = int(rows[0]["id"])
        return self._hold_control

    def _refused_duplicate(
        self, error: ErpError, find: Callable[[str], dict[str, Any] | None], correlation_id: str
    ) -> dict[str, Any]:
        """After a refused create: the document another writer made with ``correlation_id`` meanwhile (the
        unique constraint refused ours), or ``error`` raised again."""
        if error.retryable:
            raise error
        found = find(correlation_id)
        if found is None:
            raise error
        event(
            log, logging.INFO, "tryton_duplicate_refused", correlation_id=correlation_id, error=error.message
        )
        return found

    def _work_document(self, work: Mapping[str, Any], *, created: bool) -> ErpDocument:
        status = self._work_status(work.get("status"))
        outcome = work.get("plantwatch_outcome") or None
        return ErpDocument(
            number=str(work["number"]),
            correlation_id=str(work.get("plantwatch_correlation_id") or ""),
            created=created,
            status=status,
            outcome=outcome if status == "completed" and outcome in OUTCOMES else None,
        )

    def _work_status(self, status_id: Any) -> str:
        if not isinstance(status_id, int):
            return "unknown"
        if status_id not in self._status_progress:
            # Statuses are configuration: read them all once, again when a task has one not seen before.
            rows = self._search_read("project.work.status", [], ("name", "progress"))
            self._status_progress = {int(row["id"]): row.get("progress") for row in rows}
            if status_id not in self._status_progress:
                return "unknown"
        return status_from_progress(self._status_progress[status_id])


def tryton_error(method: str, error: Any) -> ErpError:
    """An :class:`ErpError` for the ``error`` member of Tryton's JSON-RPC answer to ``method``: a
    ``TrytonException``'s args (``["UserError", [message, description, domain]]``) or, for a fault of the
    server, ``[str(exception), traceback]``.

    >>> tryton_error("model.production.do", ["UserError", ["To continue, alerts from failed inspections"
    ...     " must be resolved.", "", None]]).retryable
    False
    >>> str(tryton_error("model.project.work.create", ["UserError", ["The number on work must be unique.",
    ...     "", None]]))
    'tryton UserError: The number on work must be unique.'
    """
    if isinstance(error, list) and error and error[0] in _USER_ERRORS:
        kind = str(error[0])
        details = error[1] if len(error) > 1 and isinstance(error[1], list) else []
        # UserError: (message, description, domain); UserWarning: (name, message, description).
        texts = details[1:3] if kind == "UserWarning" else details[:2]
        message = " - ".join(str(text) for text in texts if text) or kind
        retryable = bool(_SEQUENCE_RACE.search(message))
        return ErpError(BACKEND, message, code=kind, retryable=retryable)
    if isinstance(error, list) and error and error[0] == "ConcurrencyException":
        message = str(error[1]) if len(error) > 1 else "the record was changed meanwhile"
        return ErpError(BACKEND, message, code="ConcurrencyException", retryable=True)
    text = str(error[0]) if isinstance(error, list) and error else str(error)
    return ErpError(
        BACKEND,
        f"{method} failed in the server: {text[:_MAX_MESSAGE_CHARS]}",
        code="server_error",
        retryable=True,
    )


def _page_text(reply: HttpReply) -> str:
    text = reply.body.decode("utf-8", errors="replace")
    text = re.sub(r"(?is)<(head|script|style)\b.*?</\1>", " ", text)
    text = " ".join(re.sub(r"<[^>]+>", " ", text).split())[:_MAX_MESSAGE_CHARS]
    if text:
        return text
    try:
        return http.HTTPStatus(reply.status).phrase
    except ValueError:
        return "no message"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _one_line(text: str, what: str) -> str:
    line = _CONTROL_CHARACTERS.sub(" ", text).strip()
    if not line:
        raise _invalid(f"{what} is empty")
    return shorten(line, TITLE_MAX)


def _check_correlation_id(correlation_id: str) -> None:
    if not CORRELATION_ID_PATTERN.match(correlation_id):
        raise _invalid(f"correlation_id {correlation_id!r} is not 1..20 of [A-Z0-9]")


def _invalid(message: str) -> ErpError:
    return ErpError(BACKEND, message, code="client_validation", retryable=False)
