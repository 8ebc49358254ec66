"""What Flower shows of farm's tasks: readable labels (never a secret) and no bookkeeping events."""

from __future__ import annotations

from typing import Any

from farm import signing
from farm.celery_app import (
    ASSIGNMENT_COMPLETED,
    RECORD_BATCH,
    RUN_ASSIGNMENT,
    SUITE_COLLECTED,
    make_app,
    send_assignment,
)
from farm.config import Settings
from farm.model import Assignment, Collection, Completion, RecordBatch, SuiteSpec, TestRecord
from farm.outcomes import Outcome
from farm.protocol import encode
from farm.task_labels import MAX_LABEL, label

SID = "s-20261201-090925-50ab4bfd"
SECRET = "--db-password=hunter2"
IDS = tuple(f"tests/test_a.py::test_{i}" for i in range(125))


def test_an_assignment_says_its_suite_attempt_test_count_and_first_tests() -> None:
    a = Assignment(SID, f"{SID}-a003", 2, "0" * 64, ("tests", SECRET), IDS)
    assert label(a) == (f"suite {SID} a003 attempt 2: 125 tests: tests/test_a.py::test_0, tests/test_a.py::test_1, "
                        "tests/test_a.py::test_2, ... (+122)")
    assert label(Assignment(SID, f"{SID}-r01", 1, "0" * 64, (), IDS[:1])) == \
        f"suite {SID} r01 attempt 1: 1 test: tests/test_a.py::test_0"


def test_every_message_gets_a_label_without_arguments_output_or_messages() -> None:
    spec = SuiteSpec(SID, "demo", "0" * 64, "default", "load", (SECRET,), 0.0)
    record = TestRecord("t.py::test_x", Outcome.FAILED, message=SECRET, longrepr=SECRET)
    labels = {
        "spec": label(spec),
        "collection": label(Collection(SID, "w1@h", 0, IDS, output=SECRET)),
        "batch": label(RecordBatch(SID, f"{SID}-a000", 1, "w1@h", "local:h", (record,) * 3)),
        "completion": label(Completion(SID, f"{SID}-a000", 1, "w1@h", "local:h", "done", 0, 1, 0, 3, SECRET)),
    }
    assert labels == {
        "spec": f"suite {SID} collect (project demo, pool default)",
        "collection": f"suite {SID} collected on w1@h: 125 tests (pytest exit 0)",
        "batch": f"suite {SID} a000 attempt 1 on w1@h: 3 records",
        "completion": f"suite {SID} a000 attempt 1 done on w1@h: 3 records, exit 0",
    }
    assert all(SECRET not in text and "hunter2" not in text for text in labels.values())


def test_a_label_is_bounded_even_for_huge_ids() -> None:
    a = Assignment(SID, f"{SID}-a000", 1, "0" * 64, (), tuple("t.py::test_" + "x" * 5000 for _ in range(3)))
    text = label(a)
    assert len(text) == MAX_LABEL and text.endswith("...")


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def send_task(self, name: str, **options: Any) -> None:
        self.calls.append((name, options))


def test_published_assignments_carry_the_label_as_argsrepr() -> None:
    app = _Recorder()
    a = Assignment(SID, f"{SID}-a003", 1, "0" * 64, (), IDS[:2])
    keyring = signing.Keyring(signing.Keys((signing.generate_secret().encode(),)))
    send_assignment(app, "default", a, keyring=keyring)  # type: ignore[arg-type]
    ((name, options),) = app.calls
    assert name == RUN_ASSIGNMENT and options["argsrepr"] == label(a) and options["kwargsrepr"] == "{}"
    assert keyring.open(RUN_ASSIGNMENT, options["args"][0]) == encode(a)  # signed, for that task
    assert options["queue"] == "farm.pool.default"


def test_bookkeeping_tasks_send_no_events_and_workers_no_task_sent_events() -> None:
    settings = Settings(broker_url="redis://127.0.0.1:1/0")
    coordinator = make_app(settings, coordinator=True)

    def handler(payload: bytes) -> None:
        return None

    quiet = {name: coordinator.task(name=name, shared=False)(handler) for name in
             (RECORD_BATCH, ASSIGNMENT_COMPLETED, SUITE_COLLECTED)}
    assert not quiet[RECORD_BATCH].send_events and not quiet[ASSIGNMENT_COMPLETED].send_events
    assert quiet[SUITE_COLLECTED].send_events, "the suite's own steps stay in Flower"
    assert coordinator.conf.worker_send_task_events and coordinator.conf.task_send_sent_event
    assert not make_app(settings, pools=("default",)).conf.task_send_sent_event
    assert make_app(settings).conf.task_send_sent_event  # the submitter's suite_submitted and cancel
