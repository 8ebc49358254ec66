"""`farm up` supervises its processes: what is killed comes back, the running suite still counts every
test once, Ctrl-C leaves nothing (processes, multiprocessing's pymp-* dirs); Flower lists every
worker when farm up says it is ready; the embedded farm leaves nothing in TMPDIR either."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from support.helpers import FARM, LEAN, copy_fixture, farm, runner_mode, submit_no_wait

from farm.report.schema import load_report

TOTAL = 40  # the slow fixture: 40 tests of 0.5 s
#: Short, so the lost attempt of a killed worker and the messages a killed coordinator had fetched
#: come back within seconds (the farm's processes inherit farm up's environment).
QUICK = {"FARM_LEASE_S": "3", "FARM_COORDINATOR_VISIBILITY_S": "3"}


def _private_tmp(tmp_path: Path) -> Path:
    """A TMPDIR of the farm's own, so what multiprocessing leaves there is seen (and only ours)."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    return tmp


def _members(running: Any) -> dict[str, psutil.Process]:
    """farm up's processes by role: redis, coordinator, worker-N, flower."""
    found = {}
    for child in psutil.Process(running.proc.pid).children():
        try:
            argv = child.cmdline()
        except psutil.Error:  # dead (a zombie until farm up reaps it)
            continue
        if argv and "redis-server" in argv[0]:  # it retitles itself "redis-server 127.0.0.1:PORT"
            found["redis"] = child
        elif "coordinator" in argv:
            found["coordinator"] = child
        elif "flower" in argv:
            found["flower"] = child
        elif "workers" in argv:
            name = argv[argv.index("--name") + 1]
            found[f"worker-{name.split('-')[2]}"] = child
    return found


