"""Libvirt VMs for the libvirt backend: one transient domain per assignment, on a qcow2 overlay
of the read-only base image, booted directly from the image's kernel under QEMU (TCG: KVM guests
hang here), networked on loopback only (QEMU user networking with a host forward of a free
127.0.0.1 port to the guest's sshd), its console captured to a file.

`domain_xml` is pure; the rest talks to libvirt (and qemu-img, paramiko) at the edges.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from farm.cluster import free_port
from farm.errors import InfrastructureError
from workers.image import Image

#: Where the domain records its owner (the worker's cache directory): a worker that restarts
#: after a kill -9 finds and destroys what it had started.
METADATA_NS = "https://suitefarm.invalid/libvirt/1"
#: Console lines that make a VM an infrastructure failure.
PANIC = re.compile(r"Kernel panic|Oops[:\s]|BUG: |general protection fault|Call Trace:")
READY_LINE = "farm-init: ready"


def domain_xml(*, name: str, image: Image, overlay: Path, console: Path, ssh_port: int, memory_mb: int,
               vcpus: int, owner: str) -> str:
    """The transient domain of one VM (pure)."""
    cmdline = "console=ttyS0 root=/dev/vda rw init=/sbin/farm-init net.ifnames=0 panic=-1 quiet"
    return f"""<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{escape(name)}</name>
  <metadata><farm:vm xmlns:farm='{METADATA_NS}' owner={quoteattr(owner)} image={quoteattr(image.name)}/></metadata>
  <memory unit='MiB'>{memory_mb}</memory>
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{escape(str(image.kernel))}</kernel>
    <initrd>{escape(str(image.initrd))}</initrd>
    <cmdline>{escape(cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file={quoteattr(str(overlay))}/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path={quoteattr(str(console))}/><target port='0'/></serial>
    <console type='file'><source path={quoteattr(str(console))}/><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=n0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=n0,addr=0x9'/>
  </qemu:commandline>
</domain>
"""


@dataclass
class VM:
    name: str
    ssh_port: int
    overlay: Path
    console: Path
    image: Image
    domain: Any = None
    booted_at: float = 0.0
    ready_s: float = 0.0
    client: Any = None  # the SSH connection wait_ready logged in with, kept for the VM's run
    channel: Any = None  # the pre-started runner's channel (workers/vm_runner.py), once primed

    def console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except OSError:
            return ""

    def panic_excerpt(self) -> str:
        """The console lines around a kernel panic or oops ("" if none)."""
        lines = self.console_text().splitlines()
        for i, line in enumerate(lines):
            if PANIC.search(line):
                return "\n".join(lines[max(0, i - 3):i + 12])
        return ""


def open_connection(uri: str) -> Any:
    import libvirt

    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise InfrastructureError(f"cannot open libvirt at {uri}: {exc}") from None


def boot(conn: Any, image: Image, workdir: Path, *, owner: str, prefix: str = "farm", memory_mb: int = 512,
         vcpus: int = 1, autodestroy: bool = True) -> VM:
    """Create the overlay and start a transient domain (returns at once; see wait_ready).

    `autodestroy` is off only for libvirt's test driver, which does not support it."""
    import libvirt

    workdir.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    overlay, console = workdir / f"{name}.qcow2", workdir / f"{name}.console"
    made = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.disk), "-F", "qcow2",
                           str(overlay)], capture_output=True, text=True)
    if made.returncode != 0:
        why = (made.stderr.strip().splitlines() or ["no output"])[-1]
        raise InfrastructureError(f"cannot make an overlay of {image.disk}: {why}")
    vm = VM(name, free_port(), overlay, console, image)
    xml = domain_xml(name=name, image=image, overlay=overlay, console=console, ssh_port=vm.ssh_port,
                     memory_mb=memory_mb, vcpus=vcpus, owner=owner)
    try:
        # Autodestroy: libvirtd destroys the domain when the connection that created it closes,
        # so a worker process that dies (kill -9, a crash) takes its VMs with it.
        vm.domain = conn.createXML(xml, libvirt.VIR_DOMAIN_START_AUTODESTROY if autodestroy else 0)
    except libvirt.libvirtError as exc:
        overlay.unlink(missing_ok=True)
        raise InfrastructureError(f"libvirt could not start {name}: {exc}") from None
    vm.booted_at = time.monotonic()
    return vm


