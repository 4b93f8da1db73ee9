"""Tests for aggregator.schedule: every case runs on an injected `now` and a seeded Random."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.models import FeedHints, FetchResult
from aggregator.schedule import (
    FetchObservation,
    ScheduleDecision,
    SchedulePolicy,
    ScheduleState,
    ScheduleStatus,
    defer_for_politeness,
    entry_frequency_interval,
    is_due,
    next_allowed_time,
    next_check,
    observe_result,
)

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)  # a Monday
POLICY = SchedulePolicy(jitter_fraction=0)
H = timedelta(hours=1)
D = timedelta(days=1)
M = timedelta(minutes=1)
OLD = "https://old.example/feed.xml"
NEW = "https://new.example/feed.xml"


def every(step: timedelta, count: int, start: timedelta = timedelta(0)) -> list[datetime]:
    """`count` entry dates, newest first, `step` apart, the newest `start` before NOW."""
    return [NOW - start - step * index for index in range(count)]


def check(
    obs: FetchObservation,
    state: ScheduleState | None = None,
    policy: SchedulePolicy = POLICY,
    now: datetime = NOW,
    seed: int = 0,
) -> ScheduleDecision:
    return next_check(state or ScheduleState(), obs, policy, now=now, rng=random.Random(seed))


def delay(decision: ScheduleDecision, now: datetime = NOW) -> timedelta:
    assert decision.next.next_check_at is not None
    return decision.next.next_check_at - now


def ok(
    dates: Sequence[datetime] = (),
    hints: FeedHints | None = None,
    headers: Mapping[str, str] | None = None,
    at: datetime = NOW,
) -> FetchObservation:
    return FetchObservation(
        at=at, status=200, entry_dates=dates, hints=hints, headers=headers or {}, url=OLD
    )


def failed(status: int | None = 500, headers: Mapping[str, str] | None = None) -> FetchObservation:
    return FetchObservation(at=NOW, status=status, error="boom", headers=headers or {})


# --- entry frequency ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        pytest.param(every(86.4 * timedelta(seconds=1), 1000), 5 * M, id="1000/day→min"),
        pytest.param(every(6 * H, 40), 6 * H, id="4/day→6h"),
        pytest.param(every(H, 24 * 10), H, id="24/day→1h"),
        pytest.param(every(7 * D, 5, start=D), D, id="1/week→max"),
        pytest.param([], D, id="none→max"),
        pytest.param(every(D, 5, start=8 * D), D, id="quiet-8-days→max"),
        pytest.param(every(M, 50, start=10 * H), 5 * H, id="burst-then-quiet→silence-floor"),
        pytest.param(every(M, 10), 5 * M, id="truncated-busy-feed→min"),
        pytest.param([NOW - H], D, id="single-entry→window/1"),
        pytest.param([NOW + 2 * D, NOW + 3 * D], D, id="future-dates-ignored"),
    ],
)
def test_entry_frequency_interval(dates: list[datetime], expected: timedelta) -> None:
    assert entry_frequency_interval(dates, NOW, POLICY) == expected


def test_frequency_factor_polls_more_often() -> None:
    policy = SchedulePolicy(jitter_fraction=0, frequency_factor=2)
    assert entry_frequency_interval(every(6 * H, 40), NOW, policy) == 3 * H


def test_frequency_accepts_naive_dates_as_utc() -> None:
    naive = [d.replace(tzinfo=None) for d in every(6 * H, 40)]
    assert entry_frequency_interval(naive, NOW, POLICY) == 6 * H


# --- hints and cache headers ----------------------------------------------------------------

BUSY = every(M, 2000)  # alone → min interval


@pytest.mark.parametrize(
    ("dates", "hints", "expected"),
    [
        pytest.param(BUSY, FeedHints(ttl_minutes=60), H, id="ttl-raises"),
        pytest.param(every(6 * H, 40), FeedHints(ttl_minutes=60), 6 * H, id="ttl-never-lowers"),
        pytest.param(BUSY, FeedHints(ttl_minutes=100_000), D, id="ttl-clamped-to-max"),
        # past what timedelta can hold: it overflowed, failing the source's every fetch
        pytest.param(BUSY, FeedHints(ttl_minutes=10**20), D, id="ttl-beyond-timedelta"),
        pytest.param(BUSY, FeedHints(update_period="daily", update_frequency=4), 6 * H, id="sy"),
        pytest.param(BUSY, FeedHints(update_period="hourly"), H, id="sy-hourly"),
        pytest.param(BUSY, FeedHints(update_frequency=2), 12 * H, id="sy-default-daily"),
        pytest.param(BUSY, FeedHints(update_period="weekly"), D, id="sy-clamped"),
        pytest.param(BUSY, FeedHints(update_period="fortnightly"), 5 * M, id="sy-unknown"),
    ],
)
def test_feed_hints_raise_the_interval(
    dates: list[datetime], hints: FeedHints, expected: timedelta
) -> None:
    assert delay(check(ok(dates, hints))) == expected


def _http_date(value: datetime) -> str:
    return format_datetime(value, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Cache-Control": "max-age=7200"}, 2 * H, id="max-age"),
        pytest.param({"cache-control": "public, max-age=7200", "age": "3600"}, H, id="minus-age"),
        pytest.param({"Expires": _http_date(NOW + 3 * H)}, 3 * H, id="expires"),
        pytest.param(
            {"Expires": _http_date(NOW + H), "Date": _http_date(NOW - H)}, 2 * H, id="expires-date"
        ),
        pytest.param(
            {"Cache-Control": "max-age=3600", "Expires": _http_date(NOW + 5 * H)}, H, id="max-wins"
        ),
        pytest.param({"Cache-Control": "no-cache, max-age=7200"}, 5 * M, id="no-cache"),
        pytest.param({"Expires": "0"}, 5 * M, id="invalid-expires"),
        # past year 9999 once in UTC: parsing it raised OverflowError
        pytest.param({"Expires": "Fri, 31 Dec 9999 23:59:59 -2359"}, 5 * M, id="beyond-9999"),
        pytest.param({"Cache-Control": "max-age=999999"}, D, id="clamped"),
        pytest.param({"Cache-Control": "max-age=" + "9" * 20}, D, id="beyond-timedelta"),
    ],
)
def test_cache_headers_honoured(headers: dict[str, str], expected: timedelta) -> None:
    assert delay(check(ok(BUSY, headers=headers))) == expected


def test_reason_explains_the_choice() -> None:
    decision = check(ok(every(6 * H, 40), FeedHints(ttl_minutes=60)), policy=SchedulePolicy())
    assert "28 entries in 7 d → 6 h" in decision.reason
    assert "ttl 1 h" in decision.reason
    assert "jitter" in decision.reason


# --- skipHours / skipDays -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("hints", "when", "expected"),
    [
        pytest.param(FeedHints(skip_hours=(12, 13)), NOW, NOW + 2 * H, id="hours"),
        pytest.param(FeedHints(skip_hours=(12,)), NOW + 30 * M, NOW + 90 * M, id="keeps-minutes"),
        pytest.param(FeedHints(skip_days=("Monday",)), NOW, NOW + 12 * H, id="day"),
        pytest.param(FeedHints(skip_days=("monday",)), NOW, NOW + 12 * H, id="day-any-case"),
        pytest.param(
            FeedHints(skip_hours=(23, 0, 1, 2, 3, 4, 5), skip_days=("Tuesday",)),
            NOW + 11 * H + 10 * M,
            NOW + 42 * H + 10 * M,
            id="hours-and-days",
        ),
        pytest.param(FeedHints(skip_hours=tuple(range(24))), NOW, NOW, id="all-hours-ignored"),
        pytest.param(FeedHints(), NOW, NOW, id="nothing-skipped"),
    ],
)
def test_next_allowed_time(hints: FeedHints, when: datetime, expected: datetime) -> None:
    assert next_allowed_time(hints, when) == expected


def test_skip_hours_push_the_next_check() -> None:
    hints = FeedHints(ttl_minutes=60, skip_hours=(13, 14))
    decision = check(ok(BUSY, hints))
    assert delay(decision) == 3 * H
    assert "skipHours/skipDays +2 h" in decision.reason


# --- jitter ---------------------------------------------------------------------------------


def test_jitter_stays_within_fraction_and_spreads() -> None:
    policy = SchedulePolicy(jitter_fraction=0.1)
    delays = {delay(check(ok(every(6 * H, 40)), policy=policy, seed=seed)) for seed in range(50)}
    assert all(5.4 * H <= value <= 6.6 * H for value in delays)
    assert len(delays) > 40


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_jitter_is_deterministic_for_a_seed(seed: int) -> None:
    policy = SchedulePolicy(jitter_fraction=0.1)
    first = check(ok(every(6 * H, 40)), policy=policy, seed=seed)
    assert check(ok(every(6 * H, 40)), policy=policy, seed=seed) == first


# --- errors: backoff, Retry-After, dead ---------------------------------------------------


@pytest.mark.parametrize(
    ("previous_errors", "expected"),
    [
        (0, 5 * M),
        (1, 10 * M),
        (2, 20 * M),
        (3, 40 * M),
        (8, 1280 * M),
        (9, D),
        (500, D),
    ],
)
def test_backoff_doubles_and_caps(previous_errors: int, expected: timedelta) -> None:
    state = ScheduleState(state="erroring", error_count=previous_errors, first_error_at=NOW - H)
    decision = check(failed(), state)
    assert delay(decision) == expected
    assert decision.next.state == "erroring"
    assert decision.next.error_count == previous_errors + 1


def test_first_error_starts_the_streak() -> None:
    decision = check(failed())
    assert decision.next.first_error_at == NOW
    assert decision.next.error_count == 1


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        pytest.param(429, "7200", 2 * H, id="seconds"),
        pytest.param(503, _http_date(NOW + 3 * H), 3 * H, id="http-date"),
        pytest.param(429, "999999", D, id="bounded"),
        pytest.param(429, _http_date(NOW - H), 5 * M, id="past-date"),
        pytest.param(429, "60", 5 * M, id="shorter-than-backoff"),
        pytest.param(429, "soon", 5 * M, id="garbage"),
        pytest.param(500, "7200", 5 * M, id="ignored-on-500"),
    ],
)
def test_retry_after(status: int, retry_after: str, expected: timedelta) -> None:
    assert delay(check(failed(status, {"Retry-After": retry_after}))) == expected


def test_retry_after_is_never_shortened_by_jitter() -> None:
    policy = SchedulePolicy(jitter_fraction=0.5)
    for seed in range(20):
        obs = failed(429, {"retry-after": "7200"})
        assert delay(check(obs, policy=policy, seed=seed)) >= 2 * H


@pytest.mark.parametrize(
    ("streak", "state"), [(6 * D, "erroring"), (7 * D, "dead"), (30 * D, "dead")]
)
def test_dead_after_a_long_streak(streak: timedelta, state: str) -> None:
    previous = ScheduleState(state="erroring", error_count=40, first_error_at=NOW - streak)
    decision = check(failed(), previous)
    assert decision.next.state == state
    if state == "dead":
        assert delay(decision) == 7 * D
        assert "dead" in decision.reason


def test_dead_source_is_still_probed_weekly() -> None:
    dead = ScheduleState(state="dead", error_count=50, first_error_at=NOW - 20 * D)
    decision = check(failed(None), dead)
    probe = decision.next
    assert probe.state == "dead"
    assert not is_due(probe, NOW + 6 * D)
    assert is_due(probe, NOW + 7 * D)


@pytest.mark.parametrize("previous", ["erroring", "dead"])
def test_success_recovers(previous: ScheduleStatus) -> None:
    state = ScheduleState(state=previous, error_count=9, first_error_at=NOW - 9 * D)
    decision = check(ok(every(6 * H, 40)), state)
    assert decision.next.state == "ok"
    assert decision.next.error_count == 0
    assert decision.next.first_error_at is None
    assert delay(decision) == 6 * H
    assert "recovered after 9 errors" in decision.reason


def test_parse_error_on_a_200_counts_as_error() -> None:
    obs = replace(ok(every(6 * H, 40)), error="not a feed")
    assert check(obs).next.state == "erroring"


# --- 304 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_interval", "dates", "policy", "expected"),
    [
        pytest.param(3 * H, (), POLICY, 3 * H, id="keeps-last-interval"),
        pytest.param(None, (), POLICY, H, id="default-1h"),
        pytest.param(None, (), SchedulePolicy(jitter_fraction=0, min_interval=2 * H), 2 * H),
        pytest.param(3 * H, every(6 * H, 40), POLICY, 6 * H, id="stored-dates-win"),
    ],
)
def test_not_modified_keeps_the_frequency(
    last_interval: timedelta | None,
    dates: list[datetime],
    policy: SchedulePolicy,
    expected: timedelta,
) -> None:
    obs = FetchObservation(at=NOW, status=304, not_modified=True, entry_dates=dates)
    decision = check(obs, ScheduleState(last_interval=last_interval), policy)
    assert delay(decision) == expected
    assert decision.next.last_interval == expected


# --- 410 -------------------------------------------------------------------------------------


def test_gone_retires_and_is_never_due() -> None:
    decision = check(failed(410))
    retired = decision.next
    assert retired.state == "retired"
    assert retired.next_check_at is None
    assert not is_due(retired, NOW + 3650 * D)
    assert check(failed(500), retired).next == retired
    assert defer_for_politeness(retired, now=NOW, until=NOW + H) == retired


def test_never_checked_source_is_due() -> None:
    assert is_due(ScheduleState(), NOW)


# --- permanent redirects --------------------------------------------------------------------


def _redirected(at: datetime, target: str | None) -> FetchObservation:
    return FetchObservation(
        at=at,
        status=200,
        entry_dates=every(6 * H, 40),
        url=OLD,
        final_url=target or OLD,
        permanent_redirect=target is not None,
    )


def _run(steps: list[tuple[timedelta, str | None]]) -> list[ScheduleDecision]:
    state, decisions = ScheduleState(), []
    for offset, target in steps:
        decision = check(_redirected(NOW + offset, target), state, now=NOW + offset)
        decisions.append(decision)
        state = decision.next
    return decisions


OTHER = "https://other.example/feed.xml"


@pytest.mark.parametrize(
    ("steps", "changed_to"),
    [
        pytest.param([(0 * D, NEW), (D, NEW), (3 * D, NEW)], NEW, id="confirmed"),
        pytest.param([(0 * D, NEW), (D, NEW), (2 * D, NEW)], None, id="too-soon"),
        pytest.param([(0 * D, NEW), (3 * D, OTHER)], None, id="different-target"),
        pytest.param([(0 * D, NEW), (D, OTHER), (3 * D, OTHER)], None, id="target-resets"),
        pytest.param([(0 * D, NEW), (D, OTHER), (4 * D, OTHER)], OTHER, id="new-target-later"),
        pytest.param([(0 * D, NEW), (D, None), (3 * D, NEW)], None, id="plain-200-resets"),
        pytest.param([(0 * D, None), (3 * D, None)], None, id="no-redirect"),
    ],
)
def test_permanent_redirect(
    steps: list[tuple[timedelta, str | None]], changed_to: str | None
) -> None:
    last = _run(steps)[-1]
    assert last.url_changed_to == changed_to
    if changed_to:
        assert last.next.url_override == changed_to
        assert last.next.redirect_url is None
        assert f"feed URL → {changed_to}" in last.reason


def test_error_keeps_a_pending_redirect() -> None:
    pending = _run([(0 * D, NEW)])[-1].next
    after_error = check(failed(), pending, now=NOW + D).next
    assert after_error.redirect_url == NEW
    confirmed = check(_redirected(NOW + 3 * D, NEW), after_error, now=NOW + 3 * D)
    assert confirmed.url_changed_to == NEW


# --- politeness -----------------------------------------------------------------------------


def test_politeness_deferral_does_not_touch_errors() -> None:
    state = ScheduleState(
        state="erroring", error_count=3, first_error_at=NOW - H, next_check_at=NOW
    )
    deferred = defer_for_politeness(state, now=NOW, until=NOW + H)
    assert deferred == replace(state, next_check_at=NOW + H)


@pytest.mark.parametrize(
    ("scheduled", "until", "expected"),
    [
        pytest.param(NOW + 2 * H, NOW + H, NOW + 2 * H, id="never-pulls-earlier"),
        pytest.param(None, NOW - H, NOW, id="past-until-means-now"),
    ],
)
def test_politeness_deferral_bounds(
    scheduled: datetime | None, until: datetime, expected: datetime
) -> None:
    state = ScheduleState(next_check_at=scheduled)
    assert defer_for_politeness(state, now=NOW, until=until).next_check_at == expected


# --- plumbing --------------------------------------------------------------------------------


def test_observe_result_maps_a_fetch_result() -> None:
    result = FetchResult(
        url=OLD,
        final_url=NEW,
        status=200,
        content=b"",
        headers={"cache-control": "max-age=60"},
        permanent_redirect=True,
    )
    obs = observe_result(result, at=NOW, entry_dates=every(H, 3))
    assert obs.ok
    assert (obs.url, obs.final_url, obs.permanent_redirect) == (OLD, NEW, True)
    assert not observe_result(result, at=NOW, error="bad xml").ok


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_interval": timedelta(0)},
        {"min_interval": 2 * D},
        {"jitter_fraction": 1.0},
        {"frequency_factor": 0},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="scheduler"):
        SchedulePolicy(**kwargs)  # type: ignore[arg-type]


@given(
    offsets=st.lists(st.integers(min_value=-3600, max_value=60 * 86400), max_size=60),
    ttl=st.none() | st.integers(min_value=1, max_value=10_000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_success_always_lands_within_jittered_bounds(
    offsets: list[int], ttl: int | None, seed: int
) -> None:
    policy = SchedulePolicy()
    dates = [NOW - timedelta(seconds=offset) for offset in offsets]
    assert policy.min_interval <= entry_frequency_interval(dates, NOW, policy) <= D
    decision = check(ok(dates, FeedHints(ttl_minutes=ttl)), policy=policy, seed=seed)
    assert 0.9 * policy.min_interval <= delay(decision) <= 1.1 * policy.max_interval
