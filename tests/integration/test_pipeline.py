"""The farm's processes end to end through Celery: duplicates, hostile messages, pickle, unknown suites."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from pathlib import Path

import msgpack
import pytest
from kombu import Connection, Exchange, Producer
from support.helpers import FIXTURES, LEAN

from farm import signing
from farm.bundle import make_bundle
from farm.celery_app import ASSIGNMENT_COMPLETED, COORDINATOR_QUEUE, RECORD_BATCH, SUITE_COLLECTED, make_app
from farm.client import Client
from farm.cluster import LocalCluster
from farm.config import Settings
from farm.model import RecordBatch, TestRecord
from farm.outcomes import Outcome
from farm.protocol import encode


def _run_suite(cluster: LocalCluster, project: Path, *args: str, dist: str = "load") -> tuple[str, dict]:
    settings = Settings(broker_url=cluster.broker_url)
    client = Client(settings)
    try:
        bundle = make_bundle(project, settings.max_bundle_bytes)
        sid = client.submit(bundle, project=project.name, pool="default", dist=dist, pytest_args=(*LEAN, *args))
        client.wait(sid, lambda p: None, interval_s=0.1)
        return sid, client.report(sid)
    finally:
        client.close()


def _copy(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / name, dest)
    return dest


def _wait_until_handled(client: Client, queue: str, timeout: float = 30) -> None:
    """Until the queue is empty and nothing of it is unacknowledged: its tasks ack late, after they
    ran, so every message sent to it before has then been handled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not client.store.llen(queue) and not client.store.hlen("farm.unacked.coordinator"):
            return
        time.sleep(0.05)
    raise AssertionError(f"the messages on {queue} were not handled within {timeout:.0f}s")


def _wait_for_log(cluster: LocalCluster, name: str, needle: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = (cluster.root / f"{name}.log").read_text(errors="replace")
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} never appeared in {name}.log: {cluster.log_tail(name)}")


def test_a_batch_delivered_again_after_the_suite_ended_changes_nothing(cluster: LocalCluster,
                                                                       tmp_path: Path) -> None:
    sid, report = _run_suite(cluster, _copy("collect_error", tmp_path), "tests/test_good.py")
    assert report["summary"]["passed"] == 2
    assignment = report["assignments"][0]["id"]
    app = make_app(Settings(broker_url=cluster.broker_url))
    # Redeliver a batch that flips both tests to failed, twice, and a duplicate completion.
    flipped = RecordBatch(sid, assignment, 1, "intruder", "n", tuple(
        TestRecord(t["id"], Outcome.FAILED, 1.0) for t in report["tests"]))
    keyring = signing.Keyring.from_file(cluster.key_file)  # as a worker would sign it
    for _ in range(2):
        app.send_task(RECORD_BATCH, args=[keyring.seal(RECORD_BATCH, encode(flipped))])
    client = Client(Settings(broker_url=cluster.broker_url))
    try:
        _wait_until_handled(client, COORDINATOR_QUEUE)  # then they were merged (or refused): not before
        again = client.report(sid)
        assert client.progress(sid).failed == 0
        assert client.store.hgetall(f"farm:suite:{sid}:counts") == {b"passed": b"2"}
    finally:
        client.close()
    assert again == report


