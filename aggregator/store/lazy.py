"""A `Store` that imports SQLAlchemy only when something needs more than source bookkeeping.

    store = LazyStore(url)           a SqliteLedger when the file is a SQLite store at the
                                     head schema; otherwise the full Store, opened now
    store.claim_sources(...)         the ledger (claims, states, refresh queue, imports)
    store.upsert_records(...)        the full Store, opened on first use
    store.close()

The command-line process opens its store this way: an unchanged re-poll of 200 feeds then
never imports SQLAlchemy and the table models, about 180 ms of 600. The full Store, once
open, serves every other method; the bookkeeping stays on the ledger, whose statements
write the same rows (tests/test_ledger.py), so which connection ran them is invisible.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aggregator.store.ledger import SqliteLedger
from aggregator.store.values import ImportedSource, SourceState

if TYPE_CHECKING:  # the type checker sees a Store; at run time the rest is delegated
    from aggregator.store.store import Store
    from aggregator.store.store import Store as _StoreType
else:
    _StoreType = object


_OWN_ATTRIBUTES = frozenset(("_url", "_busy_timeout_seconds", "_opening", "_full", "_ledger"))


class LazyStore(_StoreType):
    """`Store(url)`, with source bookkeeping on a `SqliteLedger` and the full store opened
    on the first call that needs it. Every `Store` method works on it."""

    def __init__(self, url: str, *, busy_timeout_seconds: float = 30.0) -> None:
        self._url = url
        self._busy_timeout_seconds = busy_timeout_seconds
        self._opening = threading.Lock()
        self._full: Store | None = None
        self._ledger = SqliteLedger.open(url, busy_timeout_seconds=busy_timeout_seconds)
        if self._ledger is None:
            self.full_store()  # a new file, a schema to upgrade, PostgreSQL: as Store does

    def full_store(self) -> Store:
        """The SQLAlchemy store, opened on first use."""
        with self._opening:
            if self._full is None:
                from aggregator.store.store import Store

                self._full = Store(self._url, busy_timeout_seconds=self._busy_timeout_seconds)
            return self._full

    def __getattr__(self, name: str) -> Any:
        # only names this class lacks get here: every Store method but the bookkeeping (and
        # this class's own attributes before __init__ set them, which must not recurse)
        if name.startswith("__") or name in _OWN_ATTRIBUTES:
            raise AttributeError(name)
        return getattr(self.full_store(), name)

    def __enter__(self) -> LazyStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the ledger and, if it was opened, the full store."""
        if self._ledger is not None:
            self._ledger.close()
        if self._full is not None:
            self._full.close()

    def claim_sources(
        self, names: Sequence[str], owner: str, ttl_seconds: float
    ) -> dict[str, tuple[bool, SourceState | None]]:
        """`Store.claim_sources`."""
        if self._ledger is None:
            return self.full_store().claim_sources(names, owner, ttl_seconds)
        return self._ledger.claim_sources(names, owner, ttl_seconds)

    def renew_claims(self, names: Sequence[str], owner: str, ttl_seconds: float) -> set[str]:
        """`Store.renew_claims`."""
        if self._ledger is None:
            return self.full_store().renew_claims(names, owner, ttl_seconds)
        return self._ledger.renew_claims(names, owner, ttl_seconds)

    def release_sources(self, names: Sequence[str], owner: str) -> None:
        """`Store.release_sources`."""
        if self._ledger is None:
            self.full_store().release_sources(names, owner)
        else:
            self._ledger.release_sources(names, owner)

    def get_source_state(self, name: str) -> SourceState | None:
        """`Store.get_source_state`."""
        if self._ledger is None:
            return self.full_store().get_source_state(name)
        return self._ledger.get_source_state(name)

    def save_source_state(self, state: SourceState, *, release_owner: str | None = None) -> None:
        """`Store.save_source_state`."""
        if self._ledger is None:
            self.full_store().save_source_state(state, release_owner=release_owner)
        else:
            self._ledger.save_source_state(state, release_owner=release_owner)

    def count_source_states(self) -> dict[str, int]:
        """`Store.count_source_states`."""
        if self._ledger is None:
            return self.full_store().count_source_states()
        return self._ledger.count_source_states()

    def queued_for_refresh(self) -> dict[int, datetime]:
        """`Store.queued_for_refresh`."""
        if self._ledger is None:
            return self.full_store().queued_for_refresh()
        return self._ledger.queued_for_refresh()

    def change_marker(self) -> tuple[datetime | None, int]:
        """`Store.change_marker`."""
        if self._ledger is None:
            return self.full_store().change_marker()
        return self._ledger.change_marker()

    def unlinked_ids(self, limit: int) -> list[int]:
        """`Store.unlinked_ids`."""
        if self._ledger is None:
            return self.full_store().unlinked_ids(limit)
        return self._ledger.unlinked_ids(limit)

    def imported_sources(self) -> list[ImportedSource]:
        """`Store.imported_sources`."""
        if self._ledger is None:
            return self.full_store().imported_sources()
        return self._ledger.imported_sources()
