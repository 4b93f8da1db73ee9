"""The `aggregator` console script: `aggregator.cli.main` with start-up and exit tuned for a
short-lived process (see `aggregator.startup`)."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys

from aggregator import startup


def main() -> None:
    """Console-script entry point."""
    startup.mark_console_process()
    with startup.settling():
        from aggregator import cli
    try:
        cli.main()
        status = 0
    except SystemExit as exc:
        status = _status(exc.code)
    _exit_now(status)


def _status(code: object) -> int:
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)  # what the interpreter does with sys.exit("message")
    return 1


def _exit_now(status: int) -> None:
    """Run the exit handlers, flush what is buffered and leave without tearing the
    interpreter down.

    By the time a command returns, it has closed what it opened (store, pools, files,
    HTTP client): the interpreter's teardown would only free memory the kernel frees
    anyway, 20 ms of a 650 ms re-poll. The `atexit` handlers still run, as at a normal
    exit: logging's flush, and multiprocessing's removal of the forkserver's socket
    directory (without it, every run with worker processes left a `pymp-*` directory in
    the temporary directory). Exceptions other than SystemExit never get here: they
    unwind and print as usual."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to lose
            stream.flush()
    os._exit(status)
