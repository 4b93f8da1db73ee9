"""The adaptive polling schedule of one source: pure functions, `now` and `rng` injected.

    next_check(state, obs, policy, now=, rng=) → ScheduleDecision(next, reason, url_changed_to?)

    success / 304 → base = max(entry frequency, ttl, sy:updatePeriod/Frequency,
                               Cache-Control max-age | Expires − Date)
                  → clamp to [min_interval, max_interval] → ± jitter → out of skipHours/skipDays
    error         → error_backoff_base · 2^(n−1), capped, ± jitter; never before Retry-After
                    (429/503, bounded by max_retry_after)
                    streak ≥ dead_after → "dead", still probed every dead_probe_interval
    410           → "retired": next_check_at None, never due
    301/308       → the same target on every fetch for redirect_confirm_period → url_changed_to

Entry frequency (`entry_frequency_interval`) combines two published rules:

* Miniflux's entry-frequency scheduler: interval = window / entries in the last window
  (7 days) / factor. When the feed holds no entry older than the window, it may be truncated
  (10 items of a busy site), so the window is shortened to the age of its oldest entry.
  Dates in the future beyond a 15 min skew, or before 1995, are ignored.
* CommaFeed's "empirical" rule, made continuous: the longer since the newest entry, the slower,
  as a floor of ``silence_factor × time since the newest entry``. Nothing in the window, or no
  dated entry at all, means `max_interval` (both projects agree there).

A 304 keeps the previous frequency: the caller passes the stored entry dates and hints; when
it passes none, the last base interval is kept, else ``max(min_interval, not_modified_interval)``.
Jitter is applied before the skip rule, so the result never lands in a skipped hour, and the
skip rule keeps the minutes of the jittered time, so jittered feeds do not pile up on the hour.
A success revives any state, including "retired" (only a manual fetch can reach a retired one).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from aggregator.dates import is_plausible, parse_datetime, to_utc
from aggregator.models import FeedHints, FetchResult

ScheduleStatus = Literal["ok", "erroring", "dead", "retired"]

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SY_PERIODS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(days=7),
    "monthly": timedelta(days=30),
    "yearly": timedelta(days=365),
}
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_GONE = 410


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    """Tunables of the scheduler (the ``scheduler:`` config section)."""

    min_interval: timedelta = timedelta(minutes=5)
    max_interval: timedelta = timedelta(hours=24)
    frequency_window: timedelta = timedelta(days=7)
    frequency_factor: float = 1.0
    silence_factor: float = 0.5
    not_modified_interval: timedelta = timedelta(hours=1)
    error_backoff_base: timedelta = timedelta(minutes=5)
    error_backoff_cap: timedelta = timedelta(hours=24)
    max_retry_after: timedelta = timedelta(hours=24)
    dead_after: timedelta = timedelta(days=7)
    dead_probe_interval: timedelta = timedelta(days=7)
    jitter_fraction: float = 0.1
    redirect_confirm_period: timedelta = timedelta(days=3)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.min_interval <= self.max_interval:
            raise ValueError("scheduler: need 0 < min_interval <= max_interval")
        if not 0 <= self.jitter_fraction < 1:
            raise ValueError("scheduler.jitter_fraction: must be in [0, 1)")
        if self.frequency_factor <= 0 or self.silence_factor < 0:
            raise ValueError("scheduler: frequency_factor > 0 and silence_factor >= 0")


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the scheduler remembers about one source between fetches."""

    state: ScheduleStatus = "ok"
    error_count: int = 0
    first_error_at: datetime | None = None
    next_check_at: datetime | None = None
    last_interval: timedelta | None = None
    redirect_url: str | None = None
    redirect_first_seen: datetime | None = None
    url_override: str | None = None


@dataclass(frozen=True, slots=True)
class FetchObservation:
    """What one fetch of a source showed; `entry_dates` are the entries' publication dates."""

    at: datetime
    status: int | None = None
    error: str | None = None
    not_modified: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    hints: FeedHints | None = None
    entry_dates: Sequence[datetime] = ()
    url: str | None = None
    final_url: str | None = None
    permanent_redirect: bool = False

    @property
    def ok(self) -> bool:
        """True for a usable response: no error and a 2xx or 304 status (or none known)."""
        status_ok = self.status is None or 200 <= self.status < 300 or self.status == 304
        return self.error is None and status_ok


