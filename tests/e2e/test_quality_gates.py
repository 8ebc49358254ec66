"""Quality gates and quarantine through `farm submit-suite`, on the embedded farm and on `farm up`:
each gate passing and failing (exit code, the summary's lines, the JSON report's `gates`), the
duration-regression gate against the project's real run history, quarantine by list and by flake
rate (JSON, summary, JUnit XML, and the HTML page in Chromium)."""

from __future__ import annotations

import html
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from conftest import start_farm_up, stop_farm_up
from support.browser import dump_dom
from support.helpers import LEAN, copy_fixture, farm
from test_html_report import page_errors, suite_id_of

from farm.report.schema import load_report

FAILS = "tests/test_gates.py::test_fails_when_asked"
FLAKY = "tests/test_gates.py::test_flaky_when_asked"


def failure_banners(stdout: str) -> list[str]:
    """The titles of the FAILURES section's banners (`___ test_x [quarantined] ___`) in the summary."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if re.fullmatch(r"=+ FAILURES =+", line)), len(lines))
    titles = []
    for line in lines[start + 1:]:
        if line.startswith("="):  # the next section
            break
        if re.fullmatch(r"_+ .+ _+", line):
            titles.append(line.strip("_ "))
    return titles


class Runs:
    """Suites of the `gates` fixture project on embedded farms sharing one history (XDG_CACHE_HOME)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.project = copy_fixture("gates", tmp_path)
        self.env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
        self.n = 0

    def submit(self, *options: str, env: dict[str, str] | None = None, flaky: bool = False,
               code: int | None = None) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        """A suite with `options`; `flaky`: its flaky test fails once (a fresh marker directory)."""
        self.n += 1
        extra = dict(env or {})
        if flaky:
            marker = self.tmp / f"flaky-{self.n}"
            marker.mkdir()
            extra["FARMTEST_GATES_DIR"] = str(marker)
        report = self.tmp / f"r{self.n}.json"
        done = farm("submit-suite", str(self.project), "--local-workers", "2", "--json", str(report), *options,
                    "--", *LEAN, env={**self.env, **extra})
        assert "Traceback" not in done.stderr, done.stderr
        if code is not None:
            assert done.returncode == code, done.stdout + done.stderr
        return done, load_report(report)


def gates_of(report: dict[str, Any]) -> list[tuple[str, float, float | None, str]]:
    return [(g["gate"], g["limit"], g["value"], g["verdict"]) for g in report.get("gates") or ()]


def outcomes_of(report: dict[str, Any]) -> set[str]:
    return {t["outcome"] for t in report["tests"]}


