"""The worker's cache of bundle archives, by digest, filled from the state store on first use."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import redis

from farm import keys
from farm.bundle import check_unpacked_size
from farm.config import Settings
from farm.errors import InfrastructureError


class BundleCache:
    """Bundles on local disk, named by their sha256 digest."""

    def __init__(self, root: Path, store: redis.Redis, max_unpacked_bytes: int = Settings.max_unpacked_bytes) -> None:
        self.root = root / "bundles"
        self.store = store
        self.max_unpacked_bytes = max_unpacked_bytes

    def path(self, digest: str) -> Path:
        """The local archive for `digest`, fetched and verified if it is not cached yet."""
        if not digest.isalnum() or len(digest) != 64:
            raise InfrastructureError(f"malformed bundle digest {digest!r}")
        local = self.root / f"{digest}.tar.gz"
        if local.exists():
            return local
        data: bytes | None = self.store.get(keys.bundle(digest))  # type: ignore[assignment]
        if data is None:
            raise InfrastructureError(f"bundle {digest[:12]} is not in the state store (expired?)")
        if hashlib.sha256(data).hexdigest() != digest:
            raise InfrastructureError(f"bundle {digest[:12]} does not match its digest")
        # Before it is cached: a bundle that would unpack to gigabytes goes to no backend.
        check_unpacked_size(data, self.max_unpacked_bytes)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, local)  # atomic: concurrent slots never see half a file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return local
