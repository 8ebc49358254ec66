"""The base image libvirt workers boot, built from Debian packages (`farm image`: workers/image_cli.py).

An image is a directory:

    base.qcow2             ext4 root filesystem (minbase + python3, pytest, sshd, iproute2, kmod,
                           the host kernel's modules, our init), read-only: each VM gets an overlay
    vmlinuz, initrd.img    the kernel booted directly (the host's linux-image-cloud-amd64)
    host_ed25519.pub       the guest's SSH host key, made at build time: known before any boot
    id_ed25519(.pub)       the key the worker logs in with (root, key only)
    image.json             what it was built from (its inputs' digest, the kernel), when, and the
                           suite environments baked into it ("envs": key, what it holds)

`build` reuses an image whose recorded inputs digest matches (the package list, the init
script, the kernel version, this format's version) and that has every environment asked for
baked in, unless asked to rebuild. Building needs root, mmdebstrap, mke2fs, qemu-img and a Debian
mirror (the host's apt sources); baking environments needs the package index this host uses.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from farm.errors import InfrastructureError, UsageError
from farm.suite_env import SuiteEnv
from workers import installer_output, remote_env

FORMAT = 1
SUITE = "bookworm"
PACKAGES = ("python3", "python3-pytest", "openssh-server", "iproute2", "kmod")
DEFAULT_DIR = Path.home() / ".cache" / "farm" / "images" / f"debian-{SUITE}"
DISK_SIZE = "1G"

#: The guest's init: mounts, loopback and the QEMU user-network address, then sshd in front.
#: "farm-init: ready" on the console tells the worker that sshd is about to listen.
INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /run /tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs -o size=512m tmpfs /tmp
hostname farm-vm
modprobe virtio_net 2>/dev/null
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
mkdir -p /run/sshd
echo "farm-init: ready" > /dev/console
exec /usr/sbin/sshd -D -e
"""

SSHD_CONFIG = """PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
Subsystem sftp internal-sftp
"""


@dataclass(frozen=True)
class Image:
    """A built image, as workers use it."""

    root: Path

    @property
    def disk(self) -> Path:
        return self.root / "base.qcow2"

    @property
    def kernel(self) -> Path:
        return self.root / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.root / "initrd.img"

    @property
    def host_key(self) -> str:
        """The guest's host public key line ("ssh-ed25519 AAAA...")."""
        return " ".join(self.root.joinpath("host_ed25519.pub").read_text().split()[:2])

    @property
    def client_key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def name(self) -> str:
        """How reports name it: the directory and its inputs' digest."""
        meta = json.loads((self.root / "image.json").read_text())
        return f"{self.root.name}@{meta['inputs'][:12]}"

    def digest(self) -> str:
        """The sha256 of what a VM boots (the disk, the kernel, the initrd): names the guest's
        interpreter and its installed distributions, as the disk is read-only (each VM writes to
        an overlay). Hashed once per process and file version (path, size, mtime, inode)."""
        return _content_digest((self.disk, self.kernel, self.initrd))

    @classmethod
    def load(cls, root: Path) -> Image:
        """The image in `root`, or UsageError naming what is missing."""
        image = cls(root)
        for path in (image.disk, image.kernel, image.initrd, image.client_key, root / "host_ed25519.pub",
                     root / "image.json"):
            if not path.exists():
                raise UsageError(f"{root} is not a farm image: {path.name} is missing (farm image build)")
        return image


#: Content digests already computed in this process, by the files' (path, size, mtime, inode).
_DIGESTS: dict[tuple[tuple[str, int, int, int], ...], str] = {}


def _content_digest(paths: tuple[Path, ...]) -> str:
    stats = tuple((str(p.resolve()), s.st_size, s.st_mtime_ns, s.st_ino) for p in paths for s in [p.stat()])
    if stats not in _DIGESTS:
        digest = hashlib.sha256()
        for path in paths:
            with path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            digest.update(b"\0")
        _DIGESTS[stats] = digest.hexdigest()
    return _DIGESTS[stats]


def host_kernel() -> tuple[str, Path, Path]:
    """The newest cloud kernel installed on this host: (version, vmlinuz, initrd)."""
    kernels = sorted(Path("/boot").glob("vmlinuz-*-cloud-amd64"))
    if not kernels:
        raise UsageError("no /boot/vmlinuz-*-cloud-amd64: apt-get install linux-image-cloud-amd64")
    vmlinuz = kernels[-1]
    version = vmlinuz.name.removeprefix("vmlinuz-")
    initrd = Path(f"/boot/initrd.img-{version}")
    if not initrd.exists() or not Path(f"/lib/modules/{version}").is_dir():
        raise UsageError(f"kernel {version} lacks its initrd or modules")
    return version, vmlinuz, initrd


