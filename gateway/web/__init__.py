"""The planner's web page, served by the gateway next to its API (:mod:`plantwatch.gateway.api`).

Pages are static files in ``static/`` (HTML, CSS and JavaScript written for plantwatch: no build step, no
third-party code, nothing fetched from outside the gateway); their scripts read the API with the session
cookie. This module serves them and the login:

=======  ==============================  =====================================================================
method   path                            what
=======  ==============================  =====================================================================
GET      /                               Fleet: every asset worst first, live
GET      /assets/{site}/{asset}          Asset: score and features over time, spectra with markers, evidence,
                                         documents, model
GET      /approvals                      Approvals: the advisory queue, approve or reject with a reason
GET      /audit                          Audit: the ledger with filters and export, dead letters and replay
GET      /models                         Models: each agent's models, their evaluation figures, drift
GET      /login, POST /login             the login form (a 303 to the page asked for, or back with the error)
POST     /logout                         end the session (CSRF token in the form field ``csrf`` or header)
GET      /static/{file}                  scripts, styles
=======  ==============================  =====================================================================

A page asked for without a session answers 303 to ``/login?next=…``. Every answer forbids framing and
loading anything from another origin (``Content-Security-Policy``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from plantwatch.clock import Clock
from plantwatch.gateway.access import Authenticator, HttpError, Sessions, csrf_ok, session_cookie
from plantwatch.log import event

if TYPE_CHECKING:
    from plantwatch.gateway.api import _Handler

log = logging.getLogger("plantwatch.gateway.web")

STATIC = Path(__file__).parent / "static"
PAGES = {
    "/": "fleet.html",
    "/approvals": "approvals.html",
    "/audit": "audit.html",
    "/models": "models.html",
}
ASSET_PAGE = re.compile(r"^/assets/[a-z0-9_-]+/[a-z0-9_-]+$")
STATIC_FILE = re.compile(r"^/static/([A-Za-z0-9_-]+\.(html|css|js|svg|md))$")
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "svg": "image/svg+xml",
    "md": "text/plain; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self';"
        " connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
MAX_FORM_BYTES = 4096


class WebPages:
    """Serves the page files and the login; the handler's API part serves the data."""

    def __init__(
        self, auth: Authenticator, sessions: Sessions, *, clock: Clock, secure_cookies: bool
    ) -> None:
        self.auth = auth
        self.sessions = sessions
        self.clock = clock
        self.secure_cookies = secure_cookies
        # read once: the files ship with the package and do not change while the gateway runs
        self.files = {path.name: path.read_bytes() for path in STATIC.iterdir() if path.is_file()}

    def serve(self, handler: _Handler, method: str, path: str, query: dict[str, str]) -> None:
        """Answer a request outside the API."""
        if method in ("GET", "HEAD"):
            static = STATIC_FILE.match(path)
            if static:
                self._file(handler, static.group(1), public=True)
            elif path == "/login":
                self._file(handler, "login.html", public=True)
            elif path in PAGES or ASSET_PAGE.match(path):
                self._page(handler, PAGES.get(path, "asset.html"), path)
            else:
                raise HttpError(404, f"no page {path}")
        elif method == "POST" and path == "/login":
            self._login(handler)
        elif method == "POST" and path == "/logout":
            self._logout(handler)
        else:
            raise HttpError(405 if path in PAGES else 404, f"no such resource: {method} {path}")

    def _file(self, handler: _Handler, name: str, *, public: bool) -> None:
        data = self.files.get(name)
        if data is None:
            raise HttpError(404, f"no file {name}")
        kind = name.rsplit(".", 1)[-1]
        headers = dict(SECURITY_HEADERS)
        if public and kind != "html":
            headers["Cache-Control"] = "no-cache"  # revalidate: an upgraded gateway serves new scripts
        handler.send(200, CONTENT_TYPES[kind], data, headers)

    def _page(self, handler: _Handler, name: str, path: str) -> None:
        if handler.session() is None:
            self._redirect(handler, "/login?" + urlencode({"next": path}))
            return
        self._file(handler, name, public=False)

    @staticmethod
    def _redirect(handler: _Handler, location: str, headers: dict[str, str] | None = None) -> None:
        handler.send(303, "text/plain; charset=utf-8", b"", {"Location": location, **(headers or {})})

    def _form(self, handler: _Handler) -> dict[str, str]:
        origin = handler.headers.get("Origin")
        host = handler.headers.get("Host")
        if origin and origin != "null" and urlsplit(origin).netloc != host:
            raise HttpError(403, "a form from another site")
        length = int(handler.headers.get("Content-Length") or 0)
        if length > MAX_FORM_BYTES:
            raise HttpError(413, "form too large")
        text = handler.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        return {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True).items()}

    def _login(self, handler: _Handler) -> None:
        form = self._form(handler)
        target = form.get("next") or "/"
        if not target.startswith("/") or target.startswith("//") or target.startswith("/login"):
            target = "/"  # only a page of this gateway
        user = form.get("user", "").strip()
        try:
            caller = self.auth.check(user, form.get("password", ""), client=handler.client)
        except HttpError as error:
            message = (
                "Wrong user name or password." if error.status == 401 else error.message.capitalize() + "."
            )
            self._redirect(handler, "/login?" + urlencode({"error": message, "next": target}), error.headers)
            return
        token, _ = self.sessions.open(caller.name, now_s=self.clock.now())
        event(log, logging.INFO, "logged_in", user=caller.name, role=caller.role, client=handler.client)
        self._redirect(
            handler,
            quote(target, safe="/?=&"),
            {"Set-Cookie": session_cookie(token, secure=self.secure_cookies)},
        )

    def _logout(self, handler: _Handler) -> None:
        form = self._form(handler)
        caller = handler.session()
        token = handler.cookie()
        if caller is not None and token is not None:
            if not csrf_ok(caller, handler.headers.get("X-CSRF-Token") or form.get("csrf")):
                raise HttpError(403, "the request carries no valid CSRF token: reload the page")
            self.sessions.close(token)
            event(log, logging.INFO, "logged_out", user=caller.name)
        self._redirect(handler, "/login", {"Set-Cookie": session_cookie("", secure=self.secure_cookies)})
