#!/usr/bin/env python3
"""One-command throughput benchmark: aggregator against the floor and lemon24/reader.

    python bench/run_bench.py --feeds 200 --items 30 --runs 3 [--port 8089] [--keep]
    python bench/run_bench.py --rss-scaling            # peak RSS at 200 and 1,000 outlets

1. Generates the corpus with bench/gen_corpus.py into WORK/corpus-f{F}-i{I}-s{S}-p{P}
   (skipped when corpus.json there already matches the arguments).
2. Serves it on loopback with nginx (bench/nginx.sh, which installs nginx with apt-get if
   missing); if that fails, with bench/static_server.py (aiohttp) and says so.
3. Runs every contender --runs times, interleaved (one of each per repetition, the order
   rotated every repetition), each in a fresh process under /usr/bin/time -v for its peak RSS:
     floor            bench/floor.py --concurrency C               feeds only
     floor+pages      bench/floor.py --concurrency C --pages       feeds and every article page
     reader           bench/reader_contender.py cold               update_feeds(workers=1)
     reader re-poll   bench/reader_contender.py repoll             same db, nothing changed
     agg feeds        aggregator fetch --no-pages                  fresh data dir
     agg pages        aggregator fetch                             fresh data dir
     agg re-poll      aggregator fetch                             again on agg pages' data dir
4. Prints medians (entries/s, pages/s, wall, peak RSS), the ratios, PASS/FAIL against the
   targets of issue 5, and writes the same to docs/benchmarks.md (--doc / --no-doc).

Rates are items / process wall time (start to exit, imports included), the same for every
contender; floor's and reader's own in-process timings are kept in WORK/results.json.
Only 127.0.0.0/8 is ever contacted. Every child runs with a timeout, in its own process
group, and the web server is stopped on exit, error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
GNU_TIME = Path("/usr/bin/time")
RSS_LIMIT_MB = 300.0
RSS_GROWTH_LIMIT = 1.25  # peak RSS at the larger outlet count / at the smaller one
ROWS = ["floor", "floor+pages", "reader", "reader re-poll", "agg feeds", "agg pages", "agg re-poll"]


# ---------------------------------------------------------------- running one contender


@dataclass
class Measurement:
    name: str
    rep: int
    wall_s: float
    rss_mb: float | None
    rc: int
    entries: int = 0
    pages: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Finished: exit 0, or aggregator's 3 (some sources failed) with its summary printed."""
        return self.rc == 0 or (self.rc == 3 and "new" in self.extra)

    @property
    def entries_per_s(self) -> float | None:
        return self.entries / self.wall_s if self.entries and self.wall_s else None

    @property
    def pages_per_s(self) -> float | None:
        return self.pages / self.wall_s if self.pages and self.wall_s else None


class Runner:
    """Runs one child at a time in its own process group; kills it on timeout or Ctrl-C."""

    def __init__(self, logdir: Path, timeout_s: float) -> None:
        self.logdir = logdir
        self.timeout_s = timeout_s
        self.current: subprocess.Popen | None = None
        self.use_gnu_time = GNU_TIME.exists()
        self.last_tree_mb: float | None = None
        self.last_tree_note = ""  # which processes held the peak, and when
        self.last_cpu_s: float | None = None
        self.last_server_cpu_s: float | None = None
        self.server_cpu: Callable[[], float | None] = lambda: None
        self.whole_tree_cpu = set_subreaper(False)  # whether this system can, at all

    def run(self, tag: str, cmd: list[str], env: dict[str, str] | None = None):
        """Run cmd; return (rc, wall_s, rss_mb, stdout, stderr)."""
        out, err, tfile = (self.logdir / f"{tag}.{s}" for s in ("out", "err", "time"))
        full = [str(GNU_TIME), "-v", "-o", str(tfile), *cmd] if self.use_gnu_time else cmd
        before = _children_maxrss_mb()
        cpu_before = _children_cpu_s()
        server_before = self.server_cpu()
        if self.whole_tree_cpu:  # only while a contender runs: nginx must not become ours
            set_subreaper(True)
        with out.open("wb") as fo, err.open("wb") as fe:
            t0 = time.perf_counter()
            self.current = subprocess.Popen(
                full, stdout=fo, stderr=fe, env=env, start_new_session=True, cwd=self.logdir
            )
            sampler = SessionMemory(self.current.pid)
            try:
                rc = self.current.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                rc = -9
                print(f"  ! {tag} killed after {self.timeout_s:.0f} s", flush=True)
            finally:
                sid = self.current.pid
                self.current = None
                self.last_tree_mb = sampler.stop()
                self.last_tree_note = sampler.peak_note()
            wall = time.perf_counter() - t0
        server_after = self.server_cpu()
        self.last_server_cpu_s = (
            server_after - server_before
            if server_before is not None and server_after is not None
            else None
        )
        self.last_cpu_s = None
        if self.whole_tree_cpu:
            if reap_session(sid):
                self.last_cpu_s = _children_cpu_s() - cpu_before
            set_subreaper(False)
        rss = _gnu_time_rss_mb(tfile) if self.use_gnu_time else None
        if rss is None:  # without GNU time: the children's max RSS, if this child raised it
            after = _children_maxrss_mb()
            rss = after if after > before else None
        return rc, wall, rss, out.read_text(errors="replace"), err.read_text(errors="replace")

    def kill(self) -> None:
        proc = self.current
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group this runner started
            proc.wait(timeout=10)


