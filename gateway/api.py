"""The gateway's HTTP server: the planner's web page (:mod:`plantwatch.gateway.web`) and the API it and the
command line use: the fleet, assets, agents, recommendations to approve or reject, approval modes,
maintenance windows, the audit ledger (JSON or CSV), dead letters and their replay, feedback labels, and a
stream of live updates.

A request authenticates with the web page's session cookie or with HTTP Basic (a user of the gateway's
database, see :mod:`plantwatch.gateway.access`); serve it on loopback or with TLS (``[api] tls_cert``).
Roles are enforced here, on the server: a refused action answers 403 and is recorded in the ledger with the
user who tried; so is a session's state-changing request without its CSRF token.

=======  =========================================  ==============  ==========================================
method   path                                       role            what
=======  =========================================  ==============  ==========================================
GET      /api/v1/status                             viewer          the gateway's counters
GET      /api/v1/session                            viewer          who is logged in, role, CSRF token
GET      /api/v1/fleet[?site=&state=&failure_mode=  viewer          assets worst first, a page at a time,
         &q=&offset=&limit=]                                        with counts per state
GET      /api/v1/assets/{site}/{asset}              viewer          history, spectrum, evidence, documents
GET      /api/v1/agents                             viewer          agents: state, buffer, models, drift
GET      /api/v1/events                             viewer          live updates (server-sent events)
GET      /api/v1/documents[?status=&kind=]          viewer          documents (notifications and holds)
GET      /api/v1/documents/{correlation_id}         viewer          one document
GET      /api/v1/recommendations                    viewer          documents awaiting approval (advisory),
                                                                    each with the alert that opened it
POST     /api/v1/recommendations/{id}/approve       planner         body ``{"reason": "…"}`` (optional)
POST     /api/v1/recommendations/{id}/reject        planner         body ``{"reason": "…"}`` (required)
GET      /api/v1/modes                              viewer          approval-mode rules
PUT      /api/v1/modes                              administrator   ``{"asset": "*", "failure_mode": "*",
                                                                    "mode": "advisory"}``
GET      /api/v1/maintenance                        viewer          planned maintenance windows
POST     /api/v1/maintenance                        planner         ``{"asset", "starts", "ends" (RFC 3339),
                                                                    "reason"}``
GET      /api/v1/ledger[?asset=&decision=&user=     viewer          the audit ledger; ``format=csv`` or
         &since=&until=&limit=&offset=&format=]                     ``json`` for a download (oldest first),
                                                                    else newest first
GET      /api/v1/dead-letters                       viewer          dead letters not yet replayed
POST     /api/v1/dead-letters/{id}/replay           administrator   take a dead letter back
GET      /api/v1/feedback                           viewer          labels from closed documents
=======  =========================================  ==============  ==========================================

Live updates (``/api/v1/events``): ``event: asset`` (a fleet row), ``event: agent`` (an agents row) and
``event: document`` (a document), see :mod:`plantwatch.gateway.events`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from plantwatch.clock import Clock, parse_rfc3339
from plantwatch.gateway import views
from plantwatch.gateway.access import SESSION_COOKIE, Authenticator, Caller, HttpError, Sessions, csrf_ok
from plantwatch.gateway.events import EventBus
from plantwatch.gateway.store import Conflict, GatewayStore, NotFound
from plantwatch.gateway.users import allows
from plantwatch.gateway.web import WebPages
from plantwatch.httpserver import BackgroundHttpServer
from plantwatch.log import event

log = logging.getLogger("plantwatch.gateway.api")

MAX_BODY_BYTES = 64 * 1024
PREFIX = "/api/v1"
KEEPALIVE_S = 15.0
"""An event stream sends a comment line this often, so proxies and the browser keep it open."""
STATE_CHANGING = ("POST", "PUT", "DELETE")


class ApiServer:
    """Serves the web page and the API on ``host``:``port`` in a thread (port 0: a free port, see
    :attr:`port`); with TLS when ``tls`` is an :class:`ssl.SSLContext`.

    ``changed`` is called (from the server's threads) after a change the ERP worker must see;
    ``replay_message(topic, payload)`` takes a dead-lettered MQTT payload again; ``status`` gives the
    gateway's counters; ``events`` carries live updates to open pages. ``secure_cookies`` marks the session
    cookie ``Secure`` (set it behind a TLS proxy; it is always set with ``tls``).
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
        events: EventBus | None = None,
        tls: ssl.SSLContext | None = None,
        secure_cookies: bool = False,
    ) -> None:
        self.store = store
        self.site = site
        self.clock = clock
        self.changed = changed
        self.replay_message = replay_message
        self.status = status
        self.events = events or EventBus()
        self.auth = Authenticator(store)
        self.sessions = Sessions(store)
        self.web = WebPages(
            self.auth, self.sessions, clock=clock, secure_cookies=secure_cookies or tls is not None
        )
        api = self

        class Handler(_Handler):
            server_api = api

        self.server = BackgroundHttpServer(Handler, host=host, port=port, name="gateway-api", tls=tls)

    @property
    def port(self) -> int:
        """The port the API listens on."""
        return self.server.port

    @property
    def url(self) -> str:
        """The API's base URL."""
        return self.server.base_url + PREFIX

    @property
    def page_url(self) -> str:
        """The web page's URL."""
        return self.server.base_url + "/"

    def start(self) -> None:
        """Serve in a background thread."""
        self.server.start()
        event(log, logging.INFO, "api_listening", url=self.url, page=self.page_url)

    def stop(self) -> None:
        """Stop serving (ending open event streams) and close the socket."""
        self.events.close()
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
            case ("GET", ["session"]):
                return {"user": caller.name, "role": caller.role, "csrf": caller.csrf, "site": self.site}
            case ("GET", ["fleet"]):
                return views.fleet(
                    self.store,
                    site=query.get("site") or None,
                    state=query.get("state") or None,
                    failure_mode=query.get("failure_mode") or None,
                    q=query.get("q") or None,
                    offset=_int(query, "offset", 0),
                    limit=_int(query, "limit", 100),
                )
            case ("GET", ["assets", site, asset]):
                return self._found(lambda: views.asset_detail(self.store, site, asset))
            case ("GET", ["agents"]):
                return views.agents(self.store)
            case ("GET", ["documents"]):
                return [
                    d.as_dict()
                    for d in self.store.documents(status=query.get("status"), kind=query.get("kind"))
                ]
            case ("GET", ["documents", cid]):
                return self._found(lambda: self.store.document(cid).as_dict())
            case ("GET", ["recommendations"]):
                return views.recommendations(self.store)
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
                self.events.publish("document", cid, document.as_dict())
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
                export = query.get("format")
                if export not in (None, "", "csv", "json"):
                    raise HttpError(400, f"format: {export!r} is not csv or json")
                rows = self.store.ledger(
                    asset=query.get("asset") or None,
                    decision=query.get("decision") or None,
                    actor=query.get("user") or None,
                    since_s=_time(query, "since"),
                    until_s=_time(query, "until"),
                    limit=None if export else _int(query, "limit", 1000),
                    offset=0 if export else _int(query, "offset", 0),
                    newest_first=not export,
                )
                if export == "csv":
                    return Download("text/csv; charset=utf-8", ledger_csv(rows), "plantwatch-ledger.csv")
                if export == "json":
                    return Download(
                        "application/json", json.dumps(rows, default=str), "plantwatch-ledger.json"
                    )
                return rows
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
                if replayed["correlation_id"]:
                    self.events.publish("document", str(replayed["correlation_id"]))
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