@dataclass(frozen=True, slots=True)
class ScheduleDecision:
    """The next state, a human explanation, and the new feed URL once a redirect is confirmed."""

    next: ScheduleState
    reason: str
    url_changed_to: str | None = None


def observe_result(
    result: FetchResult,
    *,
    at: datetime,
    hints: FeedHints | None = None,
    entry_dates: Sequence[datetime] = (),
    error: str | None = None,
) -> FetchObservation:
    """Build the observation of a fetch that produced a response (`error`: parse failure)."""
    return FetchObservation(
        at=at,
        status=result.status,
        error=error,
        not_modified=result.not_modified,
        headers=result.headers,
        hints=hints,
        entry_dates=entry_dates,
        url=result.url,
        final_url=result.final_url,
        permanent_redirect=result.permanent_redirect,
    )


def next_check(
    state: ScheduleState,
    obs: FetchObservation,
    policy: SchedulePolicy,
    *,
    now: datetime,
    rng: random.Random,
) -> ScheduleDecision:
    """Decide the next state and check time of a source after one fetch."""
    now = to_utc(now)
    if obs.status == _GONE:
        retired = replace(
            state,
            state="retired",
            next_check_at=None,
            error_count=state.error_count + 1,
            first_error_at=state.first_error_at or to_utc(obs.at),
        )
        return ScheduleDecision(retired, "HTTP 410 Gone: source retired, never checked again")
    if obs.ok:
        return _on_success(state, obs, policy, now, rng)
    if state.state == "retired":
        return ScheduleDecision(state, "retired: stays retired")
    return _on_error(state, obs, policy, now, rng)


def is_due(state: ScheduleState, now: datetime) -> bool:
    """True when the source should be fetched at `now`; a retired source never is."""
    if state.state == "retired":
        return False
    return state.next_check_at is None or to_utc(state.next_check_at) <= to_utc(now)


def defer_for_politeness(state: ScheduleState, *, now: datetime, until: datetime) -> ScheduleState:
    """Push the next check to `until` (a host budget is spent); not an error, counts unchanged."""
    if state.state == "retired":
        return state
    target = max(to_utc(until), to_utc(now))
    if state.next_check_at is not None and to_utc(state.next_check_at) >= target:
        return state
    return replace(state, next_check_at=target)


def entry_frequency_interval(
    entry_dates: Sequence[datetime], now: datetime, policy: SchedulePolicy
) -> timedelta:
    """The polling interval that the entries' publication dates call for, clamped."""
    return _frequency(entry_dates, to_utc(now), policy)[0]


def next_allowed_time(hints: FeedHints, when: datetime) -> datetime:
    """The first time at or after `when` outside skipHours (UTC hours) and skipDays.

    Whole hours are added, so the minutes of `when` are kept. Hints that skip every hour or
    every day are nonsense and are ignored.
    """
    when = to_utc(when)
    hours = {hour for hour in hints.skip_hours if 0 <= hour < 24}
    wanted = {day.strip().lower() for day in hints.skip_days}
    days = {index for index, name in enumerate(_DAYS) if name in wanted}
    if len(hours) == 24 or len(days) == 7:
        return when
    for step in range(24 * 8):
        candidate = when + timedelta(hours=step)
        if candidate.hour not in hours and candidate.weekday() not in days:
            return candidate
    return when


def sy_interval(hints: FeedHints) -> timedelta | None:
    """sy:updatePeriod / sy:updateFrequency as an interval (period defaults to daily)."""
    name = (hints.update_period or ("daily" if hints.update_frequency else "")).strip().lower()
    period = _SY_PERIODS.get(name)
    if period is None:
        return None
    return period / max(1, hints.update_frequency or 1)


