"""The gateway's HTTP API: recommendations to approve or reject, approval modes, maintenance windows, the
audit ledger (JSON or CSV), dead letters and their replay, feedback labels.

Every request authenticates with HTTP Basic (a user of the gateway's database, see
:mod:`plantwatch.gateway.users`); serve it on loopback or behind TLS. Roles are enforced here, on the
server: a refused action answers 403 and is recorded in the ledger with the user who tried. After
:data:`MAX_FAILED_LOGINS` wrong passwords for a user within :data:`LOCKOUT_S`, that user's requests answer
429 until the lockout ends.

=======  =========================================  ==============  ==========================================
method   path                                       role            what
=======  =========================================  ==============  ==========================================
GET      /api/v1/status                             viewer          the gateway's counters
GET      /api/v1/documents[?status=&kind=]          viewer          documents (notifications and holds)
GET      /api/v1/documents/{correlation_id}         viewer          one document
GET      /api/v1/recommendations                    viewer          documents awaiting approval (advisory)
POST     /api/v1/recommendations/{id}/approve       planner         body ``{"reason": "…"}`` (optional)
POST     /api/v1/recommendations/{id}/reject        planner         body ``{"reason": "…"}`` (required)
GET      /api/v1/modes                              viewer          approval-mode rules
PUT      /api/v1/modes                              administrator   ``{"asset": "*", "failure_mode": "*",
                                                                    "mode": "advisory"}``
GET      /api/v1/maintenance                        viewer          planned maintenance windows
POST     /api/v1/maintenance                        planner         ``{"asset", "starts", "ends" (RFC 3339),
                                                                    "reason"}``
GET      /api/v1/ledger[?asset=&decision=&user=     viewer          the audit ledger; ``format=csv`` for CSV
         &since=&until=&format=]
GET      /api/v1/dead-letters                       viewer          dead letters not yet replayed
POST     /api/v1/dead-letters/{id}/replay           administrator   take a dead letter back
GET      /api/v1/feedback                           viewer          labels from closed documents
=======  =========================================  ==============  ==========================================
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from plantwatch.clock import Clock, parse_rfc3339
from plantwatch.gateway.store import Conflict, GatewayStore, NotFound
from plantwatch.gateway.users import allows, verify_password
from plantwatch.httpserver import BackgroundHttpServer
from plantwatch.log import event

log = logging.getLogger("plantwatch.gateway.api")

MAX_FAILED_LOGINS = 5
LOCKOUT_S = 60.0
AUTH_CACHE_S = 60.0
"""A verified password is remembered (as a hash) this long: scrypt costs tens of milliseconds per check."""
MAX_BODY_BYTES = 64 * 1024
PREFIX = "/api/v1"


class HttpError(Exception):
    """An answer other than 200: status and message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class Caller:
    """An authenticated user."""

    name: str
    role: str


class Authenticator:
    """Checks Basic credentials against the users table, with a lockout after repeated failures."""

    def __init__(self, store: GatewayStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}
        self._verified: dict[tuple[str, str], tuple[str, float]] = {}

    def caller(self, header: str | None) -> Caller:
        """The user a request's ``Authorization`` header names (:class:`HttpError` 401 / 429 if not)."""
        challenge = {"WWW-Authenticate": 'Basic realm="plantwatch gateway", charset="UTF-8"'}
        if not header or not header.startswith("Basic "):
            raise HttpError(401, "authentication required (HTTP Basic)", challenge)
        try:
            name, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise HttpError(401, "malformed Basic credentials", challenge) from None
        now = time.monotonic()
        fingerprint = hashlib.sha256(f"{name}\0{password}".encode()).hexdigest()
        with self._lock:
            failures, last = self._failures.get(name, (0, 0.0))
            if failures >= MAX_FAILED_LOGINS and now - last < LOCKOUT_S:
                retry = LOCKOUT_S - (now - last)
                raise HttpError(429, "too many failed logins: wait", {"Retry-After": str(int(retry) + 1)})
            cached = self._verified.get((name, fingerprint))
        user = self.store.user(name)
        if (
            cached is not None
            and now - cached[1] < AUTH_CACHE_S
            and user is not None
            and user[0] == cached[0]
        ):
            return Caller(name, user[0])
        if user is None or not verify_password(password, user[1]):
            with self._lock:
                count = self._failures.get(name, (0, 0.0))[0] + 1
                self._failures[name] = (count, now)
            event(log, logging.WARNING, "login_failed", user=name, failures=count)
            raise HttpError(401, "wrong user or password", challenge)
        with self._lock:
            self._failures.pop(name, None)
            self._verified[(name, fingerprint)] = (user[0], now)
        return Caller(name, user[0])


