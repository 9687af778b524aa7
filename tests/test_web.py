"""The web page's server on a real socket and SQLite file, without a browser: login and session cookies,
CSRF, roles, the failed-login slowdown and lockout, TLS, the fleet with 2,000 assets, an asset's history,
live updates, and pages that load nothing from another origin."""

from __future__ import annotations

import http.client
import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from plantwatch.clock import ManualClock, rfc3339
from plantwatch.contract import HEALTH_SCHEMA
from plantwatch.gateway import access
from plantwatch.gateway.api import ApiServer
from plantwatch.gateway.store import HISTORY_STEP_S, TREND_POINTS, GatewayStore, RecordIn
from plantwatch.gateway.web import STATIC
from plantwatch.simulators.pki import issue, make_ca
from tests import test_gateway_api
from tests.test_gateway_store import T0, alert

PASSWORDS = test_gateway_api.PASSWORDS
store = test_gateway_api.store  # the same users in a fresh database


@pytest.fixture
def server(store: GatewayStore) -> Iterator[ApiServer]:
    result = ApiServer(store, site="plant1", clock=ManualClock(start=T0))
    result.start()
    yield result
    result.stop()


class Browser:
    """A cookie-keeping HTTP client that does not follow redirects (to look at each answer)."""

    def __init__(self, server: ApiServer, *, tls: ssl.SSLContext | None = None) -> None:
        self.port = server.port
        self.tls = tls
        self.cookies: dict[str, str] = {}
        self.csrf: str | None = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        if self.tls is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=self.tls, timeout=10
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=sent)
        reply = conn.getresponse()
        data = reply.read()
        for header in reply.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";")[0]
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        conn.close()
        return reply.status, reply.headers, data

    def login(self, user: str, password: str | None = None, next_page: str = "/") -> tuple[int, str]:
        """``(status, Location)`` of a login form post."""
        form = urlencode({"user": user, "password": password or PASSWORDS[user], "next": next_page}).encode()
        status, headers, _ = self.request(
            "POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        if user in PASSWORDS and self.cookies:
            self.csrf = self.json("GET", "/api/v1/session")[1]["csrf"]
        return status, headers.get("Location", "")

    def json(self, method: str, path: str, body: Any = None, *, csrf: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if csrf and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        data = None if body is None else json.dumps(body).encode()
        status, _, text = self.request(method, path, data, headers)
        return status, json.loads(text or b"null")


def recommendation(store: GatewayStore) -> str:
    store.accept(alert(), now_s=T0)
    (document,) = store.documents(status="awaiting_approval")
    return document.correlation_id


# --- login, sessions, cookies ------------------------------------------------------------------------


def test_pages_need_a_login_and_the_session_cookie_is_httponly_and_samesite(server: ApiServer) -> None:
    browser = Browser(server)
    status, headers, _ = browser.request("GET", "/approvals")
    assert status == 303 and headers["Location"] == "/login?next=%2Fapprovals"
    status, headers, page = browser.request("GET", "/login")
    assert status == 200 and b'id="login-form"' in page
    assert "default-src 'self'" in headers["Content-Security-Policy"]

    status, location = browser.login("pat", "not the password", next_page="/approvals")
    assert status == 303 and location.startswith("/login?")
    assert parse_qs(urlsplit(location).query)["error"] == ["Wrong user name or password."]
    assert not browser.cookies

    status, headers, _ = browser.request(
        "POST",
        "/login",
        urlencode({"user": "pat", "password": PASSWORDS["pat"], "next": "/approvals"}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 303 and headers["Location"] == "/approvals"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{access.SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback: a Secure cookie would never come back
    status, headers, page = browser.request("GET", "/approvals")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert browser.json("GET", "/api/v1/session")[1] | {"csrf": "-"} == {
        "user": "pat",
        "role": "planner",
        "csrf": "-",
        "site": "plant1",
    }


def test_a_login_only_sends_to_a_page_of_this_gateway(server: ApiServer) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/login"):
        assert Browser(server).login("viv", next_page=target) == (303, "/")


def test_the_database_keeps_no_session_token_and_logout_ends_the_session(
    server: ApiServer, store: GatewayStore
) -> None:
    browser = Browser(server)
    browser.login("viv")
    token = browser.cookies[access.SESSION_COOKIE]
    with store.reading() as conn:
        stored = [row[0] for row in conn.execute("SELECT token_sha256 FROM sessions")]
    assert stored and token not in stored
    # logout needs the CSRF token too: a foreign page cannot log a planner out
    status, _, _ = browser.request(
        "POST", "/logout", b"", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 403
    status, headers, _ = browser.request(
        "POST",
        "/logout",
        urlencode({"csrf": browser.csrf}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 303 and headers["Location"] == "/login" and "Max-Age=0" in headers["Set-Cookie"]
    browser.cookies[access.SESSION_COOKIE] = token  # a stolen copy is worthless now
    assert browser.request("GET", "/")[0] == 303
    assert browser.json("GET", "/api/v1/fleet")[0] == 401


def test_behind_tls_the_session_cookie_is_secure(tmp_path: Path, store: GatewayStore) -> None:
    ca = make_ca(tmp_path / "ca")
    certificate = issue(ca, tmp_path / "ca", "gateway", server=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert_file, certificate.key_file)
    server = ApiServer(store, site="plant1", clock=ManualClock(start=T0), tls=context)
    server.start()
    try:
        assert server.page_url.startswith("https://127.0.0.1:")
        client = ssl.create_default_context(cafile=str(ca.cert_file))
        browser = Browser(server, tls=client)
        status, headers, _ = browser.request(
            "POST",
            "/login",
            urlencode({"user": "viv", "password": PASSWORDS["viv"]}).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 303 and "Secure" in headers["Set-Cookie"]
        assert browser.json("GET", "/api/v1/session")[1]["user"] == "viv"
    finally:
        server.stop()


def test_wrong_passwords_are_answered_ever_later_then_locked_out(server: ApiServer) -> None:
    browser = Browser(server)
    took = []
    for _ in range(access.MAX_FAILED_LOGINS):
        started = time.monotonic()
        status, location = browser.login("pat", "guess-guess")
        took.append(time.monotonic() - started)
        assert "Wrong+user+name+or+password" in location
    assert took[-1] >= access.FAILURE_DELAY_MAX_S * 0.9 > took[0]  # slowed down
    # the sixth try is refused without looking at the password: the right one waits too
    for password in ("guess-guess", PASSWORDS["pat"]):
        status, location = browser.login("pat", password)
        assert status == 303
        assert parse_qs(urlsplit(location).query)["error"][0].startswith("Too many failed logins: wait")
    assert not browser.cookies
    assert Browser(server).login("viv")[1] == "/"  # another user is not locked out


# --- CSRF and roles ----------------------------------------------------------------------------------


def test_a_session_post_without_the_csrf_token_is_refused_and_recorded(
    server: ApiServer, store: GatewayStore
) -> None:
    cid = recommendation(store)
    browser = Browser(server)
    browser.login("pat")
    status, body = browser.json("POST", f"/api/v1/recommendations/{cid}/approve", {}, csrf=False)
    assert status == 403 and "CSRF" in body["error"]
    browser.csrf, right = "forged-token", browser.csrf
    assert browser.json("POST", f"/api/v1/recommendations/{cid}/approve", {})[0] == 403
    assert store.document(cid).status == "awaiting_approval"
    refused = store.ledger(decision="refused")
    assert [(row["actor"], row["detail"]) for row in refused] == [("pat", "no valid CSRF token")] * 2
    browser.csrf = right
    status, body = browser.json("POST", f"/api/v1/recommendations/{cid}/approve", {"reason": "seen it"})
    assert status == 200 and body["status"] == "pending" and body["decided_by"] == "pat"


def test_a_viewer_cannot_approve_through_the_page_either(server: ApiServer, store: GatewayStore) -> None:
    cid = recommendation(store)
    browser = Browser(server)
    browser.login("viv")
    status, body = browser.json("POST", f"/api/v1/recommendations/{cid}/approve", {"reason": "why not"})
    assert status == 403 and "planner" in body["error"]
    assert store.ledger(decision="refused")[-1]["actor"] == "viv"
    assert store.document(cid).status == "awaiting_approval"
    # nor change an approval mode: that needs an administrator, whatever the page shows
    planner = Browser(server)
    planner.login("pat")
    assert planner.json("PUT", "/api/v1/modes", {"mode": "closed_loop"})[0] == 403


def test_http_basic_state_changes_must_be_json_not_a_form(server: ApiServer, store: GatewayStore) -> None:
    cid = recommendation(store)
    browser = Browser(server)
    token = "Basic " + __import__("base64").b64encode(f"pat:{PASSWORDS['pat']}".encode()).decode()
    status, _, _ = browser.request(
        "POST",
        f"/api/v1/recommendations/{cid}/approve",
        b"reason=x",
        {"Authorization": token, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 415
    assert store.document(cid).status == "awaiting_approval"


# --- what the pages read -----------------------------------------------------------------------------


def test_the_fleet_of_2000_assets_comes_worst_first_a_page_at_a_time(
    server: ApiServer, store: GatewayStore
) -> None:
    records = []
    for i in range(2000):
        state = "alarm" if i % 500 == 7 else "warning" if i % 100 == 3 else "normal"
        record = alert(asset=f"asset-{i:04d}", state=state, seq=i + 1, at=T0 + i, schema=HEALTH_SCHEMA)
        records.append(RecordIn(record))
    store.take(records, now_s=T0 + 2000)
    browser = Browser(server)
    browser.login("viv")
    status, page = browser.json("GET", "/api/v1/fleet?limit=100")
    assert status == 200 and page["total"] == 2000 and len(page["assets"]) == 100
    assert page["counts"] == {"alarm": 4, "warning": 20, "normal": 1976}
    states = [row["state"] for row in page["assets"]]
    assert states[:24] == ["alarm"] * 4 + ["warning"] * 20 and set(states[24:]) == {"normal"}
    row = page["assets"][0]
    assert row["agent_state"] == "unknown" and row["trend"] == [row["score"]]
    last = browser.json("GET", "/api/v1/fleet?limit=100&offset=1900")[1]
    assert len(last["assets"]) == 100 and last["offset"] == 1900
    warnings = browser.json("GET", "/api/v1/fleet?state=warning")[1]
    assert warnings["total"] == 20 and {r["state"] for r in warnings["assets"]} == {"warning"}
    assert warnings["counts"]["normal"] == 1976  # counts ignore the state filter: the header stays whole
    found = browser.json("GET", "/api/v1/fleet?q=asset-1%25")[1]  # % is a character, not a wildcard
    assert found["total"] == 0
    assert browser.json("GET", "/api/v1/fleet?q=asset-19")[1]["total"] == 100
    assert browser.json("GET", "/api/v1/fleet?limit=x")[0] == 400


def test_an_assets_history_is_thinned_by_time_and_keeps_every_alert(
    server: ApiServer, store: GatewayStore
) -> None:
    # two hours of health records every 10 s, then an alarm: a point per minute, and the alert
    items = [
        RecordIn(alert(state="normal", seq=i + 1, at=T0 + 10.0 * i, schema=HEALTH_SCHEMA)) for i in range(720)
    ]
    store.take(items, now_s=T0)
    store.accept(alert(seq=721, at=T0 + 7205.0), now_s=T0 + 1)
    browser = Browser(server)
    browser.login("viv")
    status, detail = browser.json("GET", "/api/v1/assets/plant1/pump-7")
    assert status == 200
    history = detail["history"]
    assert len(history) == 7200 / HISTORY_STEP_S + 1
    assert history[-1]["state"] == "alarm" and history[-1]["t"] == rfc3339(T0 + 7205.0)
    assert history[0]["features"] == {"rms_g": 0.31, "env_bpfo_g": 0.42}
    assert len(detail["latest"]["trend"]) == TREND_POINTS
    assert detail["latest"]["state"] == "alarm" and detail["evidence"]
    assert [d["status"] for d in detail["documents"]] == ["awaiting_approval"]
    assert detail["model"]["name"] == "anomaly-ae"
    assert browser.json("GET", "/api/v1/assets/plant1/no-such")[0] == 404


def test_a_live_update_reaches_an_open_event_stream_at_once(server: ApiServer) -> None:
    browser = Browser(server)
    browser.login("viv")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(
        "GET",
        "/api/v1/events",
        headers={"Cookie": f"{access.SESSION_COOKIE}={browser.cookies[access.SESSION_COOKIE]}"},
    )
    reply = conn.getresponse()
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/event-stream")
    assert reply.fp.readline().startswith(b"retry:")
    deadline = time.monotonic() + 5
    while server.events.listening == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    sent = time.monotonic()
    threading.Timer(
        0.05, lambda: server.events.publish("asset", "plant1/pump-7", {"asset": "pump-7"})
    ).start()
    lines: list[bytes] = []
    while not lines or lines[-1] != b"\n":
        line = reply.fp.readline()
        if not line.startswith(b":") and (lines or line != b"\n"):
            lines.append(line)  # comments and the blank line after them are not an event
    took = time.monotonic() - sent
    assert lines[0] == b"event: asset\n" and json.loads(lines[1][6:]) == {"asset": "pump-7"}
    assert took < 2.0
    conn.close()


# --- the files ---------------------------------------------------------------------------------------

OTHER_ORIGIN = re.compile(r"""(?:src|href|action|url\()\s*=?\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.I)


def test_the_pages_load_nothing_from_another_origin() -> None:
    files = sorted(STATIC.glob("*.*"))
    assert {"fleet.html", "asset.html", "approvals.html", "audit.html", "models.html", "login.html"} <= {
        f.name for f in files
    }
    for path in files:
        text = path.read_text()
        assert not OTHER_ORIGIN.search(text), f"{path.name} refers to another origin"
        assert "fetch('http" not in text and 'fetch("http' not in text


def test_only_the_shipped_files_are_served(server: ApiServer) -> None:
    browser = Browser(server)
    assert browser.request("GET", "/static/app.js")[0] == 200
    for path in ("/static/../api.py", "/static/%2e%2e/api.py", "/static/nope.js", "/nowhere"):
        assert browser.request("GET", path)[0] == 404, path
