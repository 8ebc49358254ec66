"""`farm events` and `farm results --from-events` on a real `farm up`, with a worker killed (-9) mid-suite:
the log lists the suite's life in order, `--follow` ends with it, and the log alone gives the stored report."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import redis
from support.helpers import FARM, copy_fixture, farm, runner_mode, submit_no_wait

from farm import keys
from farm.report.schema import load_report

LEASE_S = 3.0
QUICK = {"FARM_LEASE_S": f"{LEASE_S:g}"}  # a lost attempt is requeued within seconds
IN_ORDER = ["submitted", "collected", "published", "started", "lease-lost", "requeued", "finished"]


def _busy_worker(running: Any, timeout: float = 60) -> psutil.Process:
    """A worker's main process one of whose pool children runs tests right now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(running.proc.pid).children():
            try:
                if "workers" in child.cmdline() and any(
                        runner_mode(p) == "run" for p in child.children(recursive=True)):
                    return child
            except psutil.Error:
                continue
        time.sleep(0.1)
    raise AssertionError("no worker ever ran an assignment")


def _wait_for_done(store: redis.Redis, suite_id: str, done: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while int(store.hget(keys.suite(suite_id), "done") or 0) < done:
        assert time.monotonic() < deadline, f"the suite never reached {done} finished tests"
        time.sleep(0.05)


def test_the_log_of_a_suite_with_a_lost_worker_gives_its_report(farm_up, tmp_path: Path) -> None:
    running = farm_up("--workers", "2", "--slots", "1", env=QUICK)
    broker = running.broker
    store = redis.Redis.from_url(broker)
    try:
        suite_id = submit_no_wait(broker, copy_fixture("slow", tmp_path))
        follow = subprocess.Popen([FARM, "events", suite_id, "--broker", broker, "--follow"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for_done(store, suite_id, 4)
            assert follow.poll() is None, "--follow ended before the suite did"
            _busy_worker(running).kill()  # kill -9: its attempt's lease lapses
            stored = farm("results", suite_id, "--broker", broker, "--json", str(tmp_path / "stored.json"))
            followed, errors = follow.communicate(timeout=120)
        finally:
            if follow.poll() is None:
                follow.kill()
                follow.wait()
        assert follow.returncode == 0, errors

        shown = farm("events", suite_id, "--broker", broker)
        assert shown.returncode == 0, shown.stderr
        kinds = [line.split()[1] for line in shown.stdout.splitlines()]
        firsts = [kinds.index(k) if k in kinds else -1 for k in IN_ORDER]
        assert -1 not in firsts and firsts == sorted(firsts), f"not in order {IN_ORDER}:\n{shown.stdout}"
        assert kinds.count("finished") == 1
        # --follow printed the log up to its `finished` (a late batch may come after: the report has it not)
        lines = followed.splitlines()
        assert lines == shown.stdout.splitlines()[:len(lines)] and lines[-1].split()[1] == "finished", followed

        as_json = farm("events", suite_id, "--broker", broker, "--json")
        rows = [json.loads(line) for line in as_json.stdout.splitlines()]
        assert [r["kind"] for r in rows] == kinds and rows[0]["since_s"] == 0.0
        assert {r["worker"] for r in rows if r["kind"] == "lease-lost"} - {""}, "the lost attempt names its worker"

        rebuilt = farm("results", suite_id, "--broker", broker, "--from-events", "--json",
                       str(tmp_path / "rebuilt.json"))
        assert (rebuilt.returncode, stored.returncode) == (0, 0), rebuilt.stderr + stored.stderr
        report = load_report(tmp_path / "stored.json")
        assert load_report(tmp_path / "rebuilt.json") == report
        assert any(a["state"] == "lost" for a in report["assignments"])
    finally:
        store.close()


def test_events_of_an_unknown_suite_is_one_line(running_farm) -> None:
    for command in (["events", "no-such-suite"], ["results", "no-such-suite", "--from-events"]):
        done = farm(*command, "--broker", running_farm.broker)
        assert done.returncode == 4 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "no suite" in done.stderr and "Traceback" not in done.stderr
