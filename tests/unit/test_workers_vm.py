"""workers.backends.vm: the domain a VM runs as, checked by libvirt's own test driver (no daemon,
no hypervisor); booting real VMs is in tests/integration/test_libvirt_backend.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.backends.vm import METADATA_NS, PANIC, VM, domain_xml
from workers.image import Image

# The venvs of the other Pythons (dev/test) have no libvirt-python: it compiles.
libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (farm's libvirt extra)")


@pytest.fixture
def image(tmp_path: Path) -> Image:
    root = tmp_path / "img"
    root.mkdir()
    for name in ("base.qcow2", "vmlinuz", "initrd.img", "id_ed25519"):
        (root / name).write_bytes(b"")
    (root / "host_ed25519.pub").write_text("ssh-ed25519 AAAAC3Nza farm-vm\n")
    (root / "image.json").write_text(json.dumps({"inputs": "ab" * 32}))
    return Image.load(root)


def _xml(image: Image, tmp_path: Path, name: str = "farm-0123456789", owner: str = "/var/cache/farm/w1") -> str:
    return domain_xml(name=name, image=image, overlay=tmp_path / f"{name}.qcow2", console=tmp_path / f"{name}.console",
                      ssh_port=40022, memory_mb=512, vcpus=1, owner=owner)


def test_the_domain_is_tcg_direct_kernel_boot_with_loopback_only_networking(image: Image, tmp_path: Path) -> None:
    xml = _xml(image, tmp_path)
    assert "<domain type='qemu'" in xml, "KVM guests hang here: TCG"
    assert f"<kernel>{image.kernel}</kernel>" in xml and "init=/sbin/farm-init" in xml
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in xml
    assert "<interface" not in xml, "no bridge, no libvirt network: QEMU user networking only"
    assert "<on_poweroff>destroy</on_poweroff>" in xml


def test_libvirt_accepts_the_domain_and_keeps_its_owner(image: Image, tmp_path: Path) -> None:
    conn = libvirt.open("test:///default")
    try:
        domain = conn.defineXML(_xml(image, tmp_path, owner="/cache/w'1"))
        try:
            meta = domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS)
            assert "/cache/w&apos;1" in meta or "/cache/w'1" in meta
            assert image.name in meta
            assert domain.name() == "farm-0123456789"
            assert domain.maxMemory() == 512 * 1024
        finally:
            domain.undefine()
    finally:
        conn.close()


def test_a_panic_on_the_console_is_found_with_its_context(image: Image, tmp_path: Path) -> None:
    console = tmp_path / "c.console"
    console.write_text("booting\n" * 5 + "Kernel panic - not syncing: VFS: Unable to mount root fs\nCPU: 0\n")
    vm = VM("farm-x", 1, tmp_path / "o.qcow2", console, image)
    assert "Kernel panic - not syncing" in vm.panic_excerpt()
    console.write_text("farm-init: ready\n")
    assert vm.panic_excerpt() == ""
    assert PANIC.search("Oops: 0000 [#1] SMP") and not PANIC.search("all good")


def test_an_incomplete_image_directory_is_a_usage_error(tmp_path: Path) -> None:
    from farm.errors import UsageError

    with pytest.raises(UsageError, match="is not a farm image: base.qcow2 is missing"):
        Image.load(tmp_path)


def test_the_vm_lifecycle_against_the_test_driver(tmp_path: Path) -> None:
    """boot makes an overlay and a running transient domain; destroy_owned finds a worker's own
    domains by the owner in their metadata, and no one else's; destroy removes the overlay."""
    import subprocess

    from workers.backends.vm import boot, destroy, destroy_owned

    root = tmp_path / "img"
    root.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(root / "base.qcow2"), "1M"], check=True)
    for name in ("vmlinuz", "initrd.img", "id_ed25519"):
        (root / name).write_bytes(b"")
    (root / "host_ed25519.pub").write_text("ssh-ed25519 AAAAC3Nza farm-vm\n")
    (root / "image.json").write_text(json.dumps({"inputs": "cd" * 32}))
    image = Image.load(root)
    conn = libvirt.open("test:///default")
    try:
        mine = boot(conn, image, tmp_path / "vms-1", owner="/cache/w1", autodestroy=False)
        theirs = boot(conn, image, tmp_path / "vms-2", owner="/cache/w2", autodestroy=False)
        assert mine.overlay.exists() and mine.domain.isActive() and theirs.domain.isActive()
        assert destroy_owned(conn, "/cache/w1", tmp_path / "vms-1") == [mine.name]
        assert not mine.overlay.exists(), "the restarted worker's leftovers were not removed"
        running = {d.name() for d in conn.listAllDomains() if d.isActive()}
        assert mine.name not in running and theirs.name in running
        destroy(theirs)
        assert not theirs.overlay.exists()
        assert theirs.name not in {d.name() for d in conn.listAllDomains() if d.isActive()}
    finally:
        conn.close()