def _busy_worker(running: Any, timeout: float = 60) -> tuple[str, psutil.Process]:
    """A worker's main process one of whose pool children runs tests right now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for role, proc in _members(running).items():
            if not role.startswith("worker-"):
                continue
            try:
                if any(runner_mode(below) == "run" for below in proc.children(recursive=True)):
                    return role, proc
            except psutil.Error:
                continue
        time.sleep(0.1)
    raise AssertionError("no worker ever ran an assignment")


def _came_back(running: Any, role: str, old_pid: int, timeout: float = 60) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = _members(running).get(role)
        if proc is not None and proc.pid != old_pid:
            return proc
        time.sleep(0.1)
    raise AssertionError(f"{role} was not started again")


def _wait_for_progress(broker: str, suite_id: str, done: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = farm("status", suite_id, "--broker", broker)
        match = re.search(r"(\d+)/\d+ tests done", status.stdout)
        if match and int(match.group(1)) >= done:
            return
        time.sleep(0.3)
    raise AssertionError(f"the suite never reached {done} finished tests")


def _every_test_once(broker: str, suite_id: str, tmp_path: Path) -> dict:
    path = tmp_path / "report.json"
    result = farm("results", suite_id, "--broker", broker, "--json", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = load_report(path)
    ids = [t["id"] for t in report["tests"]]
    assert len(ids) == len(set(ids)) == TOTAL, "every collected test appears exactly once"
    assert report["summary"]["passed"] == TOTAL == report["summary"]["total"], report["summary"]
    assert report["status"] == "finished" and report["exit_code"] == 0
    return report


def _ctrl_c_leaves_nothing(running: Any, tmpdir: Path) -> str:
    """Stop farm up as a user does; assert it exits 0 and leaves no process and nothing in its
    TMPDIR (no pymp-* dir, no cluster dir); return everything it printed."""
    everything = [psutil.Process(running.proc.pid), *psutil.Process(running.proc.pid).children(recursive=True)]
    running.proc.send_signal(signal.SIGINT)
    assert running.proc.stdout is not None
    output = running.proc.stdout.read()  # up to its exit
    running.proc.stdout.close()
    assert running.proc.wait(timeout=60) == 0, output
    _, alive = psutil.wait_procs(everything, timeout=15)
    assert not alive, f"left running: {[p.pid for p in alive]}"
    assert sorted(p.name for p in tmpdir.iterdir()) == [], "farm up left files in its TMPDIR"
    return output


def test_a_worker_killed_under_farm_up_comes_back_and_every_test_counts_once(farm_up, tmp_path: Path) -> None:
    tmpdir = _private_tmp(tmp_path)
    running = farm_up("--workers", "2", "--slots", "1", env={**QUICK, "TMPDIR": str(tmpdir)})
    try:
        suite_id = submit_no_wait(running.broker, copy_fixture("slow", tmp_path))
        role, victim = _busy_worker(running)
        argv = victim.cmdline()
        victim.kill()  # kill -9 of the worker's main process only, as a user does
        new = _came_back(running, role, victim.pid)
        assert new.cmdline() == argv, "started again as it was (same name, cache dir, options)"
        report = _every_test_once(running.broker, suite_id, tmp_path)
        lost = [a for a in report["assignments"] if a["state"] == "lost"]
        assert lost, f"the killed worker's attempt was not recorded as lost: {report['assignments']}"
        for attempt in lost:  # ... and ran again
            assert any(a["id"] == attempt["id"] and a["attempt"] == attempt["attempt"] + 1 and a["state"] == "done"
                       for a in report["assignments"])
        assert running.proc.poll() is None, "farm up exited"
        assert set(_members(running)) == {"redis", "coordinator", "worker-0", "worker-1", "flower"}
    finally:
        output = _ctrl_c_leaves_nothing(running, tmpdir)
    assert f"farm: {role} exited (killed by SIGKILL); restarting in 1s (restart 1)" in output
    assert f"farm: {role} restarted (pid {new.pid})" in output


def test_the_coordinator_killed_under_farm_up_comes_back_and_the_suite_completes(farm_up, tmp_path: Path) -> None:
    tmpdir = _private_tmp(tmp_path)
    running = farm_up("--workers", "1", "--slots", "2", env={**QUICK, "TMPDIR": str(tmpdir)})
    try:
        suite_id = submit_no_wait(running.broker, copy_fixture("slow", tmp_path))
        _wait_for_progress(running.broker, suite_id, 6)
        victim = _members(running)["coordinator"]
        victim.kill()
        _came_back(running, "coordinator", victim.pid)
        _every_test_once(running.broker, suite_id, tmp_path)
        assert running.proc.poll() is None, "farm up exited"
    finally:
        output = _ctrl_c_leaves_nothing(running, tmpdir)
    assert "farm: coordinator exited (killed by SIGKILL); restarting in 1s (restart 1)" in output


def test_redis_killed_under_farm_up_comes_back_on_its_port_and_loses_no_test(farm_up, tmp_path: Path) -> None:
    tmpdir = _private_tmp(tmp_path)
    running = farm_up("--workers", "1", "--slots", "2", env={**QUICK, "TMPDIR": str(tmpdir)})
    try:
        suite_id = submit_no_wait(running.broker, copy_fixture("slow", tmp_path))
        _wait_for_progress(running.broker, suite_id, 6)
        victim = _members(running)["redis"]
        victim.kill()  # up to a second of writes lost (appendfsync everysec): the farm recovers them
        _came_back(running, "redis", victim.pid)
        _every_test_once(running.broker, suite_id, tmp_path)  # same broker URL: the same port
        assert running.proc.poll() is None, "farm up exited"
    finally:
        output = _ctrl_c_leaves_nothing(running, tmpdir)
    assert "farm: redis exited (killed by SIGKILL); restarting in 1s (restart 1)" in output


def _flower_workers(running: Any, refresh: bool = True) -> set[str]:
    url = f"http://127.0.0.1:{running.flower_port}/api/workers" + ("?refresh=1" if refresh else "")
    with urllib.request.urlopen(url, timeout=30) as response:
        return set(json.loads(response.read()))


def _expected_names(running: Any, workers: int) -> set[str]:
    host = os.uname().nodename
    return {f"farm-coordinator@{host}", *(f"farm-default-{i}-{running.proc.pid}@{host}" for i in range(workers))}


def test_flower_killed_under_farm_up_comes_back_and_lists_the_workers(farm_up, tmp_path: Path) -> None:
    tmpdir = _private_tmp(tmp_path)
    running = farm_up("--workers", "1", "--slots", "1", env={"TMPDIR": str(tmpdir)})
    try:
        victim = _members(running)["flower"]
        victim.kill()
        _came_back(running, "flower", victim.pid)
        deadline = time.monotonic() + 60
        listed: set[str] = set()
        while time.monotonic() < deadline and not _expected_names(running, 1) <= listed:
            try:
                listed = _flower_workers(running)
            except OSError:  # not listening yet
                pass
            # Not at once again: each look with refresh=1 broadcasts an inspect to every worker,
            # and a loop of them on a loaded machine keeps the new Flower busy answering.
            time.sleep(0.2)
        assert _expected_names(running, 1) <= listed, listed
        assert running.proc.poll() is None, "farm up exited"
    finally:
        output = _ctrl_c_leaves_nothing(running, tmpdir)
    assert "farm: flower exited (killed by SIGKILL); restarting in 1s (restart 1)" in output


@pytest.mark.parametrize("start", range(3))
def test_flower_lists_every_worker_as_soon_as_farm_up_says_it_is_ready(farm_up, start: int, tmp_path: Path) -> None:
    """Seen before: right after `farm up` was ready, Flower listed only the coordinator."""
    tmpdir = _private_tmp(tmp_path)
    running = farm_up("--workers", "2", "--slots", "1", env={"TMPDIR": str(tmpdir)})
    try:
        first = _flower_workers(running)  # the first look of a user who opens Flower now
        cached = _flower_workers(running, refresh=False)
    finally:
        _ctrl_c_leaves_nothing(running, tmpdir)
    assert _expected_names(running, 2) <= first, first
    assert _expected_names(running, 2) <= cached, cached


def test_the_embedded_farm_leaves_nothing_in_tmpdir(tmp_path: Path) -> None:
    """Its workers are killed once the suite has ended (a warm stop costs about a second); what
    they leave in their TMPDIR (multiprocessing's pymp-* dir) must go with the cluster."""
    tmpdir = _private_tmp(tmp_path)
    project = copy_fixture("correctness", tmp_path)
    result = farm("submit-suite", str(project), "--local-workers", "2", "--", *LEAN, "tests/test_params.py",
                  env={"TMPDIR": str(tmpdir)})
    assert result.returncode == 1, result.stderr  # the fixture's one failing test
    assert "1 failed, 13 passed" in result.stdout
    assert sorted(p.name for p in tmpdir.iterdir()) == []


def test_a_worker_killed_under_the_embedded_farm_comes_back_and_the_suite_passes(tmp_path: Path) -> None:
    tmpdir = _private_tmp(tmp_path)
    project = copy_fixture("slow", tmp_path)
    report_path = tmp_path / "r.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    proc = subprocess.Popen([FARM, "submit-suite", str(project), "--local-workers", "2", "--json", str(report_path),
                             "--", *LEAN, "tests"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**env, **QUICK, "TMPDIR": str(tmpdir)})
    try:
        deadline = time.monotonic() + 60
        victim = None
        while victim is None:
            assert time.monotonic() < deadline and proc.poll() is None, "no assignment ever started"
            for child in psutil.Process(proc.pid).children():
                try:
                    if "workers" in child.cmdline() and any(
                            runner_mode(c) == "run" for c in child.children(recursive=True)):
                        victim = child
                except psutil.Error:
                    continue
            time.sleep(0.1)
        victim.kill()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "farm: worker-0 exited (killed by SIGKILL); restarting in 1s (restart 1)" in err
    assert "40 passed" in out
    report = load_report(report_path)
    assert len({t["id"] for t in report["tests"]}) == len(report["tests"]) == TOTAL
    assert any(a["state"] == "lost" for a in report["assignments"]), report["assignments"]
    assert sorted(p.name for p in tmpdir.iterdir()) == []
