"""One log format for every plantwatch process: one line an event, ``key=value`` fields.

Use :func:`event` to log, so that fields are always rendered the same way::

    log = logging.getLogger("plantwatch.agent")
    event(log, logging.INFO, "state_change", asset="pump-7", state="alarm", score=0.93)
    # 2026-11-23T17:45:00.123Z INFO plantwatch.agent state_change asset=pump-7 state=alarm score=0.93
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any


def _render(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    if text == "" or any(c in text for c in ' ="'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def fields(**values: Any) -> str:
    """Render keyword arguments as ``key=value`` pairs, quoting values with spaces."""
    return " ".join(f"{key}={_render(value)}" for key, value in values.items())


def event(logger: logging.Logger, level: int, name: str, **values: Any) -> None:
    """Log one event ``name`` with ``key=value`` fields."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s %s", name, fields(**values) if values else "")


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"
        line = f"{stamp} {record.levelname} {record.name} {record.getMessage()}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "INFO") -> None:
    """Send plantwatch's log lines to standard error in the one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
