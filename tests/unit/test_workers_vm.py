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
