"""Messages forged by someone who can reach the broker, for real under `farm up`: a record batch
that fails tests still pending and `done` completions of attempts still running, in the exact
format a worker sends, unsigned or signed with a key not the farm's. The coordinator (and a
worker, for a forged assignment) drops each in one line; the suite's report is as if they had
never been sent."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgpack
import psutil
import redis
from support.helpers import farm, submit_no_wait
from support.services import wait_for

from farm import keys, signing
from farm.celery_app import ASSIGNMENT_COMPLETED, COORDINATOR_QUEUE, RECORD_BATCH, RUN_ASSIGNMENT, make_app, pool_queue
from farm.config import Settings
from farm.model import Assignment, Completion, RecordBatch, SuiteSpec, TestRecord
from farm.outcomes import Outcome
from farm.protocol import decode, encode

TESTS = 40  # two assignments of 20 (min_assignment_tests), one per slot
FORGED = "FORGED: this test never ran"


def _gated_project(root: Path, gate: Path) -> Path:
    """Tests that wait until `gate` exists: while it does not, every test is running or pending."""
    (root / "proj" / "tests").mkdir(parents=True)
    (root / "proj" / "tests" / "test_gated.py").write_text(
        "import os\nimport time\n\nimport pytest\n\n\n"
        f"@pytest.mark.parametrize('i', range({TESTS}))\n"
        "def test_waits_for_the_gate(i):\n"
        "    deadline = time.monotonic() + 300\n"
        f"    while not os.path.exists({str(gate)!r}):\n"
        "        assert time.monotonic() < deadline, 'the gate never opened'\n"
        "        time.sleep(0.05)\n")
    return root / "proj"


def _cluster_dir(broker: str) -> Path:
    """farm up's directory: where its coordinator runs (its log, its key file)."""
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = proc.info["cmdline"] or []
        if "coordinator" in cmdline and broker in cmdline and proc.info["cwd"]:
            return Path(proc.info["cwd"])
    raise AssertionError(f"no coordinator of {broker} found")


