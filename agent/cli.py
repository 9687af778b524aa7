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
    from plantwatch.agent.service import AgentService, load_agent_model
    from plantwatch.models.registry import ModelError

    if args.check_config:
        try:
            model = load_agent_model(settings)
        except (ModelError, OSError) as error:
            print(f"plantwatch-agent: model refused: {error}", file=sys.stderr)
            return 2
        manifest = model.manifest
        print(
            f"configuration ok: site={settings.site} agent={settings.agent_id} assets={len(settings.assets)} "
            f"model={manifest.name}-{manifest.version} sha256={manifest.sha256[:12]} serial={settings.serial.port}"
        )
        return 0
    try:
        service = AgentService(settings)
    except (ModelError, OSError) as error:
        logging.getLogger("plantwatch.agent").error("model_refused %s", error)
        return 2
    return asyncio.run(service.run())


if __name__ == "__main__":
    sys.exit(main())
