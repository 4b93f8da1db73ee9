"""Who may do what: the daemon's exclusive lock, and per-source claims during a crawl.

DaemonLock(path)        fcntl.flock on a lock file holding the owner's pid; the kernel
                        drops it when the process dies (even on kill -9): no stale lock
process_owner(role)     "role:host:pid:random", unique per process, names claim holders
source_claim(store, …)  async context: lease a source in the database (renewed while
                        held, released after) and read its state, or yield a lease
                        not held when someone else holds it;
                        a claim of a dead process on this host is taken over at once
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from aggregator.errors import AggregatorError
from aggregator.store import SourceState
from aggregator.workpool import process_alive

if TYPE_CHECKING:
    from aggregator.store import Store

log = logging.getLogger(__name__)

DEFAULT_CLAIM_TTL_SECONDS = 300.0


class LockHeldError(AggregatorError):
    """Another process holds the lock; `pid` is its process id when known."""

    def __init__(self, path: Path, pid: int | None, what: str) -> None:
        self.path = path
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"another aggregator daemon ({holder}) owns {what}; stop it first")


class DaemonLock:
    """An exclusive, non-blocking `flock` on `path`; `what` names the guarded thing."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write our pid into the file; raise LockHeldError if taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise LockHeldError(self.path, pid, self.what) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays: unlinking it would race with a new holder)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def process_owner(role: str) -> str:
    """A claim-owner name unique to this process: ``role:host:pid:random``."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


_DEFAULT_OWNER = process_owner("fetch")


@dataclass(slots=True)
class Lease:
    """A claim as `Leases` and `source_claim` give it: true when `held`, with the source's
    stored state (read in the claim's transaction). `released` is set by whoever ended the
    claim early, `Store.save_source_state(..., release_owner=lease.owner)` as the crawl's
    last step."""

    name: str
    owner: str
    held: bool
    state: SourceState | None = None
    released: bool = False

    def __bool__(self) -> bool:
        return self.held


class Leases:
    """A crawl's claims on its sources, taken together: one transaction claims them all and
    reads their states, one task renews those still held every third of `ttl_seconds`,
    and `close` releases those not released yet (a crawl ends each source's lease as it
    saves the source's state). A claim of a dead process on this host is taken over.

        leases = Leases(store, names, owner)
        by_name = leases.take()          # name → Lease; raises StorageError
        ...
        await leases.close()
    """

    def __init__(
        self,
        store: Store,
        names: Sequence[str],
        owner: str | None = None,
        ttl_seconds: float = DEFAULT_CLAIM_TTL_SECONDS,
    ) -> None:
        self.store = store
        self.names = list(dict.fromkeys(names))
        self.owner = owner or _DEFAULT_OWNER
        self.ttl_seconds = ttl_seconds
        self.by_name: dict[str, Lease] = {}
        self._renewer: asyncio.Task[None] | None = None

    def take(self) -> dict[str, Lease]:
        """Claim every source not held by a live owner (call from the event loop)."""
        taken = self.store.claim_sources(self.names, self.owner, self.ttl_seconds)
        for name, (held, state) in taken.items():
            if not held and _take_from_dead_holder(self.store, name, self.owner, self.ttl_seconds):
                held, state = True, self.store.get_source_state(name)
            self.by_name[name] = Lease(name, self.owner, held, state)
        self._renewer = asyncio.create_task(self._keep_renewed())
        return self.by_name

    async def close(self) -> None:
        """Stop renewing, and release the leases still held."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        left = self._unreleased()
        try:
            self.store.release_sources(left, self.owner)
        except AggregatorError:
            log.warning("could not release %d claims; they expire by themselves", len(left))
        for name in left:
            self.by_name[name].released = True

    def _unreleased(self) -> list[str]:
        return [name for name, lease in self.by_name.items() if lease.held and not lease.released]

    async def _keep_renewed(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_seconds / 3)
            names = self._unreleased()
            try:
                kept = self.store.renew_claims(names, self.owner, self.ttl_seconds)
            except AggregatorError:
                log.warning("could not renew %d claims", len(names))
                continue
            for name in sorted(set(names) - kept):
                log.warning("lost the claim on %s while crawling it", name)


@asynccontextmanager
async def source_claim(
    store: Store,
    name: str,
    owner: str | None = None,
    ttl_seconds: float = DEFAULT_CLAIM_TTL_SECONDS,
) -> AsyncIterator[Lease]:
    """Hold the claim on source `name` for the block; the lease is false (not `held`) when
    another owner has it.

    The lease is renewed every third of `ttl_seconds` while held, so a long crawl keeps it
    and a crashed process loses it within `ttl_seconds`. Raises StorageError.
    """
    leases = Leases(store, [name], owner, ttl_seconds)
    try:
        yield leases.take()[name]
    finally:
        await leases.close()


def _take_from_dead_holder(store: Store, name: str, owner: str, ttl_seconds: float) -> bool:
    """Take over a claim whose holder was a process on this host that no longer exists.

    A `kill -9`ed fetch or daemon cannot release its claims; without this its sources would
    stay "busy" until the lease ran out. Holders on other hosts still wait for expiry.
    """
    claim = store.get_claim(name)
    if claim is None or not _holder_is_dead(claim.owner):
        return False
    log.warning("taking over the claim on %s from %s, which is gone", name, claim.owner)
    store.release_source(name, claim.owner)
    return store.claim_source(name, owner, ttl_seconds)


def _holder_is_dead(holder: str) -> bool:
    """True when `holder` ("role:host:pid:random") names a process of this host that is gone."""
    head, _, rest = holder.rpartition(":")[0].rpartition(":")
    host = head.partition(":")[2]
    if host != socket.gethostname() or not rest.isdigit() or int(rest) == os.getpid():
        return False
    return not process_alive(int(rest))
