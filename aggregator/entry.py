"""The `aggregator` console script: `aggregator.cli.main` with start-up and exit tuned for a
short-lived process (see `aggregator.startup`)."""

from __future__ import annotations

import atexit
import contextlib
import logging
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
    _run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to lose
            stream.flush()
    os._exit(status)


def _run_exit_handlers() -> None:
    """The `atexit` handlers, unless a multiprocessing child still runs: multiprocessing's
    handler would join it, and a worker waiting for work never ends while this process
    lives (it leaves once this process is gone, `workpool.exit_with`). Then only logging
    is flushed, as before."""
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None and multiprocessing.active_children():
        logging.shutdown()
        return
    atexit._run_exitfuncs()