SAMPLE_EVERY_S = 1.0
"""How often `SessionMemory` reads PSS. A sample of an aggregator run costs ~15 ms of this
process's CPU (a scan of /proc, then smaps_rollup of five or six processes, each a walk
of its page tables): 4 a second took 2.6–3.0 s of CPU in a with-pages run, from the two
cores that run's processes fill, while a one-process contender loses nothing to it (it
runs on the idle core). Once a second still sees the crawl's plateau, where the peak is."""


class SessionMemory:
    """Samples, once a second (the first after half a second), the summed PSS of every
    process in session `sid` (the child and everything it forked: parse workers, the
    linker, the forkserver). PSS splits shared pages between the processes sharing them,
    so the sum is the memory the run really holds; one process's peak RSS (GNU time's
    figure) leaves its helpers out."""

    def __init__(self, sid: int, every_s: float = SAMPLE_EVERY_S) -> None:
        self.sid, self.every_s, self.peak_mb = sid, every_s, 0.0
        self.peak_at_s: float | None = None  # seconds after the start
        self.peak_parts: list[float] = []  # each process's PSS then, largest first
        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = self.every_s / 2  # the first sample sooner: a re-poll lasts under a second
        while not self._stop.wait(delay):
            delay = self.every_s
            parts = session_pss_parts_mb(self.sid)
            total = sum(parts)
            if total > self.peak_mb:
                self.peak_mb = total
                self.peak_at_s = time.perf_counter() - self._t0
                self.peak_parts = sorted(parts, reverse=True)

    def stop(self) -> float | None:
        """The peak summed PSS in MB (None when nothing could be read)."""
        self._stop.set()
        self._thread.join()
        return self.peak_mb or None

    def peak_note(self) -> str:
        """Where the peak was: "at 24.9 s: 146 + 141 + 28 + 8 MB" (the processes holding
        it, largest first; those under 1 MB, like GNU time's, left out)."""
        if self.peak_at_s is None:
            return ""
        parts = " + ".join(f"{part:.0f}" for part in self.peak_parts if part >= 1)
        return f"at {self.peak_at_s:.1f} s: {parts} MB"


def session_pss_parts_mb(sid: int) -> list[float]:
    """The PSS (MB) of each process of session `sid`, from /proc (unreadable ones left out)."""
    parts = []
    for pid in session_pids(sid):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", rollup, re.M)
        if match:
            parts.append(int(match.group(1)) / 1024)
    return parts


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/pid/stat after the command name) of every process."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        yield int(entry.name), fields


def session_pids(sid: int) -> list[int]:
    """The processes of session `sid` (zombies included), from /proc."""
    return [pid for pid, fields in proc_stats() if fields[3:4] == [str(sid)]]


def set_subreaper(on: bool) -> bool:
    """Make this process the Linux "child subreaper" of what it starts, or stop being it.
    While it is, a run's orphans (its forkserver, whose children are the parse workers and
    the linker) are re-parented here, not to init, so reaping them adds their CPU time,
    and their children's, to this process's RUSAGE_CHILDREN. Only while a contender runs:
    a daemon started meanwhile (nginx) would become a zombie here when it stops, and
    `nginx.sh stop` would wait for it. False where prctl is not available."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(36, int(on), 0, 0, 0)) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_session(sid: int, timeout_s: float = 30.0) -> bool:
    """Reap the processes of session `sid` as they end; True once none is left (within
    `timeout_s`), when every one of them has been waited for by its parent or by us."""
    deadline = time.monotonic() + timeout_s
    while True:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not session_pids(sid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def process_tree_cpu_s(root: int) -> float | None:
    """User + system CPU seconds of the live process `root` and its live children (None when
    `root` is gone): the web server's master and its workers."""
    tick = os.sysconf("SC_CLK_TCK")
    ticks = [
        int(fields[11]) + int(fields[12])
        for pid, fields in proc_stats()
        if pid == root or fields[1] == str(root)
    ]
    return sum(ticks) / tick if ticks else None


def _children_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _children_maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _gnu_time_rss_mb(path: Path) -> float | None:
    try:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", path.read_text())
    except OSError:
        return None
    return int(m.group(1)) / 1024 if m else None


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    return {}


# ---------------------------------------------------------------- corpus and web server


def ensure_corpus(work: Path, feeds: int, items: int, seed: int, port: int) -> Path:
    corpus = work / f"corpus-f{feeds}-i{items}-s{seed}-p{port}"
    manifest = corpus / "corpus.json"
    want = {"feeds": feeds, "items": items, "seed": seed, "port": port}
    if manifest.exists():
        have = json.loads(manifest.read_text())
        if all(have.get(k) == v for k, v in want.items()):
            print(f"corpus: reusing {corpus} ({have['articles']} articles)", flush=True)
            return corpus
    print(f"corpus: generating {feeds} x {items} into {corpus} ...", flush=True)
    cmd = [sys.executable, str(BENCH / "gen_corpus.py"), "--feeds", str(feeds)]
    cmd += ["--items", str(items), "--seed", str(seed), "--port", str(port), "--out", str(corpus)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=3600)
    return corpus


