"""The libvirt backend with real VMs under libvirtd and QEMU (TCG): a suite end to end through
a farm, an assignment past its deadline, a worker killed with kill -9 and restarted, a tampered
host key. CI starts libvirtd (.ci/libvirt-setup) and builds the image once (it is reused)."""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.helpers import FIXTURES, LEAN, copy_fixture, farm, need, running_cluster, submit_no_wait
from support.reference import run_reference

from farm.bundle import make_bundle
from farm.cluster import ClusterSpec, LocalCluster
from farm.config import Settings
from farm.errors import InfrastructureError
from farm.model import Assignment
from farm.report.schema import load_report
from workers import runner
from workers.backends.libvirt import LibvirtBackend
from workers.backends.vm import METADATA_NS, boot, destroy, open_connection, wait_ready
from workers.image import DEFAULT_DIR, Image, build

URI = "qemu:///system"


def _domains(conn: object) -> list[str]:
    """This test session's farm domains (by their owner: a directory in the session's TMPDIR, or a
    test's own name), so that VMs of other sessions on the machine never count."""
    mine = (os.environ.get("TMPDIR", "/nonexistent"), f"test-{os.getpid()}-")
    return sorted(name for name, owner in owners(conn).items() if owner.startswith(mine))


def owners(conn: object) -> dict[str, str]:
    """Domain name → the owner recorded in farm's metadata, for every farm domain."""
    import libvirt

    found = {}
    for d in conn.listAllDomains():  # type: ignore[attr-defined]
        try:
            meta = d.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS)
        except libvirt.libvirtError:
            continue
        match = re.search(r"owner=[\"']([^\"']*)", meta)
        if match:
            found[d.name()] = html.unescape(match.group(1))
    return found


@pytest.fixture(scope="module")
def conn() -> Iterator[object]:
    need(shutil.which("virsh") is not None and os.path.exists("/var/run/libvirt/libvirt-sock"),
         "libvirtd is not running (bash .ci/libvirt-setup)")
    c = open_connection(URI)
    yield c
    c.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def image(conn: object) -> Image:
    """The image CI and developers share (~/.cache/farm/images): built once, reused after."""
    return build(DEFAULT_DIR, log=lambda *_: None)


@pytest.fixture(autouse=True)
def no_domain_left(conn: object) -> Iterator[None]:
    before = set(_domains(conn))
    yield
    deadline = time.monotonic() + 15
    while set(_domains(conn)) - before and time.monotonic() < deadline:
        time.sleep(0.2)
    left = set(_domains(conn)) - before
    for name in left:
        conn.lookupByName(name).destroy()  # type: ignore[attr-defined]
    assert not left, f"domains left running: {sorted(left)}"


def _libvirt_cluster(image: Image, *extra: str) -> ClusterSpec:
    return ClusterSpec(workers=1, slots=1, loglevel="INFO",
                       worker_args=("--backend", "libvirt", "--image", str(image.root), *extra))


