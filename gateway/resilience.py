"""Retry pacing and a circuit breaker for calls to an ERP; pure and clock-driven.

Nothing here sleeps or reads a clock: the caller passes the time (``now_s``, seconds on any clock that
does not go backwards, e.g. :meth:`plantwatch.clock.Clock.monotonic`) and does its own waiting, so every
rule can be tested with exact numbers and simulated time.

- :class:`Backoff` says how long to wait before the next attempt: exponential, with "equal jitter" (half
  of the delay fixed, half random) so that the gateways of a site do not retry in lockstep, never shorter
  than the server's ``Retry-After``.
- :class:`CircuitBreaker` stops calls to an ERP that keeps failing, and lets one trial call through after
  a pause to find out whether it is back.

What counts as a failure is the caller's decision; the rule is: only failures that trying again later
can cure (:attr:`plantwatch.gateway.erp.ErpError.retryable`: network down, 408, 429, 5xx) are
:meth:`CircuitBreaker.failure`. A refusal such as a 400 or a 401 proves the ERP is up and answering;
report it as :meth:`CircuitBreaker.success` (retrying the same request cannot help, but the next request
may well succeed, and one bad document must not stop all the others).
"""

from __future__ import annotations

import math
import random
from enum import StrEnum

RETRY_AFTER_CEILING_S = 3600.0
"""Longest ``Retry-After`` that is obeyed, in seconds. A server may ask for more than :attr:`Backoff.max_s`
(it knows its maintenance window), but a garbled header or a date far in the future must not park a
document for days; past an hour a person should look at the ERP anyway (the breaker's state says so)."""


class Backoff:
    """Delays between attempts: exponential growth, equal jitter, capped, ``Retry-After`` as a floor.

    The ceiling of attempt ``n`` (0 = the wait after the first failure) is
    ``base = min(max_s, initial_s * multiplier**n)``; the delay is drawn uniformly from
    ``[base / 2, base)`` ("equal jitter", AWS Architecture Blog, "Exponential Backoff And Jitter", 2015:
    half the delay is kept, so waits still grow; half is random, so clients spread out). A
    ``retry_after_s`` from the server raises the delay to at least that many seconds, also above
    ``max_s``, up to ``retry_after_ceiling_s`` (default :data:`RETRY_AFTER_CEILING_S`).

    Units: seconds throughout. ``rng``: the source of the jitter (a seeded ``random.Random`` makes the
    delays reproducible); by default a private, unseeded one.

    >>> backoff = Backoff(initial_s=1.0, max_s=30.0, rng=random.Random(7))
    >>> [round(backoff.delay(attempt), 2) for attempt in range(7)]
    [0.66, 1.15, 3.3, 4.29, 12.29, 20.49, 15.87]
    >>> backoff.delay(0, retry_after_s=120.0)
    120.0
    >>> backoff.delay(0, retry_after_s=86400.0)
    3600.0
    """

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        multiplier: float = 2.0,
        rng: random.Random | None = None,
        *,
        retry_after_ceiling_s: float = RETRY_AFTER_CEILING_S,
    ) -> None:
        if not (math.isfinite(initial_s) and initial_s > 0):
            raise ValueError(f"initial_s must be a positive number of seconds, got {initial_s!r}")
        if not (math.isfinite(max_s) and max_s >= initial_s):
            raise ValueError(f"max_s must be at least initial_s ({initial_s!r}), got {max_s!r}")
        if not (math.isfinite(multiplier) and multiplier >= 1.0):
            raise ValueError(f"multiplier must be at least 1, got {multiplier!r}")
        if not (math.isfinite(retry_after_ceiling_s) and retry_after_ceiling_s > 0):
            raise ValueError(f"retry_after_ceiling_s must be positive, got {retry_after_ceiling_s!r}")
        self.initial_s = float(initial_s)
        self.max_s = float(max_s)
        self.multiplier = float(multiplier)
        self.retry_after_ceiling_s = float(retry_after_ceiling_s)
        self._rng = rng if rng is not None else random.Random()

    def ceiling(self, attempt: int) -> float:
        """``min(max_s, initial_s * multiplier**attempt)``: the longest delay of ``attempt`` without
        ``Retry-After``, in seconds (the delay lies in ``[ceiling / 2, ceiling)``)."""
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
            raise ValueError(f"attempt must be an integer >= 0, got {attempt!r}")
        if self.multiplier == 1.0:
            return self.initial_s
        # compare exponents rather than computing multiplier**attempt, which overflows a float for large
        # attempt numbers (a document that has been retried all week)
        if attempt >= math.log(self.max_s / self.initial_s) / math.log(self.multiplier):
            return self.max_s
        return min(self.max_s, self.initial_s * self.multiplier**attempt)

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before the next attempt, after ``attempt + 1`` failures in a row.

        ``retry_after_s``: the server's ``Retry-After`` in seconds
        (:func:`plantwatch.gateway.erp.parse_retry_after`); the delay is never shorter than it, up to
        :attr:`retry_after_ceiling_s`.
        """
        base = self.ceiling(attempt)
        delay = base / 2.0 + self._rng.random() * base / 2.0
        if retry_after_s is not None:
            if math.isnan(retry_after_s) or retry_after_s < 0:
                raise ValueError(f"retry_after_s must be a number of seconds >= 0, got {retry_after_s!r}")
            delay = max(delay, min(float(retry_after_s), self.retry_after_ceiling_s))
        return delay


class BreakerState(StrEnum):
    """The states of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    """Calls go through; failures in a row are counted."""
    OPEN = "open"
    """Calls are refused until ``reset_after_s`` passed since it opened."""
    HALF_OPEN = "half_open"
    """One trial call is out; its outcome closes or reopens the breaker."""


