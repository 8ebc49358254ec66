"""The farm CLI as a user runs it: the embedded default, a running farm, and every bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from support.helpers import FARM, LEAN, assert_nothing_left_of, copy_fixture, farm, need

from farm import signing
from farm.cluster import free_port
from farm.report.schema import load_report


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """Bad input gets exactly one line on stderr, and no traceback anywhere."""
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- the embedded default ----------------------------------------------------------------


def test_embedded_farm_runs_the_suite_and_leaves_nothing(tmp_path: Path) -> None:
    project = copy_fixture("correctness", tmp_path)
    before = set(Path(tempfile.gettempdir()).glob("farm-cluster-*"))
    report_path, junit_path = tmp_path / "out.json", tmp_path / "out.xml"
    result = farm("submit-suite", str(project), "--local-workers", "2", "--json", str(report_path),
                  "--junit-xml", str(junit_path), "--", *LEAN, "tests/test_params.py", "tests/test_outcomes.py")
    assert result.returncode == 1, result.stderr
    report = load_report(report_path)
    assert report["status"] == "finished" and report["exit_code"] == 1
    assert report["summary"]["total"] == 25  # 14 in test_params.py, 11 in test_outcomes.py
    assert junit_path.read_bytes().startswith(b"<?xml")
    assert re.search(r"=+ \d+ failed, \d+ passed.* in [\d.]+s =+$", result.stdout.rstrip())
    assert set(Path(tempfile.gettempdir()).glob("farm-cluster-*")) == before


def test_submit_suite_console_script_is_the_same_command(tmp_path: Path) -> None:
    project = copy_fixture("collect_error", tmp_path)
    (project / "tests" / "test_broken.py").unlink()
    script = str(Path(FARM).parent / "submit-suite")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    result = subprocess.run([script, str(project), "--local-workers", "1", "--", *LEAN, "tests"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "2 passed" in result.stdout


def test_embedded_farm_uses_the_given_python(tmp_path: Path) -> None:
    project = copy_fixture("empty", tmp_path)
    (project / "tests" / "test_which.py").write_text(
        "import sys\n\ndef test_interpreter():\n    assert sys.executable.endswith('python-marker')\n")
    # A venv of our own whose interpreter is called python-marker (the symlink keeps its name in
    # sys.executable) and whose site-packages are farm's: runners drop PYTHONPATH, so a bare symlink
    # would see only the base interpreter's packages (which have no pytest on Debian's python3).
    venv = Path(FARM).parent.parent
    own = tmp_path / "marker-venv"
    (own / "bin").mkdir(parents=True)
    shutil.copyfile(venv / "pyvenv.cfg", own / "pyvenv.cfg")
    (own / "lib").symlink_to(venv / "lib")
    marker = own / "bin" / "python-marker"
    marker.symlink_to(os.path.realpath(venv / "bin" / "python"))
    result = farm("submit-suite", str(project), "--local-workers", "1", "--python", str(marker), "--", *LEAN,
                  "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_python_without_pytest_is_an_error_that_says_so_not_no_tests(tmp_path: Path) -> None:
    project = copy_fixture("empty", tmp_path)
    (project / "tests" / "test_one.py").write_text("def test_one():\n    pass\n")
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    result = farm("submit-suite", str(project), "--local-workers", "1", "--python", str(bare / "bin" / "python"),
                  "--", *LEAN, "tests")
    out = result.stdout + result.stderr
    assert result.returncode == 3, out  # it was 5, "no tests ran", with no word of why
    assert "No module named pytest" in out
    assert "Traceback" not in result.stderr


# --- bad input: one line, a documented exit code -----------------------------------------


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = farm("submit-suite", str(tmp_path / "nope"))
    assert result.returncode == 4
    assert "no such project directory" in _one_line_error(result)


def test_file_instead_of_directory_is_a_usage_error(tmp_path: Path) -> None:
    f = tmp_path / "file.py"
    f.write_text("x = 1\n")
    result = farm("submit-suite", str(f))
    assert result.returncode == 4
    assert "not a directory" in _one_line_error(result)


def test_bundle_over_the_cap_is_a_usage_error(tmp_path: Path) -> None:
    project = copy_fixture("empty", tmp_path)
    (project / "blob.bin").write_bytes(os.urandom(200_000))
    result = farm("submit-suite", str(project), env={"FARM_MAX_BUNDLE_MB": "0.1"})
    assert result.returncode == 4
    assert "bundles to more than" in _one_line_error(result)


def test_unreachable_broker_is_a_usage_error(tmp_path: Path) -> None:
    project = copy_fixture("empty", tmp_path)
    result = farm("submit-suite", str(project), "--broker", f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 4
    assert "cannot reach the broker" in _one_line_error(result)


def test_unreachable_broker_from_the_environment_too(tmp_path: Path) -> None:
    result = farm("status", "s-1", env={"FARM_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert result.returncode == 4
    assert "cannot reach the broker" in _one_line_error(result)


def test_unsupported_broker_url_is_a_usage_error(tmp_path: Path) -> None:
    project = copy_fixture("empty", tmp_path)
    result = farm("submit-suite", str(project), "--broker", "amqp://guest@127.0.0.1//")
    assert result.returncode == 4
    assert "unsupported broker URL" in _one_line_error(result)


@pytest.mark.parametrize("args", [
    ["submit-suite"],
    ["submit-suite", ".", "--dist", "each"],
    ["submit-suite", ".", "--local-workers", "0"],
    ["submit-suite", ".", "--no-such-option"],
    ["submit-suite", ".", "--test-timeout", "soon"],
    ["no-such-command"],
    ["status"],
])
def test_bad_options_are_usage_errors(args: list[str]) -> None:
    result = farm(*args)
    assert result.returncode == 4
    assert _one_line_error(result).startswith("farm: error:")


def test_no_wait_without_a_farm_is_a_usage_error(tmp_path: Path) -> None:
    result = farm("submit-suite", str(copy_fixture("empty", tmp_path)), "--no-wait")
    assert result.returncode == 4
    assert "--no-wait needs a running farm" in _one_line_error(result)


def test_report_into_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = farm("submit-suite", str(copy_fixture("empty", tmp_path)), "--junit-xml", str(tmp_path / "no" / "x.xml"))
    assert result.returncode == 4
    assert "no such directory" in _one_line_error(result)


def test_client_commands_without_a_farm_are_usage_errors() -> None:
    for command in ("status", "results", "cancel"):
        result = farm(command, "s-123")
        assert result.returncode == 4
        assert "no farm to ask" in _one_line_error(result)


# --- against a running farm (farm up) ----------------------------------------------------


def test_unknown_suite_ids_are_usage_errors(running_farm) -> None:
    for command in ("status", "results", "cancel"):
        result = farm(command, "s-does-not-exist", "--broker", running_farm.broker)
        assert result.returncode == 4
        assert "no suite" in _one_line_error(result)


def test_no_wait_then_status_then_results(running_farm, tmp_path: Path) -> None:
    project = copy_fixture("correctness", tmp_path)
    env = {"FARM_BROKER_URL": running_farm.broker}
    submitted = farm("submit-suite", str(project), "--no-wait", "--", *LEAN, "tests/test_params.py", env=env)
    assert submitted.returncode == 0, submitted.stderr
    suite_id = submitted.stdout.strip()
    assert re.fullmatch(r"s-\d{8}-\d{6}-[0-9a-f]{8}", suite_id)
    status = farm("status", suite_id, env=env)
    assert status.returncode == 0 and status.stdout.startswith(f"{suite_id}: ")
    json_path = tmp_path / "r.json"
    results = farm("results", suite_id, "--json", str(json_path), env=env)
    assert results.returncode == 1  # test_fail_one[1] fails
    report = load_report(json_path)
    assert report["suite_id"] == suite_id and report["summary"]["failed"] == 1
    final = farm("status", suite_id, env=env)
    assert "finished" in final.stdout and "exit code 1" in final.stdout


def test_cancel_stops_the_suite_and_reports_not_run(running_farm, tmp_path: Path) -> None:
    project = copy_fixture("slow", tmp_path)
    env = {"FARM_BROKER_URL": running_farm.broker}
    submitted = farm("submit-suite", str(project), "--no-wait", "--", *LEAN, "tests", env=env)
    suite_id = submitted.stdout.strip()
    deadline = time.monotonic() + 60
    while "running" not in farm("status", suite_id, env=env).stdout:
        assert time.monotonic() < deadline, "the suite never started running"
        time.sleep(0.3)
    canceled_at = time.monotonic()
    assert farm("cancel", suite_id, env=env).returncode == 0
    json_path = tmp_path / "r.json"
    results = farm("results", suite_id, "--json", str(json_path), env=env)
    assert results.returncode == 2
    assert time.monotonic() - canceled_at < 20
    report = load_report(json_path)
    assert report["status"] == "canceled"
    summary = report["summary"]
    assert summary["not_run"] > 0 and summary["total"] == 40
    assert summary["passed"] + summary["not_run"] == 40
    assert "Interrupted: suite canceled" in results.stdout
    assert_nothing_left_of(suite_id)  # the runners that were stopped, and anything they started


def test_flower_lists_the_farm_workers(running_farm) -> None:
    url = f"http://127.0.0.1:{running_farm.flower_port}/api/workers?refresh=1"
    deadline = time.monotonic() + 30
    workers: dict[str, object] = {}
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                workers = json.loads(response.read())
        except OSError:
            pass
        if any(name.startswith("farm-default-") for name in workers):
            break
        time.sleep(0.5)
    assert any(name.startswith("farm-default-") for name in workers), workers
    assert any(name.startswith("farm-coordinator@") for name in workers), workers


def test_flower_refuses_to_listen_beyond_loopback_without_auth() -> None:
    result = farm("up", "--flower", "--flower-address", "0.0.0.0")
    assert result.returncode == 4
    assert "only with --flower-auth" in _one_line_error(result)


def test_second_run_splits_by_recorded_durations(running_farm, tmp_path: Path) -> None:
    project = copy_fixture("slow", tmp_path)
    env = {"FARM_BROKER_URL": running_farm.broker}
    reports = []
    for run in range(2):
        path = tmp_path / f"r{run}.json"
        result = farm("submit-suite", str(project), "--project", "history-check", "--json", str(path), "--",
                      *LEAN, "tests", "-k", "test_sleeps[1] or test_sleeps[2] or test_sleeps[3]", env=env)
        assert result.returncode == 0, result.stderr
        reports.append(load_report(path))
    # Durations were recorded by the first run: the second assignment plan carries expected times.
    assert all(t["duration_s"] >= 0.5 for t in reports[0]["tests"])
    assert reports[1]["summary"]["passed"] == 3


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupting_the_embedded_farm_tears_everything_down(tmp_path: Path, sig: signal.Signals) -> None:
    project = copy_fixture("slow", tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    before = set(Path(tempfile.gettempdir()).glob("farm-cluster-*"))  # other farms (farm up) may be running
    proc = subprocess.Popen([FARM, "submit-suite", str(project), "--local-workers", "2", "--", *LEAN, "tests"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not [p for p in Path(tempfile.gettempdir()).glob("farm-cluster-*/worker-0/runs/*")
               if p.parents[2] not in before]:
        assert time.monotonic() < deadline and proc.poll() is None, "no assignment ever started"
        time.sleep(0.1)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the embedded farm has no processes"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"left running: {[p.cmdline()[:3] for p in alive]}"
    assert set(Path(tempfile.gettempdir()).glob("farm-cluster-*")) == before


@pytest.mark.parametrize(("args", "message"), [
    (("--backend", "ssh"), "--backend ssh needs --hosts FILE"),
    (("--backend", "ssh", "--hosts", "/nonexistent/hosts.toml"), "cannot read the hosts file"),
    (("--hosts", "/etc/hosts"), "--hosts is for --backend ssh"),
])
def test_a_worker_with_a_bad_backend_setup_is_a_usage_error(args: tuple[str, ...], message: str) -> None:
    result = farm("worker", "--broker", "redis://127.0.0.1:1/0", *args)
    assert result.returncode == 4
    assert message in _one_line_error(result)


def test_a_libvirt_worker_whose_vms_cannot_boot_says_why_and_never_consumes(tmp_path: Path) -> None:
    need(os.path.exists("/var/run/libvirt/libvirt-sock"), "libvirtd is not running (bash .ci/libvirt-setup)")
    image = tmp_path / "broken-image"
    image.mkdir()
    for name in ("base.qcow2", "vmlinuz", "initrd.img", "id_ed25519"):
        (image / name).write_bytes(b"")  # an empty disk: no VM can boot from it
    (image / "host_ed25519.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB farm-vm\n")
    (image / "image.json").write_text('{"inputs": "00"}')
    result = farm("worker", "--broker", "redis://127.0.0.1:1/0", "--backend", "libvirt", "--image", str(image),
                  "--cache-dir", str(tmp_path / "cache"), env={"FARM_SIGNING_KEY": signing.generate_secret()})
    assert result.returncode == 3
    assert "health check failed 3 times in a row, not consuming" in _one_line_error(result)


def test_status_without_a_suite_lists_the_workers_and_their_health(running_farm) -> None:
    result = farm("status", "--broker", running_farm.broker)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("farm-default-")]
    assert lines and all(line.endswith("backend local, 2 slots, ok") for line in lines), result.stdout
