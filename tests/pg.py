"""A fresh PostgreSQL database per test, from the cluster named by $AGGREGATOR_TEST_PG_URL.

`.ci/run` starts a throwaway cluster and exports the variable. Without it the PostgreSQL
tests skip on a developer machine, and FAIL under CI (CI set): they must never be skipped
silently there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ENV_VAR = "AGGREGATOR_TEST_PG_URL"


def cluster_url() -> str:
    """The admin URL of the test cluster, or skip (fail under CI) when there is none."""
    url = os.environ.get(ENV_VAR)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{ENV_VAR} is not set under CI: .ci/run must start PostgreSQL")
    pytest.skip(f"{ENV_VAR} is not set (no PostgreSQL cluster for the tests)")


@contextmanager
def fresh_database() -> Iterator[str]:
    """CREATE a uniquely named database, yield its URL, DROP it afterwards."""
    admin_url = make_url(cluster_url())
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield admin_url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of an empty PostgreSQL database that lives for one test."""
    with fresh_database() as url:
        yield url