def wait_ready(vm: VM, known_hosts: Path, timeout: float = 120.0) -> None:
    """Until the guest's sshd answers with the image's host key (or the console shows a panic);
    the SSH client it logged in with is kept as `vm.client`."""
    from workers.backends.ssh import connect
    from workers.backends.ssh_hosts import SSHHost

    known_hosts.write_text(f"[127.0.0.1]:{vm.ssh_port} {vm.image.host_key}\n")
    host = SSHHost(vm.name, "127.0.0.1", vm.ssh_port, "root", key=vm.image.client_key)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        excerpt = vm.panic_excerpt()
        if excerpt:
            raise InfrastructureError(f"VM {vm.name} panicked while booting:\n{excerpt}")
        if not _active(vm):
            tail = "\n".join(vm.console_text().splitlines()[-10:])
            raise InfrastructureError(f"VM {vm.name} stopped while booting; its console ended with:\n{tail}")
        sock = _banner(vm.ssh_port) if READY_LINE in vm.console_text() else None
        if sock is not None:
            try:
                # On the probe's own connection: under TCG each connection costs the guest an sshd
                # fork, and a probe per attempt made sshd throttle (MaxStartups) the real logins.
                vm.client = connect(host, known_hosts, sock=sock)  # kept: no login per run
                vm.ready_s = time.monotonic() - vm.booted_at
                return
            except InfrastructureError as exc:
                sock.close()
                if "does not match" in str(exc):
                    raise
                last = str(exc)
        time.sleep(0.5)
    raise InfrastructureError(f"VM {vm.name} was not ready within {timeout:.0f}s ({last or 'no sshd yet'})")


def _active(vm: VM) -> bool:
    import libvirt

    try:
        return vm.domain is None or bool(vm.domain.isActive())
    except libvirt.libvirtError:
        return False  # destroyed (a transient domain that stopped is gone)


def _banner(port: int) -> socket.socket | None:
    """A connection to the forwarded port on which an SSH server has sent its banner (left
    unread, for paramiko), or None. QEMU's user network accepts every connection and drops it
    while the guest does not listen; paramiko would log a traceback."""
    sock = None
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.settimeout(5)
        if sock.recv(4, socket.MSG_PEEK).startswith(b"SSH-"):
            sock.settimeout(None)
            return sock
    except OSError:
        pass
    if sock is not None:
        sock.close()
    return None


def destroy(vm: VM) -> None:
    """Destroy the domain (if it still runs) and delete its overlay and console."""
    import libvirt

    if vm.client is not None:
        vm.client.close()  # its channels with it
        vm.client = vm.channel = None
    if vm.domain is not None:
        try:
            vm.domain.destroy()
        except libvirt.libvirtError:
            pass  # gone already (powered off, or destroyed)
    vm.overlay.unlink(missing_ok=True)
    vm.console.unlink(missing_ok=True)


def destroy_owned(conn: Any, owner: str, workdir: Path) -> list[str]:
    """Destroy every running domain this owner started (a worker restarting after a kill -9),
    and delete the overlays and consoles left in its directory; returns the domains' names."""
    import libvirt

    gone = []
    for domain in conn.listAllDomains():
        try:
            meta = domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS)
        except libvirt.libvirtError:
            continue
        if f'owner="{escape(owner)}"' in meta or f"owner='{escape(owner)}'" in meta:
            try:
                domain.destroy()
            except libvirt.libvirtError:
                pass
            gone.append(domain.name())
    if workdir.is_dir():
        for leftover in [*workdir.glob("*.qcow2"), *workdir.glob("*.console"), *workdir.glob("*.known_hosts")]:
            leftover.unlink(missing_ok=True)
    return gone