@dataclass(frozen=True)
class Download:
    """An answer the browser saves as ``filename``."""

    content_type: str
    text: str
    filename: str


def _int(query: dict[str, str], name: str, default: int) -> int:
    value = query.get(name)
    if not value:
        return default
    try:
        return max(0, int(value))
    except ValueError:
        raise HttpError(400, f"{name}: {value!r} is not a whole number") from None


def _json_body(raw: bytes) -> Any:
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HttpError(400, "the request body is not JSON") from None


def _time(query: dict[str, str], name: str) -> float | None:
    value = query.get(name)
    if not value:
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

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    @property
    def client(self) -> str:
        return str(self.client_address[0])

    def _serve(self, method: str) -> None:
        api = self.server_api
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            if path != PREFIX and not path.startswith(PREFIX + "/"):
                api.web.serve(self, method, path, query)
                return
            if path == PREFIX + "/events" and method == "GET":
                self._stream(self._caller(method))
                return
            raw = self._raw_body()
            caller = self._caller(method)
            result = api.handle(method, path, query, _json_body(raw), caller)
        except HttpError as error:
            self.send_json(error.status, {"error": error.message}, error.headers)
            return
        except Exception as error:  # noqa: BLE001 - a request must get an answer; the log keeps the rest
            event(log, logging.ERROR, "api_error", path=url.path, error=repr(error))
            self.send_json(500, {"error": "internal error: see the gateway's log"})
            return
        if isinstance(result, Download):
            self.send(
                200,
                result.content_type,
                result.text.encode(),
                {"Content-Disposition": f'attachment; filename="{result.filename}"'},
            )
        elif isinstance(result, tuple):
            self.send(200, result[0], result[1].encode())
        else:
            self.send_json(200, result)

    def cookie(self) -> str | None:
        """The session token the request carries, if any."""
        header = self.headers.get("Cookie")
        if not header:
            return None
        jar = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            return None
        morsel = jar.get(SESSION_COOKIE)
        return morsel.value if morsel is not None and morsel.value else None

    def session(self) -> Caller | None:
        """The logged-in user of the request's session cookie, or ``None``."""
        token = self.cookie()
        return self.server_api.sessions.caller(token, now_s=self.server_api.clock.now()) if token else None

    def _caller(self, method: str) -> Caller:
        """Who makes the request: its session, else its Basic credentials (HttpError 401/403/415/429)."""
        api = self.server_api
        caller = self.session()
        if caller is not None:
            if method in STATE_CHANGING and not csrf_ok(caller, self.headers.get("X-CSRF-Token")):
                api.store.refused(
                    user=caller.name,
                    action=f"{method} {urlsplit(self.path).path}",
                    detail="no valid CSRF token",
                    now_s=api.clock.now(),
                )
                event(log, logging.WARNING, "csrf_refused", user=caller.name, path=urlsplit(self.path).path)
                raise HttpError(403, "the request carries no valid CSRF token: reload the page")
            return caller
        header = self.headers.get("Authorization")
        if header and header.startswith("Basic "):
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if method in STATE_CHANGING and content_type not in ("", "application/json"):
                # a foreign page can send a form with the browser's saved credentials, not JSON
                raise HttpError(415, "send the request body as application/json")
            try:
                return api.auth.basic(header, client=self.client)
            except HttpError as error:
                if error.status == 401:
                    error.headers = {"WWW-Authenticate": 'Basic realm="plantwatch gateway", charset="UTF-8"'}
                raise
        if self.cookie():
            raise HttpError(401, "the session has ended: log in again")
        raise HttpError(
            401,
            "authentication required (log in, or HTTP Basic)",
            {"WWW-Authenticate": 'Basic realm="plantwatch gateway", charset="UTF-8"'},
        )

    def _stream(self, caller: Caller) -> None:
        """Server-sent events until the client leaves or the server stops."""
        bus = self.server_api.events
        subscription = bus.subscribe()
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self.wfile.write(f"retry: 2000\n: live updates for {caller.name}\n\n".encode())
            self.wfile.flush()
            while not bus.closed and not subscription.closed:
                events = subscription.take(KEEPALIVE_S)
                if not events:
                    self.wfile.write(b": keepalive\n\n")
                for kind, data in events:
                    text = json.dumps(data, separators=(",", ":"), default=str)
                    self.wfile.write(f"event: {kind}\ndata: {text}\n\n".encode())
                self.wfile.flush()
        except OSError:
            pass  # the page went away
        finally:
            subscription.close()

    def _raw_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body must not be taken for the next request
            raise HttpError(413, f"request body over {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self.send(status, "application/json", json.dumps(value, default=str).encode(), headers)

    def send(
        self, status: int, content_type: str, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """One whole answer."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