def test_a_suite_runs_in_vms_end_to_end_with_pytests_outcomes(image: Image, tmp_path: Path) -> None:
    project = copy_fixture("correctness", tmp_path)
    args = [*LEAN, "tests/test_outcomes.py"]
    code, expected = run_reference(project, args, tmp_path / "ref.json")
    with running_cluster(_libvirt_cluster(image)) as cluster:
        report_path = tmp_path / "r.json"
        result = farm("submit-suite", str(project), "--broker", cluster.broker_url, "--json", str(report_path),
                      "--", *args)
        vms_dir = cluster.root / "worker-0" / "runs" / "vms"
        deadline = time.monotonic() + 30  # a run's VM is destroyed once its completion is sent
        while list(vms_dir.glob("*.qcow2")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not list(vms_dir.glob("*.qcow2")), "an overlay outlived its assignment"
    assert result.returncode == code, result.stdout + result.stderr
    report = load_report(report_path)
    assert {t["id"]: t["outcome"] for t in report["tests"]} == expected
    nodes = {a["node"] for a in report["assignments"]}
    assert all(n.startswith("vm:farm-") and f"({image.name})" in n for n in nodes), nodes


def test_an_assignment_past_its_deadline_has_its_domain_destroyed(conn: object, image: Image,
                                                                  tmp_path: Path) -> None:
    bundle = make_bundle(FIXTURES / "faults", 1 << 26)
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(bundle.data)
    backend = LibvirtBackend(image, uri=URI, scratch=tmp_path / "runs", owner=f"test-{os.getpid()}-deadline")
    batches, completions = [], []

    class Sink:
        def send_batch(self, b: object) -> None:
            batches.append(b)

        def send_completion(self, c: object) -> None:
            completions.append(c)

    ids = ("tests/test_faults.py::test_before", "tests/test_faults.py::test_hangs", "tests/test_faults.py::test_last")
    # Its budget counts from the VM being up: it covers the guest starting Python and pytest under
    # TCG (seconds, more on a loaded machine), the first test, and then stops the hanging one.
    a = Assignment("s", "s-a000", 1, bundle.digest, (*LEAN, "-q"), ids, budget_s=30.0)
    runner.run_assignment(a, backend=backend, bundle=lambda d: archive, sink=Sink(), worker="w@h",  # type: ignore[arg-type]
                          settings=Settings(), is_canceled=lambda: False)
    outcomes = {r.test_id.split("::")[-1]: r.outcome.value for b in batches for r in b.records}  # type: ignore[attr-defined]
    assert outcomes == {"test_before": "passed", "test_hangs": "timeout"}
    assert completions[0].state == "handback"  # type: ignore[attr-defined]
    assert completions[0].node.startswith("vm:farm-")  # type: ignore[attr-defined]
    backend.wait_teardowns()  # destroyed once the completion is sent
    assert not [d for d in _domains(conn) if d in completions[0].node]  # type: ignore[attr-defined]
    assert not list((tmp_path / "runs" / "vms").glob("*.qcow2"))
    backend.disconnect()


def test_a_worker_killed_with_kill_9_leaves_no_domain_or_overlay_once_restarted(conn: object, image: Image) -> None:
    with running_cluster(_libvirt_cluster(image, "--warm", "1")) as cluster:
        vms_dir = cluster.root / "worker-0" / "runs" / "vms"
        deadline = time.monotonic() + 120
        while not _owned(conn, cluster):
            assert time.monotonic() < deadline, "no warm VM was booted"
            time.sleep(0.5)
        warm = _owned(conn, cluster)
        overlays = {p.name for p in vms_dir.glob("*.qcow2")}
        assert {f"{name}.qcow2" for name in warm} <= overlays
        worker = dict(cluster.procs)["worker-0"]
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        # The domain was created with autodestroy: it dies with the connection of the process
        # that created it.
        deadline = time.monotonic() + 30
        while set(warm) & set(_domains(conn)):
            assert time.monotonic() < deadline, f"{warm} outlived the killed worker"
            time.sleep(0.2)
        assert overlays <= {p.name for p in vms_dir.glob("*.qcow2")}, "the overlays stay until the restart"
        cluster.restart("worker-0", signal.SIGKILL)
        deadline = time.monotonic() + 120
        while overlays & {p.name for p in vms_dir.glob("*.qcow2")}:
            assert time.monotonic() < deadline, "the restarted worker did not remove what it had left"
            time.sleep(0.5)


def _owned(conn: object, cluster: LocalCluster) -> list[str]:
    owner = str((cluster.root / "worker-0" / "runs" / "vms").resolve())
    return [name for name, o in owners(conn).items() if o == owner]


def test_a_tampered_host_key_is_refused_and_the_vm_destroyed(conn: object, image: Image, tmp_path: Path) -> None:
    fake = tmp_path / "img"
    fake.mkdir()
    for path in image.root.iterdir():
        (fake / path.name).symlink_to(path)
    (fake / "host_ed25519.pub").unlink()
    other = tmp_path / "other"
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {other}")
    (fake / "host_ed25519.pub").write_text(other.with_suffix(".pub").read_text())
    vm = boot(conn, Image.load(fake), tmp_path / "vms", owner=f"test-{os.getpid()}-tamper")
    try:
        with pytest.raises(InfrastructureError, match="does not match"):
            wait_ready(vm, tmp_path / "known_hosts", timeout=120)
    finally:
        destroy(vm)
    assert vm.name not in _domains(conn)


def test_a_worker_whose_vms_stop_booting_stops_consuming_and_says_why(image: Image, tmp_path: Path) -> None:
    broken = tmp_path / "img"
    broken.mkdir()
    for path in image.root.iterdir():
        (broken / path.name).symlink_to(path)
    spec = ClusterSpec(workers=1, slots=1, loglevel="INFO",
                       worker_args=("--backend", "libvirt", "--image", str(broken)))
    with running_cluster(spec) as cluster:  # the start-up check boots the real image
        (broken / "base.qcow2").unlink()
        (broken / "base.qcow2").write_bytes(b"")  # from now on no VM can boot
        project = copy_fixture("slow", tmp_path)
        deadline = time.monotonic() + 180
        status, suites = "", []
        while "VM boots failed in a row" not in status:
            assert time.monotonic() < deadline, f"the worker never said it was unhealthy: {status}"
            if len(suites) < 5:  # each suite's collection needs a VM: each is a failed boot
                suites.append(submit_no_wait(cluster.broker_url, project))
            time.sleep(2)
            status = farm("status", "--broker", cluster.broker_url).stdout
        assert "cannot make an overlay" in status
        from farm.celery_app import make_app

        app = make_app(Settings(broker_url=cluster.broker_url))
        try:
            queues = app.control.inspect(timeout=5).active_queues() or {}
        finally:
            app.close()
        worker_queues = [q for name, q in queues.items() if name.startswith("farm-default-0-")]
        assert worker_queues == [[]], f"it still consumes: {queues}"
        for suite_id in suites:
            farm("cancel", suite_id, "--broker", cluster.broker_url)
