"""Who may call the gateway's HTTP server: passwords (HTTP Basic or the login form), sessions, CSRF.

- **Passwords** are checked against the users table (scrypt, :mod:`~plantwatch.gateway.users`). After
  :data:`MAX_FAILED_LOGINS` wrong passwords for a user within :data:`LOCKOUT_S`, that user's attempts are
  answered 429 until the lockout ends, even with the right password; :data:`MAX_FAILED_PER_CLIENT` wrong
  passwords from one address lock that address out the same way (guessing across many user names).
- **Sessions** (the web page): a random token in a cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure``
  when the server speaks TLS or stands behind a proxy that does); the database keeps only its SHA-256. A
  session ends after :data:`SESSION_IDLE_S` without a request, after :data:`SESSION_MAX_S` in all, at
  logout, or when its user is disabled; its role is read afresh on every request.
- **CSRF**: a request that changes something and authenticates with the session cookie must carry the
  session's token in ``X-CSRF-Token`` (or the form field ``csrf``); one with HTTP Basic must not be a
  form post (only ``application/json`` or no body), which a foreign page cannot send without CORS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from plantwatch.gateway.store import GatewayStore
from plantwatch.gateway.users import verify_password
from plantwatch.log import event

log = logging.getLogger("plantwatch.gateway.access")

MAX_FAILED_LOGINS = 5
LOCKOUT_S = 60.0
MAX_FAILED_PER_CLIENT = 20
"""Wrong passwords from one client address within :data:`LOCKOUT_S` before the address waits."""
FAILURE_DELAY_S = 0.2
FAILURE_DELAY_MAX_S = 1.0
"""A wrong password is answered after 0.2 s times the failures in a row, at most this."""
AUTH_CACHE_S = 60.0
"""A verified Basic password is remembered (as a hash) this long: scrypt costs tens of milliseconds."""
SESSION_COOKIE = "plantwatch_session"
SESSION_IDLE_S = 8 * 3600.0
"""A session without a request for a shift ends."""
SESSION_MAX_S = 24 * 3600.0
SESSION_TOUCH_S = 60.0
"""A session's last-seen time is written at most this often."""


class HttpError(Exception):
    """An answer other than 200: status and message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class Caller:
    """An authenticated user; ``csrf`` is the session's token (``None`` for HTTP Basic)."""

    name: str
    role: str
    csrf: str | None = None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Authenticator:
    """Checks passwords against the users table, with lockouts after repeated failures."""

    def __init__(self, store: GatewayStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}
        self._verified: dict[tuple[str, str], tuple[str, float]] = {}

    def _locked_out(self, key: str, limit: int, now: float) -> None:
        failures, last = self._failures.get(key, (0, 0.0))
        if failures >= limit and now - last < LOCKOUT_S:
            retry = int(LOCKOUT_S - (now - last)) + 1
            raise HttpError(
                429, f"too many failed logins: wait {retry} s and try again", {"Retry-After": str(retry)}
            )

    def _failed(self, key: str, now: float) -> int:
        count, last = self._failures.get(key, (0, 0.0))
        count = 1 if now - last >= LOCKOUT_S else count + 1
        self._failures[key] = (count, now)
        return count

    def check(self, name: str, password: str, *, client: str = "") -> Caller:
        """The user ``name`` if ``password`` is theirs (:class:`HttpError` 401, or 429 during a lockout)."""
        now = time.monotonic()
        fingerprint = _sha256(f"{name}\0{password}")
        with self._lock:
            self._locked_out(f"user:{name}", MAX_FAILED_LOGINS, now)
            if client:
                self._locked_out(f"client:{client}", MAX_FAILED_PER_CLIENT, now)
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
                count = self._failed(f"user:{name}", now)
                if client:
                    self._failed(f"client:{client}", now)
            event(log, logging.WARNING, "login_failed", user=name, client=client or "-", failures=count)
            # each failure in a row answers later: guessing slows down before the lockout stops it
            time.sleep(min(FAILURE_DELAY_S * count, FAILURE_DELAY_MAX_S))
            raise HttpError(401, "wrong user or password")
        with self._lock:
            self._failures.pop(f"user:{name}", None)
            self._verified[(name, fingerprint)] = (user[0], now)
        return Caller(name, user[0])

    def basic(self, header: str, *, client: str = "") -> Caller:
        """The user of an ``Authorization: Basic …`` header."""
        try:
            name, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise HttpError(401, "malformed Basic credentials") from None
        return self.check(name, password, client=client)


class Sessions:
    """Logged-in sessions of the web page, kept in the gateway's database (``sessions``)."""

    def __init__(self, store: GatewayStore) -> None:
        self.store = store

    def open(self, user: str, *, now_s: float) -> tuple[str, str]:
        """A new session for ``user``: ``(token for the cookie, CSRF token)``."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.store.writing() as conn:
            conn.execute("DELETE FROM sessions WHERE created_at < ?", (now_s - SESSION_MAX_S,))
            conn.execute(
                "INSERT INTO sessions (token_sha256, user, csrf, created_at, seen_at) VALUES (?, ?, ?, ?, ?)",
                (_sha256(token), user, csrf, now_s, now_s),
            )
        event(log, logging.INFO, "session_opened", user=user)
        return token, csrf

    def caller(self, token: str, *, now_s: float) -> Caller | None:
        """The session's user with their current role, or ``None`` (unknown, expired or disabled)."""
        key = _sha256(token)
        with self.store.reading() as conn:
            row = conn.execute(
                "SELECT s.user, s.csrf, s.created_at, s.seen_at, u.role FROM sessions s"
                " JOIN users u ON u.name = s.user AND NOT u.disabled WHERE s.token_sha256 = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        user, csrf, created_at, seen_at, role = row
        if now_s - seen_at > SESSION_IDLE_S or now_s - created_at > SESSION_MAX_S:
            self.close(token)
            return None
        if now_s - seen_at > SESSION_TOUCH_S:
            with self.store.writing() as conn:
                conn.execute("UPDATE sessions SET seen_at = ? WHERE token_sha256 = ?", (now_s, key))
        return Caller(user, role, csrf)

    def close(self, token: str) -> None:
        """End a session (logout)."""
        with self.store.writing() as conn:
            conn.execute("DELETE FROM sessions WHERE token_sha256 = ?", (_sha256(token),))


def csrf_ok(caller: Caller, token: str | None) -> bool:
    """Whether a state-changing request of a session carries the session's CSRF token."""
    return caller.csrf is not None and token is not None and hmac.compare_digest(caller.csrf, token)


def session_cookie(token: str, *, secure: bool, max_age_s: float = SESSION_MAX_S) -> str:
    """The ``Set-Cookie`` value for a session (``token`` empty: delete it)."""
    parts = [f"{SESSION_COOKIE}={token}", "Path=/", "HttpOnly", "SameSite=Strict"]
    parts.append(f"Max-Age={int(max_age_s) if token else 0}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