def test_each_count_gate_passes_and_fails_through_submit_suite(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    # Every test passes (one of them flaky, --rerun-failures 1): the gates pass, exit 0.
    done, report = runs.submit("--min-pass-rate", "100", "--max-failures", "0", "--max-flaky", "1",
                               "--rerun-failures", "1", flaky=True, code=0)
    assert gates_of(report) == [("min-pass-rate", 100.0, 100.0, "passed"), ("max-failures", 0, 0, "passed"),
                                ("max-flaky", 1, 1, "passed")]
    assert "gate min-pass-rate: pass rate 100.0% >= 100%: PASSED" in done.stdout.splitlines()
    assert "gate max-flaky: 1 flaky <= 1: PASSED" in done.stdout.splitlines()
    assert "gate failed" not in done.stdout
    # The same with --max-flaky 0: every test passed, the gate alone makes it exit 1, said last.
    done, report = runs.submit("--max-flaky", "0", "--rerun-failures", "1", flaky=True, code=1)
    assert outcomes_of(report) == {"passed", "flaky"} and report["exit_code"] == 1
    assert gates_of(report) == [("max-flaky", 0, 1, "failed")]
    assert done.stdout.splitlines()[-1] == "gate failed: max-flaky: 1 flaky > 0"
    assert "gate max-flaky: 1 flaky > 0: FAILED" in done.stdout.splitlines()
    # One of 9 tests fails (8 of 9 pass: 88.9%): --max-failures 0 and --min-pass-rate 90 fail ...
    done, report = runs.submit("--max-failures", "0", "--min-pass-rate", "90", env={"FARMTEST_GATES_FAIL": "1"},
                               code=1)
    assert gates_of(report) == [("min-pass-rate", 90.0, 88.89, "failed"), ("max-failures", 0, 1, "failed")]
    assert done.stdout.splitlines()[-1] == ("gate failed: min-pass-rate: pass rate 88.9% < 90%; "
                                            "max-failures: 1 failing > 0")
    # ... --max-failures 1 and --min-pass-rate 85 pass: exit 1 all the same, for the failing test.
    done, report = runs.submit("--max-failures", "1", "--min-pass-rate", "85", env={"FARMTEST_GATES_FAIL": "1"},
                               code=1)
    assert gates_of(report) == [("min-pass-rate", 85.0, 88.89, "passed"), ("max-failures", 1, 1, "passed")]
    assert "gate failed" not in done.stdout


def test_the_duration_regression_gate_reads_the_projects_run_history(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    # No history yet: skipped, not failed.
    done, first = runs.submit("--max-duration-regression", "10", code=0)
    assert gates_of(first) == [("max-duration-regression", 10.0, None, "skipped")]
    assert "gate max-duration-regression: no earlier runs to compare with" in done.stdout
    _, second = runs.submit("--max-duration-regression", "10", code=0)
    assert second["gates"][0]["detail"].startswith("1 earlier comparable run, 3 needed")
    runs.submit(code=0)
    # Three earlier runs of the same pool and arguments: compared with their median, and a
    # generous limit passes.
    done, fourth = runs.submit("--max-duration-regression", "400", code=0)
    ((gate, _, value, verdict),) = gates_of(fourth)
    assert (gate, verdict) == ("max-duration-regression", "passed"), fourth["gates"]
    assert "of 3 runs (<= +400%)" in fourth["gates"][0]["detail"]
    history = farm("history", "gates", "--json", env=runs.env)
    assert history.returncode == 0 and history.stdout.count('"suite_id"') == 4, history.stdout
    # One test made to sleep 10 s, on a suite that takes a few: over +50% while a normal run takes
    # less than 20 s.
    walls = [r["duration_s"] for r in (first, second, fourth)]
    assert max(walls) < 20, walls  # the premise
    done, slow = runs.submit("--max-duration-regression", "50", env={"FARMTEST_GATES_SLEEP": "10"}, code=1)
    ((gate, limit, value, verdict),) = gates_of(slow)
    assert (gate, limit, verdict) == ("max-duration-regression", 50.0, "failed") and value is not None and value > 50
    assert outcomes_of(slow) == {"passed"}
    assert re.fullmatch(r"gate failed: max-duration-regression: wall [0-9.]+s is \+[0-9.]+% against the median "
                        r"[0-9.]+s of 4 runs \(> \+50%\)", done.stdout.splitlines()[-1]), done.stdout


def test_a_test_flaky_in_the_history_is_quarantined_by_its_flake_rate(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    runs.submit("--rerun-failures", "1", flaky=True, code=0)
    runs.submit(code=0)
    runs.submit("--rerun-failures", "1", flaky=True, code=0)
    # farm history shows the rate the quarantine reads: flaky in 2 of its 3 runs.
    history = farm("history", "gates", env=runs.env)
    assert history.returncode == 0 and FLAKY in history.stdout, history.stdout
    # Flaky again, with --strict-flaky and --max-flaky 0: quarantined (66.7% > 50%), it fails neither.
    done, report = runs.submit("--rerun-failures", "1", "--strict-flaky", "--max-flaky", "0",
                               "--quarantine-flake-rate", "50", flaky=True, code=0)
    assert report["quarantined"] == [{"test_id": FLAKY, "outcome": "flaky", "reason": "flake rate 66.7% > 50%"}]
    assert gates_of(report) == [("max-flaky", 0, 0, "passed")]
    assert f"QUARANTINED {FLAKY} - flaky (flake rate 66.7% > 50%)" in done.stdout.splitlines()
    # Above its rate (now 3 of 4 runs: 75%), it is not quarantined: --strict-flaky fails the suite.
    _, report = runs.submit("--rerun-failures", "1", "--strict-flaky", "--quarantine-flake-rate", "80", flaky=True,
                            code=1)
    assert "quarantined" not in report


def test_a_listed_quarantined_failure_passes_on_farm_up_in_every_report(tmp_path: Path) -> None:
    """On `farm up` (--broker): the failing test listed in --quarantine still runs and fails, the
    suite exits 0, and the JSON, summary, JUnit XML and HTML page say so; `farm results
    --from-events` gives the same JSON."""
    project = copy_fixture("gates", tmp_path)
    running = start_farm_up("--workers", "1", "--slots", "2",
                            env={"FARMTEST_GATES_FAIL": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")})
    try:
        paths = {k: tmp_path / f"q.{k}" for k in ("json", "xml", "html")}
        done = farm("submit-suite", str(project), "--broker", running.broker, "--quarantine", FAILS,
                    "--quarantine", "tests/test_gates.py::test_nope", "--max-failures", "0", "--min-pass-rate", "100",
                    "--json", str(paths["json"]), "--junit-xml", str(paths["xml"]), "--html", str(paths["html"]),
                    "--", *LEAN)
        assert done.returncode == 0, done.stdout + done.stderr
        report = load_report(paths["json"])
        assert {t["id"]: t["outcome"] for t in report["tests"]}[FAILS] == "failed"  # its real outcome
        assert report["summary"]["failed"] == 1 and report["exit_code"] == 0
        assert report["quarantined"] == [{"test_id": FAILS, "outcome": "failed", "reason": "listed"}]
        assert report["quarantine_unknown"] == ["tests/test_gates.py::test_nope"]
        assert gates_of(report) == [("min-pass-rate", 100.0, 100.0, "passed"), ("max-failures", 0, 0, "passed")]
        lines = done.stdout.splitlines()
        assert f"QUARANTINED {FAILS} - failed (listed)" in lines
        # Its failure is shown as pytest shows one, marked: its FAILURES banner and short-summary line.
        assert failure_banners(done.stdout) == ["test_fails_when_asked [quarantined]"], done.stdout
        assert any(line.startswith(f"FAILED {FAILS} [quarantined] - AssertionError: asked to fail")
                   for line in lines), done.stdout
        assert "farm: warning: --quarantine tests/test_gates.py::test_nope: no such test in the collection " \
               "(ignored)" in lines
        case = next(c for c in ET.parse(paths["xml"]).iter("testcase") if c.get("name") == "test_fails_when_asked")
        skipped = case.find("skipped")
        assert skipped is not None and skipped.get("type") == "farm.quarantined", ET.tostring(case)
        assert (skipped.get("message") or "").startswith("quarantined (listed): failed: ")
        suite = ET.parse(paths["xml"]).find("testsuite")
        assert suite is not None and suite.get("failures") == "0"

        rebuilt = tmp_path / "rebuilt.json"
        again = farm("results", suite_id_of(done.stderr), "--broker", running.broker, "--from-events",
                     "--json", str(rebuilt))
        assert again.returncode == 0, again.stdout + again.stderr
        assert rebuilt.read_bytes() == paths["json"].read_bytes()

        dom = dump_dom(paths["html"])
        assert page_errors(dom) == ""
        assert re.search(r'<tr data-gate="max-failures" data-verdict="passed">.*?PASSED', dom, re.S), dom[:2000]
        assert re.search(rf'<tr data-quarantined="{re.escape(html.escape(FAILS))}">.*?failed.*?listed', dom, re.S)
        assert 'data-unknown="tests/test_gates.py::test_nope"' in dom
        # The failure is marked where it is listed, in FAILURES and in the tests table, and no other test is.
        failure = re.search(rf'<details data-test="{re.escape(html.escape(FAILS))}"[^>]*>(.*?)</summary>', dom, re.S)
        assert failure and 'data-mark="quarantined"' in failure.group(1), dom[:3000]
        assert dom.count('data-mark="quarantined"') == 2

        # Not quarantined, the same test fails the suite (the farm's workers still fail it).
        plain = farm("submit-suite", str(project), "--broker", running.broker, "--max-failures", "0", "--", *LEAN)
        assert plain.returncode == 1, plain.stdout + plain.stderr
        assert plain.stdout.splitlines()[-1] == "gate failed: max-failures: 1 failing > 0"
        assert failure_banners(plain.stdout) == ["test_fails_when_asked"], plain.stdout
        assert "[quarantined]" not in plain.stdout
    finally:
        stop_farm_up(running.proc)
