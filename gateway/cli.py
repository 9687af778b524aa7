"""``plantwatch-gateway``: the gateway service and the commands planners and administrators use.

Without a command the gateway runs. The commands that act on recommendations, modes, maintenance windows
and dead letters talk to the running gateway's HTTP API as a user of its database (``--user``; the
password from ``$PLANTWATCH_API_PASSWORD`` or a prompt), so the server checks the role and records who did
what. ``user`` and ``ledger`` work on the database file directly (run them on the gateway's machine).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from plantwatch.clock import SystemClock, parse_rfc3339
from plantwatch.config import ConfigError, load
from plantwatch.gateway.config import GatewaySettings
from plantwatch.log import setup_logging

EPILOG = """examples:
  plantwatch-gateway --config /etc/plantwatch/gateway.toml
  plantwatch-gateway --config gateway.toml --check-config
  plantwatch-gateway --config gateway.toml user add alice --role planner
  plantwatch-gateway --config gateway.toml --user alice recommendations
  plantwatch-gateway --config gateway.toml --user alice approve PW4K… --reason "bearing noise confirmed"
  plantwatch-gateway --config gateway.toml --user alice reject PW4K… --reason "sensor was loose"
  plantwatch-gateway --config gateway.toml --user admin mode advisory --asset pump-7
  plantwatch-gateway --config gateway.toml --user bob maintenance pump-7 \\
      --start 2026-11-24T06:00:00Z --end 2026-11-24T14:00:00Z --reason "bearing change"
  plantwatch-gateway --config gateway.toml --user admin dead-letters
  plantwatch-gateway --config gateway.toml --user admin replay 3
  plantwatch-gateway --config gateway.toml ledger --format csv --asset pump-7 > ledger.csv

