"""`farm up --backend libvirt`: a local farm whose assignments run in VMs, as a user starts it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from support.helpers import LEAN, farm, need

from farm.report.schema import load_report
from workers.backends.vm import METADATA_NS, open_connection
from workers.image import DEFAULT_DIR


def _farm_domains() -> set[str]:
    """Farm domains started by this test session (their owner is a directory in its TMPDIR)."""
    conn = open_connection("qemu:///system")
    try:
        mine = os.environ.get("TMPDIR", "/nonexistent")
        return {d.name() for d in conn.listAllDomains()
                if d.name().startswith("farm-") and mine in _metadata(d)}
    finally:
        conn.close()


def _metadata(domain: object) -> str:
    import libvirt

    try:
        return str(domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS))  # type: ignore[attr-defined]
    except libvirt.libvirtError:
        return ""


def test_farm_up_with_the_libvirt_backend_runs_suites_in_vms(farm_up, tmp_path: Path) -> None:
    need(os.path.exists("/var/run/libvirt/libvirt-sock"), "libvirtd is not running (bash .ci/libvirt-setup)")
    before = _farm_domains()
    running = farm_up("--backend", "libvirt", "--workers", "1", "--slots", "2", "--image", str(DEFAULT_DIR),
                      timeout=600)  # the image is built here if missing (about 35 s), then a boot check
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_in_a_vm.py").write_text(
        "import os, pytest\n\n@pytest.mark.parametrize('i', range(30))\n"
        "def test_in_a_vm(i):\n    assert os.uname().nodename == 'farm-vm'\n")
    report_path = tmp_path / "r.json"
    result = farm("submit-suite", str(project), "--broker", running.broker, "--json", str(report_path), "--",
                  *LEAN, "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    report = load_report(report_path)
    assert report["summary"]["passed"] == report["summary"]["total"] == 30  # each test saw the guest's hostname
    # An attempt that never reached a VM (handed back when the VM would not boot in time on a
    # loaded machine) has no node; every attempt that ran tests ran them in a VM.
    ran = [a for a in report["assignments"] if a["node"]]
    assert ran and all(a["node"].startswith("vm:farm-") for a in ran), report["assignments"]
    assert all(a["state"] == "handback" for a in report["assignments"] if not a["node"]), report["assignments"]
    running.proc.send_signal(signal.SIGINT)  # as a user stops it (the fixture checks its exit code)
    running.proc.wait(timeout=60)
    assert _farm_domains() <= before, "farm up left VMs running"