def inputs_digest(kernel_version: str) -> str:
    parts = [f"format={FORMAT}", f"suite={SUITE}", "packages=" + ",".join(PACKAGES), f"kernel={kernel_version}",
             "init=" + INIT, "sshd=" + SSHD_CONFIG]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def build(output: Path = DEFAULT_DIR, *, force: bool = False, log=print,  # type: ignore[no-untyped-def]
          envs: tuple[SuiteEnv, ...] = (), wheels: Path | None = None) -> Image:
    """Build the image into `output`, or reuse the one there if its inputs did not change and it
    has `envs` baked in (each at the path the libvirt backend looks for, under the key a suite
    with the same environment computes in a VM), their wheels fetched into `wheels`."""
    version, vmlinuz, initrd = host_kernel()
    digest = inputs_digest(version)
    meta_path = output / "image.json"
    if not force and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            have = {e.get("digest") for e in meta.get("envs", [])}
            if meta.get("inputs") == digest and all(e.digest() in have for e in envs):
                log(f"image {output} is up to date (inputs {digest[:12]})")
                return Image.load(output)
        except (ValueError, UsageError, AttributeError):
            pass
    for tool in ("mmdebstrap", "mke2fs", "qemu-img", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise UsageError(f"{tool} is not installed "
                             "(apt-get install mmdebstrap e2fsprogs qemu-utils openssh-client)")
    output.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="farm-image-", dir=output.parent) as tmp:
        work = Path(tmp)
        tree = work / "root"
        log(f"mmdebstrap {SUITE} minbase + {', '.join(PACKAGES)}")
        _run(["mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(PACKAGES)}", SUITE, str(tree)])
        shutil.copytree(f"/lib/modules/{version}", tree / "lib" / "modules" / version, symlinks=True)
        init = tree / "sbin" / "farm-init"
        init.write_text(INIT)
        init.chmod(0o755)
        (tree / "etc" / "ssh" / "sshd_config").write_text(SSHD_CONFIG)
        for old in (tree / "etc" / "ssh").glob("ssh_host_*"):
            old.unlink()
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "farm-vm", "-f",
              str(tree / "etc" / "ssh" / "ssh_host_ed25519_key")])
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "farm-worker", "-f", str(work / "id_ed25519")])
        ssh_dir = tree / "root" / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text((work / "id_ed25519.pub").read_text())
        (tree / "etc" / "hostname").write_text("farm-vm\n")
        baked = [bake(tree, env, remote_env.WheelCache(wheels or DEFAULT_WHEELS), log) for env in envs]
        raw = work / "disk.raw"
        log("mke2fs + qemu-img convert")
        _run(["mke2fs", "-q", "-t", "ext4", "-d", str(tree), "-L", "farmroot", str(raw), DISK_SIZE])
        _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "base.qcow2")])
        shutil.copyfile(tree / "etc" / "ssh" / "ssh_host_ed25519_key.pub", work / "host_ed25519.pub")
        shutil.copyfile(vmlinuz, work / "vmlinuz")
        shutil.copyfile(initrd, work / "initrd.img")
        for name in ("base.qcow2", "vmlinuz", "initrd.img", "host_ed25519.pub", "id_ed25519", "id_ed25519.pub"):
            os.replace(work / name, output / name)
        (output / "image.json").write_text(json.dumps({
            "format": FORMAT, "inputs": digest, "suite": SUITE, "packages": list(PACKAGES), "kernel": version,
            "built_at": time.time(), "build_s": round(time.monotonic() - started, 1),
            "disk_bytes": (output / "base.qcow2").stat().st_size, "envs": baked,
        }, indent=2))
    log(f"built {output} in {time.monotonic() - started:.1f}s")
    return Image.load(output)


#: Where `farm image build` keeps the wheels it bakes (a worker keeps its own under its cache dir).
DEFAULT_WHEELS = Path.home() / ".cache" / "farm" / "wheels"


def bake(tree: Path, env: SuiteEnv, wheels: remote_env.WheelCache, log=print) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Build `env` in the image's tree with the tree's python3, from wheels fetched here, where
    VMs look for it (remote_env.VM_ENVS/KEY): what image.json records of it."""
    started = time.monotonic()
    builder = remote_env.BUILDER.read_text(encoding="utf-8")
    probe = json.loads(_chroot(tree, ["python3", "-c", builder, "probe", remote_env.VM_ENVS]))
    target = remote_env.Target.from_probe(probe)
    key = remote_env.env_key(env, target)
    log(f"baking the suite environment {env.describe()} (key {key[:12]}) for {target.abi}")
    fetched, _ = wheels.wheels(key, env, target)
    inside = f"/tmp/farm-wheels-{key[:24]}"
    shutil.copytree(fetched, tree / inside.lstrip("/"), ignore=shutil.ignore_patterns("done"))
    pip_wheel = next(p.name for p in sorted(fetched.glob("pip-*.whl")))
    env_dir = f"{remote_env.VM_ENVS}/.{key[:24]}-image"
    made = remote_env.remote_plan(env, target, env_dir=env_dir, wheels=inside, pip_wheel=pip_wheel)
    spec = json.dumps({"env_dir": env_dir, "create": made.create, "requirement_files": made.requirement_files,
                       "install": made.install})
    answer = json.loads(_chroot(tree, ["python3", "-c", builder, "build", remote_env.VM_ENVS, key, inside, "99",
                                       spec]))
    if not answer.get("ok"):
        raise installer_output.failure(f"cannot bake the suite environment {env.describe()}: pip install failed",
                                 str(answer.get("tail", "")))
    log(f"baked {env.describe()} in {time.monotonic() - started:.1f}s")
    return {"key": key, "describe": env.describe(), "digest": env.digest()}


def _chroot(tree: Path, argv: list[str]) -> str:
    """Run `argv` in the image's tree (chroot; root): its stdout, or InfrastructureError with its last lines."""
    proc = subprocess.run(["chroot", str(tree), *argv], capture_output=True, text=True,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"})
    if proc.returncode != 0:
        raise InfrastructureError(f"chroot {argv[0]} failed (exit {proc.returncode}):\n"
                                  + installer_output.tail(proc.stdout + proc.stderr))
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise InfrastructureError(f"{argv[0]} failed (exit {proc.returncode}): {tail[0]}")