def check_loopback_only(corpus: Path) -> None:
    hosts = (corpus / "hosts.txt").read_text().split()
    feeds = (corpus / "feeds.txt").read_text().split()
    for host in hosts:
        if not host.startswith("127."):
            sys.exit(f"refusing: corpus host {host} is outside 127.0.0.0/8")
    for url in feeds:
        if not re.match(r"^http://127\.\d+\.\d+\.\d+:\d+/", url):
            sys.exit(f"refusing: corpus feed {url} is not on 127.0.0.0/8")


class WebServer:
    """nginx via bench/nginx.sh, else the aiohttp fallback. Always stop() in a finally."""

    def __init__(self, corpus: Path, port: int, state: Path, max_s: int) -> None:
        self.corpus, self.port, self.max_s = corpus, port, max_s
        self.env = {**os.environ, "BENCH_NGINX_STATE": str(state), "BENCH_NGINX_MAX_S": str(max_s)}
        self.kind = ""
        self.fallback: subprocess.Popen | None = None

    def start(self) -> str:
        cmd = ["bash", str(BENCH / "nginx.sh"), "start", str(self.corpus), str(self.port)]
        try:
            r = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=600)
            ok = r.returncode == 0
            msg = (r.stderr or r.stdout).strip().splitlines()[-1:] or [""]
        except subprocess.TimeoutExpired:
            ok, msg = False, ["timed out"]
        if ok:
            self.kind = "nginx"
            print(f"web server: {msg[0]}", flush=True)
            return self.kind
        print(f"web server: nginx failed ({msg[0]}); FALLING BACK to aiohttp", flush=True)
        self._stop_nginx()
        cmd = [sys.executable, str(BENCH / "static_server.py"), str(self.corpus), str(self.port)]
        self.fallback = subprocess.Popen(
            [*cmd, "--max-s", str(self.max_s)], stdout=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        line = self.fallback.stdout.readline().strip() if self.fallback.stdout else ""
        if line != "ready":
            self.stop()
            sys.exit("web server: the aiohttp fallback did not start either")
        self.kind = "aiohttp (fallback: nginx unavailable; slower, no gzip)"
        print(f"web server: {self.kind}", flush=True)
        return self.kind

    def cpu_s(self) -> float | None:
        """CPU seconds the server has used so far (None when unknown)."""
        if self.fallback is not None:
            return process_tree_cpu_s(self.fallback.pid)
        pidfile = Path(self.env["BENCH_NGINX_STATE"]) / "nginx.pid"
        try:
            return process_tree_cpu_s(int(pidfile.read_text().strip()))
        except (OSError, ValueError):
            return None

    def _stop_nginx(self) -> None:
        cmd = ["bash", str(BENCH / "nginx.sh"), "stop", str(self.corpus), str(self.port)]
        subprocess.run(cmd, env=self.env, capture_output=True, timeout=60, check=False)

    def stop(self) -> None:
        if self.kind == "nginx":
            self._stop_nginx()
            print("web server: nginx stopped", flush=True)
        if self.fallback is not None and self.fallback.poll() is None:
            self.fallback.terminate()
            try:
                self.fallback.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.fallback.kill()
            print("web server: aiohttp fallback stopped", flush=True)
        self.kind = ""


# ---------------------------------------------------------------- contenders


def outlet_sources(corpus: Path, limit: int | None = None) -> list[dict]:
    feeds = (corpus / "feeds.txt").read_text().split()
    if limit:
        feeds = feeds[:limit]
    names = {}
    opml = (corpus / "feeds.opml").read_text(encoding="utf-8")
    for m in re.finditer(r'<outline type="rss" text="([^"]*)"[^>]* xmlUrl="([^"]*)"', opml):
        names[m.group(2)] = m.group(1)
    seen: set[str] = set()
    sources = []
    for i, url in enumerate(feeds):
        name = names.get(url, f"outlet {i}")
        if name in seen:
            name = f"{name} ({i})"
        seen.add(name)
        sources.append({"name": name, "url": url})
    return sources


def write_agg_config(data: Path, corpus: Path, a: argparse.Namespace, limit: int | None = None):
    topics_file = BENCH / "topics.bench.yaml"
    topics = yaml.safe_load(topics_file.read_text())["topics"] if topics_file.exists() else []
    config = {
        "data_dir": str(data),
        "storage": {"url": f"sqlite:///{data / 'aggregator.db'}"},
        "fetch": {
            "allow_private_networks": True,
            "concurrency": a.concurrency,
            "per_host_concurrency": a.per_host,
            "max_pages_per_source": max(100, a.items),
        },
        "export": {"dir": str(data / "export")},
        "topics": topics,
        "sources": outlet_sources(corpus, limit),
    }
    data.mkdir(parents=True, exist_ok=True)
    path = data / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


def compile_project() -> None:
    """Byte-compile aggregator/ and jobs/, as `pip install .` does for reader in
    site-packages: an editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise
    compile every module from source in every run (~80 ms a run)."""
    import compileall

    for package in ("aggregator", "jobs"):
        compileall.compile_dir(str(REPO / package), quiet=1)


def agg_command(config: Path, pages: bool, export: bool) -> list[str]:
    # The console script installed beside this interpreter, as reader and the floor run on
    # it directly: a version manager's shim found first on PATH (pyenv: a bash script that
    # re-resolves the version) would add ~60 ms to aggregator's runs only.
    beside = Path(sys.executable).parent / "aggregator"
    exe = str(beside) if beside.exists() else shutil.which("aggregator")
    cmd = [exe] if exe else [sys.executable, "-c", "from aggregator.entry import main; main()"]
    cmd += ["fetch", "--config", str(config)]
    if not pages:
        cmd.append("--no-pages")
    if not export:
        cmd.append("--no-export")
    return cmd


def agg_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    env.update(COLUMNS="300", NO_COLOR="1", TERM="dumb")
    return env


def summary_totals(stdout: str) -> dict:
    """Totals from `aggregator fetch`'s summary table (new, pages, not modified, failed)."""
    rows = []
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)[1:-1]]
        if len(cells) >= 6:
            rows.append(cells)
    out = {"not_modified": 0, "failed": 0, "ok": 0}
    for cells in rows:
        if cells[0] == "total":
            nums = [int(c.split()[0]) if c.split() and c.split()[0].isdigit() else 0 for c in cells]
            out.update(new=nums[2], updated=nums[3], unchanged=nums[4], pages=nums[5])
            footer = re.match(r"(\d+) ok \((\d+) not modified\), (\d+) failed", cells[1])
            if footer:  # the footer counts every source, quiet ones shown in one row included
                ok, not_modified, failed = map(int, footer.groups())
                out.update(ok=ok - not_modified, not_modified=not_modified, failed=failed)
                return out
        elif cells[1] in ("not modified", "error", "ok"):
            out[cells[1].replace(" ", "_") if cells[1] != "error" else "failed"] += 1
    return out


