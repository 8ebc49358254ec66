"""The SSH backend against real sshd servers (paramiko, RejectPolicy): one on a loopback port,
one in a network namespace of our own. The runner path is the worker's own (run_assignment)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from support import sshd
from support.helpers import FIXTURES, need, netns_usable

from farm.bundle import make_bundle
from farm.config import Settings
from farm.errors import InfrastructureError
from farm.model import Assignment, Completion, Leak, RecordBatch
from farm.report.schema import load_report
from workers import runner
from workers.backends.base import RunRequest
from workers.backends.local import LocalBackend
from workers.backends.ssh import SSHBackend
from workers.backends.ssh_hosts import load_hosts


@dataclass
class Sink:
    batches: list[RecordBatch] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)

    def send_batch(self, batch: RecordBatch) -> None:
        self.batches.append(batch)

    def send_completion(self, completion: Completion) -> None:
        self.completions.append(completion)

    def outcomes(self) -> dict[str, str]:
        return {r.test_id: r.outcome.value for b in self.batches for r in b.records}


@dataclass
class Hosts:
    file: Path
    servers: list[sshd.SSHServer]
    workdir: Path


@pytest.fixture
def client_key(tmp_path: Path) -> Path:
    need(sshd.available(), "sshd (openssh-server) is not installed")
    return sshd.keygen(tmp_path / "client_ed25519")


def _hosts_file(tmp_path: Path, key: Path, servers: list[sshd.SSHServer], *, slots: int = 1) -> Hosts:
    workdir = tmp_path / "remote-runs"
    known = tmp_path / "known_hosts"
    known.write_text("".join(s.known_hosts_line() for s in servers))
    text = f'known_hosts = "{known}"\nkey = "{key}"\n' + "".join(
        s.toml(slots=slots, workdir=workdir) for s in servers)
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return Hosts(path, servers, workdir)


@pytest.fixture
def one_host(tmp_path: Path, client_key: Path) -> Iterator[Hosts]:
    with sshd.running_sshd(tmp_path / "h1", client_key.with_suffix(".pub")) as server:
        yield _hosts_file(tmp_path, client_key, [server])


def _bundle(tmp_path: Path, fixture: str) -> Path:
    bundle = make_bundle(FIXTURES / fixture, 64 * 1024 * 1024)
    path = tmp_path / f"{bundle.digest}.tar.gz"
    path.write_bytes(bundle.data)
    return path


def _run(backend: object, bundle: Path, test_ids: tuple[str, ...], tmp_path: Path, **extra: object) -> Sink:
    sink = Sink()
    a = Assignment("s", "s-a000", 1, "0" * 64, ("-p", "no:hypothesispytest", "-q"), test_ids, **extra)  # type: ignore[arg-type]
    runner.run_assignment(a, backend=backend, bundle=lambda digest: bundle, sink=sink,  # type: ignore[arg-type]
                          worker="w@h", settings=Settings(), is_canceled=lambda: False)
    return sink


def _collected(backend: object, bundle: Path) -> tuple[str, ...]:
    from farm.model import SuiteSpec

    spec = SuiteSpec("s", "p", "0" * 64, "default", "load", ("-p", "no:hypothesispytest", "tests"), time.time())
    return runner.collect_suite(spec, backend=backend, bundle=lambda d: bundle, worker="w@h",  # type: ignore[arg-type]
                                settings=Settings()).test_ids


def _nothing_under(path: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [p for p in psutil.process_iter(["cwd"]) if str(path) in (p.info["cwd"] or "")]
        if not left:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes left in {path}: {[p.pid for p in left]}")


def test_a_suite_run_over_ssh_gives_the_same_outcomes_as_the_local_backend(one_host: Hosts, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "correctness")
    backend = SSHBackend(load_hosts(one_host.file), scratch=tmp_path / "scratch")
    test_ids = _collected(backend, bundle)
    assert len(test_ids) > 30
    remote = _run(backend, bundle, test_ids, tmp_path)
    local = _run(LocalBackend(scratch=tmp_path / "local"), bundle, test_ids, tmp_path)
    assert remote.outcomes() == local.outcomes() and len(remote.outcomes()) == len(test_ids)
    (done,) = remote.completions
    assert done.state == "done" and done.node == "ssh:h1" and done.reported == len(test_ids)
    assert {b.node for b in remote.batches} == {"ssh:h1"}
    assert not any(one_host.workdir.iterdir()), "the remote run directory was not removed"


def test_a_hung_test_is_stopped_over_ssh_with_its_stack_and_nothing_survives(one_host: Hosts, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "faults")
    backend = SSHBackend(load_hosts(one_host.file), scratch=tmp_path / "scratch")
    ids = ("tests/test_faults.py::test_before", "tests/test_faults.py::test_hangs",
           "tests/test_faults.py::test_after_hang")
    sink = _run(backend, bundle, ids, tmp_path, budget_s=4.0)
    outcomes = {k.split("::")[-1]: v for k, v in sink.outcomes().items()}
    assert outcomes == {"test_before": "passed", "test_hangs": "timeout"}
    hung = next(r for b in sink.batches for r in b.records if r.test_id.endswith("test_hangs"))
    assert "test_hangs" in hung.longrepr, "no stack from the remote runner"
    assert sink.completions[0].state == "handback"  # test_after_hang goes back to the coordinator
    _nothing_under(one_host.workdir)


def test_a_tampered_host_key_is_refused(one_host: Hosts, tmp_path: Path) -> None:
    impostor = sshd.keygen(tmp_path / "impostor").with_suffix(".pub").read_text().split()
    hosts = load_hosts(one_host.file)
    name, kind, _ = one_host.servers[0].known_hosts_line().split()
    hosts.known_hosts.write_text(f"{name} {kind} {impostor[1]}\n")  # the right name, another key
    backend = SSHBackend(hosts, scratch=tmp_path / "scratch")
    request = RunRequest("collect", _bundle(tmp_path, "empty"), (), (), "s-collect")
    with pytest.raises(InfrastructureError, match="does not match .*refused"):
        backend.start(request)


def test_an_unknown_host_key_is_refused_not_learned(one_host: Hosts, tmp_path: Path) -> None:
    hosts = load_hosts(one_host.file)
    hosts.known_hosts.write_text("")
    backend = SSHBackend(hosts, scratch=tmp_path / "scratch")
    with pytest.raises(InfrastructureError, match="not found in known_hosts"):
        backend.start(RunRequest("collect", _bundle(tmp_path, "empty"), (), (), "s-collect"))
    assert hosts.known_hosts.read_text() == ""


def test_two_hosts_one_in_a_network_namespace_run_at_once(tmp_path: Path, client_key: Path) -> None:
    why = netns_usable()
    need(not why, why)
    with sshd.running_sshd(tmp_path / "h1", client_key.with_suffix(".pub")) as h1, \
            sshd.sshd_in_namespace(tmp_path / "h2", client_key.with_suffix(".pub")) as h2:
        hosts = _hosts_file(tmp_path, client_key, [h1, h2])
        backend = SSHBackend(load_hosts(hosts.file), scratch=tmp_path / "scratch")
        bundle = _bundle(tmp_path, "slow")
        sinks: list[Sink] = []

        def one(i: int) -> None:
            sinks.append(_run(backend, bundle, tuple(f"tests/test_slow.py::test_sleeps[{j}]" for j in (i, i + 1)),
                              tmp_path))

        threads = [threading.Thread(target=one, args=(i,)) for i in (0, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(s.completions[0].node for s in sinks) == ["ssh:h1", "ssh:h2"], "both hosts took a run at once"
    assert all(set(s.outcomes().values()) == {"passed"} for s in sinks)


def test_a_suite_submitted_to_a_farm_of_ssh_workers_runs_on_the_hosts(one_host: Hosts, tmp_path: Path) -> None:
    from support.helpers import LEAN, copy_fixture, farm, running_cluster
    from support.reference import run_reference

    from farm.cluster import ClusterSpec

    project = copy_fixture("correctness", tmp_path)
    args = [*LEAN, "tests/test_outcomes.py"]
    code, expected = run_reference(project, args, tmp_path / "ref.json")
    spec = ClusterSpec(workers=1, slots=2, worker_args=("--backend", "ssh", "--hosts", str(one_host.file)))
    with running_cluster(spec) as cluster:
        report_path = tmp_path / "r.json"
        result = farm("submit-suite", str(project), "--broker", cluster.broker_url, "--json", str(report_path),
                      "--", *args)
    assert result.returncode == code, result.stdout + result.stderr
    report = load_report(report_path)
    assert {t["id"]: t["outcome"] for t in report["tests"]} == expected
    assert {a["node"] for a in report["assignments"]} == {"ssh:h1"}
    assert report["collection"]["worker"].startswith("farm-default-0-")


def test_over_ssh_the_remote_runner_reports_its_trees_cpu_peak_and_leftovers(one_host: Hosts, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "resources")
    backend = SSHBackend(load_hosts(one_host.file), scratch=tmp_path / "scratch")
    ids = tuple(f"tests/test_resources.py::{name}" for name in ("test_holds_300_mb", "test_leaves_a_sleep",
                                                                "test_passes"))
    (done,) = _run(backend, bundle, ids, tmp_path).completions
    assert done.peak_rss_bytes >= 300 * 2**20, "the largest process's peak (ru_maxrss), here pytest's"
    assert done.cpu_s > 0
    assert done.leaks == (Leak(ids[1], "process", "sleep 1013"),)
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "1013"]]
