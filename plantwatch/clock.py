"""The one clock all logic takes time from.

Services use :class:`SystemClock`; tests and demos may use :class:`ManualClock` to run simulated time.
The agent takes the time of a measurement from the sensor's frame timestamps, so a simulator that runs
faster than real time also runs the agent's decisions faster than real time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

import numpy as np


class Clock(Protocol):
    """Something that tells the time in seconds since the Unix epoch (UTC)."""

    def now(self) -> float:
        """Seconds since 1970-01-01T00:00:00Z."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for timeouts and rates)."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to (tests, simulated time).

    >>> clock = ManualClock(start=1000.0)
    >>> clock.advance(2.5)
    >>> clock.now()
    1002.5
    """

    def __init__(self, *, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds

    def set(self, epoch_s: float) -> None:
        """Set the clock to ``epoch_s`` if that is not earlier than now."""
        self._now = max(self._now, epoch_s)


def rfc3339(epoch_s: float) -> str:
    """RFC 3339 UTC timestamp with milliseconds, e.g. ``2026-11-23T17:45:00.123Z``."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def rfc3339_many(epoch_s: np.ndarray) -> list[str]:
    """:func:`rfc3339` of many times at once (vectorised; the agent stamps every window).

    >>> rfc3339_many(np.array([0.0, 1795458900.1234]))
    ['1970-01-01T00:00:00.000Z', '2026-11-23T17:15:00.123Z']
    """
    milliseconds = np.floor(np.asarray(epoch_s, dtype=np.float64) * 1000.0 + 1e-6).astype(np.int64)
    return [text + "Z" for text in np.datetime_as_string(milliseconds.astype("datetime64[ms]"), unit="ms")]


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch from an RFC 3339 timestamp (``Z`` or an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