def db_count(db: Path, table: str = "records") -> int:
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


class Bench:
    def __init__(self, a: argparse.Namespace, corpus: Path, runner: Runner, work: Path) -> None:
        self.a, self.corpus, self.runner, self.work = a, corpus, runner, work
        self.results: list[Measurement] = []

    def record(self, m: Measurement) -> None:
        m.extra.setdefault("tree_mb", self.runner.last_tree_mb)
        m.extra.setdefault("tree_peak", self.runner.last_tree_note)
        m.extra.setdefault("cpu_s", self.runner.last_cpu_s)
        m.extra.setdefault("server_cpu_s", self.runner.last_server_cpu_s)
        self.results.append(m)
        rate = []
        if m.entries_per_s:
            rate.append(f"{m.entries_per_s:,.0f} entries/s")
        if m.pages_per_s:
            rate.append(f"{m.pages_per_s:,.0f} pages/s")
        rss = f"{m.rss_mb:.0f} MB" if m.rss_mb else "?"
        cpu = f"CPU {m.extra['cpu_s']:.1f} s" if m.extra.get("cpu_s") else ""
        if m.extra.get("server_cpu_s") is not None:
            cpu += f" (server {m.extra['server_cpu_s']:.1f} s)"
        flag = "" if m.rc == 0 else f"  rc={m.rc}"
        tree = m.extra.get("tree_mb")
        pss = f"  PSS {tree:.0f} MB {m.extra['tree_peak']}" if tree else ""
        print(
            f"  [{m.rep}] {m.name:<15} {m.wall_s:8.2f} s  RSS {rss:>7}  {cpu}  "
            f"{', '.join(rate)}{flag}{pss}",
            flush=True,
        )

    def floor(self, rep: int, pages: bool) -> None:
        name = "floor+pages" if pages else "floor"
        cmd = [sys.executable, str(BENCH / "floor.py"), str(self.corpus)]
        cmd += ["--concurrency", str(self.a.concurrency)] + (["--pages"] if pages else [])
        rc, wall, rss, out, _ = self.runner.run(f"r{rep}-{name}", cmd)
        j = last_json(out)
        m = Measurement(name, rep, wall, rss, rc, j.get("entries", 0), j.get("pages", 0), j)
        self.record(m)

    def reader(self, rep: int) -> None:
        db = self.work / f"r{rep}-reader.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        for mode, name in (("cold", "reader"), ("repoll", "reader re-poll")):
            cmd = [sys.executable, str(BENCH / "reader_contender.py"), str(self.corpus), str(db)]
            rc, wall, rss, out, err = self.runner.run(f"r{rep}-reader-{mode}", [*cmd, mode])
            j = last_json(out)
            if rc != 0:
                print(f"    reader {mode} failed: {err.strip().splitlines()[-1:]}", flush=True)
            entries = j.get("new_entries", 0) if mode == "cold" else 0
            self.record(Measurement(name, rep, wall, rss, rc, entries, 0, j))

    def agg(self, rep: int, pages: bool) -> None:
        data = self.work / f"r{rep}-agg-{'pages' if pages else 'feeds'}"
        self.discard(data)
        config = write_agg_config(data, self.corpus, self.a)
        for name in ("agg pages", "agg re-poll") if pages else ("agg feeds",):
            cmd = agg_command(config, pages, self.a.export)
            tag = f"r{rep}-{name.replace(' ', '-')}"
            before = db_count(data / "aggregator.db")
            rc, wall, rss, out, err = self.runner.run(tag, cmd, env=agg_env())
            tot = summary_totals(out)
            records = db_count(data / "aggregator.db")
            new = records - before
            n_pages = tot.get("pages", 0)
            tot.update(records=records, errors_tail=err.strip().splitlines()[-3:] if rc else [])
            if rc not in (0, 3) or "new" not in tot:
                tail = err.strip().splitlines()[-3:]
                print(f"    {name} failed rc={rc}: {tail}", flush=True)
            elif tot["failed"]:
                print(f"    {name}: {tot['failed']} source(s) failed (see {tag}.out)", flush=True)
            self.record(Measurement(name, rep, wall, rss, rc, new, n_pages, tot))

    def run_all(self) -> None:
        groups = [
            lambda r: self.floor(r, pages=False),
            lambda r: self.floor(r, pages=True),
            self.reader,
            lambda r: self.agg(r, pages=False),
            lambda r: self.agg(r, pages=True),
        ]
        deadline = time.monotonic() + self.a.max_minutes * 60
        for path in self.work.glob("r*-agg-*"):  # a previous session's
            self.discard(path)
        try:
            for rep in range(1, self.a.runs + 1):
                order = groups[rep - 1 :] + groups[: rep - 1]  # rotate: none always first
                print(f"repetition {rep}/{self.a.runs}", flush=True)
                for group in order:
                    if time.monotonic() > deadline:
                        print(f"  ! --max-minutes {self.a.max_minutes} reached", flush=True)
                        return
                    group(rep)
        finally:
            self.clean_up()

    def discard(self, path: Path) -> None:
        """Move `path` aside, to be deleted by `clean_up` once every run is done.

        Deleting a run's 12,000 export files between runs made the next run's file
        creation 5–10× slower on an ext4 mounted with `discard` (the kernel was still
        discarding the freed blocks): that charged the harness's own clean-up to whichever
        contender wrote files next. A rename costs nothing."""
        if path.exists():
            trash = self.work / "trash"
            trash.mkdir(exist_ok=True)
            path.rename(trash / f"{path.name}-{time.time_ns()}")

    def clean_up(self) -> None:
        """Delete what `discard` set aside, and (unless --keep) the runs' data."""
        shutil.rmtree(self.work / "trash", ignore_errors=True)
        if self.a.keep:
            return
        for path in self.work.glob("r*-agg-*"):
            shutil.rmtree(path, ignore_errors=True)
        for path in self.work.glob("r*-reader.sqlite*"):
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------- report