# A feed's or server's figures are capped here, before any timedelta: a ttl or max-age of
# 10**20 overflowed timedelta and failed the source's every fetch. Intervals are clamped to
# `max_interval` later anyway.
_LONGEST_SECONDS = 10 * 365 * 86_400


def cache_lifetime(headers: Mapping[str, str], now: datetime) -> timedelta | None:
    """Freshness from Cache-Control max-age (minus Age), else Expires − Date; None if absent."""
    lower = {key.lower(): value for key, value in headers.items()}
    directives: dict[str, str] = {}
    for part in lower.get("cache-control", "").split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return None
    max_age = directives.get("max-age", "")
    if max_age.isdigit():
        age = lower.get("age", "").strip()
        seconds = max(0, int(max_age) - (int(age) if age.isdigit() else 0))
        return timedelta(seconds=min(seconds, _LONGEST_SECONDS))
    expires = parse_datetime(lower.get("expires"))
    if expires is None:
        return None
    origin = parse_datetime(lower.get("date")) or to_utc(now)
    return max(timedelta(0), expires - origin)


def retry_after(headers: Mapping[str, str], now: datetime, cap: timedelta) -> timedelta | None:
    """Retry-After (delta-seconds or HTTP-date) as a wait bounded to [0, cap]; None if absent."""
    lower = {key.lower(): value for key, value in headers.items()}
    value = lower.get("retry-after", "").strip()
    if value.isdigit():
        wait = timedelta(seconds=min(int(value), int(cap.total_seconds())))
    elif (when := parse_datetime(value)) is not None:
        wait = when - to_utc(now)
    else:
        return None
    return min(cap, max(timedelta(0), wait))


def _frequency(
    dates: Sequence[datetime], now: datetime, policy: SchedulePolicy
) -> tuple[timedelta, str]:
    past = sorted(min(to_utc(date), now) for date in dates if is_plausible(date, now))
    if not past:
        return policy.max_interval, "no dated entries"
    silence = now - past[-1]
    window = policy.frequency_window
    recent = [date for date in past if now - date < window]
    if not recent:
        return policy.max_interval, f"nothing new for {_fmt(silence)}"
    observed = window if len(past) < 2 else min(window, now - past[0])
    by_rate = observed / len(recent) / policy.frequency_factor
    floor = silence * policy.silence_factor
    label = f"{len(recent)} entries in {_fmt(observed)}"
    if floor > by_rate:
        label += f", quiet for {_fmt(silence)}"
    return _clamp(max(by_rate, floor), policy)[0], label


def _on_success(
    state: ScheduleState,
    obs: FetchObservation,
    policy: SchedulePolicy,
    now: datetime,
    rng: random.Random,
) -> ScheduleDecision:
    candidates = _interval_candidates(state, obs, policy, now)
    raw = max(value for value, _ in candidates)
    base, clamp_note = _clamp(raw, policy)
    parts = [f"{label} {_fmt(value)}" for value, label in candidates]
    delay, jitter_note = _jitter(base, policy.jitter_fraction, rng)
    when, skip_note = _skip(obs.hints, now + delay)
    tracked, changed_to, redirect_note = _track_redirect(state, obs, policy)
    recovered = f"recovered after {state.error_count} errors" if state.state != "ok" else ""
    reason = "; ".join(parts) + f" → {_fmt(base)}{clamp_note}"
    reason = _join(reason, jitter_note, skip_note, recovered, redirect_note)
    next_state = replace(
        tracked,
        state="ok",
        error_count=0,
        first_error_at=None,
        next_check_at=when,
        last_interval=base,
    )
    return ScheduleDecision(next_state, reason, changed_to)


def _interval_candidates(
    state: ScheduleState, obs: FetchObservation, policy: SchedulePolicy, now: datetime
) -> list[tuple[timedelta, str]]:
    hints = obs.hints or FeedHints()
    if obs.not_modified and not obs.entry_dates:
        fallback = max(policy.min_interval, policy.not_modified_interval)
        candidates = [(state.last_interval or fallback, "304, previous interval")]
    else:
        value, label = _frequency(obs.entry_dates, now, policy)
        candidates = [(value, f"{label} →")]
    if hints.ttl_minutes:
        ttl = timedelta(seconds=min(60 * hints.ttl_minutes, _LONGEST_SECONDS))
        candidates.append((ttl, "ttl"))
    if (sy := sy_interval(hints)) is not None:
        candidates.append((sy, "sy:updatePeriod"))
    if (fresh := cache_lifetime(obs.headers, now)) is not None:
        candidates.append((fresh, "cache freshness"))
    return candidates


