"""`--html FILE` through the CLI, opened in headless Chromium: the page renders with no script error,
its DOM holds every test id and every worker lane, and a screenshot of it is not blank."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from conftest import start_farm_up, stop_farm_up
from support.browser import dump_dom, png_colours, screenshot
from support.helpers import LEAN, copy_fixture, farm
from support.html_samples import page_report, with_everything

from farm.report.html import render_html
from farm.report.schema import load_report


def page_errors(dom: str) -> str:
    """What the page's own error collector caught (window.onerror, rejections, console.error), or
    a note that its script never finished rendering."""
    found = re.search(r'<pre id="farm-errors"[^>]*>(.*?)</pre>', dom, re.S)
    caught = html.unescape(found.group(1)) if found else "(no error collector in the page)"
    if 'data-rendered="1"' not in dom:
        caught += "\n(the page's script did not finish rendering)"
    return caught.strip()


def suite_id_of(stderr: str) -> str:
    found = re.search(r"farm: suite (\S+) ", stderr)
    assert found, stderr
    return found.group(1)


@pytest.fixture
def kinds(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    state = tmp_path / "state"
    state.mkdir()
    return copy_fixture("html_report", tmp_path), {"FARMTEST_HTML_DIR": str(state),
                                                   "XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_submit_suite_html_renders_every_test_and_lane_in_chromium(kinds: tuple[Path, dict[str, str]],
                                                                    tmp_path: Path) -> None:
    project, env = kinds
    out, report_json = tmp_path / "report.html", tmp_path / "report.json"
    done = farm("submit-suite", str(project), "--local-workers", "2", "--rerun-failures", "1",
                "--html", str(out), "--json", str(report_json), "--", *LEAN, env=env)
    assert done.returncode == 1, done.stdout + done.stderr  # the one real failure
    report = load_report(report_json)
    outcomes = {t["id"].rsplit("::", 1)[-1]: t["outcome"] for t in report["tests"]}
    assert outcomes["test_flaky_once"] == "flaky" and outcomes["test_skipped"] == "skipped"
    assert outcomes["test_fails_with_output"] == "failed" and outcomes["test_crashes_once"] == "passed"

    text = out.read_text()
    assert "http://" not in text and "https://" not in text  # nothing to fetch: it opens offline
    dom = dump_dom(out)
    assert page_errors(dom) == ""
    for test in report["tests"]:
        assert f'data-test="{html.escape(test["id"])}"' in dom, test["id"]
    for worker in report["workers"]:
        for slot in range(worker["slots"]):
            assert f'data-lane="{html.escape(worker["name"])}#{slot}"' in dom
    # The failure's output is text on the page: it neither closed the data's script nor made markup.
    assert "captured &lt;/script&gt;&lt;b&gt;bold&lt;/b&gt; line" in dom
    assert "<b>bold</b>" not in dom and "<b>not markup</b>" not in dom
    assert "Captured stdout call" in dom
    data = json.loads(html.unescape(re.search(r'<script type="application/json" id="farm-data">(.*?)</script>',
                                              dom, re.S).group(1)))  # type: ignore[union-attr]
    marks = {m for bar in data["bars"] for m in bar[6]}
    assert {"rerun", "crash-retry"} <= marks, marks

    png = screenshot(out, tmp_path / "report.png")
    colours = png_colours(png.read_bytes())
    background, count = colours.most_common(1)[0]
    assert len(colours) > 20, "a screenshot of one or two colours: nothing was drawn"
    assert sum(colours.values()) - count > 0.15 * sum(colours.values()), "the page is mostly blank"


def test_results_html_is_the_same_page_stored_or_rebuilt_from_the_event_log(kinds: tuple[Path, dict[str, str]],
                                                                            tmp_path: Path) -> None:
    """On a running farm (`farm up`): the page `submit-suite --html` wrote, `farm results --html` and
    `farm results --from-events --html` are one and the same file: the page is a function of the log."""
    project, env = kinds
    running = start_farm_up("--workers", "2", "--slots", "1", env=env)
    try:
        pages = [tmp_path / n for n in ("submit.html", "results.html", "events.html")]
        done = farm("submit-suite", str(project), "--broker", running.broker, "--rerun-failures", "1",
                    "--html", str(pages[0]), "--", *LEAN)
        assert done.returncode == 1, done.stdout + done.stderr
        suite = suite_id_of(done.stderr)
        for page, extra in ((pages[1], ()), (pages[2], ("--from-events",))):
            again = farm("results", suite, "--broker", running.broker, "--html", str(page), *extra)
            assert again.returncode == 1, again.stdout + again.stderr
        assert pages[0].read_bytes() == pages[1].read_bytes() == pages[2].read_bytes()
        dom = dump_dom(pages[2])
        assert page_errors(dom) == ""
        assert dom.count('data-lane="') == 2  # two workers of one slot each
        bad = farm("results", suite, "--broker", running.broker, "--html", str(tmp_path / "no" / "such.html"))
        assert bad.returncode == 4 and bad.stderr.count("\n") == 1 and "no such directory" in bad.stderr
    finally:
        stop_farm_up(running.proc)


def test_the_error_check_catches_a_page_whose_script_fails(tmp_path: Path) -> None:
    """The check above is not vacuous: a page with a script error, or one whose script throws before
    it renders, is caught."""
    good = render_html(page_report(), [])
    broken = tmp_path / "broken.html"
    broken.write_text(good.replace("</body>", "<script>window.noSuchFunction();</script></body>"))
    assert "noSuchFunction" in page_errors(dump_dom(broken))
    garbled = tmp_path / "garbled.html"
    garbled.write_text(good.replace('"tests":{"id":', '"tests":{"nothing":'))
    assert "did not finish rendering" in page_errors(dump_dom(garbled))
    fetching = tmp_path / "fetching.html"  # the policy blocks any load: loopback's discard port, never reached
    fetching.write_text(good.replace("</body>", '<img src="http://127.0.0.1:9/pixel.png"></body>'))
    assert "blocked by the page's policy" in page_errors(dump_dom(fetching))
    assert page_errors(dump_dom(_written(tmp_path / "good.html", good))) == ""


def test_optional_sections_render_when_the_report_has_them(tmp_path: Path) -> None:
    """Resources per assignment, leaks, failure analysis, gates and stages (other parts of the report
    add them): shown when present, absent otherwise."""
    full = dump_dom(_written(tmp_path / "full.html", render_html(with_everything(page_report()), [])))
    assert page_errors(full) == ""
    for section in ('id="resources"', 'id="leaks"', 'id="analysis"', 'id="gates"', 'id="stages"',
                    'id="quarantined"'):
        assert section in full, section
    assert "512.0 MiB" in full and "tests/t.py::test_leaky" in full and 'data-class="flaky"' in full
    # Each gate a row with its verdict as a pill; the quarantined test with its outcome and why.
    assert re.search(r'<tr data-gate="max-failures" data-verdict="failed">.*?FAILED.*?1 failing &gt; 0', full, re.S)
    assert re.search(r'data-gate="max-duration-regression" data-verdict="skipped">.*?SKIPPED.*?–.*?\+15%', full,
                     re.S)
    assert re.search(r'<tr data-quarantined="tests/t.py::test_fail">.*?failed.*?listed', full, re.S)
    assert 'data-unknown="tests/t.py::test_gone"' in full
    plain = dump_dom(_written(tmp_path / "plain.html", render_html(page_report(), [])))
    assert page_errors(plain) == ""
    for section in ('id="resources"', 'id="leaks"', 'id="analysis"', 'id="gates"', 'id="stages"',
                    'id="quarantined"'):
        assert section not in plain, section


def _written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
