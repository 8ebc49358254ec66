"""Optional parts of farm (pip extras): whether one is installed, and the one line saying how to get it."""

from __future__ import annotations

import importlib.util

from farm.errors import UsageError

#: What the libvirt backend needs and how to get it; libvirt-python has no wheel, it compiles.
LIBVIRT_MISSING = (
    "the libvirt backend needs libvirt-python, which is not installed: install farm's libvirt extra "
    "(pip install 'suitefarm[libvirt]', or -e '.[libvirt]' in a clone); it compiles, so first: "
    "apt-get install gcc python3-dev pkg-config libvirt-dev"
)


def require_libvirt() -> None:
    """Raise UsageError (exit 4, one line) unless libvirt-python can be imported."""
    if importlib.util.find_spec("libvirt") is None:
        raise UsageError(LIBVIRT_MISSING)
