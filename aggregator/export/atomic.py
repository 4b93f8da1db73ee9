"""Atomic file replacement: readers and a kill -9 never see a half-written file.

    atomic_write(path, data)    whole content at once; skips identical content
    AtomicStream(path)          content written in pieces (a large JSONL), compared with the
                                current file as it goes; `commit()` replaces only when it differs
    create_new_file(path, …)    create once, never overwrite (key files)
    sync_directory(dir)         one flush after a batch of non-durable writes

Every write goes to ``.<name>.<pid>-<thread>.tmp`` in the target's directory, opened with
O_CREAT|O_EXCL, then `os.replace`s the target. The name is unique among live writers, so a
file already under it was left by a dead process that had the same pid and is removed;
temp files older than `STALE_TEMP_SECONDS` are swept by `remove_stale_temps`.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, cast

from aggregator.errors import ExportError

STALE_TEMP_SECONDS = 3600.0
_TEMP_NAME = re.compile(r"\..+\.\d+-\d+\.tmp")
_CREATE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)


def temp_path(path: Path) -> Path:
    """The temp file this process and thread use to replace `path`."""
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_native_id()}.tmp")


def _open_temp(temp: Path, mode: int) -> int:
    """Open `temp` exclusively, removing a leftover of a dead process with our pid first."""
    try:
        fd = os.open(temp, _CREATE_FLAGS, mode)
    except FileExistsError:
        temp.unlink()
        fd = os.open(temp, _CREATE_FLAGS, mode)
    if os.name == "posix":
        os.fchmod(fd, mode)  # exactly `mode`, whatever the umask
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_temp(path: Path, data: bytes, mode: int, durable: bool) -> Path:
    """Write `data` to the temp file of `path` (fsynced when `durable`); return its path."""
    temp = temp_path(path)
    fd = _open_temp(temp, mode)
    try:
        _write_all(fd, data)
        if durable:
            os.fsync(fd)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return temp


def _replace(temp: Path, path: Path, durable: bool) -> None:
    try:
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """Flush a directory's written files and entries to disk (after bulk non-durable writes).

    One flush for the whole batch instead of one fsync per file: of the directory's own
    filesystem where the C library has ``syncfs`` (Linux), else of every filesystem
    (``sync``), which also waits for other programs' unwritten data on other disks.
    Raises ExportError when the flush fails."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            _flush_filesystem_of(fd)
            os.fsync(fd)  # the directory's own entries
        finally:
            os.close(fd)
    except OSError as exc:
        raise ExportError(str(directory), f"cannot flush to disk: {exc.strerror or exc}") from exc


def _flush_filesystem_of(fd: int) -> None:
    """``syncfs(2)`` on the filesystem holding `fd`, else ``sync`` (every filesystem)."""
    syncfs = _syncfs()
    if syncfs is None:
        os.sync()
    elif syncfs(fd) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"syncfs: {os.strerror(error)}")


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """The C library's ``syncfs``, or None (not Linux, or a libc without it)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return cast(Callable[[int], int], function)


def fsync_directory(directory: Path) -> None:
    """fsync a directory so that renames and new entries in it survive a power cut."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unchanged_or_mode(path: Path, payload: bytes) -> tuple[bool, int | None]:
    """(True, …) when `path` already holds `payload`; else (False, its mode or None if absent)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return False, None
    if info.st_size == len(payload) and path.read_bytes() == payload:
        return True, None
    return False, info.st_mode & 0o7777


def atomic_write(
    path: Path, data: bytes | str, mode: int | None = None, *, durable: bool = True
) -> bool:
    """Replace `path` with `data` atomically; False (nothing written) when already identical.

    The file keeps its current mode, else gets `mode` (default 0644). Raises ExportError.
    Readers and crashes of this process never see a partial file either way; `durable`
    also fsyncs the data and the directory so the new content survives a power cut. Bulk
    writers pass ``durable=False`` and call `sync_directory` once at the end.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        unchanged, current_mode = _unchanged_or_mode(path, payload)
    except OSError as exc:
        raise ExportError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    if unchanged:
        return False
    if current_mode is None:
        current_mode = 0o644 if mode is None else mode
    try:
        _replace(_write_temp(path, payload, current_mode, durable), path, durable)
    except OSError as exc:
        raise ExportError(str(path), f"cannot write: {exc.strerror or exc}") from exc
    return True


def create_new_file(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create `path` with `data` and `mode` atomically; never overwrite.

    Returns False when the file already exists (another process won the race); readers
    never see a partial file because it is written under a temp name, then hard-linked.
    """
    temp = _write_temp(path, data, mode, durable=True)
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)
    fsync_directory(path.parent)
    return True


def remove_stale_temps(directory: Path, now: float | None = None) -> int:
    """Delete temp files of this module in `directory` untouched for `STALE_TEMP_SECONDS`."""
    cutoff = (time.time() if now is None else now) - STALE_TEMP_SECONDS
    removed = 0
    try:
        entries = os.scandir(directory)
    except FileNotFoundError:
        return 0
    with entries:
        for entry in entries:
            if _TEMP_NAME.fullmatch(entry.name) and _older_than(entry, cutoff):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed


def _older_than(entry: os.DirEntry[str], cutoff: float) -> bool:
    try:
        return entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


class AtomicStream:
    """A file written piece by piece that replaces `path` atomically, only if it changed.

    Each piece goes to the temp file and is compared with the same span of the current
    file, so nothing is held in memory. Use as a context manager: leaving it by an
    exception removes the temp file and leaves `path` untouched. Raises ExportError.
    """

    def __init__(self, path: Path, *, mode: int = 0o644, durable: bool = True) -> None:
        self.path = path
        self._durable = durable
        self._current: BinaryIO | None = None
        self._same = True
        try:
            self._current = path.open("rb")
            mode = os.fstat(self._current.fileno()).st_mode & 0o7777
        except FileNotFoundError:
            self._same = False
        except OSError as exc:
            raise ExportError(str(path), f"cannot read: {exc.strerror or exc}") from exc
        self._temp = temp_path(path)
        try:
            self._out = os.fdopen(_open_temp(self._temp, mode), "wb")
        except OSError as exc:
            self._close_current()
            raise ExportError(str(path), f"cannot write: {exc.strerror or exc}") from exc

    def write(self, data: bytes) -> None:
        """Append `data` to the new content."""
        try:
            self._out.write(data)
            if self._same and self._current is not None:
                self._same = self._current.read(len(data)) == data
        except OSError as exc:
            raise ExportError(str(self.path), f"cannot write: {exc.strerror or exc}") from exc

    def commit(self) -> bool:
        """Replace `path` by the new content; False (temp discarded) when it was identical."""
        try:
            unchanged = self._same and self._current is not None and not self._current.read(1)
            self._close_current()
            if unchanged:
                self.abort()
                return False
            self._out.flush()
            if self._durable:
                os.fsync(self._out.fileno())
            self._out.close()
            _replace(self._temp, self.path, self._durable)
        except OSError as exc:
            self.abort()
            raise ExportError(str(self.path), f"cannot write: {exc.strerror or exc}") from exc
        return True

    def abort(self) -> None:
        """Drop the new content; `path` is left as it was."""
        self._close_current()
        self._out.close()
        self._temp.unlink(missing_ok=True)

    def _close_current(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None

    def __enter__(self) -> AtomicStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
