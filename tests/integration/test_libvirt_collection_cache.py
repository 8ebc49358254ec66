"""The collection cache on a libvirt pool, with real VMs (libvirtd, QEMU TCG): a second submission
is planned from the cache (no collection VM) with the same outcomes, the runners in the VMs check
the cached collection, and a worker booting another image misses the cache."""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from support.helpers import LEAN, farm, need, running_cluster

from farm.cluster import ClusterSpec, LocalCluster
from farm.report.schema import load_report
from workers.backends.vm import METADATA_NS, open_connection
from workers.image import DEFAULT_DIR, Image, build

URI = "qemu:///system"
ARGS = (*LEAN, "-p", "no:cacheprovider", "tests")
EXPECTED = {"tests/test_mod.py::test_pass": "passed", "tests/test_mod.py::test_fail": "failed",
            "tests/test_mod.py::test_skip": "skipped"}


@pytest.fixture(scope="module")
def image() -> Image:
    need(subprocess.run(["virsh", "-c", URI, "version"], capture_output=True).returncode == 0,
         "libvirtd is not running (bash .ci/libvirt-setup)")
    return build(DEFAULT_DIR, log=lambda *_: None)


def _project(root: Path, body: str) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "tests" / "test_mod.py").write_text(textwrap.dedent(body).lstrip())
    return root


PLAIN = """
    import pytest

    def test_pass():
        assert 1 + 1 == 2

    def test_fail():
        assert 0

    def test_skip():
        pytest.skip("skipped")
    """

# The collection runs with FARM_MODE=collect, the runners with FARM_MODE=run: they disagree.
GROWS = """
    import os
    import pytest

    @pytest.mark.parametrize("n", range(2 if os.environ.get("FARM_MODE") == "collect" else 3))
    def test_grows(n):
        pass
    """


def _submit(cluster: LocalCluster, project: Path, out: Path) -> dict:
    result = farm("submit-suite", str(project), "--broker", cluster.broker_url, "--json", str(out), "--", *ARGS,
                  timeout=600)
    assert out.exists(), result.stdout + result.stderr
    return load_report(out)


def _outcomes(report: dict) -> dict[str, str]:
    return {t["id"]: t["outcome"] for t in report["tests"]}


def _worker_log(cluster: LocalCluster) -> str:
    return "".join(p.read_text(errors="replace") for p in cluster.root.glob("worker-*.log"))


def _changed_image(image: Image, root: Path) -> Path:
    """Another image booting the same guest: its disk a qcow2 overlay of the original, so its
    content (and digest) differ."""
    root.mkdir()
    for path in image.root.iterdir():
        if path.name != "base.qcow2":
            (root / path.name).symlink_to(path)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.disk), "-F", "qcow2",
                    str(root / "base.qcow2")], check=True)
    return root


def test_a_libvirt_pool_plans_a_second_submission_from_the_cache_until_the_image_changes(
        image: Image, tmp_path: Path) -> None:
    project = _project(tmp_path / "plain", PLAIN)
    spec = ClusterSpec(workers=1, slots=1, loglevel="INFO",
                       worker_args=("--backend", "libvirt", "--image", str(image.root)))
    with running_cluster(spec) as cluster:
        first = _submit(cluster, project, tmp_path / "r1.json")
        second = _submit(cluster, project, tmp_path / "r2.json")
        assert first["collection"]["duration_s"] > 0
        assert second["collection"]["duration_s"] == 0.0, _worker_log(cluster)[-3000:]
        assert _outcomes(first) == _outcomes(second) == EXPECTED
        assert all(a["node"].startswith("vm:farm-") for a in second["assignments"])
        log = _worker_log(cluster)
        assert "from the cache" in log
        # The runners in the VMs check the cached collection: one that collects otherwise drops it.
        grows = _project(tmp_path / "grows", GROWS)
        changing = _submit(cluster, grows, tmp_path / "g1.json")
        assert any("collected otherwise than the cached collection" in a["message"]
                   for a in changing["assignments"]), changing["assignments"]
        deadline = time.monotonic() + 10
        while "tests/test_mod.py: 3 items collected, 2 planned" not in _worker_log(cluster):
            assert time.monotonic() < deadline, _worker_log(cluster)[-3000:]
            time.sleep(0.2)
        assert _submit(cluster, grows, tmp_path / "g2.json")["collection"]["duration_s"] > 0, "collected afresh"
        # The same worker booting another image: the cache (in the same store) misses.
        other = _changed_image(image, tmp_path / "other-image")
        argv, env = cluster.commands["worker-0"]
        cluster.commands["worker-0"] = ([str(other) if a == str(image.root) else a for a in argv], env)
        cluster.restart("worker-0")
        third = _submit(cluster, project, tmp_path / "r3.json")
        assert third["collection"]["duration_s"] > 0, "another image, another interpreter: collected afresh"
        assert _outcomes(third) == EXPECTED
        assert all("(other-image@" in a["node"] for a in third["assignments"]), third["assignments"]
        owner = str(cluster.root)
    deadline = time.monotonic() + 30
    while _domains_of(owner):
        assert time.monotonic() < deadline, f"domains left running: {_domains_of(owner)}"
        time.sleep(0.5)


def _domains_of(owner: str) -> list[str]:
    """The running domains a worker under `owner` (the cluster's directory) started."""
    import libvirt

    conn = open_connection(URI)
    try:
        found = []
        for domain in conn.listAllDomains():
            try:
                meta = domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS)
            except libvirt.libvirtError:
                continue
            if owner in meta:
                found.append(domain.name())
        return found
    finally:
        conn.close()
