"""The heartbeat job: log and record that the daemon is alive (read by health checks)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aggregator.daemon import JobContext
from aggregator.daemon_status import Heartbeat, write_heartbeat

log = logging.getLogger(__name__)


async def run(context: JobContext) -> None:
    """Write the heartbeat file of the data directory."""
    now = context.clock()
    write_heartbeat(Path(context.settings.data_dir), Heartbeat(os.getpid(), context.owner, now))
    log.debug("heartbeat %s", now.isoformat())
