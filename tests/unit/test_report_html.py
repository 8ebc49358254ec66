"""The HTML report's pure parts: lane packing, percentiles, the timeline's bars and marks, and the
page's data blob (escaped so that a test's output cannot close its script)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.html_samples import EVIL, page_events, page_report, with_everything

from farm.report.html import page_data, render_html
from farm.report.timeline import build_timeline, figures, pack_lanes, percentile

pytestmark = pytest.mark.unit

spans = st.lists(st.tuples(st.floats(0, 100), st.floats(0, 10)).map(lambda p: (p[0], p[0] + p[1])), max_size=40)


@given(spans, st.integers(1, 4))
def test_overlapping_attempts_of_one_worker_never_share_a_lane(items: list[tuple[float, float]], slots: int) -> None:
    lanes, count = pack_lanes(items, slots)
    assert count >= slots and all(0 <= k < count for k in lanes)
    for i, (s1, e1) in enumerate(items):
        for j, (s2, e2) in enumerate(items[:i]):
            if lanes[i] == lanes[j]:
                assert e1 <= s2 or e2 <= s1, (items[i], items[j])
    assert count <= max(slots, len(items))


def test_lanes_are_reused_once_an_attempt_ends() -> None:
    assert pack_lanes([(0, 2), (1, 3), (2, 4), (3, 5)], 1) == ([0, 1, 0, 1], 2)
    assert pack_lanes([(5, 6)], 3) == ([0], 3)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile([], 50) == 0.0 and percentile([3.0], 99) == 3.0


def test_figures_count_what_ran_over_the_wall() -> None:
    fig = figures(page_report())
    assert fig.ran == 5 and fig.throughput == pytest.approx(5 / 8.0)
    assert page_report()["tests"][fig.slowest[0]]["id"] == "tests/t.py::test_fail"


def test_timeline_marks_lost_fenced_and_rerun_attempts_from_the_log_and_states() -> None:
    tl = build_timeline(page_report(), page_events())
    bars = {(b.assignment, b.attempt): b for b in tl.bars}
    lost = bars[("s-1-a001", 1)]
    assert "lease-lost" in lost.marks and "fenced" in lost.marks
    assert lost.end == pytest.approx(2.5)  # no finish time: it ends where its lease was lost
    assert "rerun" in bars[("s-1-r01", 1)].marks
    assert bars[("s-1-a000", 1)].marks == []
    assert [lane for lane in tl.lanes] == [("w1@h", 0), ("w1@h", 1), ("w2@h", 0)]
    fenced = [s for s in tl.segments if s.fenced]
    assert len(fenced) == 1 and fenced[0].bar == tl.bars.index(lost)
    w1 = next(w for w in tl.workers if w.name == "w1@h")
    assert w1.utilization == pytest.approx((2.0 + 0.7 + 0.7) / (2 * 8.0))


def test_a_lost_attempt_is_marked_by_its_state_when_the_log_has_no_event() -> None:
    tl = build_timeline(page_report(), [])
    lost = next(b for b in tl.bars if b.state == "lost")
    assert lost.marks == ["lease-lost", "fenced"]


def test_overlapping_attempts_of_one_worker_get_a_lane_beyond_its_slots() -> None:
    report = page_report()
    report["workers"][0]["slots"] = 1
    report["assignments"][2]["started_at"] = report["assignments"][0]["started_at"]  # overlaps a000 on w1
    tl = build_timeline(report, [])
    w1 = [b.lane for b in tl.bars if b.worker == "w1@h"]
    assert len(set(w1[:2])) == 2 and tl.lanes[:2] == [("w1@h", 0), ("w1@h", 1)]


def test_test_output_cannot_close_the_data_script() -> None:
    page = render_html(page_report(), page_events())
    blob = re.search(r'<script type="application/json" id="farm-data">(.*?)</script>', page, re.S)
    assert blob is not None
    assert "<" not in blob.group(1) and ">" not in blob.group(1)
    data = json.loads(blob.group(1))
    assert data["details"]["1"]["longrepr"] == EVIL
    assert data["details"]["1"]["sections"] == [["Captured stdout call", "</script><b>out</b>\n"]]
    assert page.count("</script>") == page.count("<script")  # no early end of any script


def test_other_parts_fields_are_carried_only_when_present() -> None:
    plain = page_data(page_report(), [])
    assert not {"leaks", "analysis", "gates", "stages"} & plain.keys()
    assert all(bar[10] is None for bar in plain["bars"])
    full = page_data(with_everything(page_report()), [])
    assert full["leaks"][0]["test"] == "tests/t.py::test_leaky"
    assert full["analysis"]["classes"][1]["class"] == "flaky"
    assert full["bars"][0][10] == {"peak_rss_bytes": 512 * 2**20, "cpu_s": 1.25}


def test_the_page_keeps_only_the_small_events_it_reads_and_renders_the_same_from_them() -> None:
    """`--html` reads the log as it goes and keeps marks and ends only: a `records` event (whole
    records) is dropped, and the page is what the whole log gives."""
    from farm.events import Event, Kind
    from farm.report.timeline import timeline_events

    heavy = Event(Kind.RECORDS, 1.0, "s-1-a001", 1, "w2@h", "local:w2@h", "1 passed", {"c": ["x" * 1000]})
    ended = Event(Kind.ENDED, 2.0, "s-1-a001", 1, "w2@h", "local:w2@h", "done")
    log = [heavy, *page_events(), ended]
    kept = timeline_events(iter(log))
    assert heavy not in kept and kept == [*page_events(), ended]
    assert render_html(page_report(), kept) == render_html(page_report(), log)