class _Channel:
    closed = False

    def __init__(self) -> None:
        self.sent = b""

    def exit_status_ready(self) -> bool:
        return False

    def sendall(self, data: bytes) -> None:
        self.sent += data


class _Domain:
    def isActive(self) -> bool:  # noqa: N802 (libvirt's name)
        return True


def _primed(image: Image, tmp_path: Path, name: str) -> VM:
    vm = VM(name, 1, tmp_path / f"{name}.qcow2", tmp_path / f"{name}.console", image)
    vm.domain, vm.channel, vm.client = _Domain(), _Channel(), object()
    return vm


def _request(tmp_path: Path, mode: str, digest: str = "d1", args: tuple[str, ...] = ("-q",),
             suite: str = "s1") -> object:
    from workers.backends.base import RunRequest

    bundle = tmp_path / f"{digest}.tar.gz"
    bundle.write_bytes(b"bundle")
    label = "s1-collect" if mode == "collect" else f"{suite}-a000-runner1"
    return RunRequest(mode=mode, bundle=bundle, pytest_args=args, test_ids=(), label=label)


def test_the_vm_that_collected_a_suite_runs_its_first_assignment_and_no_other(image: Image, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A collection's VM is kept for a run of the same bundle and arguments (one run, fresh
    process); a run of another bundle or other arguments gets a VM of its own, and a VM that
    served a run is destroyed when it closes."""
    from workers.backends.libvirt import LibvirtBackend

    backend = LibvirtBackend(image, scratch=tmp_path / "runs")
    backend._conn, backend._pid = object(), __import__("os").getpid()
    discarded: list[str] = []
    vms = iter(_primed(image, tmp_path, f"farm-{i}") for i in range(10))
    monkeypatch.setattr(backend, "_boot_ready", lambda: next(vms))
    monkeypatch.setattr(backend, "_discard", lambda vm: discarded.append(vm.name))
    monkeypatch.setattr(backend, "_refill", lambda: None)

    def finished(run: object) -> None:
        run.exit_code = 0  # type: ignore[attr-defined]  # the runner's exit frame came
        run.close()  # type: ignore[attr-defined]
        backend.wait_teardowns()  # a run's VM is destroyed in the background

    collect = backend.start(_request(tmp_path, "collect"))  # type: ignore[arg-type]
    assert collect.channel.sent.startswith(b"run {")
    finished(collect)
    assert discarded == [] and backend._held is not None
    other = backend.start(_request(tmp_path, "run", args=("-q", "-k", "x")))  # type: ignore[arg-type]
    assert other.node.startswith("vm:farm-1 ")
    finished(other)
    assert discarded == ["farm-1"], "a VM that ran an assignment served another"
    same_code = backend.start(_request(tmp_path, "run", suite="s2"))  # type: ignore[arg-type]
    assert same_code.node.startswith("vm:farm-2 "), "another suite's run took the collection's VM"
    finished(same_code)
    first = backend.start(_request(tmp_path, "run"))  # type: ignore[arg-type]
    assert first.node.startswith("vm:farm-0 "), "the collection's VM was not kept for the suite's run"
    finished(first)
    assert discarded == ["farm-1", "farm-2", "farm-0"] and backend._held is None
    second = backend.start(_request(tmp_path, "run"))  # type: ignore[arg-type]
    assert second.node.startswith("vm:farm-3 ")
    finished(second)


def test_a_kept_vm_is_destroyed_when_no_run_comes_or_its_runner_is_gone(image: Image, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.backends.libvirt import LibvirtBackend

    backend = LibvirtBackend(image, scratch=tmp_path / "runs")
    backend._conn, backend._pid = object(), __import__("os").getpid()
    discarded: list[str] = []
    vms = iter(_primed(image, tmp_path, f"farm-{i}") for i in range(10))
    monkeypatch.setattr(backend, "_boot_ready", lambda: next(vms))
    monkeypatch.setattr(backend, "_discard", lambda vm: discarded.append(vm.name))
    monkeypatch.setattr(backend, "_refill", lambda: None)
    run = backend.start(_request(tmp_path, "collect"))  # type: ignore[arg-type]
    run.exit_code = 0
    run.close()
    assert backend._held is not None
    backend._expire(backend._held[1])  # HOLD_S passed
    assert discarded == ["farm-0"] and backend._held is None
    run = backend.start(_request(tmp_path, "collect"))  # type: ignore[arg-type]
    run.exit_code = 0
    run.close()
    assert backend._held is not None
    backend._held[1].channel.closed = True  # the guest's runner died meanwhile
    again = backend.start(_request(tmp_path, "run"))  # type: ignore[arg-type]
    assert again.node.startswith("vm:farm-2 ") and discarded == ["farm-0", "farm-1"]
    lost = backend.start(_request(tmp_path, "collect", digest="d2"))  # type: ignore[arg-type]
    lost.exit_code = -1  # the channel closed without an exit frame
    lost.close()
    backend.wait_teardowns()
    assert backend._held is None and discarded[-1] == "farm-3"