def test_hostile_payloads_are_rejected_and_the_coordinator_keeps_working(cluster: LocalCluster,
                                                                          tmp_path: Path) -> None:
    app = make_app(Settings(broker_url=cluster.broker_url))
    deep: list[object] = []
    for _ in range(200):
        deep = [deep]
    hostile = [
        b"\xc1\xc1 not msgpack",
        msgpack.packb({"v": 99, "t": "records"}),
        msgpack.packb({"v": 1, "t": "records", "suite_id": 5}),
        msgpack.packb(deep),
        msgpack.packb({"v": 1, "t": "records", "suite_id": "s-unknown", "assignment_id": "a", "attempt": 1,
                       "worker": "w", "node": "n", "records": []}),
    ]
    keyring = signing.Keyring.from_file(cluster.key_file)  # signed: past the signature, the decoder's checks
    for payload in hostile:
        for task in (RECORD_BATCH, SUITE_COLLECTED, ASSIGNMENT_COMPLETED):
            app.send_task(task, args=[keyring.seal(task, payload)])
    _wait_for_log(cluster, "coordinator", "records for unknown suite s-unknown dropped")
    log = _wait_for_log(cluster, "coordinator", "unsupported schema version 99")
    assert "not valid msgpack" in log and "nests deeper" in log
    # Still healthy: the next suite runs to the right result.
    _, report = _run_suite(cluster, _copy("collect_error", tmp_path), "tests/test_good.py")
    assert report["summary"]["passed"] == 2 and report["exit_code"] == 0


def test_pickle_messages_are_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    with Connection(cluster.broker_url) as conn:
        producer = Producer(conn.channel(), exchange=Exchange("farm", type="direct"), routing_key=COORDINATOR_QUEUE)
        # A pickle that would create a file if anyone unpickled it.
        producer.publish(pickle.dumps([[Exploit()], {}, {}]),
                         headers={"task": RECORD_BATCH, "id": "pickle-1", "lang": "py"},
                         content_type="application/x-python-serialize", content_encoding="binary",
                         declare=[])
    log = _wait_for_log(cluster, "coordinator", "Refusing to deserialize untrusted content of type pickle")
    assert "pickle" in log
    assert not marker.exists()


def test_workers_cache_bundles_by_digest(cluster: LocalCluster, tmp_path: Path) -> None:
    project = _copy("collect_error", tmp_path)
    bundle = make_bundle(project, 10 * 1024 * 1024)
    _run_suite(cluster, project, "tests/test_good.py")
    cached = list((cluster.root / "worker-0" / "bundles").glob("*.tar.gz"))
    assert bundle.digest in {p.name.split(".")[0] for p in cached}
    # No run directory is left behind once assignments end (they end just after the last record).
    runs = cluster.root / "worker-0" / "runs"
    deadline = time.monotonic() + 5
    while list(runs.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(runs.iterdir()) == []


@pytest.mark.parametrize("dist", ["load", "loadfile"])
def test_json_report_has_the_documented_fields(cluster: LocalCluster, tmp_path: Path, dist: str) -> None:
    # A project of its own: with the durations of an earlier run this small suite would be one
    # assignment (coordinator/splitting.py, small suites).
    project = tmp_path / f"correctness-{dist}"
    shutil.copytree(FIXTURES / "correctness", project)
    _, report = _run_suite(cluster, project, "tests", dist=dist)
    modules = {t["id"].split("::")[0] for t in report["tests"]}
    holders = {m: {a["id"] for a in report["assignments"] for t in a["tests"] if t.split("::")[0] == m}
               for m in modules}
    assert len(modules) > 1 and len(report["assignments"]) > 1, "one module or one assignment shows no split"
    if dist == "loadfile":
        # (a module skipped at collection is in no assignment)
        assert all(len(h) <= 1 for h in holders.values()), f"loadfile split a module: {holders}"
    assert report["schema"] == 2
    for key in ("suite_id", "status", "exit_code", "summary", "started_at", "finished_at", "duration_s", "tests",
                "assignments", "workers", "suspect_workers"):
        assert key in report
    assert set(report["summary"]) >= {"total", "passed", "failed", "error", "skipped", "xfailed", "xpassed"}
    test = report["tests"][0]
    assert set(test) >= {"id", "outcome", "duration_s", "message", "attempts", "crashed_on", "blame"}
    assert set(test["attempts"][0]) >= {"assignment", "attempt", "worker", "outcome", "duration_s", "started_at"}
    assignment = report["assignments"][0]
    assert set(assignment) >= {"id", "attempt", "worker", "node", "state", "tests", "started_at", "finished_at",
                               "message"}
    assert set(report["workers"][0]) == {"name", "host", "slots"}
    json.dumps(report)