def med(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v: float | None, spec: str = ",.0f") -> str:
    return "—" if v is None else format(v, spec)


def summarize(results: list[Measurement]) -> dict[str, dict]:
    rows = {}
    for name in ROWS:
        killed = sum(1 for m in results if m.name == name and not m.ok)
        ms = [m for m in results if m.name == name and m.ok]
        if not ms:
            if killed:
                rows[name] = {"n": 0, "killed": killed}
            continue
        rows[name] = {
            "killed": killed,
            "n": len(ms),
            "entries": med([m.entries or None for m in ms]),
            "pages": med([m.pages or None for m in ms]),
            "entries_per_s": med([m.entries_per_s for m in ms]),
            "pages_per_s": med([m.pages_per_s for m in ms]),
            "wall_s": med([m.wall_s for m in ms]),
            "wall_min": min(m.wall_s for m in ms),
            "wall_max": max(m.wall_s for m in ms),
            "rss_mb": med([m.rss_mb for m in ms]),
            "rss_max": max((m.rss_mb or 0) for m in ms) or None,
            "tree_mb": med([m.extra.get("tree_mb") for m in ms]),
            "cpu_s": med([m.extra.get("cpu_s") for m in ms]),
            "server_cpu_s": med([m.extra.get("server_cpu_s") for m in ms]),
            "tree_max": max((m.extra.get("tree_mb") or 0) for m in ms) or None,
            "failed_sources": max(m.extra.get("failed", 0) for m in ms),
            "feed_errors": max(m.extra.get("feed_errors", 0) for m in ms),
            "not_modified": med([m.extra.get("not_modified") for m in ms]),
        }
    return rows


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def verdicts(rows: dict[str, dict]) -> list[tuple[str, str, str, str]]:
    """(target, measured, goal, PASS/FAIL/n/a) for each target of issue 5."""
    g = lambda row, key: rows.get(row, {}).get(key)  # noqa: E731
    checks = []
    r1 = ratio(g("agg feeds", "entries_per_s"), g("reader", "entries_per_s"))
    checks.append(("feeds-only cold: agg entries/s ÷ reader entries/s", r1, 2.0, "ge"))
    r2 = ratio(g("agg pages", "pages_per_s"), g("floor+pages", "pages_per_s"))
    checks.append(("with pages: agg pages/s ÷ floor+pages pages/s", r2, 2.0, "ge"))
    r3 = ratio(g("agg re-poll", "wall_s"), g("reader re-poll", "wall_s"))
    checks.append(("unchanged re-poll: agg wall ÷ reader wall", r3, 1.0, "le"))
    agg_rss = [g(n, "rss_max") for n in ("agg feeds", "agg pages", "agg re-poll")]
    peak = max((v for v in agg_rss if v), default=None)
    checks.append(("peak RSS of any aggregator run, main process (MB)", peak, RSS_LIMIT_MB, "le"))
    agg_tree = [g(n, "tree_max") for n in ("agg feeds", "agg pages", "agg re-poll")]
    tree = max((v for v in agg_tree if v), default=None)
    checks.append(("peak memory of any run, all its processes, PSS (MB)", tree, RSS_LIMIT_MB, "le"))
    out = []
    for label, value, goal, how in checks:
        if value is None:
            out.append((label, "—", f"{'≥' if how == 'ge' else '≤'} {goal:g}", "n/a"))
            continue
        ok = value >= goal if how == "ge" else value <= goal
        shown = f"{value:.0f}" if goal >= 100 else f"{value:.2f}×"
        out.append((label, shown, f"{'≥' if how == 'ge' else '≤'} {goal:g}", _pf(ok)))
    return out


