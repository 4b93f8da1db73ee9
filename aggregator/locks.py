"""Who may do what: the daemon's exclusive lock, and per-source claims during a crawl.

DaemonLock(path)        fcntl.flock on a lock file holding the owner's pid; the kernel
                        drops it when the process dies (even on kill -9): no stale lock
process_owner(role)     "role:host:pid:random", unique per process, names claim holders
source_claim(store, …)  async context: lease a source in the database (renewed while
                        held, released after) and read its state, or yield a false
                        lease when someone else holds it;
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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aggregator.errors import AggregatorError
from aggregator.store import SourceState, Store
from aggregator.workpool import process_alive

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
    """A claim as `source_claim` yields it: true when held, with the source's stored state
    (read in the claim's transaction). `released` is set by whoever ended the claim early,
    `Store.save_source_state(..., release_owner=lease.owner)` as the crawl's last step."""

    name: str
    owner: str
    held: bool
    state: SourceState | None = None
    released: bool = False

    def __bool__(self) -> bool:
        return self.held


@asynccontextmanager
async def source_claim(
    store: Store,
    name: str,
    owner: str | None = None,
    ttl_seconds: float = DEFAULT_CLAIM_TTL_SECONDS,
) -> AsyncIterator[Lease]:
    """Hold the claim on source `name` for the block; the lease is false when another owner
    has it.

    The lease is renewed every third of `ttl_seconds` while held, so a long crawl keeps it
    and a crashed process loses it within `ttl_seconds`. Raises StorageError.
    """
    lease = _take(store, name, owner or _DEFAULT_OWNER, ttl_seconds)
    if not lease.held:
        yield lease
        return
    renewer = asyncio.create_task(_keep_renewed(store, name, lease.owner, ttl_seconds))
    try:
        yield lease
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        if not lease.released:
            _release(store, lease)


def _take(store: Store, name: str, owner: str, ttl_seconds: float) -> Lease:
    held, state = store.claim_source_state(name, owner, ttl_seconds)
    if not held and _take_from_dead_holder(store, name, owner, ttl_seconds):
        held, state = True, store.get_source_state(name)
    return Lease(name, owner, held, state)


def _release(store: Store, lease: Lease) -> None:
    try:
        store.release_source(lease.name, lease.owner)
    except AggregatorError:
        log.warning("could not release the claim on %s; it expires by itself", lease.name)


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


async def _keep_renewed(store: Store, name: str, owner: str, ttl_seconds: float) -> None:
    while True:
        await asyncio.sleep(ttl_seconds / 3)
        try:
            if not store.renew_claim(name, owner, ttl_seconds):
                log.warning("lost the claim on %s while crawling it", name)
                return
        except AggregatorError:
            log.warning("could not renew the claim on %s", name)
