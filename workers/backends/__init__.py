"""Execution backends: where a runner runs (a local sandbox, SSH hosts, libvirt VMs)."""

from __future__ import annotations

from workers.backends.base import ExecutionBackend, RunningPytest, RunRequest

__all__ = ["ExecutionBackend", "RunRequest", "RunningPytest", "make_backend"]


def make_backend(name: str, **options: object) -> ExecutionBackend:
    """The backend called `name`, chosen at the edge."""
    if name == "local":
        from workers.backends.local import LocalBackend

        return LocalBackend(**options)  # type: ignore[arg-type]
    if name == "ssh":
        from workers.backends.ssh import SSHBackend

        return SSHBackend(**options)  # type: ignore[arg-type]
    if name == "libvirt":
        from farm.extras import require_libvirt

        require_libvirt()  # one line and exit 4, not a ModuleNotFoundError later
        from workers.backends.libvirt import LibvirtBackend

        return LibvirtBackend(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {name!r} (known: local, ssh, libvirt)")