def test_forged_records_and_completions_are_dropped_and_the_suite_reports_only_what_ran(
        farm_up, tmp_path: Path) -> None:
    running = farm_up("--workers", "1", "--slots", "2")
    root = _cluster_dir(running.broker)
    gate = tmp_path / "gate"
    suite_id = submit_no_wait(running.broker, _gated_project(tmp_path, gate))
    store = redis.Redis.from_url(running.broker)
    app = make_app(Settings(broker_url=running.broker))
    try:
        def rows() -> list[dict]:
            return [msgpack.unpackb(d, raw=False) for d in store.hvals(keys.assignments(suite_id))]

        def all_running() -> bool:
            return bool(rows()) and all(store.exists(keys.lease(suite_id, keys.attempt_key(r["id"], r["attempt"])))
                                        for r in rows())

        wait_for(all_running, 120, "the suite's attempts did not start")
        (worker,) = (keys.text(w) for w in store.hkeys(keys.WORKERS))
        dead_before = store.llen(keys.DEAD_LETTERS)
        published = sorted((r["id"], r["attempt"]) for r in rows())
        now = time.time()
        forged: list[tuple[str, bytes]] = []
        for r in rows():
            batch = RecordBatch(suite_id, r["id"], r["attempt"], worker, "local", tuple(
                TestRecord(t, Outcome.FAILED, 0.1, message=FORGED) for t in r["test_ids"]))
            done = Completion(suite_id, r["id"], r["attempt"], worker, "local", "done", now, now, 0,
                              len(r["test_ids"]))
            forged += [(RECORD_BATCH, encode(batch)), (ASSIGNMENT_COMPLETED, encode(done))]
        wrong = signing.Keys((signing.generate_secret().encode(),))
        messages = forged + [(task, wrong.seal(task, payload)) for task, payload in forged]
        for task, data in messages:
            app.send_task(task, args=[data])  # routed to the coordinator's queue, as a worker's are

        def handled() -> bool:  # its tasks ack late: an empty queue and nothing unacked is all handled
            return not store.llen(COORDINATOR_QUEUE) and not store.hlen("farm.unacked.coordinator")

        wait_for(handled, 60, "the coordinator did not take the forged messages")
        status = farm("status", suite_id, "--broker", running.broker)
        assert status.stdout.startswith(f"{suite_id}: running, 0/{TESTS} tests done, 0 failed, "), (
            f"a forged message was taken for the farm's: {status.stdout}")

        # A forged assignment on the pool's queue: the worker drops it too (once a slot is free).
        spec = decode(store.hget(keys.suite(suite_id), "spec"), SuiteSpec)
        r = rows()[0]
        again = Assignment(suite_id, r["id"], r["attempt"] + 1, spec.bundle_digest, spec.pytest_args,
                           tuple(r["test_ids"]))
        queue = pool_queue("default")
        app.send_task(RUN_ASSIGNMENT, args=[encode(again)], queue=queue.name, routing_key=queue.routing_key)

        gate.touch()
        report_path = tmp_path / "report.json"
        result = farm("results", suite_id, "--broker", running.broker, "--json", str(report_path))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{TESTS} passed" in result.stdout
        report = json.loads(report_path.read_text())
        assert FORGED not in report_path.read_text()
        assert [t["outcome"] for t in report["tests"]] == ["passed"] * TESTS
        assert len({t["id"] for t in report["tests"]}) == TESTS
        # One run each (the compact form: no `attempts` list), in the attempts the farm published.
        assert not [t for t in report["tests"] if "attempts" in t], "a forged attempt was counted"
        assert sorted((a["id"], a["attempt"]) for a in report["assignments"]) == published

        wait_for(lambda: "unsigned farm.run_assignment message" in (root / "worker-0.log").read_text(), 60,
                 "the worker did not drop the forged assignment")
        assert "Traceback" not in (root / "worker-0.log").read_text()

        def dropped() -> list[str]:
            return [line for line in (root / "coordinator.log").read_text().splitlines()
                    if "dropped a message on farm.coordinator" in line]

        wait_for(lambda: len(dropped()) >= len(messages), 60, "the coordinator did not log every drop")
        log = (root / "coordinator.log").read_text()
        drops = dropped()
        assert len(drops) == len(messages), log
        assert sum("WARNING" in line for line in drops) == len(messages)
        for task in (RECORD_BATCH, ASSIGNMENT_COMPLETED):
            assert sum(f"unsigned {task} message" in line for line in drops) == len(rows())
            assert sum(f"{task} message signed with an unknown key {wrong.ids[0]}" in line
                       for line in drops) == len(rows())
        assert "Traceback" not in log
        letters = [json.loads(e) for e in store.lrange(keys.DEAD_LETTERS, 0, store.llen(keys.DEAD_LETTERS)
                                                       - dead_before - 1)]
        assert sorted(letter["queue"] for letter in letters) == sorted(
            [COORDINATOR_QUEUE] * len(messages) + [queue.name])
    finally:
        gate.touch()
        app.close()
        store.close()
    key_file = root / "signing.key"
    assert running.proc.stdout is not None
    assert running.proc.stdout.readline() == f"signing key: {key_file}\n"  # the line after `broker:`
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_a_service_with_no_key_or_a_key_file_open_to_others_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    broker = "redis://127.0.0.1:1/0"  # never reached: the key is checked first
    for service in ("coordinator", "worker"):
        result = farm(service, "--broker", broker, timeout=60)
        assert (result.returncode, result.stderr) == (4, f"farm {service}: error: no signing key: set "
                                                         "FARM_SIGNING_KEY_FILE to a file only this user can read, "
                                                         "holding a key made with `openssl rand -hex 32` "
                                                         "(docs/operations.md, Message signing)\n")
    key_file = signing.write_key_file(tmp_path / "key")
    key_file.chmod(0o644)
    for service in ("coordinator", "worker"):
        result = farm(service, "--broker", broker, "--signing-key-file", str(key_file), timeout=60)
        assert (result.returncode, result.stderr) == (4, f"farm {service}: error: signing key file {key_file} is "
                                                         f"open to others (mode 0644): chmod 600 {key_file}\n")
