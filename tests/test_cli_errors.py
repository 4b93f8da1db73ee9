"""Bad config and bad command lines: exit status 2 and one clear line naming the key or
argument, never a traceback. Run through the console entry point (`cli.main`) in-process,
plus once in a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aggregator.cli import main
from tests.loopback import REPO_ROOT

GOOD = {"sources": [{"name": "a", "url": "http://127.0.0.1:9/feed"}]}

# (case id, config mapping or raw YAML text or None, argv after the config, text the line names)
CASES: list[tuple[str, object, list[str], str]] = [
    ("unknown top-level key", {"fetchx": 1}, ["fetch"], "fetchx: unknown key"),
    ("unknown nested key", {"fetch": {"retry": 1}}, ["fetch"], "fetch.retry: unknown key"),
    ("wrong type", {"fetch": {"retries": "many"}}, ["fetch"], "fetch.retries: "),
    ("out of range", {"fetch": {"concurrency": 0}}, ["fetch"], "fetch.concurrency: "),
    (
        "source url not http",
        {"sources": [{"name": "a", "url": "file:///etc/passwd"}]},
        ["fetch"],
        "sources[0].url: not an http(s) URL",
    ),
    (
        "duplicate source",
        {"sources": [{"name": "a", "url": "http://x.test/"}] * 2},
        ["fetch"],
        "sources[1].name: duplicate name 'a'",
    ),
    ("bad export format", {"export": {"formats": ["pdf"]}}, ["fetch"], "export.formats[0]: "),
    ("bad storage url", {"storage": {"url": "mysql://db/x"}}, ["fetch"], "storage.url: not a"),
    ("export dir a file", {"export": {"dir": __file__}}, ["fetch"], "export.dir: "),
    ("data dir a file", {"data_dir": __file__}, ["fetch"], "data_dir: "),
    ("not a mapping", "- just\n- a list\n", ["fetch"], "must be a mapping"),
    ("invalid yaml", "fetch: [\n", ["fetch"], "is not valid YAML"),
    ("yaml python tag", "fetch: !!python/object/apply:os.system [id]\n", ["fetch"], "YAML"),
    (
        "impossible date",
        "sources:\n  - {name: a, url: 'http://x.test/', weight: 2024-13-45}\n",
        ["fetch"],
        "sources[0].weight: ",
    ),
    ("yaml value", "fetch: {retries: !!int many}\n", ["fetch"], "a value cannot be read"),
    ("missing config file", None, ["fetch"], "cannot read config file"),
    ("daemon bad config", {"scheduler": {"crawl_tick": -1}}, ["run"], "scheduler.crawl_tick"),
    ("unknown source", GOOD, ["fetch", "--source", "nope"], "--source[0]: no source named"),
    ("unknown option", GOOD, ["fetch", "--bogus"], "No such option: --bogus"),
    ("option with a value", GOOD, ["fetch", "--no-pages=3"], "--no-pages"),
    ("export format", GOOD, ["export", "--format", "xml"], "--format: expected md or jsonl"),
    ("export since", GOOD, ["export", "--since", "soon"], "--since: not an ISO date"),
    ("extract format", GOOD, ["extract", "http://x.test/", "--format", "pdf"], "--format"),
    ("import needs paths", GOOD, ["import"], "Missing argument 'paths'"),
    ("import missing file", GOOD, ["import", "/nonexistent/x.jsonl"], "/nonexistent/x.jsonl"),
]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Call the console entry point in-process; its exit status, stdout and stderr."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["aggregator", *argv])
        with pytest.raises(SystemExit) as info:
            main()
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def config_args(tmp: Path, config: object, argv: list[str]) -> list[str]:
    """Write `config` (a mapping, raw YAML text, or None for a missing file) into `tmp`."""
    path = tmp / "config.yaml"
    if isinstance(config, dict):
        data = {"data_dir": str(tmp / "data"), "storage": {"url": f"sqlite:///{tmp}/a.db"}}
        path.write_text(yaml.safe_dump(data | config))
    elif isinstance(config, str):
        path.write_text(config)
    command, *rest = argv
    return [command, "--config", str(path), *rest]


def check_one_line(status: int, stdout: str, stderr: str, needle: str) -> None:
    """Exit 2, no traceback, exactly one line on stderr naming `needle`."""
    assert "Traceback" not in stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert status == 2, (status, stderr)


@pytest.mark.parametrize(
    ("config", "argv", "needle"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config: object,
    argv: list[str],
    needle: str,
) -> None:
    check_one_line(*run_main(config_args(tmp_path, config, argv), capsys), needle)


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    check_one_line(*run_main(["nosuch"], capsys), "No such command 'nosuch'")


ENTRY = "import sys; from aggregator.entry import main; sys.argv[0] = 'aggregator'; main()"


def run_entry(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The console script's entry point in a real process, as a shell user runs it."""
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), **env},
    )


def test_the_installed_entry_point_prints_one_line(tmp_path: Path) -> None:
    """The same through a real process: what a shell user sees."""
    done = run_entry(tmp_path, "fetch", "--bogus")
    check_one_line(done.returncode, done.stdout, done.stderr, "No such option: --bogus")


