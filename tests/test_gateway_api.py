"""The gateway's HTTP API on a real socket and SQLite file: roles enforced on the server, refusals
recorded, approvals, modes, maintenance windows, ledger export, dead-letter replay, failed-login lockout;
and the command line that drives it."""

from __future__ import annotations

import base64
import csv
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plantwatch.clock import ManualClock
from plantwatch.gateway import access
from plantwatch.gateway.api import ApiServer
from plantwatch.gateway.cli import main as gateway_main
from plantwatch.gateway.store import GatewayStore
from plantwatch.gateway.users import hash_password, verify_password
from plantwatch.gateway.workflow import Policy
from tests.test_gateway_store import alert

PASSWORDS = {"viv": "viewer-password", "pat": "planner-password", "ada": "admin-password"}
ROLES = {"viv": "viewer", "pat": "planner", "ada": "administrator"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GatewayStore]:
    result = GatewayStore(
        tmp_path / "gateway.sqlite", policy=Policy(debounce_alerts=1, default_mode="advisory")
    )
    for name, password in PASSWORDS.items():
        result.put_user(name, role=ROLES[name], password_hash=hash_password(password), now_s=0.0)
    yield result
    result.close()


@pytest.fixture
def server(store: GatewayStore) -> Iterator[ApiServer]:
    changes: list[int] = []
    result = ApiServer(
        store, site="plant1", clock=ManualClock(start=5000.0), changed=lambda: changes.append(1)
    )
    result.start()
    yield result
    result.stop()