class CircuitBreaker:
    """Refuses calls to an ERP after ``failure_threshold`` failures in a row, for ``reset_after_s``.

    - closed: :meth:`allow` is True. Each :meth:`failure` counts; the ``failure_threshold``-th in a row
      opens the breaker. A :meth:`success` resets the count.
    - open: :meth:`allow` is False until ``reset_after_s`` passed since :attr:`opened_at`; the first call
      after that moves to half open and is let through as the trial.
    - half open: the trial is out and :meth:`allow` is False for everyone else. Its :meth:`success`
      closes the breaker; its :meth:`failure` opens it again with a fresh ``opened_at``. A trial that never
      reports back (its caller crashed) is given up after another ``reset_after_s``, and a new one is let
      through.

    Calls let through before the breaker opened may report late: a late :meth:`failure` is counted but
    does not move ``opened_at``; a late :meth:`success` while open is ignored (it says the ERP worked a
    while ago, not now; only the trial decides). In half open, any report is taken as the trial's.

    Report only failures retrying can cure (see the module's docstring); that is the caller's decision.
    Times are seconds on one clock that does not go backwards. Not thread-safe: the gateway calls it from
    its event loop.

    >>> breaker = CircuitBreaker(failure_threshold=2, reset_after_s=30.0)
    >>> breaker.failure(0.0); breaker.failure(1.0); breaker.state, breaker.allow(10.0)
    (<BreakerState.OPEN: 'open'>, False)
    >>> breaker.allow(31.0), breaker.state, breaker.allow(31.5)
    (True, <BreakerState.HALF_OPEN: 'half_open'>, False)
    >>> breaker.success(32.0); breaker.state
    <BreakerState.CLOSED: 'closed'>
    """

    def __init__(self, failure_threshold: int = 5, reset_after_s: float = 30.0) -> None:
        if (
            isinstance(failure_threshold, bool)
            or not isinstance(failure_threshold, int)
            or failure_threshold < 1
        ):
            raise ValueError(f"failure_threshold must be an integer >= 1, got {failure_threshold!r}")
        if not (math.isfinite(reset_after_s) and reset_after_s > 0):
            raise ValueError(f"reset_after_s must be a positive number of seconds, got {reset_after_s!r}")
        self.failure_threshold = failure_threshold
        self.reset_after_s = float(reset_after_s)
        self._state = BreakerState.CLOSED
        self._opened_at: float | None = None
        self._trial_started_at: float | None = None
        self._consecutive_failures = 0

    @property
    def state(self) -> BreakerState:
        """closed, open or half open (the state as of the last call; :meth:`allow` moves open → half open)."""
        return self._state

    @property
    def opened_at(self) -> float | None:
        """When the breaker last opened (seconds), or None while closed."""
        return self._opened_at

    @property
    def consecutive_failures(self) -> int:
        """Failures reported since the last success that counted."""
        return self._consecutive_failures

    def retry_at(self) -> float | None:
        """When (seconds) :meth:`allow` lets the next call through: None while closed (at once).

        Open: ``opened_at + reset_after_s``. Half open: when the outstanding trial is given up.
        """
        if self._state is BreakerState.OPEN:
            assert self._opened_at is not None
            return self._opened_at + self.reset_after_s
        if self._state is BreakerState.HALF_OPEN:
            assert self._trial_started_at is not None
            return self._trial_started_at + self.reset_after_s
        return None

    def allow(self, now_s: float) -> bool:
        """Whether a call may go to the ERP now; in half open, True makes the caller the trial."""
        if self._state is BreakerState.CLOSED:
            return True
        retry_at = self.retry_at()
        assert retry_at is not None
        if now_s < retry_at:
            return False
        self._state = BreakerState.HALF_OPEN
        self._trial_started_at = now_s
        return True

    def success(self, now_s: float) -> None:
        """A call succeeded (or the ERP answered with a refusal retrying cannot cure)."""
        if self._state is BreakerState.OPEN:
            return  # a late answer to a call from before the breaker opened
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = None
        self._trial_started_at = None

    def failure(self, now_s: float) -> None:
        """A call failed in a way trying again later can cure (network, 408, 429, 5xx)."""
        self._consecutive_failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._consecutive_failures >= self.failure_threshold
        ):
            self._state = BreakerState.OPEN
            self._opened_at = now_s
            self._trial_started_at = None