Passwords come from $CREDENTIALS_DIRECTORY/mqtt-password and erp-password (systemd LoadCredential=)
or the environment variables PLANTWATCH_MQTT_PASSWORD and PLANTWATCH_ERP_PASSWORD. API commands take
the user's password from $PLANTWATCH_API_PASSWORD or ask for it; `user add` takes the new password from
$PLANTWATCH_NEW_PASSWORD or asks for it twice."""


def parser() -> argparse.ArgumentParser:
    """The argument parser."""
    result = argparse.ArgumentParser(
        prog="plantwatch-gateway",
        description="Turn plantwatch alerts from the broker into ERP work orders and quality holds, exactly "
        "once, under the plant's approval rules, with an audit ledger of every decision.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument(
        "--config", required=True, metavar="PATH", help="the gateway's TOML configuration file"
    )
    result.add_argument(
        "--check-config", action="store_true", help="validate the configuration and exit (0 = usable)"
    )
    result.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override log_level"
    )
    result.add_argument("--user", metavar="NAME", help="API commands: the user to act as")
    result.add_argument("--url", metavar="URL", help="API commands: the API's base URL (default: from [api])")
    commands = result.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="run the gateway (the default)")
    user = commands.add_parser("user", help="add a user or change one's role and password (on the database)")
    user.add_argument("action", choices=["add", "list"])
    user.add_argument("name", nargs="?")
    user.add_argument("--role", choices=["viewer", "planner", "administrator"], default="viewer")
    ledger = commands.add_parser("ledger", help="export the audit ledger (from the database)")
    ledger.add_argument("--format", choices=["csv", "json"], default="csv")
    ledger.add_argument("--asset")
    ledger.add_argument("--decision")
    ledger.add_argument("--by", metavar="USER", help="only decisions by this user")
    ledger.add_argument("--since", metavar="RFC3339")
    ledger.add_argument("--until", metavar="RFC3339")
    commands.add_parser("recommendations", help="list recommendations awaiting approval")
    commands.add_parser("documents", help="list every document and its status")
    for verb in ("approve", "reject"):
        action = commands.add_parser(verb, help=f"{verb} a recommendation (planner)")
        action.add_argument("correlation_id")
        action.add_argument("--reason", required=verb == "reject", default="")
    mode = commands.add_parser("mode", help="set the approval mode (administrator); no MODE: list the rules")
    mode.add_argument("mode", nargs="?", choices=["shadow", "advisory", "closed_loop"])
    mode.add_argument("--asset", default="*")
    mode.add_argument("--failure-mode", default="*")
    maintenance = commands.add_parser("maintenance", help="plan a maintenance window (planner)")
    maintenance.add_argument("asset", help="the asset, or * for the whole site")
    maintenance.add_argument("--start", required=True, metavar="RFC3339")
    maintenance.add_argument("--end", required=True, metavar="RFC3339")
    maintenance.add_argument("--reason", required=True)
    commands.add_parser("dead-letters", help="list dead letters not yet replayed")
    replay = commands.add_parser("replay", help="replay a dead letter (administrator)")
    replay.add_argument("id", type=int)
    return result


def api_call(
    args: argparse.Namespace, settings: GatewaySettings, method: str, path: str, body: Any = None
) -> Any:
    """Call the running gateway's API as ``--user``; the decoded answer (exit 1 with its error if refused)."""
    if not args.user:
        raise SystemExit("plantwatch-gateway: this command needs --user NAME")
    password = os.environ.get("PLANTWATCH_API_PASSWORD") or getpass.getpass(f"password for {args.user}: ")
    base = args.url or f"http://{settings.api.listen}:{settings.api.port}/api/v1"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    token = base64.b64encode(f"{args.user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            text = reply.read().decode()
            return text if reply.headers.get_content_type() == "text/csv" else json.loads(text)
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("error", error.reason)
        except (ValueError, AttributeError):
            message = error.reason
        raise SystemExit(f"plantwatch-gateway: {error.code}: {message}") from None
    except OSError as error:
        raise SystemExit(f"plantwatch-gateway: cannot reach the gateway's API at {base}: {error}") from None


def _print_rows(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = [
        max(len(c), *(len(str(r.get(c) if r.get(c) is not None else "-")) for r in rows)) for c in columns
    ]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        cells = [str(row.get(c) if row.get(c) is not None else "-") for c in columns]
        print("  ".join(v.ljust(w) for v, w in zip(cells, widths, strict=True)))


def _new_password() -> str:
    from plantwatch.gateway.users import check_password_strength

    password = os.environ.get("PLANTWATCH_NEW_PASSWORD")
    if password is None:
        password = getpass.getpass("new password: ")
        if getpass.getpass("again: ") != password:
            raise SystemExit("plantwatch-gateway: the passwords differ")
    try:
        check_password_strength(password)
    except ValueError as error:
        raise SystemExit(f"plantwatch-gateway: {error}") from None
    return password


def offline(args: argparse.Namespace, settings: GatewaySettings) -> int:
    """``user`` and ``ledger``: straight on the database file."""
    from plantwatch.gateway.api import ledger_csv
    from plantwatch.gateway.store import GatewayStore
    from plantwatch.gateway.users import hash_password

    store = GatewayStore(Path(settings.state_dir) / "gateway.sqlite")
    try:
        if args.command == "user":
            if args.action == "list":
                _print_rows(store.users(), ["name", "role", "disabled"])
                return 0
            if not args.name:
                raise SystemExit("plantwatch-gateway: user add needs a NAME")
            store.put_user(
                args.name,
                role=args.role,
                password_hash=hash_password(_new_password()),
                now_s=SystemClock().now(),
            )
            print(f"user {args.name}: {args.role}")
            return 0
        rows = store.ledger(
            asset=args.asset,
            decision=args.decision,
            actor=args.by,
            since_s=parse_rfc3339(args.since) if args.since else None,
            until_s=parse_rfc3339(args.until) if args.until else None,
        )
        if args.format == "json":
            for row in rows:
                print(json.dumps(row))
        else:
            sys.stdout.write(ledger_csv(rows))
        return 0
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``plantwatch-gateway``."""
    args = parser().parse_args(argv)
    try:
        settings = load(args.config, GatewaySettings)
    except ConfigError as error:
        print(f"plantwatch-gateway: configuration refused: {error}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or settings.log_level)
    if args.check_config:
        print(
            f"configuration ok: site={settings.site} gateway={settings.gateway_id} erp={settings.erp.kind} "
            f"{settings.erp.base_url} broker={settings.mqtt.host}:{settings.mqtt.port} "
            f"approval={settings.approval.mode} api={settings.api.listen}:{settings.api.port or 'off'}"
        )
        return 0
    command = args.command or "run"
    if command in ("user", "ledger"):
        return offline(args, settings)
    if command == "recommendations":
        rows = api_call(args, settings, "GET", "/recommendations")
        _print_rows(
            rows,
            [
                "correlation_id",
                "kind",
                "asset",
                "failure_mode",
                "severity",
                "priority",
                "production_order",
                "lot",
            ],
        )
    elif command == "documents":
        rows = api_call(args, settings, "GET", "/documents")
        _print_rows(
            rows,
            [
                "correlation_id",
                "kind",
                "asset",
                "failure_mode",
                "status",
                "mode",
                "priority",
                "number",
                "last_error",
            ],
        )
    elif command in ("approve", "reject"):
        document = api_call(
            args,
            settings,
            "POST",
            f"/recommendations/{args.correlation_id}/{command}",
            {"reason": args.reason},
        )
        print(f"{document['correlation_id']}: {document['status']} by {document['decided_by']}")
    elif command == "mode":
        if args.mode is None:
            rows = api_call(args, settings, "GET", "/modes")
        else:
            rows = api_call(
                args,
                settings,
                "PUT",
                "/modes",
                {"asset": args.asset, "failure_mode": args.failure_mode, "mode": args.mode},
            )
        print(f"site default (gateway.toml): {settings.approval.mode}")
        _print_rows(rows, ["asset", "failure_mode", "mode", "set_by"])
    elif command == "maintenance":
        answer = api_call(
            args,
            settings,
            "POST",
            "/maintenance",
            {"asset": args.asset, "starts": args.start, "ends": args.end, "reason": args.reason},
        )
        print(f"maintenance window #{answer['id']} planned")
    elif command == "dead-letters":
        _print_rows(
            api_call(args, settings, "GET", "/dead-letters"),
            ["id", "source", "correlation_id", "topic", "reason"],
        )
    elif command == "replay":
        answer = api_call(args, settings, "POST", f"/dead-letters/{args.id}/replay")
        print(f"dead letter #{answer['id']}: {answer['outcome']}")
    else:
        from plantwatch.gateway.service import GatewayService

        return asyncio.run(GatewayService(settings).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
