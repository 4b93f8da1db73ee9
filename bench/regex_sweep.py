#!/usr/bin/env python3
"""Time every compiled regex of the package on long runs of hostile units.

Usage: python bench/regex_sweep.py [--small 2000] [--large 8000] [--alarm 5]

Each `re.Pattern` held by a module of `aggregator` (module-level, or inside a module-level
list or tuple) is run with `finditer`, `match` and `fullmatch` over a repetition of each
unit, ended by a character no pattern expects, at two sizes. A pattern that takes more than
6× longer on 4× the input (and over 10 ms) is printed as SUPERLINEAR; one that takes more
than `--alarm` seconds is printed as TIMEOUT. A hit is a lead, not a verdict: what matters
is whether the pattern ever sees input that long (see docs/reliability.md).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import signal
import time
from collections.abc import Iterator
from types import FrameType, ModuleType

import aggregator

UNITS = (
    "<", "a", " ", "\n", "-", ".", '"', "'", "/", ":", "|", "&", "#", "[", "(", "@", "…",
    "<!--", "-->", "<img", "<a", "<p>", "</p>", "<?", "?>", "<![CDATA[", "]]>", "<skipHours>",
    "a ", "a-", "-a", "a.", "a:", "a_", "a=", "a@", "a, ", "a |", "ab-", "xxx.", "Aa ", "A. ",
    "1", "1,", "1.", "1 ", "1:", "1. ", "$5 ", "5 million ", "2024-", "2024/", "2024/01/",
    "2024-01-01 ", "12:00 ", "Jan 1, 2024 ", "1 January 2024 ", "January ", "on ", "By ",
    "Updated ", "The ", "Mr. ", "U.S. ", "AI ", ". ", ". . ", "...", "[…] ", "» ", "© ",
    "read more ", "continue reading ", "keep reading ", "| ", " | ", " - ", "— ", "http://",
    "www.", "&amp;", "&#", "’", "“", "：", "日",
)  # fmt: skip


class _SweepTimeoutError(Exception):
    pass


def _raise_timeout(signum: int, frame: FrameType | None) -> None:
    raise _SweepTimeoutError


def _modules() -> Iterator[ModuleType]:
    for info in pkgutil.walk_packages(aggregator.__path__, "aggregator."):
        yield importlib.import_module(info.name)


def patterns() -> dict[str, re.Pattern[str] | re.Pattern[bytes]]:
    """Every compiled pattern the package's modules hold, by a readable name."""
    found: dict[str, re.Pattern[str] | re.Pattern[bytes]] = {}
    for module in _modules():
        for name, value in vars(module).items():
            candidates = [value] if isinstance(value, re.Pattern) else []
            if isinstance(value, list | tuple):
                for item in value:
                    candidates += [item] if isinstance(item, re.Pattern) else []
                    if isinstance(item, tuple):
                        candidates += [part for part in item if isinstance(part, re.Pattern)]
            for index, pattern in enumerate(candidates):
                suffix = f"[{index}]" if len(candidates) > 1 else ""
                found[f"{module.__name__}.{name}{suffix}"] = pattern
    return found


def _seconds(pattern: re.Pattern[str] | re.Pattern[bytes], unit: str, size: int) -> float:
    text = unit * (size // len(unit) + 1) + "\x01"
    subject: str | bytes = text.encode() if isinstance(pattern.pattern, bytes) else text
    started = time.perf_counter()
    for _ in pattern.finditer(subject):  # type: ignore[arg-type]
        pass
    pattern.match(subject)  # type: ignore[arg-type]
    pattern.fullmatch(subject)  # type: ignore[arg-type]
    return time.perf_counter() - started


def main() -> None:
    """Sweep every pattern with every unit and print the leads."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=8000)
    parser.add_argument("--alarm", type=int, default=5)
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, _raise_timeout)
    found = patterns()
    print(f"{len(found)} patterns × {len(UNITS)} units, {args.small} and {args.large} chars")
    leads = 0
    for name, pattern in sorted(found.items()):
        for unit in UNITS:
            signal.alarm(args.alarm)
            try:
                small = _seconds(pattern, unit, args.small)
                large = _seconds(pattern, unit, args.large)
            except _SweepTimeoutError:
                print(f"TIMEOUT      {name}  unit={unit!r}")
                leads += 1
                continue
            finally:
                signal.alarm(0)
            if large > 0.01 and large > 6 * small:
                print(f"SUPERLINEAR  {name}  unit={unit!r}  {small:.4f} s → {large:.4f} s")
                leads += 1
    print(f"{leads} leads")


if __name__ == "__main__":
    main()
