"""workers.backends.vm: the domain a VM runs as, checked by libvirt's own test driver (no daemon,
no hypervisor); booting real VMs is in tests/integration/test_libvirt_backend.py."""

from __future__ import annotations

import json
from pathlib import Path

import libvirt
import pytest

from workers.backends.vm import METADATA_NS, PANIC, VM, domain_xml
from workers.image import Image


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
