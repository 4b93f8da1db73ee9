"""procrastinate job queue (PostgreSQL only; distributed mode)

The SQL is procrastinate 3.10.0's ``schema.sql``, frozen here so the revision never changes
under an upgraded library; a later procrastinate release adds a revision with its migration
scripts. SQLite databases skip it (distributed mode needs PostgreSQL).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA_SQL = Path(__file__).with_name("procrastinate_3_10_0.sql")


def upgrade() -> None:
    """Create procrastinate's tables, types, functions and triggers."""
    if op.get_bind().dialect.name != "postgresql":
        return
    _run_script(SCHEMA_SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    """Drop procrastinate's tables, functions and types."""
    if op.get_bind().dialect.name != "postgresql":
        return
    _run_script(DROP_SQL)


def _run_script(sql: str) -> None:
    """Run a multi-statement script (psycopg formats `%` even without parameters)."""
    op.get_bind().exec_driver_sql(sql.replace("%", "%%"))


DROP_SQL = """
DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
    procrastinate_jobs, procrastinate_workers CASCADE;
DO $$ DECLARE f regprocedure; BEGIN
    FOR f IN SELECT oid::regprocedure FROM pg_proc WHERE proname LIKE 'procrastinate\\_%' LOOP
        EXECUTE 'DROP FUNCTION ' || f || ' CASCADE';
    END LOOP;
END $$;
DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type,
    procrastinate_job_status CASCADE;
"""
