"""``plantwatch-gateway``: the gateway service's command line."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys

from plantwatch.config import ConfigError, load
from plantwatch.gateway.config import GatewaySettings
from plantwatch.log import setup_logging

EPILOG = """examples:
  plantwatch-gateway --config /etc/plantwatch/gateway.toml
  plantwatch-gateway --config gateway.toml --check-config
  plantwatch-gateway --config gateway.toml --ledger --json

Passwords come from $CREDENTIALS_DIRECTORY/mqtt-password and erp-password (systemd LoadCredential=)
or the environment variables PLANTWATCH_MQTT_PASSWORD and PLANTWATCH_ERP_PASSWORD."""


def parser() -> argparse.ArgumentParser:
    """The argument parser."""
    result = argparse.ArgumentParser(
        prog="plantwatch-gateway",
        description="Turn plantwatch alerts from the broker into ERP maintenance notifications, exactly once, "
        "with an audit ledger of every decision.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument(
        "--config", required=True, metavar="PATH", help="the gateway's TOML configuration file"
    )
    result.add_argument(
        "--check-config", action="store_true", help="validate the configuration and exit (0 = usable)"
    )
    result.add_argument("--ledger", action="store_true", help="print the audit ledger and exit")
    result.add_argument("--json", action="store_true", help="with --ledger: JSON lines instead of CSV")
    result.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override log_level"
    )
    return result


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
            f"{settings.erp.base_url} broker={settings.mqtt.host}:{settings.mqtt.port}"
        )
        return 0
    if args.ledger:
        from pathlib import Path

        from plantwatch.gateway.store import GatewayStore

        store = GatewayStore(Path(settings.state_dir) / "gateway.sqlite")
        rows = store.ledger()
        if args.json:
            for row in rows:
                print(json.dumps(row))
        elif rows:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return 0
    from plantwatch.gateway.service import GatewayService

    return asyncio.run(GatewayService(settings).run())


if __name__ == "__main__":
    sys.exit(main())