def _pf(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table_md(rows: dict[str, dict]) -> str:
    lines = [
        "| contender | entries/s | pages/s | wall s (median, min–max) | CPU s, all processes "
        "| web server CPU s | peak RSS MB | all processes PSS MB | runs | notes |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in rows.items():
        if not r["n"]:
            dashes = " | ".join(["—"] * 7)
            lines.append(f"| {name} | {dashes} | 0 | {r['killed']} run(s) failed or timed out |")
            continue
        wall = f"{r['wall_s']:.2f} ({r['wall_min']:.2f}–{r['wall_max']:.2f})"
        notes = [f"{fmt(r['entries'])} entries"] if r["entries"] else []
        if r["pages"]:
            notes.append(f"{fmt(r['pages'])} pages")
        if r["not_modified"]:
            notes.append(f"{fmt(r['not_modified'])} feeds not modified")
        if r["failed_sources"] or r["feed_errors"]:
            notes.append(f"⚠ up to {r['failed_sources'] or r['feed_errors']} failed feeds")
        if r["killed"]:
            notes.append(f"{r['killed']} more run(s) failed or timed out, not counted")
        lines.append(
            f"| {name} | {fmt(r['entries_per_s'])} | {fmt(r['pages_per_s'])} | {wall} "
            f"| {fmt(r['cpu_s'], '.1f')} | {fmt(r.get('server_cpu_s'), '.1f')} "
            f"| {fmt(r['rss_mb'])} | {fmt(r['tree_mb'])} | {r['n']} "
            f"| {', '.join(notes)} |"
        )
    return "\n".join(lines)


def verdicts_md(checks: list[tuple[str, str, str, str]]) -> str:
    lines = ["| target | measured | goal | result |", "|---|---:|---:|---|"]
    lines += [f"| {a} | {b} | {c} | **{d}** |" for a, b, c, d in checks]
    return "\n".join(lines)


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        head = ""
    return {
        "nproc": str(nproc),
        "cpu": cpu,
        "ram": mem,
        "python": platform.python_version(),
        "os": platform.platform(),
        "commit": head or "unknown",
    }


def load_avg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


RSS_BEGIN, RSS_END = "<!-- rss-scaling -->", "<!-- /rss-scaling -->"


# Everything after this line in docs/benchmarks.md is written by other bench scripts (workers,
# linking cost) and survives a rewrite of the table above it.
KEPT_MARK = "<!-- sections below are kept when run_bench.py rewrites the table above -->"


def write_doc(path: Path, body: str, rss_section: str | None) -> None:
    old = path.read_text() if path.exists() else ""
    kept = old[old.index(KEPT_MARK) :].rstrip() + "\n" if KEPT_MARK in old else ""
    old = old[: old.index(KEPT_MARK)] if KEPT_MARK in old else old
    if rss_section is None and RSS_BEGIN in old and RSS_END in old:
        rss_section = old[old.index(RSS_BEGIN) : old.index(RSS_END) + len(RSS_END)]
    text = body + ("\n" + rss_section + "\n" if rss_section else "")
    text += ("\n" + kept) if kept else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}", flush=True)


def doc_body(a, rows, checks, machine, meta) -> str:
    cmd = "python bench/run_bench.py " + " ".join(meta.get("argv", sys.argv[1:]))
    started = dt.datetime.fromisoformat(meta["started"]) if "started" in meta else None
    when = f"{started:%Y-%m-%d %H:%M} UTC" if started else "not recorded"
    elapsed = meta.get("elapsed_s")
    took = f", {elapsed / 60:.0f} min in all" if elapsed else ""
    load0, load1 = meta.get("load0", "?"), meta.get("load1", "?")
    server = meta.get("server", "not recorded")
    done = min((r["n"] for r in rows.values()), default=0)
    partial = (
        f"\n\n**Partial: only {done} of {a.runs} repetitions finished** (stopped early), so"
        " these are single measurements, not medians."
        if done < a.runs
        else ""
    )
    return f"""# Benchmarks

Latest run of `bench/run_bench.py` (issue 5). Regenerate with the command below; it rewrites
this file.

```sh
{cmd.strip()}
```

- date: {when}{took}
- machine: {machine["nproc"]} CPUs ({machine["cpu"]}), {machine["ram"]} RAM, Python
  {machine["python"]}, {machine["os"]}; commit {machine["commit"]} (work tree may be dirty)
- corpus: {a.feeds} outlets × {a.items} items (seed {a.seed}), served on 127.0.0.x:{a.port}
  by {server}
- load average (1/5/15 min) before: {load0}; after: {load1}.{_load_note(load0)}
- aggregator: concurrency {a.concurrency}, per-host {a.per_host}, topics from
  `bench/topics.bench.yaml`, export {"on" if a.export else "off (--no-export)"}; floor
  `--concurrency {a.concurrency}`; reader `update_feeds(workers=1, scheduled=False)`
- medians of {a.runs} interleaved repetitions (order rotated every repetition), each
  contender a fresh process; rates are items ÷ process wall time (imports included);
  peak RSS from `/usr/bin/time -v` (the main process alone); "all processes" is the
  peak of the summed PSS of the run's whole session (parse workers, linker, forkserver),
  sampled once a second, the first after 0.5 s (each run's log line says which
  processes held the peak, and when); "CPU s" is the user + system time of every process of the
  run, its forked helpers included (this process is their child subreaper and reaps
  them all), so it counts the work whatever the number of cores it ran on; "web server
  CPU s" is what the server (nginx's master and worker) used meanwhile, on the same
  cores: a contender's CPU plus the server's, over the wall time, shows how busy the
  machine was

## Results{partial}

{table_md(rows)}

## Targets

{verdicts_md(checks)}

"re-poll" is a second run with nothing changed (every feed answers 304): for aggregator a
second `aggregator fetch` on the with-pages data dir, for reader a second process calling
`update_feeds` on the same database.
"""


def _load_note(load0: str) -> str:
    try:
        busy = float(load0.split(" / ")[0]) > 0.5
    except ValueError:
        busy = False
    if not busy:
        return ""
    return (
        "\n  The machine was shared with other work during this run (see load average), so"
        "\n  absolute numbers are noisy; the ratios between interleaved contenders are the point."
    )


# ---------------------------------------------------------------- RSS scaling


def rss_scaling(a: argparse.Namespace, work: Path, runner: Runner) -> str:
    counts = sorted({int(x) for x in a.scaling_feeds.split(",")})
    corpus = ensure_corpus(work, max(counts), a.items, a.seed, a.port)
    check_loopback_only(corpus)
    server = WebServer(corpus, a.port, work / "nginx", int(a.max_minutes * 60) + 600)
    rows = []
    try:
        server.start()
        for n in counts:
            data = work / f"rss-agg-{n}"
            shutil.rmtree(data, ignore_errors=True)
            config = write_agg_config(data, corpus, a, limit=n)
            cmd = agg_command(config, pages=False, export=a.export)
            rc, wall, rss, _out, _ = runner.run(f"rss-{n}", cmd, env=agg_env())
            records = db_count(data / "aggregator.db")
            tree = runner.last_tree_mb
            rows.append((n, records, wall, rss, tree, rc))
            print(
                f"  {n} outlets: {records} records, {wall:.1f} s, peak RSS {fmt(rss)} MB, "
                f"all processes {fmt(tree)} MB PSS {runner.last_tree_note}",
                flush=True,
            )
            if not a.keep:
                shutil.rmtree(data, ignore_errors=True)
    finally:
        runner.kill()
        server.stop()
    lo, hi = rows[0][4] or rows[0][3], rows[-1][4] or rows[-1][3]  # all processes if known
    growth = ratio(hi, lo)
    ok = bool(hi and lo and hi <= RSS_LIMIT_MB and growth and growth <= RSS_GROWTH_LIMIT)
    lines = [
        RSS_BEGIN,
        "## Peak RSS against the number of outlets",
        "",
        f"`python bench/run_bench.py --rss-scaling --items {a.items}` "
        f"({dt.datetime.now(dt.UTC):%Y-%m-%d}): `aggregator fetch --no-pages`, cold, one run each.",
        "",
        "| outlets | records | wall s | peak RSS MB (main process) | all processes PSS MB | exit |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {n} | {rec} | {w:.1f} | {fmt(r)} | {fmt(t)} | {rc} |" for n, rec, w, r, t, rc in rows
    ]
    lines += [
        "",
        f"Growth {fmt(growth, '.2f')}× (goal ≤ {RSS_GROWTH_LIMIT}×), largest {fmt(hi)} MB, "
        "all processes "
        f"(goal ≤ {RSS_LIMIT_MB:.0f} MB): **{_pf(ok)}**",
        RSS_END,
    ]
    section = "\n".join(lines)
    print(section.replace(RSS_BEGIN, "").replace(RSS_END, ""), flush=True)
    return section


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--feeds", type=int, default=200, help="outlets in the corpus")
    ap.add_argument("--items", type=int, default=30, help="items per feed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3, help="interleaved repetitions (≥ 3 for docs)")
    ap.add_argument("--port", type=int, default=8089)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--per-host", type=int, default=4, help="aggregator per_host_concurrency")
    ap.add_argument("--work", default="/tmp/aggregator-bench", help="corpus, dbs and logs")
    ap.add_argument("--keep", action="store_true", help="keep the per-run data dirs and dbs")
    ap.add_argument(
        "--no-export", dest="export", action="store_false", help="pass --no-export to aggregator"
    )
    ap.add_argument("--doc", default=str(REPO / "docs" / "benchmarks.md"))
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per contender process")
    ap.add_argument("--max-minutes", type=float, default=180, help="stop starting new runs after")
    ap.add_argument(
        "--rss-scaling", action="store_true",
        help="only check aggregator's peak RSS (feeds-only) at --scaling-feeds outlet counts",
    )  # fmt: skip
    ap.add_argument("--scaling-feeds", default="200,1000")
    ap.add_argument(
        "--from-results", metavar="JSON", help="only re-print / re-write the doc from results.json"
    )
    a = ap.parse_args(argv)
    if not (1 <= a.runs <= 20 and 1 <= a.feeds <= 5000 and 1 <= a.items <= 1000):
        ap.error("--runs 1..20, --feeds 1..5000, --items 1..1000")
    if not 1024 <= a.port <= 65535:
        ap.error("--port must be 1024..65535")
    return a


def main() -> int:
    a = parse_args()
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    logdir = work / "logs"
    logdir.mkdir(exist_ok=True)
    runner = Runner(logdir, a.timeout)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    if not runner.use_gnu_time:
        print("note: /usr/bin/time missing, peak RSS from getrusage(RUSAGE_CHILDREN)", flush=True)

    if a.rss_scaling:
        section = rss_scaling(a, work, runner)
        if not a.no_doc:
            path = Path(a.doc)
            if path.exists():
                old = path.read_text()
                if KEPT_MARK in old:
                    old = old[: old.index(KEPT_MARK)]
                if RSS_BEGIN in old and RSS_END in old:
                    old = old[: old.index(RSS_BEGIN)] + old[old.index(RSS_END) + len(RSS_END) :]
                write_doc(path, old.rstrip() + "\n", section)
            else:
                write_doc(path, "# Benchmarks\n", section)
        return 0

    if a.from_results:
        return report_from(a, Path(a.from_results))
    corpus = ensure_corpus(work, a.feeds, a.items, a.seed, a.port)
    check_loopback_only(corpus)
    compile_project()
    meta = {"load0": load_avg(), "started": started.isoformat(), "argv": sys.argv[1:]}
    server = WebServer(corpus, a.port, work / "nginx", int(a.max_minutes * 60) + 600)
    bench = Bench(a, corpus, runner, work)
    status = 0
    try:
        meta["server"] = server.start()
        runner.server_cpu = server.cpu_s
        bench.run_all()
    except KeyboardInterrupt:
        print("interrupted: stopping; the table below has the runs that finished", flush=True)
        status = 130
    finally:
        runner.kill()
        server.stop()
        meta.update(load1=load_avg(), elapsed_s=time.monotonic() - t0)
        results = [m.__dict__ for m in bench.results]
        (work / "results.json").write_text(
            json.dumps({"meta": meta, "results": results}, indent=1, default=str)
        )
    report(a, bench.results, meta)
    print(f"\nraw results: {work / 'results.json'}; logs: {logdir}")
    return status


def report_from(a: argparse.Namespace, path: Path) -> int:
    """Re-print the table (and rewrite the doc) from a results.json of an earlier run."""
    data = json.loads(path.read_text())
    if isinstance(data, list):  # older format: no metadata
        data = {"meta": {}, "results": data}
    meta = data["meta"]
    argv = meta.get("argv") or _without_from_results(sys.argv[1:])
    orig = parse_args(argv)
    orig.doc, orig.no_doc = a.doc, a.no_doc
    meta.setdefault("argv", argv)
    a = orig
    report(a, [Measurement(**m) for m in data["results"]], meta)
    return 0


def _without_from_results(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--from-results":
            skip = True
        elif not arg.startswith("--from-results="):
            out.append(arg)
    return out


def report(a: argparse.Namespace, results: list[Measurement], meta: dict) -> None:
    rows = summarize(results)
    checks = verdicts(rows)
    print()
    print(table_md(rows))
    print()
    print(verdicts_md(checks))
    if not a.no_doc:
        write_doc(Path(a.doc), doc_body(a, rows, checks, machine_info(), meta), None)


if __name__ == "__main__":
    sys.exit(main())
