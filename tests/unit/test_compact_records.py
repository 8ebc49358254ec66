"""The compact forms of the per-test record path: the plugin's S/P lines, and a batch's record rows."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from farm.errors import ProtocolError
from farm.model import Assignment, RecordBatch, TestRecord, record_to_plain
from farm.outcomes import Outcome
from farm.protocol import decode, encode
from workers import records
from workers.attempt_loop import AttemptLoop, StartRunner

IDS = ["t.py::test_a", "t.py::test_b[1 2]", "t.py::test_\u00fc"]


# --- the plugin's compact lines -----------------------------------------------------------------


def test_a_start_marker_names_the_test_by_its_position() -> None:
    assert records.LineReader(IDS).read(b"S1 1700000000.25") == {"k": "start", "id": IDS[1], "t": 1700000000.25}


def test_a_pass_line_is_the_record_its_json_test_line_gives() -> None:
    setup, call, teardown = 0.000123, 0.0045678901234, 7.5e-05
    obj = records.LineReader(IDS).read(f"P2 {setup!r} {call!r} {teardown!r}".encode())
    assert obj == {"k": "pass", "id": IDS[2], "s": [setup, call, teardown]}
    old = {"k": "test", "id": IDS[2], "t": 1700.5, "duration_s": 0.0 + setup + call + teardown,
           "phases": {"setup": {"cat": "", "s": setup}, "call": {"cat": "passed", "s": call},
                      "teardown": {"cat": "", "s": teardown}}, "sections": []}
    assert records.passed_record(IDS[2], 1700.5, *obj["s"]) == records.test_record(old)


def test_json_lines_are_still_read() -> None:
    line = {"k": "start", "id": "x.py::t", "t": 2.0}
    assert records.LineReader(IDS).read(json.dumps(line).encode()) == line


@pytest.mark.parametrize("raw", [b"S", b"S1", b"S3 1.0", b"S-1 1.0", b"Sx 1.0", b"S1 nan", b"S1 inf", b"S1 1.0 2.0",
                                 b"P0 1 2", b"P0 1 2 3 4", b"P0 1 two 3", b"P9 1 2 3", b"P 1 2 3", b"S1  1.0"])
def test_a_malformed_compact_line_is_none(raw: bytes) -> None:
    assert records.LineReader(IDS).read(raw) is None


@given(st.binary(max_size=40))
def test_reading_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    obj = records.LineReader(IDS).read(raw)
    assert obj is None or isinstance(obj, dict)


# --- a batch's record rows ----------------------------------------------------------------------

RECORDS = (
    TestRecord(IDS[0], Outcome.PASSED, 0.5, started_at=1700.0, setup_s=0.25, call_s=0.2, teardown_s=0.05),
    TestRecord(IDS[1], Outcome.FAILED, 1.25, "call", "assert 1 == 2\nmore", "E  assert\n", (("Captured stdout", "hi"),),
               1701.0, 0.1, 1.0, 0.15),
    TestRecord(IDS[2], Outcome.PASSED, 0.0, ran_as="t.py::test_\u00fc[now]"),
    TestRecord(IDS[0], Outcome.PASSED, 0.0, "teardown"),  # not a plain pass: its phase says otherwise
    TestRecord(IDS[1], Outcome.SKIPPED, 0, "setup", "no db"),
)
BATCH = RecordBatch("s-1", "s-1-a000", 2, "w", "local:h", RECORDS)


def test_a_batch_round_trips() -> None:
    assert decode(encode(BATCH), RecordBatch) == BATCH


def test_a_plain_pass_travels_as_a_short_row() -> None:
    body = msgpack.unpackb(encode(BATCH), raw=False)
    assert body["v"] == 2
    assert [len(row) for row in body["records"]] == [6, 12, 12, 12, 12]


def test_a_version_1_batch_with_records_as_maps_still_decodes() -> None:
    body = {"v": 1, "t": "records", "suite_id": "s-1", "assignment_id": "s-1-a000", "attempt": 2, "worker": "w",
            "node": "local:h", "records": [record_to_plain(r) for r in RECORDS]}
    assert decode(msgpack.packb(body, use_bin_type=True), RecordBatch) == BATCH


@pytest.mark.parametrize("row, why", [
    ([IDS[0], 0.5, 1.0, 0.1, 0.2], "has 5 fields"),
    ([IDS[0], "0.5", 1.0, 0.1, 0.2, 0.1], "duration_s must be a number"),
    ([7, 0.5, 1.0, 0.1, 0.2, 0.1], "test_id must be a string"),
    ([IDS[0], "exploded", 0.0, "call", "", "", [], 0.0, 0.0, 0.0, 0.0, ""], "outcome must be a known outcome"),
    ([IDS[0], "failed", 0.0, "call", "", "", [["only-a-name"]], 0.0, 0.0, 0.0, 0.0, ""], "sections must be"),
])
def test_a_malformed_row_is_one_protocol_error(row: list[Any], why: str) -> None:
    body = msgpack.unpackb(encode(BATCH), raw=False)
    body["records"] = [row]
    with pytest.raises(ProtocolError, match=why) as info:
        decode(msgpack.packb(body, use_bin_type=True), RecordBatch)
    assert "\n" not in str(info.value)


# --- the attempt fed compact lines ---------------------------------------------------------------


def test_compact_lines_through_an_attempt_keep_crash_blame_and_restart_positions() -> None:
    ids = ("t.py::a", "t.py::b", "t.py::c")
    loop = AttemptLoop(Assignment("s", "s-a000", 1, "d", (), ids), "w")
    assert loop.begin(100.0, canceled=False, stop_reason="") == StartRunner(ids, 1)
    loop.runner_started(100.0)
    reader = records.LineReader(ids)
    sent = [loop.line(reader.read(raw) or {}, 102.0) for raw in (b"S0 100.5", b"P0 0.25 0.5 0.125", b"S1 101.5")]
    assert sent[0] is None and sent[2] is None
    assert sent[1] is not None and (sent[1].test_id, sent[1].started_at) == ("t.py::a", 100.5)
    step = loop.runner_exited(-11, 103.5, _Quiet(), stopping=False, stop_reason=lambda: "")
    (crashed,) = step.records
    assert (crashed.test_id, crashed.outcome, crashed.started_at) == ("t.py::b", Outcome.CRASHED, 101.5)
    assert step.then == StartRunner(("t.py::c",), 2)
    # The restart's runner numbers its tests afresh: position 0 is now t.py::c.
    loop.runner_started(104.0)
    reader = records.LineReader(step.then.test_ids)
    loop.line(reader.read(b"S0 104.5") or {}, 105.0)
    record = loop.line(reader.read(b"P0 0.25 0.5 0.125") or {}, 105.0)
    assert record == TestRecord("t.py::c", Outcome.PASSED, 0.875, "call", started_at=104.5, setup_s=0.25,
                                call_s=0.5, teardown_s=0.125)


class _Quiet:
    def output_tail(self, limit: int = 4000) -> str:
        return ""

    def stack_dump(self) -> str:
        return ""
