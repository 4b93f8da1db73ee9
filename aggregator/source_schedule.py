"""Glue between a source's stored state and the pure adaptive schedule (`aggregator.schedule`).

    schedule_policy(settings.scheduler)          → SchedulePolicy (config units → timedelta)
    fetch_url(state, source)                     the confirmed redirect target, else the config URL
    is_due(state, now)                           never fetched, or next_check_at has come; never
                                                 a retired source
    failure_observation(exc, at, url)            a FetchError/ParseError/bug as an observation
                                                 (status, Retry-After from FetchError.retry_after)
    apply_schedule(state, obs, policy, now, rng) → SourceState with the decision persisted

The pipeline is the only caller of `apply_schedule`, so `aggregator fetch` and the daemon store
the same next check. Entry dates are kept (newest `MAX_ENTRY_DATES`) so a 304 reuses them.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import cast

from aggregator.errors import FetchError
from aggregator.schedule import (
    FetchObservation,
    SchedulePolicy,
    ScheduleState,
    ScheduleStatus,
    next_check,
)
from aggregator.settings import SchedulerSettings, SourceSettings
from aggregator.store import SourceState

log = logging.getLogger(__name__)

MAX_ENTRY_DATES = 100
_STATUSES = ("ok", "erroring", "dead", "retired")


def schedule_policy(section: SchedulerSettings) -> SchedulePolicy:
    """The SchedulePolicy of the ``scheduler:`` config section."""
    return SchedulePolicy(
        min_interval=timedelta(minutes=section.min_interval_minutes),
        max_interval=timedelta(hours=section.max_interval_hours),
        error_backoff_cap=timedelta(hours=section.error_backoff_cap_hours),
        dead_after=timedelta(days=section.dead_after_days),
        dead_probe_interval=timedelta(days=section.dead_probe_interval_days),
        jitter_fraction=section.jitter_fraction,
        redirect_confirm_period=timedelta(days=section.redirect_confirm_days),
    )


def fetch_url(state: SourceState | None, source: SourceSettings) -> str:
    """Where to fetch `source`: its confirmed permanent-redirect target, else its URL.

    An override only holds while the config URL is the one it was learned from.
    """
    if state is not None and state.url_override and state.url in ("", source.url):
        return state.url_override
    return source.url


def is_due(state: SourceState | None, now: datetime) -> bool:
    """True when a source was never checked or its next check time has come (not retired)."""
    if state is None:
        return True
    if state.state == "retired":
        return False
    return state.next_check_at is None or state.next_check_at <= now


def failure_observation(exc: BaseException, at: datetime, url: str) -> FetchObservation:
    """What a failed crawl showed: the HTTP status and Retry-After of a FetchError, if any."""
    status = exc.status if isinstance(exc, FetchError) else None
    wait = exc.retry_after if isinstance(exc, FetchError) else None
    headers = {"retry-after": str(math.ceil(wait))} if wait is not None else {}
    return FetchObservation(at=at, status=status, error=str(exc)[:200], headers=headers, url=url)


def schedule_state(state: SourceState) -> ScheduleState:
    """The scheduler's view of a stored source state."""
    interval = state.last_interval_seconds
    status = state.state if state.state in _STATUSES else "ok"
    return ScheduleState(
        state=cast(ScheduleStatus, status),
        error_count=state.error_count,
        first_error_at=state.first_error_at,
        next_check_at=state.next_check_at,
        last_interval=timedelta(seconds=interval) if interval is not None else None,
        redirect_url=state.redirect_url,
        redirect_first_seen=state.redirect_first_seen,
        url_override=state.url_override,
    )


def apply_schedule(
    state: SourceState,
    obs: FetchObservation,
    policy: SchedulePolicy,
    *,
    now: datetime,
    rng: random.Random,
) -> SourceState:
    """`state` with the schedule decision for `obs` applied (state, next check, redirect)."""
    decision = next_check(schedule_state(state), obs, policy, now=now, rng=rng)
    decided = decision.next
    if decision.url_changed_to:
        log.warning(
            "source %s moved permanently: now fetching %s (the config still says %s)",
            state.name,
            decision.url_changed_to,
            state.url,
        )
    log.debug("source %s: %s", state.name, decision.reason)
    interval = decided.last_interval
    return replace(
        state,
        state=decided.state,
        error_count=decided.error_count,
        first_error_at=decided.first_error_at,
        next_check_at=decided.next_check_at,
        last_interval_seconds=interval.total_seconds() if interval is not None else None,
        redirect_url=decided.redirect_url,
        redirect_first_seen=decided.redirect_first_seen,
        url_override=decided.url_override,
    )


def newest_dates(dates: Sequence[datetime | None]) -> tuple[datetime, ...]:
    """The newest `MAX_ENTRY_DATES` of `dates`, newest first (None dropped)."""
    known = sorted((date for date in dates if date is not None), reverse=True)
    return tuple(known[:MAX_ENTRY_DATES])
