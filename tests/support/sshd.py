"""Real sshd servers for the SSH backend's tests: on a free loopback port, or in a network
namespace of our own (a second "host", reached through a ProxyCommand into the namespace)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from farm.cluster import free_port

SSHD = "/usr/sbin/sshd"


@dataclass
class SSHServer:
    name: str
    port: int
    host_key: Path  # the server's private host key (its .pub is what known_hosts holds)
    proxy: str = ""  # set for a server in a network namespace

    def known_hosts_line(self) -> str:
        """The known_hosts entry paramiko looks up for 127.0.0.1 on this port."""
        pub = self.host_key.with_suffix(".pub").read_text().split()
        host = "127.0.0.1" if self.port == 22 else f"[127.0.0.1]:{self.port}"
        return f"{host} {pub[0]} {pub[1]}\n"

    def toml(self, *, slots: int = 1, python: str = sys.executable, workdir: Path) -> str:
        # The "hosts" are this machine: its python3 may have no pytest (Debian's has none), the
        # tests' interpreter has.
        lines = ["[[host]]", f'name = "{self.name}"', 'address = "127.0.0.1"', f"port = {self.port}",
                 f"slots = {slots}", f'python = "{python}"', f'workdir = "{workdir}"']
        if self.proxy:
            lines.append(f'proxy = "{self.proxy}"')
        return "\n".join(lines) + "\n"


def available() -> bool:
    return Path(SSHD).exists() and shutil.which("ssh-keygen") is not None


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def _config(root: Path, port: int, client_pub: Path) -> Path:
    host_key = keygen(root / "host_ed25519")
    authorized = root / "authorized_keys"
    authorized.write_text(client_pub.read_text())
    config = root / "sshd_config"
    config.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {root}/sshd.pid
AuthorizedKeysFile {authorized}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel ERROR
""")
    return config


def _wait_listening(connect: list[str] | None, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"sshd exited with code {proc.returncode}"
        if connect is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                pass
        elif subprocess.run(connect, capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError("sshd did not start listening")


@contextlib.contextmanager
def running_sshd(root: Path, client_pub: Path, name: str = "h1") -> Iterator[SSHServer]:
    """An sshd on a free loopback port, accepting `client_pub`'s key for root."""
    root.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation directory
    port = free_port()
    config = _config(root, port, client_pub)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(root / "sshd.log", "wb"))
    try:
        _wait_listening(None, port, proc)
        yield SSHServer(name, port, root / "host_ed25519")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def sshd_in_namespace(root: Path, client_pub: Path, name: str = "h2") -> Iterator[SSHServer]:
    """An sshd on port 22 of the loopback of a network namespace of our own: a second host that
    shares nothing on the network with this one, reached through `ip netns exec … socat`."""
    root.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    ns = f"farmtest-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = None
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        config = _config(root, 22, client_pub)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, SSHD, "-D", "-e", "-f", str(config)],
                                stdout=subprocess.DEVNULL, stderr=open(root / "sshd.log", "wb"))
        probe = ["ip", "netns", "exec", ns, "socat", "-u", "OPEN:/dev/null", "TCP:127.0.0.1:22"]
        _wait_listening(probe, 22, proc)  # connects inside the namespace
        yield SSHServer(name, 22, root / "host_ed25519", proxy=f"ip netns exec {ns} socat - TCP:127.0.0.1:22")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", ns], check=False)
