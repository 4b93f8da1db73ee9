"""The export phase of a cold `aggregator fetch`, alone: CPU and wall seconds, interleaved.

    python bench/bench_export.py DATA_DIR [--tree PATH ...] [--runs 3] [--warm]
    python bench/bench_export.py DATA_DIR --profile out.prof    # cProfile, one run

DATA_DIR is the data dir of a finished `aggregator fetch --no-pages --no-export` (its
config.yaml and aggregator.db; see docs/benchmarks.md for how to make one). Each run copies
the store (and the key files, when there are any) into a scratch data dir, deletes the
export dir and runs `operations.export_configured` in a fresh process with PYTHONPATH set
to one `--tree` (a checkout of the project), so several versions are measured interleaved
on the same store. The import of `aggregator.operations` is timed apart, as in the CLI.
Scratch dirs are deleted only at the end: on an ext4 mounted with `discard`, creating files
right after deleting thousands costs several times the kernel time.
`--warm` runs each export twice and times the second (store sealed, tree in place).

Prints one JSON line per run (seconds, and the child's peak RSS) and the medians per tree.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

_COPIED = ("aggregator.db", "secret.key", "instance.id")


def scratch_copy(source: Path, scratch: Path) -> Path:
    """A copy of `source`'s store and keys under `scratch`, with its config; the config path."""
    scratch.mkdir(parents=True, exist_ok=True)
    for name in _COPIED:
        if (source / name).exists():
            shutil.copy2(source / name, scratch / name)
    config = yaml.safe_load((source / "config.yaml").read_text(encoding="utf-8"))
    config["data_dir"] = str(scratch)
    config["storage"] = {"url": f"sqlite:///{scratch / 'aggregator.db'}"}
    config["export"] = {**config.get("export", {}), "dir": str(scratch / "export")}
    path = scratch / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


def _clocks() -> tuple[float, float, float]:
    times = os.times()
    return time.perf_counter(), times.user, times.system


def export_once(config: Path, warm: bool, profile: str | None) -> dict[str, float]:
    """Run the export in this process; the seconds it took (import and export apart)."""
    start = _clocks()
    from aggregator import operations
    from aggregator.settings import load_settings
    from aggregator.store import Store

    imported = _clocks()
    settings = load_settings(config)
    with Store(settings.storage.url) as store:
        if warm:
            operations.export_configured(settings, store)
        profiler = cProfile.Profile() if profile else None
        begun = _clocks()
        if profiler is not None:
            profiler.enable()
        operations.export_configured(settings, store)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        done = _clocks()
    (wall0, user0, sys0), (wall1, user1, sys1) = start, imported
    (wall2, user2, sys2), (wall3, user3, sys3) = begun, done
    return {
        "import_wall_s": wall1 - wall0,
        "import_cpu_s": user1 + sys1 - user0 - sys0,
        "export_wall_s": wall3 - wall2,
        "export_cpu_s": user3 + sys3 - user2 - sys2,
        "export_user_s": user3 - user2,
        "export_sys_s": sys3 - sys2,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(
    tree: Path, data: Path, scratch: Path, warm: bool, profile: str | None
) -> dict[str, float]:
    """One measurement in a fresh process running the code of `tree`, in `scratch`."""
    config = scratch_copy(data, scratch)
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, __file__, "--child", str(config)]
    cmd += ["--warm"] if warm else []
    cmd += ["--profile", profile] if profile else []
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def interleave(a: argparse.Namespace, trees: list[Path], work: Path) -> None:
    """Run every tree `a.runs` times, the order rotated each repetition; print the medians."""
    runs = 1 if a.profile else a.runs
    results: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
    for rep in range(runs):
        order = trees[rep % len(trees) :] + trees[: rep % len(trees)]
        for index, tree in enumerate(order):
            scratch = work / f"run-{rep}-{index}"
            result = run_child(tree.resolve(), a.data.resolve(), scratch, a.warm, a.profile)
            results[tree].append(result)
            print(json.dumps({"tree": str(tree), "rep": rep, **result}), flush=True)
    for tree, rows in results.items():
        medians = {key: round(statistics.median(r[key] for r in rows), 3) for key in rows[0]}
        print(json.dumps({"tree": str(tree), "median_of": len(rows), **medians}))


def main() -> int:
    """Parse the arguments; run the child, or interleave the trees and print medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="data dir of a finished fetch (config.yaml, db)")
    ap.add_argument("--tree", type=Path, action="append", help="project checkout (repeatable)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warm", action="store_true", help="time a second export over the first")
    ap.add_argument("--profile", help="write a cProfile of the export phase here (one run)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(export_once(a.data, a.warm, a.profile)))
        return 0
    trees = a.tree or [Path(__file__).resolve().parents[1]]
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        interleave(a, trees, work)
    finally:
        shutil.rmtree(work)  # at the end: deleting 6,000 files slows the next run's creates
    return 0


if __name__ == "__main__":
    sys.exit(main())
