"""The collection cache's key on a libvirt worker: the image's content names the guest's
interpreter (workers.backends.libvirt.vm_fingerprint, workers.image.Image.digest). No VM is booted."""

from __future__ import annotations

import json
import os
from pathlib import Path

from farm.config import Settings
from workers.backends.libvirt import LibvirtBackend, vm_fingerprint
from workers.image import Image
from workers.tasks import WorkerContext


def _image(root: Path, disk: bytes = b"disk-a") -> Image:
    root.mkdir(parents=True)
    (root / "base.qcow2").write_bytes(disk)
    for name in ("vmlinuz", "initrd.img", "id_ed25519"):
        (root / name).write_bytes(name.encode())
    (root / "host_ed25519.pub").write_text("ssh-ed25519 AAAAC3Nza farm-vm\n")
    (root / "image.json").write_text(json.dumps({"inputs": "ab" * 32}))
    return Image.load(root)


def _key(image: Image, **options: int) -> str:
    ctx = WorkerContext(None, Settings(), LibvirtBackend(image, **options), None)  # type: ignore[arg-type]
    return ctx.collection_key("d" * 64, ("-q", "tests"))


def test_the_fingerprint_names_image_interpreter_machine_and_runner() -> None:
    def key(image: str = "i" * 64, python: str = "python3", vcpus: int = 1, memory: int = 512,
            runner: str = "r" * 64) -> str:
        return vm_fingerprint(image, python, vcpus, memory, runner)

    base = key()
    assert base == key()
    others = {key(image="j" * 64), key(python="python3.13"), key(vcpus=2), key(memory=1024), key(runner="s" * 64)}
    assert base not in others and len(others) == 5


def test_a_libvirt_worker_caches_collections_keyed_by_its_images_content(tmp_path: Path) -> None:
    image = _image(tmp_path / "a")
    key = _key(image)
    assert key, "a libvirt worker names its guest's interpreter"
    assert key == _key(Image(image.root)) == _key(_image(tmp_path / "copy"))  # the same content, elsewhere
    assert _key(_image(tmp_path / "b", disk=b"disk-b")) != key  # another disk: other packages
    assert _key(image, vcpus=2) != key
    (image.root / "initrd.img").write_bytes(b"another initrd")
    assert _key(image) != key  # a file rewritten in place is hashed again


def test_the_image_is_hashed_once_per_file_version(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    image = _image(tmp_path / "a")
    first = image.digest()
    opened: list[Path] = []
    real_open = Path.open

    def counting_open(self: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(self)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    assert image.digest() == first and not opened
    os.utime(image.disk, ns=(1, 1))
    assert image.digest() == first and opened, "a touched file is read again; same content, same digest"


def test_an_unreadable_image_caches_nothing(tmp_path: Path) -> None:
    image = _image(tmp_path / "a")
    image.disk.unlink()
    assert _key(image) == ""
