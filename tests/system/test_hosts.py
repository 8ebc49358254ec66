"""A farm over two hosts (network namespaces), its workers reaching a password-protected Redis on
veth links: a suite spreads over both; a host cut off, or stalled, mid-assignment is taken as lost,
stops its runner as soon as it can tell, and its late records are fenced; the suite ends on the
other host with every test once."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import psutil
import pytest
from support.helpers import assert_nothing_left_of, need, netns_usable
from support.hosts import HostFarm, host_farm
from support.services import wait_for

from farm import keys, registry
from farm.report.schema import load_report

TESTS = 40  # two assignments of 20 (one per slot), each test 1 s
SLOTS = {"host1": 1, "host2": 1}
#: The longest a lost attempt's runner may go on once its worker can tell (lease 3 s, then TERM,
#: 3 s grace): far less than the ~18 s its tests would take if it ran on.
RUNNER_STOPPED_WITHIN_S = 10
CUT_S = 30
STALL_S = 20


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "tests").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "tests" / "test_hosts.py").write_text(
        "import time\nimport pytest\n\n\n"
        f"@pytest.mark.parametrize('i', range({TESTS}))\n"
        "def test_takes_a_second(i):\n    time.sleep(1.0)\n")
    return root


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[HostFarm]:
    why = netns_usable()
    need(not why, why)
    with host_farm(tmp_path / "farm", 2, SLOTS) as started:
        yield started


def _ran_on(farm: HostFarm, suite_id: str) -> dict[str, int]:
    """Test runs stored so far per host (the worker's name before its @)."""
    seen: dict[str, int] = {}
    for run in farm.test_runs(suite_id):
        host = str(run["worker"]).split("@")[0]
        seen[host] = seen.get(host, 0) + 1
    return seen


def _report(farm: HostFarm, suite_id: str, path: Path) -> dict:
    done = farm.farm("results", suite_id, "--json", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    _password_nowhere(farm, done.stdout, done.stderr, path.read_text())
    return load_report(path)


def _check_every_test_once_on_the_other_host(report: dict, lost_host: str) -> dict:
    """Every test once, passed; the lost attempt lost, and its tests counted from the other host."""
    ids = [t["id"] for t in report["tests"]]
    assert len(ids) == len(set(ids)) == TESTS
    assert report["summary"]["passed"] == TESTS, report["summary"]
    lost = [a for a in report["assignments"] if a["state"] == "lost"]
    assert len(lost) == 1 and lost[0]["worker"].startswith(f"{lost_host}@"), report["assignments"]
    moved = 0
    for test in report["tests"]:
        counted = [a for a in test["attempts"] if not a.get("fenced")]
        assert len(counted) == 1, test
        if counted[0]["assignment"] == lost[0]["id"] and counted[0]["attempt"] > lost[0]["attempt"]:
            assert not counted[0]["worker"].startswith(f"{lost_host}@"), test
            moved += 1
    assert moved, "no test of the lost attempt ran again"
    return lost[0]


def _password_nowhere(farm: HostFarm, *texts: str) -> None:
    for label in farm.procs:
        assert farm.password not in farm.output(label), f"the broker password is in {label}'s log"
    for text in texts:
        assert farm.password not in text


def _both_running(farm: HostFarm, suite_id: str) -> None:
    wait_for(lambda: all(_ran_on(farm, suite_id).get(h, 0) >= 2 for h in SLOTS), 90,
             "the suite did not run on both hosts")


@pytest.mark.parametrize("how", ["down", "silent"])
def test_a_suite_spreads_over_two_hosts_and_one_cut_off_mid_suite_is_stopped_and_fenced(
        farm: HostFarm, project: Path, tmp_path: Path, how: str) -> None:
    suite_id = farm.submit(project)
    _both_running(farm, suite_id)
    runners = farm.runners("host1")
    assert runners, "host1 runs no runner"
    farm.hosts[0].cut(how)
    cut_at = time.monotonic()
    try:
        # Cut off, the worker cannot renew its lease: once a lease period has gone by it takes
        # the attempt for lost and stops its runner, while still cut off.
        _, alive = psutil.wait_procs(runners, timeout=RUNNER_STOPPED_WITHIN_S)
        assert not alive, f"the cut-off host's runner ran on: {[p.cmdline() for p in alive]}"
        assert time.monotonic() - cut_at < CUT_S
        report = _report(farm, suite_id, tmp_path / "r.json")
        lost = _check_every_test_once_on_the_other_host(report, "host1")
        # Both hosts ran tests that count (the per-test worker of the report).
        workers = {a["worker"].split("@")[0] for t in report["tests"] for a in t["attempts"] if not a.get("fenced")}
        assert workers == {"host1", "host2"}
        assert not farm.runners("host1")
        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
    finally:
        farm.hosts[0].mend(how)
    assert "lapsed" in farm.output("host1"), farm.output("host1")[-3000:]
    # Back on the network, what it had not sent gets through and is fenced: counted nowhere.
    wait_for(lambda: any(r.get("fenced") and r["attempt"] == lost["attempt"] and r["assignment"] == lost["id"]
                         for r in farm.test_runs(suite_id)), 120, "no late record of the lost attempt was fenced")
    again = _report(farm, suite_id, tmp_path / "again.json")
    assert again["summary"] == report["summary"]
    assert_nothing_left_of(suite_id)
    # The cut worker did not hang on its dead connections: it announces itself and takes work again.
    store = farm.store()
    wait_for(lambda: {w.name.split("@")[0] for w in registry.alive(store, 10)} == set(SLOTS), 60,
             "the cut worker never announced itself again")
    two = [f"tests/test_hosts.py::test_takes_a_second[{i}]" for i in range(2)]
    after = _report(farm, farm.submit(project, *two), tmp_path / "after.json")
    assert after["summary"]["passed"] == 2
    assert {a["worker"].split("@")[0] for a in after["assignments"]} == {"host1", "host2"}, after["assignments"]
    _password_nowhere(farm)


def test_a_host_stalled_with_sigstop_stops_its_lost_attempt_when_continued(
        farm: HostFarm, project: Path, tmp_path: Path) -> None:
    suite_id = farm.submit(project)
    # Six tests in (of its 20): the other host is free again well before this one is continued, and
    # takes the lost attempt's tests; were the runner not stopped, it would run on for 14 s.
    wait_for(lambda: all(_ran_on(farm, suite_id).get(h, 0) >= 6 for h in SLOTS), 90,
             "the suite did not run on both hosts")
    runners = farm.runners("host1")
    assert runners, "host1 runs no runner"
    farm.signal_tree("host1", signal.SIGSTOP)
    try:
        # Meanwhile its lease lapses, and the coordinator moves its tests to a new attempt.
        wait_for(lambda: _lost(farm, suite_id), 60, "the stalled attempt was never taken as lost")
        time.sleep(STALL_S)
    finally:
        farm.signal_tree("host1", signal.SIGCONT)
    # Continued, the worker tells at once that a lease period went by: its runner stops.
    _, alive = psutil.wait_procs(runners, timeout=RUNNER_STOPPED_WITHIN_S)
    assert not alive, f"the stalled host's runner ran on: {[p.cmdline() for p in alive]}"
    report = _report(farm, suite_id, tmp_path / "r.json")
    _check_every_test_once_on_the_other_host(report, "host1")
    assert "lease" in farm.output("host1")
    assert_nothing_left_of(suite_id)
    _password_nowhere(farm)


def _lost(farm: HostFarm, suite_id: str) -> bool:
    attempts = farm.store().hvals(keys.assignments(suite_id))
    return any(msgpack.unpackb(a, raw=False)["state"] == "lost" for a in attempts)