def test_a_config_nested_100000_deep_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """libyaml composes nested collections by recursing in C: before the depth check, this
    config killed the process with SIGSEGV. In a subprocess, so a regression cannot take
    the test run down with it."""
    config = tmp_path / "deep.yaml"
    config.write_text("sources: " + "[" * 100_000 + "]" * 100_000 + "\n")
    done = run_entry(tmp_path, "fetch", "--config", str(config))
    check_one_line(done.returncode, done.stdout, done.stderr, "is not valid YAML")
    assert "nest" in done.stderr  # ours, or a libyaml built with a nesting limit


def test_the_entry_points_fast_exit_keeps_the_output_and_the_status(tmp_path: Path) -> None:
    """entry.main leaves with os._exit: what the command wrote still reaches the pipe, and
    the exit status is the command's."""
    shown = run_entry(tmp_path, "fetch", "--help", COLUMNS="100")
    assert shown.returncode == 0
    assert "--no-pages" in shown.stdout and shown.stdout.rstrip().endswith("╯")
    missing = run_entry(tmp_path, "fetch", "--config", str(tmp_path / "none.yaml"), COLUMNS="100")
    assert missing.returncode == 2
    assert "cannot read config file" in missing.stderr


def plain_and_console(script: str, cwd: Path) -> dict[str, str]:
    """What `script` prints in a fresh interpreter as it is ("plain") and with its
    ``{setup}`` marking the console script ("console")."""
    runs = {}
    for name, setup in (("plain", ""), ("console", "startup.mark_console_process(); ")):
        done = subprocess.run(
            [sys.executable, "-c", script.format(setup=setup)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
            check=True,
        )
        runs[name] = done.stdout.strip()
    return runs


def test_the_console_script_leaves_httpxs_own_cli_unimported(tmp_path: Path) -> None:
    """`import httpx` imports click, rich.syntax and pygments for httpx's CLI whenever
    click is installed; the console script never does."""
    import importlib.util

    script = (
        "import sys; from aggregator import startup; {setup}"
        "import aggregator.fetch, httpx; "
        "print(sorted(m for m in ('pygments', 'rich.syntax', 'click') if m in sys.modules))"
    )
    runs = plain_and_console(script, tmp_path)
    assert runs["console"] == "[]"
    if importlib.util.find_spec("click") is not None:  # else httpx skips its CLI anyway
        assert runs["plain"] == "['click', 'pygments', 'rich.syntax']"
    stub = subprocess.run(
        [
            sys.executable,
            "-c",
            "from aggregator import startup; startup.skip_httpx_cli(); import httpx; httpx.main()",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
    )
    assert stub.returncode == 1 and "not loaded" in stub.stderr


def test_the_console_script_leaves_trio_unimported(tmp_path: Path) -> None:
    """httpcore imports trio whenever it is installed; the console script, which only ever
    runs asyncio, keeps it out, and httpcore still serves asyncio."""
    import importlib.util

    script = (
        "import sys, asyncio; from aggregator import startup; {setup}"
        "import httpcore; from httpcore._synchronization import AsyncLock\n"
        "async def lock():\n"
        "    async with AsyncLock(): return 'locked'\n"
        "print('trio' in sys.modules and sys.modules['trio'] is not None, asyncio.run(lock()))"
    )
    runs = plain_and_console(script, tmp_path)
    assert runs["console"] == "False locked"
    if importlib.util.find_spec("trio") is not None:  # else there is nothing to keep out
        assert runs["plain"] == "True locked"


def test_the_console_script_collects_the_young_generation_less_often(tmp_path: Path) -> None:
    """After its imports, the console script runs young collections every
    `YOUNG_COLLECTION_THRESHOLD` new objects; library use keeps Python's default."""
    import gc

    from aggregator.startup import YOUNG_COLLECTION_THRESHOLD

    script = (
        "import gc; from aggregator import startup; {setup}\n"
        "with startup.settling(): import aggregator.pipeline\n"
        "print(gc.get_threshold()[0], gc.isenabled())"
    )
    runs = plain_and_console(script, tmp_path)
    assert runs["console"] == f"{YOUNG_COLLECTION_THRESHOLD} True"
    assert runs["plain"] == f"{gc.get_threshold()[0]} True"
    assert gc.get_threshold()[0] < YOUNG_COLLECTION_THRESHOLD


def test_the_fast_exit_never_waits_for_a_child_process_still_running(tmp_path: Path) -> None:
    """A child left running (a worker a failure did not stop) is not joined on the way out:
    it would never end while its parent waits. The exit is prompt, its status kept."""
    script = tmp_path / "leave.py"
    script.write_text(
        "import multiprocessing, time\n"
        "from aggregator import entry\n"
        "if __name__ == '__main__':\n"
        "    child = multiprocessing.get_context('fork').Process(target=time.sleep, args=(30,))\n"
        "    child.start()\n"
        "    print(child.pid, flush=True)\n"
        "    entry._exit_now(4)\n"
    )
    leaving = subprocess.Popen(  # the orphaned child keeps the pipe open: wait on the process
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
    )
    assert leaving.stdout is not None
    child = int(leaving.stdout.readline())
    try:
        assert leaving.wait(timeout=15) == 4
    finally:
        leaving.kill()
        os.kill(child, signal.SIGKILL)
        leaving.stdout.close()


def test_a_fetch_with_no_sources_says_how_to_add_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, stdout, stderr = run_main(config_args(tmp_path, {"sources": []}, ["fetch"]), capsys)
    assert status == 0
    assert "no sources to crawl" in stderr and "import-opml" in stderr
    assert "fetch summary" not in stdout  # no empty table