def call(
    server: ApiServer, method: str, path: str, user: str | None, body: Any = None, password: str | None = None
):
    """``(status, decoded body)`` of one request as ``user``."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if user is not None:
        secret = password if password is not None else PASSWORDS[user]
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            text = reply.read().decode()
            return reply.status, text if reply.headers.get_content_type() == "text/csv" else json.loads(text)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def recommendation(store: GatewayStore) -> str:
    store.accept(alert(), now_s=1000.0)
    (document,) = store.documents(status="awaiting_approval")
    return document.correlation_id


def test_passwords_are_hashed_with_scrypt_and_verified() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$16384$8$1$") and "correct" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterz", stored)
    assert not verify_password("x", "garbage")


def test_every_request_needs_a_user_and_the_right_password(server: ApiServer) -> None:
    assert call(server, "GET", "/status", None)[0] == 401
    assert call(server, "GET", "/status", "viv", password="wrong-password")[0] == 401
    status, body = call(server, "GET", "/status", "viv")
    assert status == 200 and (body["user"], body["role"]) == ("viv", "viewer")


def test_a_viewer_cannot_approve_and_the_refusal_is_recorded(server: ApiServer, store: GatewayStore) -> None:
    cid = recommendation(store)
    status, body = call(server, "POST", f"/recommendations/{cid}/approve", "viv", {"reason": "looks right"})
    assert status == 403 and "planner" in body["error"]
    assert store.document(cid).status == "awaiting_approval"
    entry = store.ledger()[-1]
    assert (entry["decision"], entry["actor"], entry["reason"]) == ("refused", "viv", f"approve {cid}")


def test_a_planner_approves_and_the_document_becomes_due(server: ApiServer, store: GatewayStore) -> None:
    cid = recommendation(store)
    status, listed = call(server, "GET", "/recommendations", "viv")
    assert status == 200 and [item["correlation_id"] for item in listed] == [cid]
    status, body = call(
        server, "POST", f"/recommendations/{cid}/approve", "pat", {"reason": "noise confirmed"}
    )
    assert status == 200 and (body["status"], body["decided_by"]) == ("pending", "pat")
    assert call(server, "POST", f"/recommendations/{cid}/approve", "pat", {})[0] == 409
    entry = [e for e in store.ledger() if e["decision"] == "approved"][-1]
    assert (entry["actor"], entry["reason"], entry["correlation_id"]) == ("pat", "noise confirmed", cid)


def test_a_rejection_needs_a_reason(server: ApiServer, store: GatewayStore) -> None:
    cid = recommendation(store)
    assert call(server, "POST", f"/recommendations/{cid}/reject", "pat", {})[0] == 400
    status, body = call(server, "POST", f"/recommendations/{cid}/reject", "pat", {"reason": "sensor loose"})
    assert status == 200 and body["status"] == "rejected"


def test_only_administrators_change_modes(server: ApiServer, store: GatewayStore) -> None:
    rule = {"asset": "pump-7", "mode": "closed_loop"}
    assert call(server, "PUT", "/modes", "pat", rule)[0] == 403
    assert call(server, "PUT", "/modes", "ada", {"mode": "sometimes"})[0] == 400
    status, rules = call(server, "PUT", "/modes", "ada", rule)
    assert status == 200 and [(r["asset"], r["mode"], r["set_by"]) for r in rules] == [
        ("pump-7", "closed_loop", "ada")
    ]
    store.accept(alert(), now_s=1000.0)
    assert store.documents()[0].status == "pending"


def test_a_planner_plans_maintenance(server: ApiServer, store: GatewayStore) -> None:
    window = {
        "asset": "pump-7",
        "starts": "2026-03-01T00:00:00Z",
        "ends": "2026-03-02T00:00:00Z",
        "reason": "overhaul",
    }
    assert call(server, "POST", "/maintenance", "viv", window)[0] == 403
    assert call(server, "POST", "/maintenance", "pat", {**window, "ends": "2026-02-01T00:00:00Z"})[0] == 400
    assert call(server, "POST", "/maintenance", "pat", window)[0] == 200
    store.accept(alert(), now_s=1000.0)
    assert store.documents() == []


def test_the_ledger_exports_as_json_and_csv_with_filters(server: ApiServer, store: GatewayStore) -> None:
    recommendation(store)
    store.accept(alert(asset="fan-2", seq=2), now_s=1001.0)
    status, rows = call(server, "GET", "/ledger?asset=fan-2", "viv")
    assert status == 200 and [(r["asset"], r["decision"]) for r in rows] == [("fan-2", "recommend")]
    status, text = call(server, "GET", "/ledger?format=csv&decision=recommend", "viv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["asset"] for r in table] == ["pump-7", "fan-2"]
    assert (
        table[0]["model_sha256"] == "0123456789abcdef" * 4
        and json.loads(table[0]["features"])["rms_g"] == 0.31
    )
    assert call(server, "GET", "/ledger?since=yesterday", "viv")[0] == 400


def test_only_administrators_replay_dead_letters(server: ApiServer, store: GatewayStore) -> None:
    store.set_mode(site="plant1", asset="*", failure_mode="*", mode="closed_loop", user="ada", now_s=1.0)
    store.accept(alert(), now_s=1000.0)
    (document,) = store.documents()
    store.document_failed(document, error="tryton: Unknown equipment", now_s=1001.0)
    status, letters = call(server, "GET", "/dead-letters", "viv")
    assert status == 200 and [letter["reason"] for letter in letters] == ["tryton: Unknown equipment"]
    letter = letters[0]["id"]
    assert call(server, "POST", f"/dead-letters/{letter}/replay", "pat")[0] == 403
    status, body = call(server, "POST", f"/dead-letters/{letter}/replay", "ada")
    assert status == 200 and body["correlation_id"] == document.correlation_id
    assert store.document(document.correlation_id).status == "pending"
    assert call(server, "POST", f"/dead-letters/{letter}/replay", "ada")[0] == 409
    assert call(server, "POST", "/dead-letters/99/replay", "ada")[0] == 404


def test_repeated_wrong_passwords_lock_the_user_out(
    server: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(access.MAX_FAILED_LOGINS):
        assert call(server, "GET", "/status", "pat", password="guess")[0] == 401
    assert call(server, "GET", "/status", "pat", password="guess")[0] == 429
    assert call(server, "GET", "/status", "pat")[0] == 429  # even the right password waits
    assert call(server, "GET", "/status", "viv")[0] == 200  # other users are not locked out


def test_the_command_line_approves_through_the_api(
    server: ApiServer,
    store: GatewayStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'site = "plant1"\ngateway_id = "gw1"\nstate_dir = "{tmp_path}"\n')
    cid = recommendation(store)
    monkeypatch.setenv("PLANTWATCH_API_PASSWORD", PASSWORDS["pat"])
    base = ["--config", str(config), "--url", server.url, "--user", "pat"]
    assert gateway_main([*base, "recommendations"]) == 0
    assert cid in capsys.readouterr().out
    with pytest.raises(SystemExit, match="403"):
        gateway_main([*base, "mode", "shadow"])
    assert gateway_main([*base, "approve", cid, "--reason", "confirmed"]) == 0
    assert f"{cid}: pending by pat" in capsys.readouterr().out
    assert (
        gateway_main(["--config", str(config), "ledger", "--format", "json", "--decision", "approved"]) == 0
    )
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["actor"] == "pat"


def test_the_command_line_adds_users_with_a_strong_enough_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'site = "plant1"\ngateway_id = "gw1"\nstate_dir = "{tmp_path}"\n')
    monkeypatch.setenv("PLANTWATCH_NEW_PASSWORD", "short")
    with pytest.raises(SystemExit, match="at least"):
        gateway_main(["--config", str(config), "user", "add", "ada", "--role", "administrator"])
    monkeypatch.setenv("PLANTWATCH_NEW_PASSWORD", "long-enough-secret")
    assert gateway_main(["--config", str(config), "user", "add", "ada", "--role", "administrator"]) == 0
    store = GatewayStore(tmp_path / "gateway.sqlite")
    try:
        role, stored = store.user("ada")  # type: ignore[misc]
        assert role == "administrator" and verify_password("long-enough-secret", stored)
    finally:
        store.close()
