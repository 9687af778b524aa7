"""Retry pacing and the circuit breaker: exact sequences with a seeded rng, invariants with hypothesis."""

from __future__ import annotations

import doctest
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwatch.gateway import resilience
from plantwatch.gateway.resilience import RETRY_AFTER_CEILING_S, Backoff, BreakerState, CircuitBreaker


class FixedRandom(random.Random):
    """A ``random.Random`` whose ``random()`` always returns ``value`` (the jitter's extremes)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(resilience, raise_on_error=False).failed == 0


def test_delays_double_from_initial_to_max_with_equal_jitter() -> None:
    low = Backoff(1.0, 30.0, rng=FixedRandom(0.0))
    high = Backoff(1.0, 30.0, rng=FixedRandom(0.999999))
    assert [low.delay(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    assert [round(high.delay(n), 3) for n in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_seeded_rng_gives_the_same_delays_twice() -> None:
    first = Backoff(0.5, 60.0, multiplier=3.0, rng=random.Random(42))
    second = Backoff(0.5, 60.0, multiplier=3.0, rng=random.Random(42))
    assert [first.delay(n) for n in range(10)] == [second.delay(n) for n in range(10)]


def test_retry_after_is_a_floor_and_wins_over_max_s_up_to_the_ceiling() -> None:
    backoff = Backoff(1.0, 30.0, rng=FixedRandom(0.0))
    assert backoff.delay(0, retry_after_s=0.0) == 0.5  # a shorter Retry-After does not shorten the wait
    assert backoff.delay(0, retry_after_s=7.0) == 7.0
    assert backoff.delay(10, retry_after_s=300.0) == 300.0  # above max_s: the server knows best
    assert backoff.delay(0, retry_after_s=1e9) == RETRY_AFTER_CEILING_S
    assert backoff.delay(0, retry_after_s=math.inf) == RETRY_AFTER_CEILING_S
    capped = Backoff(1.0, 30.0, rng=FixedRandom(0.0), retry_after_ceiling_s=60.0)
    assert capped.delay(0, retry_after_s=120.0) == 60.0


def test_huge_attempt_numbers_stay_at_max_s_without_overflow() -> None:
    backoff = Backoff(0.1, 900.0, multiplier=10.0, rng=FixedRandom(0.0))
    assert backoff.delay(100_000) == 450.0
    assert backoff.ceiling(100_000) == 900.0


def test_a_multiplier_of_one_keeps_the_delay_constant() -> None:
    backoff = Backoff(2.0, 2.0, multiplier=1.0, rng=FixedRandom(0.0))
    assert {backoff.delay(n) for n in (0, 1, 50, 10_000)} == {1.0}


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"initial_s": 0.0, "max_s": 1.0}, "initial_s"),
        ({"initial_s": math.nan, "max_s": 1.0}, "initial_s"),
        ({"initial_s": 2.0, "max_s": 1.0}, "max_s"),
        ({"initial_s": 1.0, "max_s": math.inf}, "max_s"),
        ({"initial_s": 1.0, "max_s": 2.0, "multiplier": 0.5}, "multiplier"),
        ({"initial_s": 1.0, "max_s": 2.0, "retry_after_ceiling_s": 0.0}, "retry_after_ceiling_s"),
    ],
)
def test_bad_backoff_settings_are_refused_by_name(arguments: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Backoff(**arguments)


@pytest.mark.parametrize("attempt", [-1, 1.5, True])
def test_a_bad_attempt_number_is_refused(attempt: object) -> None:
    with pytest.raises(ValueError, match="attempt"):
        Backoff(1.0, 2.0).delay(attempt)  # type: ignore[arg-type]


@pytest.mark.parametrize("retry_after_s", [-1.0, math.nan])
def test_a_bad_retry_after_is_refused(retry_after_s: float) -> None:
    with pytest.raises(ValueError, match="retry_after_s"):
        Backoff(1.0, 2.0).delay(0, retry_after_s=retry_after_s)


backoff_settings = st.tuples(
    st.floats(min_value=1e-3, max_value=100.0),
    st.floats(min_value=1.0, max_value=1000.0),
    st.floats(min_value=1.0, max_value=10.0),
    st.integers(min_value=0, max_value=2**40),
)


@given(backoff_settings, st.integers(min_value=0))
def test_the_delay_lies_within_half_and_all_of_its_ceiling(
    settings: tuple[float, float, float, int], attempt: int
) -> None:
    initial_s, span, multiplier, seed = settings
    max_s = initial_s * span
    backoff = Backoff(initial_s, max_s, multiplier, random.Random(seed))
    ceiling = backoff.ceiling(attempt)
    delay = backoff.delay(attempt)
    assert initial_s <= ceiling <= max_s
    assert ceiling / 2 <= delay <= ceiling


@given(backoff_settings, st.integers(min_value=0, max_value=200))
def test_the_ceiling_never_shrinks_as_attempts_grow(
    settings: tuple[float, float, float, int], attempt: int
) -> None:
    initial_s, span, multiplier, _ = settings
    backoff = Backoff(initial_s, initial_s * span, multiplier)
    assert backoff.ceiling(attempt) <= backoff.ceiling(attempt + 1)


@given(backoff_settings, st.integers(min_value=0), st.floats(min_value=0.0, allow_nan=False))
def test_retry_after_is_honoured_up_to_the_ceiling_and_nothing_longer_is_added(
    settings: tuple[float, float, float, int], attempt: int, retry_after_s: float
) -> None:
    initial_s, span, multiplier, seed = settings
    max_s = initial_s * span
    delay = Backoff(initial_s, max_s, multiplier, random.Random(seed)).delay(attempt, retry_after_s)
    honoured = min(retry_after_s, RETRY_AFTER_CEILING_S)
    assert delay >= honoured
    assert delay <= max(max_s, honoured)


# --- circuit breaker ---------------------------------------------------------------------------------


def test_the_breaker_opens_at_the_threshold_of_failures_in_a_row() -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=30.0)
    for second in range(2):
        breaker.failure(float(second))
        assert breaker.state is BreakerState.CLOSED and breaker.allow(float(second))
    breaker.failure(2.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_at == 2.0
    assert breaker.consecutive_failures == 3
    assert breaker.retry_at() == 32.0
    assert not breaker.allow(31.999)


def test_a_success_resets_the_count_of_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=2)
    breaker.failure(0.0)
    breaker.success(1.0)
    breaker.failure(2.0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 1


def test_after_the_pause_exactly_one_trial_goes_through_and_its_success_closes() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=10.0)
    breaker.failure(100.0)
    assert not breaker.allow(109.0)
    assert breaker.allow(110.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert [breaker.allow(110.0 + n) for n in range(5)] == [False] * 5
    breaker.success(111.0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.opened_at is None and breaker.consecutive_failures == 0
    assert breaker.retry_at() is None
    assert breaker.allow(111.0)


def test_a_failed_trial_reopens_with_a_fresh_pause() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=10.0)
    breaker.failure(0.0)
    breaker.failure(0.0)
    assert breaker.allow(10.0)
    breaker.failure(12.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_at == 12.0
    assert not breaker.allow(21.9)
    assert breaker.allow(22.0)


def test_a_trial_that_never_reports_is_given_up_after_another_pause() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=5.0)
    breaker.failure(0.0)
    assert breaker.allow(5.0)
    assert not breaker.allow(9.9)
    assert breaker.allow(10.0)  # the first trial's caller is gone; a new trial
    assert breaker.state is BreakerState.HALF_OPEN


def test_late_reports_while_open_neither_close_it_nor_extend_the_pause() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=5.0)
    breaker.failure(0.0)
    breaker.success(1.0)
    breaker.failure(2.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_at == 0.0
    assert breaker.consecutive_failures == 2
    assert breaker.allow(5.0)


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": 2.5}, "failure_threshold"),
        ({"reset_after_s": 0.0}, "reset_after_s"),
        ({"reset_after_s": math.inf}, "reset_after_s"),
    ],
)
def test_bad_breaker_settings_are_refused_by_name(arguments: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        CircuitBreaker(**arguments)  # type: ignore[arg-type]


@given(
    st.integers(min_value=1, max_value=6),
    st.lists(st.tuples(st.sampled_from(["allow", "success", "failure"]), st.floats(0.0, 5.0)), max_size=60),
)
def test_the_breaker_never_lets_two_calls_through_while_not_closed(
    threshold: int, steps: list[tuple[str, float]]
) -> None:
    """Whatever happens, between two reports at most one call is let through unless the breaker is
    closed or a trial was given up after ``reset_after_s``; an open breaker always refuses until its
    pause has passed."""
    breaker = CircuitBreaker(failure_threshold=threshold, reset_after_s=10.0)
    now_s = 0.0
    for action, step_s in steps:
        now_s += step_s
        if action == "allow":
            state_before, retry_at = breaker.state, breaker.retry_at()
            allowed = breaker.allow(now_s)
            if state_before is BreakerState.CLOSED:
                assert allowed
            else:
                assert retry_at is not None
                assert allowed == (now_s >= retry_at)
                if allowed:
                    assert breaker.state is BreakerState.HALF_OPEN
                    assert not breaker.allow(now_s)  # the trial is out: nobody else
        elif action == "success":
            before = breaker.state
            breaker.success(now_s)
            assert breaker.state is (
                BreakerState.OPEN if before is BreakerState.OPEN else BreakerState.CLOSED
            )
        else:
            breaker.failure(now_s)
        assert (breaker.opened_at is None) == (breaker.state is BreakerState.CLOSED)
        if breaker.state is BreakerState.CLOSED:
            assert breaker.consecutive_failures < threshold