def _on_error(
    state: ScheduleState,
    obs: FetchObservation,
    policy: SchedulePolicy,
    now: datetime,
    rng: random.Random,
) -> ScheduleDecision:
    count = state.error_count + 1
    first = to_utc(state.first_error_at or obs.at)
    streak = now - first
    what = obs.error or f"HTTP {obs.status}"
    status: ScheduleStatus
    if state.state == "dead" or streak >= policy.dead_after:
        status, base = "dead", policy.dead_probe_interval
        note = f"{what}; failing for {_fmt(streak)} → dead, probed every {_fmt(base)}"
    else:
        status, base = "erroring", _backoff(count, policy)
        note = f"{what}; error #{count} → backoff {_fmt(base)}"
    delay, jitter_note = _jitter(base, policy.jitter_fraction, rng)
    wait = retry_after(obs.headers, now, policy.max_retry_after)
    if obs.status in _RETRY_AFTER_STATUSES and wait is not None and wait > delay:
        delay, jitter_note = wait, f"Retry-After {_fmt(wait)} honoured"
    when, skip_note = _skip(obs.hints, now + delay)
    next_state = replace(
        state, state=status, error_count=count, first_error_at=first, next_check_at=when
    )
    return ScheduleDecision(next_state, _join(note, jitter_note, skip_note))


def _backoff(count: int, policy: SchedulePolicy) -> timedelta:
    seconds = policy.error_backoff_base.total_seconds() * 2.0 ** min(count - 1, 64)
    return min(policy.error_backoff_cap, timedelta(seconds=min(seconds, 1e12)))


def _track_redirect(
    state: ScheduleState, obs: FetchObservation, policy: SchedulePolicy
) -> tuple[ScheduleState, str | None, str]:
    target = obs.final_url if obs.permanent_redirect and obs.final_url != obs.url else None
    if target is None:
        note = "permanent redirect no longer seen, pending change dropped"
        cleared = replace(state, redirect_url=None, redirect_first_seen=None)
        return cleared, None, note if state.redirect_url else ""
    seen_at = to_utc(obs.at)
    if target != state.redirect_url or state.redirect_first_seen is None:
        pending = replace(state, redirect_url=target, redirect_first_seen=seen_at)
        return pending, None, f"permanent redirect to {target} first seen"
    seen_for = seen_at - to_utc(state.redirect_first_seen)
    if seen_for < policy.redirect_confirm_period:
        return state, None, f"permanent redirect to {target} seen for {_fmt(seen_for)}"
    confirmed = replace(state, redirect_url=None, redirect_first_seen=None, url_override=target)
    return confirmed, target, f"permanent redirect for {_fmt(seen_for)}: feed URL → {target}"


def _clamp(value: timedelta, policy: SchedulePolicy) -> tuple[timedelta, str]:
    if value < policy.min_interval:
        return policy.min_interval, " (min)"
    if value > policy.max_interval:
        return policy.max_interval, " (max)"
    return value, ""


def _jitter(base: timedelta, fraction: float, rng: random.Random) -> tuple[timedelta, str]:
    if fraction <= 0:
        return base, ""
    share = rng.uniform(-fraction, fraction)
    seconds = round(base.total_seconds() * (1 + share))
    return timedelta(seconds=seconds), f"{share:+.0%} jitter"


def _skip(hints: FeedHints | None, when: datetime) -> tuple[datetime, str]:
    if hints is None:
        return when, ""
    moved = next_allowed_time(hints, when)
    return moved, f"skipHours/skipDays +{_fmt(moved - when)}" if moved != when else ""


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _fmt(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{seconds:.0f} s"
