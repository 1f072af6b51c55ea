"""``tollgate demo --no-wait`` as a newcomer runs it: the printed story of a governed run and only
the story (Tollgate's own log lines go to a file the demo names), then nothing left behind (no
postgres on its data directory, no child process of the demo); and docs/demo.txt, the capture the
README shows, still matches what a fresh run prints."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.embedded import cli_env, data_dir_outside_pytest, postgres_on
from tests.support.wheel import STORY

ROOT = Path(__file__).resolve().parents[1]


def _processes_naming(directory: Path) -> list[int]:
    """Live processes whose command line names ``directory``: the demo runs its emulators and proxy
    on threads, so after it exits only a leftover postgres (or a stray child) could match."""
    wanted = str(directory).encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and wanted in (proc / "cmdline").read_bytes():
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                found += [int(proc.name)] if state != "Z" else []
        except OSError:
            continue
    return found


def test_demo_plays_the_story_and_leaves_nothing_running() -> None:
    with data_dir_outside_pytest("tollgate-demo-") as data_dir:
        _play_and_check(data_dir)


def _play_and_check(data_dir: Path) -> None:
    demo = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "proxy", "demo", "--no-wait",
                             "--data-dir", str(data_dir)], env=cli_env(data_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = demo.communicate(timeout=120)
    assert demo.returncode == 0, err
    assert all(line in out for line in STORY), out
    assert out.count("(a retry loop, attempt") == 3 and out.count("blocked (duplicate_call") == 3
    assert f"{data_dir / 'admin-token'}" in out and "/console" in out
    _check_quiet(data_dir, out, err)
    assert postgres_on(data_dir) == [], "the demo's Postgres still runs"
    assert _processes_naming(data_dir) == []


def _check_quiet(data_dir: Path, out: str, err: str) -> None:
    """Request lines and generated-secret warnings are in the named log, not on the terminal."""
    log = data_dir / "demo.log"
    assert f"Tollgate's log: {log}" in out
    assert err == "", f"the demo wrote more than its story: {err}"
    assert "generated_secret_file" not in out and "latency_ms" not in out
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events.count("request") == 8 and "generated_secret_file" in events


def test_ctrl_c_stops_a_waiting_demo_and_everything_it_started() -> None:
    """As a terminal's Ctrl-C does: SIGINT to the whole foreground process group, the demo's
    embedded Postgres included, while the demo serves (``make demo`` without --no-wait)."""
    with data_dir_outside_pytest("tollgate-demo-") as data_dir:
        demo = _foreground_demo(data_dir)
        try:
            told = _read_until(demo, "serving until Ctrl-C", timeout_s=120)
            served = postgres_on(data_dir)
            os.killpg(demo.pid, signal.SIGINT)
            out, err = demo.communicate(timeout=60)
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGKILL)
        assert served != [], "the demo was serving on its own Postgres"
        assert demo.returncode == 0, err.decode()
        assert "stopped the emulators, Tollgate and the embedded Postgres" in told + out.decode()
        assert postgres_on(data_dir) == [], "the demo's Postgres still runs after Ctrl-C"
        assert _processes_naming(data_dir) == [] and _group_members(demo.pid) == []


def test_ctrl_c_during_the_story_stops_everything_and_says_so() -> None:
    """Ctrl-C while the scripted agent is still playing (the Postgres just started): no traceback,
    exit 130 as a shell expects of an interrupted command, and nothing left behind."""
    with data_dir_outside_pytest("tollgate-demo-") as data_dir:
        demo = _foreground_demo(data_dir)
        try:
            told = _read_until(demo, "embedded Postgres in", timeout_s=120)
            os.killpg(demo.pid, signal.SIGINT)
            out, err = demo.communicate(timeout=60)
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGKILL)
        said = told + out.decode()
        assert demo.returncode == 130, err.decode()
        assert "Traceback" not in err.decode() + said
        assert "interrupted: stopping everything the demo started" in said
        assert postgres_on(data_dir) == [] and _processes_naming(data_dir) == []


def _foreground_demo(data_dir: Path) -> subprocess.Popen[bytes]:
    """``tollgate demo`` as a terminal's shell starts a foreground job: a process group of its own,
    and Ctrl-C's signal at its default. A suite started in the background by a non-interactive
    shell (``make test &``) has SIGINT ignored, and an ignored signal is inherited through exec
    (a Python handler is not), so the test sets Python's own handler while it starts the demo."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen([sys.executable, "-W", "ignore", "-m", "proxy", "demo", "--data-dir", str(data_dir)],
                                env=cli_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def _read_until(process: subprocess.Popen[bytes], marker: str, timeout_s: float) -> str:
    """What ``process`` printed up to ``marker`` (read from the pipe's descriptor: a buffered
    reader would hold lines that ``select`` no longer sees); fails after ``timeout_s`` seconds."""
    assert process.stdout is not None
    told = b""
    deadline = time.monotonic() + timeout_s
    while marker.encode() not in told:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(process.stdout.fileno(), 65536) if ready else b""
        if not chunk:
            raise AssertionError(f"no {marker!r} within {timeout_s} s; printed: {told.decode()}")
        told += chunk
    return told.decode()


def _group_members(group: int) -> list[int]:
    """Live processes in process group ``group`` (zombies aside: nothing here reaps orphans)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if proc.name.isdigit() and int(fields[2]) == group and fields[0] != "Z":
            found.append(int(proc.name))
    return found


def test_committed_capture_matches_a_fresh_run() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "capture_demo.py"), "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr


def test_readme_shows_lines_of_the_capture() -> None:
    """The README's excerpt of the story is copied from docs/demo.txt; this keeps it copied, not edited."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    excerpt = readme.split("## See it govern", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    capture = (ROOT / "docs" / "demo.txt").read_text(encoding="utf-8").splitlines()
    assert excerpt.count("\n") >= 9 and all(line in capture for line in excerpt.splitlines())
