"""The daemon's heartbeat file: when it last proved alive (read by health checks).

    <data_dir>/daemon.heartbeat.json   {"pid": 123, "owner": "daemon:host:123:ab12", "at": iso}

Written atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aggregator.dates import to_utc
from aggregator.export.files import atomic_write

HEARTBEAT_FILE = "daemon.heartbeat.json"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One sign of life of a daemon."""

    pid: int
    owner: str
    at: datetime


def heartbeat_path(data_dir: Path) -> Path:
    """Where the heartbeat of the daemon owning `data_dir` is kept."""
    return data_dir / HEARTBEAT_FILE


def write_heartbeat(data_dir: Path, heartbeat: Heartbeat) -> None:
    """Replace the heartbeat file atomically (raises ExportError when it cannot)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    payload = {"pid": heartbeat.pid, "owner": heartbeat.owner, "at": heartbeat.at.isoformat()}
    atomic_write(heartbeat_path(data_dir), json.dumps(payload) + "\n")


def read_heartbeat(data_dir: Path) -> Heartbeat | None:
    """The last heartbeat written for `data_dir`, or None when missing or unreadable."""
    try:
        data = json.loads(heartbeat_path(data_dir).read_text(encoding="utf-8"))
        return Heartbeat(
            int(data["pid"]), str(data["owner"]), to_utc(datetime.fromisoformat(data["at"]))
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
