"""The same assignment delivered twice, for real, through the broker: run once, counted once."""

from __future__ import annotations

import time
from pathlib import Path

import msgpack
from support.helpers import LEAN, assert_nothing_left_of, copy_fixture, farm, running_cluster

from farm import keys, signing
from farm.celery_app import RUN_ASSIGNMENT, make_app, pool_queue
from farm.client import Client
from farm.cluster import ClusterSpec, LocalCluster
from farm.config import Settings
from farm.model import Assignment, SuiteSpec
from farm.protocol import decode, encode


def _drops(cluster: LocalCluster) -> int:
    return sum(cluster.log_tail(f"worker-{i}", 10**7).count("dropping a delivery") for i in (0, 1))


def test_an_assignment_delivered_again_runs_once_and_counts_once(tmp_path: Path) -> None:
    with running_cluster(ClusterSpec(workers=2, slots=1, loglevel="INFO")) as cluster:
        settings = Settings(broker_url=cluster.broker_url)
        client, app = Client(settings), make_app(settings)
        keyring = signing.Keyring.from_file(cluster.key_file)  # duplicates as the farm itself would send them
        try:
            submit = farm("submit-suite", str(copy_fixture("slow", tmp_path)), "--broker", cluster.broker_url,
                          "--no-wait", "--", *LEAN, "tests")
            suite_id = submit.stdout.strip()
            deadline = time.monotonic() + 60
            while client.progress(suite_id).status != "running":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            spec = decode(client.store.hget(keys.suite(suite_id), "spec"), SuiteSpec)
            rows = [msgpack.unpackb(d, raw=False) for d in client.store.hvals(keys.assignments(suite_id))]
            duplicates = [Assignment(suite_id, r["id"], r["attempt"], spec.bundle_digest, spec.pytest_args,
                                     tuple(r["test_ids"])) for r in rows]
            queue = pool_queue("default")

            def deliver_again() -> None:
                for a in duplicates:
                    app.send_task(RUN_ASSIGNMENT, args=[keyring.seal(RUN_ASSIGNMENT, encode(a))], queue=queue.name,
                                  routing_key=queue.routing_key)

            deliver_again()  # while the attempts run
            client.wait(suite_id, lambda p: None)
            report = client.report(suite_id)
            deliver_again()  # and after they ended
            deadline = time.monotonic() + 30
            while _drops(cluster) < 2 * len(duplicates):
                assert time.monotonic() < deadline, (
                    f"{_drops(cluster)} of {2 * len(duplicates)} duplicates dropped:\n"
                    + "\n".join(line for i in (0, 1) for line in cluster.log_tail(f"worker-{i}", 10**7).splitlines()
                                 if "farm.run_assignment" in line or "dropping" in line or "ERROR" in line))
                time.sleep(0.2)
            assert client.report(suite_id) == report
            ids = [t["id"] for t in report["tests"]]
            assert len(ids) == len(set(ids)) == 40 and report["exit_code"] == 0
            assert all(len([a for a in t["attempts"] if not a["fenced"]]) == 1 for t in report["tests"])
            assert_nothing_left_of(suite_id)
        finally:
            app.close()
            client.close()
        ids = [t["id"] for t in report["tests"]]
        assert len(ids) == len(set(ids)) == 40 and report["summary"]["passed"] == 40
        assert all(len(t["attempts"]) == 1 for t in report["tests"]), "a duplicate ran a test again"
