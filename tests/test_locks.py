"""The daemon lock (flock) and source claims (leases in the database)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from aggregator.locks import DaemonLock, LockHeldError, process_owner, source_claim
from aggregator.store import SourceState, Store


def test_second_lock_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    path = tmp_path / "data" / "daemon.lock"
    with DaemonLock(path, "data"):
        with pytest.raises(LockHeldError) as caught:
            DaemonLock(path, "data").acquire()
        assert caught.value.pid == os.getpid()
        assert str(caught.value) == (
            f"another aggregator daemon (pid {os.getpid()}) owns data; stop it first"
        )
    with DaemonLock(path, "data"):  # released on exit
        pass


def test_lock_of_a_killed_process_is_free(tmp_path: Path) -> None:
    path = tmp_path / "daemon.lock"
    code = (
        "import sys, time; from pathlib import Path; from aggregator.locks import DaemonLock; "
        f"DaemonLock(Path({str(path)!r}), 'x').acquire(); print('locked', flush=True); "
        "time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeldError) as caught:
            DaemonLock(path, "x").acquire()
        assert caught.value.pid == holder.pid
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        holder.kill()
        holder.wait()
    lock = DaemonLock(path, "x")
    lock.acquire()
    lock.release()


def test_owners_are_unique_per_call() -> None:
    assert process_owner("daemon") != process_owner("daemon")
    assert process_owner("fetch").startswith("fetch:")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'claims.db'}"


def test_claims_are_exclusive_across_store_instances(db_url: str) -> None:
    with Store(db_url) as first, Store(db_url) as second:
        assert first.claim_source("a", "one", 60)
        assert not second.claim_source("a", "two", 60)
        assert second.claim_source("b", "two", 60)
        second.release_source("a", "two")  # not its claim: no effect
        claim = first.get_claim("a")
        assert claim is not None and claim.owner == "one"
        first.release_source("a", "one")
        assert first.get_claim("a") is None
        assert second.claim_source("a", "two", 60)


def test_an_expired_claim_can_be_taken(db_url: str) -> None:
    with Store(db_url) as store:
        assert store.claim_source("a", "crashed", -1)  # expired already
        assert store.claim_source("a", "me", 60)
        claim = store.get_claim("a")
        assert claim is not None and claim.owner == "me"
        assert not store.renew_claim("a", "crashed", 60)
        assert store.renew_claim("a", "me", 120)


def test_source_claim_context_holds_then_releases(db_url: str) -> None:
    async def scenario(store: Store) -> tuple[bool, bool]:
        async with (
            source_claim(store, "a", "me") as held,
            source_claim(store, "a", "other") as also,
        ):
            return held.held, also.held

    with Store(db_url) as store:
        assert asyncio.run(scenario(store)) == (True, False)
        assert store.get_claim("a") is None


def test_lease_carries_the_stored_state_and_saving_it_can_end_the_claim(db_url: str) -> None:
    saved = SourceState(name="a", url="http://127.0.0.1/a", etag='"v1"', fetch_count=3)

    async def scenario(store: Store) -> tuple[SourceState | None, bool]:
        async with source_claim(store, "a", "me") as lease:
            state = lease.state
            store.save_source_state(replace(saved, fetch_count=4), release_owner=lease.owner)
            lease.released = True
            free_inside = store.claim_source("a", "other", 60)
        return state, free_inside

    with Store(db_url) as store:
        store.save_source_state(saved)
        state, free_inside = asyncio.run(scenario(store))
        assert state == saved
        assert free_inside  # the save ended our claim, so another owner could take it
        assert store.get_claim("a") is not None and store.get_claim("a").owner == "other"
        assert store.get_source_state("a").fetch_count == 4


def test_saving_with_another_owner_leaves_the_claim_alone(db_url: str) -> None:
    with Store(db_url) as store:
        assert store.claim_source("a", "me", 60)
        store.save_source_state(SourceState(name="a"), release_owner="someone else")
        assert store.get_claim("a").owner == "me"
