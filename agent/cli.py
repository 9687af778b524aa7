"""``plantwatch-agent``: the agent service's command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from plantwatch.agent.config import AgentSettings
from plantwatch.config import ConfigError, load
from plantwatch.log import setup_logging

EPILOG = """examples:
  plantwatch-agent --config /etc/plantwatch/agent.toml
  plantwatch-agent --config agent.toml --check-config
  plantwatch-agent --config agent.toml --recommission pump-7

A new asset first learns its normal (commissioning_windows windows, e.g. 40 windows = 6 snapshots
of 16384 samples) before it is scored; --recommission asks the running agent (or the next start)
to learn it again, e.g. after an overhaul.

The MQTT password is read from $CREDENTIALS_DIRECTORY/mqtt-password (systemd LoadCredential=)
or the environment variable PLANTWATCH_MQTT_PASSWORD, never from the configuration file."""


def parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the documentation test)."""
    result = argparse.ArgumentParser(
        prog="plantwatch-agent",
        description="Read vibration and temperature sensors on a serial port, decide each machine's health "
        "with int8 models, store every result in SQLite and publish it over MQTT.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument("--config", required=True, metavar="PATH", help="the agent's TOML configuration file")
    result.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration and the model files, print a summary and exit (0 = usable)",
    )
    result.add_argument(
        "--recommission",
        metavar="ASSET",
        action="append",
        help="learn this asset's normal again (the running agent picks the request up within one status "
        "interval); repeatable",
    )
    result.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override log_level"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``plantwatch-agent``."""
    args = parser().parse_args(argv)
    try:
        settings = load(args.config, AgentSettings)
    except ConfigError as error:
        print(f"plantwatch-agent: configuration refused: {error}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or settings.log_level)
    from plantwatch.agent.service import AgentService, load_agent_models
    from plantwatch.models.registry import ModelError

    if args.recommission:
        return _recommission(settings, args.recommission)
    if args.check_config:
        try:
            model, classifier = load_agent_models(settings)
        except (ModelError, OSError) as error:
            print(f"plantwatch-agent: model refused: {error}", file=sys.stderr)
            return 2
        manifest = model.manifest
        named = f"{classifier.manifest.name}-{classifier.manifest.version}" if classifier else "none"
        print(
            f"configuration ok: site={settings.site} agent={settings.agent_id} assets={len(settings.assets)} "
            f"model={manifest.name}-{manifest.version} sha256={manifest.sha256[:12]} classifier={named} "
            f"serial={settings.serial.port}"
        )
        return 0
    try:
        service = AgentService(settings)
    except (ModelError, OSError) as error:
        logging.getLogger("plantwatch.agent").error("model_refused %s", error)
        return 2
    return asyncio.run(service.run())


def _recommission(settings: AgentSettings, assets: list[str]) -> int:
    known = {asset.id for asset in settings.assets}
    unknown = [asset for asset in assets if asset not in known]
    if unknown:
        print(f"plantwatch-agent: no such asset in the configuration: {', '.join(unknown)}", file=sys.stderr)
        return 2
    import time
    from pathlib import Path

    from plantwatch.agent.outbox import Outbox

    outbox = Outbox(
        Path(settings.state_dir) / "agent.sqlite", agent=settings.agent_id, move_aside_corrupt=False
    )
    try:
        for asset in assets:
            outbox.request_recommission(asset, time.time())
    finally:
        outbox.close()
    print(f"recommissioning requested for {', '.join(assets)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