class ApiServer:
    """Serves the API on ``host``:``port`` in a thread (port 0: a free port; see :attr:`port`).

    ``changed`` is called (from the server's threads) after a change the ERP worker must see;
    ``replay_message(topic, payload)`` takes a dead-lettered MQTT payload again; ``status`` gives the
    gateway's counters.
    """

    def __init__(
        self,
        store: GatewayStore,
        *,
        site: str,
        clock: Clock,
        host: str = "127.0.0.1",
        port: int = 0,
        changed: Callable[[], None] = lambda: None,
        replay_message: Callable[[str, bytes], str] | None = None,
        status: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.store = store
        self.site = site
        self.clock = clock
        self.changed = changed
        self.replay_message = replay_message
        self.status = status
        self.auth = Authenticator(store)
        api = self

        class Handler(_Handler):
            server_api = api

        self.server = BackgroundHttpServer(Handler, host=host, port=port, name="gateway-api")

    @property
    def port(self) -> int:
        """The port the API listens on."""
        return self.server.port

    @property
    def url(self) -> str:
        """The API's base URL."""
        return self.server.base_url + PREFIX

    def start(self) -> None:
        """Serve in a background thread."""
        self.server.start()
        event(log, logging.INFO, "api_listening", url=self.url)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.stop()

    # --- the routes ------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, caller: Caller) -> Any:
        """The answer to one request (JSON-ready, or ``(content_type, text)``)."""
        parts = (
            [unquote(part) for part in path[len(PREFIX) :].strip("/").split("/")]
            if path.startswith(PREFIX)
            else []
        )
        now = self.clock.now()
        match (method, parts):
            case ("GET", ["status"]):
                return {"site": self.site, "user": caller.name, "role": caller.role, **self.status()}
            case ("GET", ["documents"]):
                return [
                    d.as_dict()
                    for d in self.store.documents(status=query.get("status"), kind=query.get("kind"))
                ]
            case ("GET", ["documents", cid]):
                return self._found(lambda: self.store.document(cid).as_dict())
            case ("GET", ["recommendations"]):
                return [d.as_dict() for d in self.store.documents(status="awaiting_approval")]
            case ("POST", ["recommendations", cid, ("approve" | "reject") as verb]):
                self._require(caller, "planner", f"{verb} {cid}", now)
                reason = str(body.get("reason", "")).strip() if isinstance(body, dict) else ""
                if verb == "reject" and not reason:
                    raise HttpError(400, "a rejection needs a reason")
                document = self._found(
                    lambda: self.store.decide(
                        cid, approve=verb == "approve", user=caller.name, reason=reason, now_s=now
                    )
                )
                event(log, logging.WARNING, f"recommendation_{verb}d", correlation_id=cid, user=caller.name)
                self.changed()
                return document.as_dict()
            case ("GET", ["modes"]):
                return self.store.modes()
            case ("PUT", ["modes"]):
                self._require(caller, "administrator", "change approval mode", now)
                if not isinstance(body, dict):
                    raise HttpError(400, "expected a JSON object")
                try:
                    self.store.set_mode(
                        site=self.site,
                        asset=str(body.get("asset", "*")),
                        failure_mode=str(body.get("failure_mode", "*")),
                        mode=str(body.get("mode")),
                        user=caller.name,
                        now_s=now,
                    )
                except ValueError as error:
                    raise HttpError(400, str(error)) from None
                event(
                    log,
                    logging.WARNING,
                    "mode_changed",
                    user=caller.name,
                    **{k: str(v) for k, v in body.items()},
                )
                return self.store.modes()
            case ("GET", ["maintenance"]):
                return self.store.maintenance_windows()
            case ("POST", ["maintenance"]):
                self._require(caller, "planner", "plan maintenance", now)
                try:
                    window = self.store.add_maintenance_window(
                        site=self.site,
                        asset=str(body["asset"]),
                        starts_at=parse_rfc3339(str(body["starts"])),
                        ends_at=parse_rfc3339(str(body["ends"])),
                        reason=str(body.get("reason", "planned maintenance")),
                        user=caller.name,
                        now_s=now,
                    )
                except (KeyError, TypeError) as error:
                    raise HttpError(400, f"missing field {error}") from None
                except ValueError as error:
                    raise HttpError(400, str(error)) from None
                return {"id": window}
            case ("GET", ["ledger"]):
                rows = self.store.ledger(
                    asset=query.get("asset"),
                    decision=query.get("decision"),
                    actor=query.get("user"),
                    since_s=_time(query, "since"),
                    until_s=_time(query, "until"),
                )
                return ("text/csv; charset=utf-8", ledger_csv(rows)) if query.get("format") == "csv" else rows
            case ("GET", ["dead-letters"]):
                return self.store.dead_letters()
            case ("POST", ["dead-letters", letter, "replay"]):
                self._require(caller, "administrator", f"replay dead letter {letter}", now)
                if not letter.isdigit():
                    raise HttpError(404, f"no dead letter {letter!r}")
                replayed = self._found(lambda: self.store.replay(int(letter), user=caller.name, now_s=now))
                outcome = "pending again"
                if replayed["source"] != "erp" and self.replay_message is not None and replayed["payload"]:
                    outcome = self.replay_message(str(replayed["topic"]), bytes(replayed["payload"]))
                self.changed()
                return {"id": int(letter), "correlation_id": replayed["correlation_id"], "outcome": outcome}
            case ("GET", ["feedback"]):
                return self.store.feedback()
        raise HttpError(404, f"no such resource: {method} {path}")

    def _require(self, caller: Caller, role: str, action: str, now: float) -> None:
        if not allows(caller.role, role):
            self.store.refused(
                user=caller.name, action=action, detail=f"needs {role}, has {caller.role}", now_s=now
            )
            event(log, logging.WARNING, "action_refused", user=caller.name, action=action, role=caller.role)
            raise HttpError(403, f"{action} needs the {role} role; {caller.name} is a {caller.role}")

    @staticmethod
    def _found(action: Callable[[], Any]) -> Any:
        try:
            return action()
        except NotFound as error:
            raise HttpError(404, str(error)) from None
        except Conflict as error:
            raise HttpError(409, str(error)) from None


LEDGER_COLUMNS = (
    "id",
    "at",
    "decision",
    "kind",
    "site",
    "asset",
    "failure_mode",
    "state",
    "measured_at",
    "agent",
    "seq",
    "message_id",
    "correlation_id",
    "erp_number",
    "score",
    "threshold",
    "confidence",
    "model_name",
    "model_version",
    "model_sha256",
    "mode",
    "priority",
    "actor",
    "reason",
    "detail",
    "evidence",
    "features",
)


def ledger_csv(rows: list[dict[str, Any]]) -> str:
    """The ledger as CSV with a header (evidence and features as JSON text in their cells)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LEDGER_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _time(query: dict[str, str], name: str) -> float | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise HttpError(400, f"{name}: {value!r} is not an RFC 3339 time") from None


class _Handler(BaseHTTPRequestHandler):
    server_api: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        api = self.server_api
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            body = self._body()
            caller = api.auth.caller(self.headers.get("Authorization"))
            result = api.handle(method, url.path.rstrip("/") or "/", query, body, caller)
        except HttpError as error:
            self._send(error.status, "application/json", json.dumps({"error": error.message}), error.headers)
            return
        except Exception as error:  # noqa: BLE001 - a request must get an answer; the log keeps the rest
            event(log, logging.ERROR, "api_error", path=url.path, error=repr(error))
            self._send(
                500, "application/json", json.dumps({"error": "internal error: see the gateway's log"})
            )
            return
        if isinstance(result, tuple):
            self._send(200, result[0], result[1])
        else:
            self._send(200, "application/json", json.dumps(result, default=str))

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise HttpError(413, f"request body over {MAX_BODY_BYTES} bytes")
        if not length:
            return {}
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise HttpError(400, "the request body is not JSON") from None

    def _send(self, status: int, content_type: str, text: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
