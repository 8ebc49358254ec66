"""Message signing: HMAC-SHA256 over each farm message with a key the farm's processes share.

A signed message is `MAGIC | key id (8 bytes) | HMAC (32 bytes) | payload`; the HMAC covers the
magic, the task name, the key id and the payload's exact bytes, so a message cannot be altered,
signed by another key, or moved to another task. A keyring holds the current key (it signs) and
any previous ones (they still verify), which is how a key is rotated without downtime
(docs/operations.md, "Message signing"). Keys come from FARM_SIGNING_KEY or from a file named by
FARM_SIGNING_KEY_FILE that only its owner may read; a key file is read again when it changes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from farm.errors import SignatureError, UsageError

log = logging.getLogger("farm.signing")

MAGIC = b"FSG1"
ID_BYTES = 8
MAC_BYTES = 32
#: The shortest secret accepted; `generate_secret` makes 64 hex characters (256 bits).
MIN_SECRET_CHARS = 32
#: How often a key file is checked for a change (a stat call).
RELOAD_EVERY_S = 1.0
_HEADER = len(MAGIC) + ID_BYTES + MAC_BYTES


def key_id(secret: bytes) -> bytes:
    """A key's id: derived from its secret (so no process needs to be told it), revealing nothing of it."""
    return hashlib.sha256(b"farm signing key id\0" + secret).digest()[:ID_BYTES]


@dataclass(frozen=True)
class Keys:
    """Secrets, the first the current one (it signs), every one accepted."""

    secrets: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.secrets:
            raise UsageError("a signing keyring needs at least one key")

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key_id(s).hex() for s in self.secrets)

    def seal(self, task: str, payload: bytes) -> bytes:
        """`payload` signed with the current key, for the task named `task`."""
        secret = self.secrets[0]
        kid = key_id(secret)
        return MAGIC + kid + _mac(secret, task, kid, payload) + payload

    def open(self, task: str, data: bytes) -> bytes:
        """The payload of a message signed for `task` by one of the keys; SignatureError otherwise."""
        if not isinstance(data, (bytes, bytearray)) or bytes(data[: len(MAGIC)]) != MAGIC:
            raise SignatureError(f"unsigned {task} message")
        if len(data) < _HEADER:
            raise SignatureError(f"truncated signature on a {task} message")
        data = bytes(data)
        kid = data[len(MAGIC): len(MAGIC) + ID_BYTES]
        mac = data[len(MAGIC) + ID_BYTES: _HEADER]
        payload = data[_HEADER:]
        for secret in self.secrets:
            if hmac.compare_digest(key_id(secret), kid):
                if hmac.compare_digest(_mac(secret, task, kid, payload), mac):
                    return payload
                raise SignatureError(f"bad signature on a {task} message (key {kid.hex()})")
        raise SignatureError(f"{task} message signed with an unknown key {kid.hex()}")


def _mac(secret: bytes, task: str, kid: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, MAGIC + task.encode() + b"\0" + kid + payload, hashlib.sha256).digest()


def parse(text: str, origin: str) -> Keys:
    """Keys from text: secrets separated by newlines, commas or spaces, the first current; `#` starts a comment."""
    words = [w for line in text.splitlines() for w in line.split("#", 1)[0].replace(",", " ").split()]
    if not words:
        raise UsageError(f"{origin} holds no signing key")
    short = [i + 1 for i, w in enumerate(words) if len(w) < MIN_SECRET_CHARS]
    if short:
        raise UsageError(f"{origin}: signing key {short[0]} is shorter than {MIN_SECRET_CHARS} characters "
                         "(make one with: openssl rand -hex 32)")
    return Keys(tuple(dict.fromkeys(w.encode() for w in words)))


def generate_secret() -> str:
    """A new secret: 64 hex characters."""
    return secrets.token_hex(32)


def write_key_file(path: Path) -> Path:
    """A new key file at `path` with one fresh key, readable by its owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(generate_secret() + "\n")
    return path


def read_key_file(path: Path) -> Keys:
    """The keys in `path`, which must be a regular file that only its owner (this user or root) can read."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"signing key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise UsageError(f"signing key file {path} is open to others (mode {stat.S_IMODE(info.st_mode):04o}): "
                             f"chmod 600 {path}")
        if info.st_uid not in (os.geteuid(), 0):
            raise UsageError(f"signing key file {path} is owned by uid {info.st_uid}, not by this user or root")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read signing key file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"signing key file {path} is not text") from None
    return parse(text, f"signing key file {path}")


class Keyring:
    """The keys a process signs and verifies with; from a file, read again (at most every
    RELOAD_EVERY_S) when it changed, so that keys rotate without a restart. A file that turns bad
    keeps the keys it last held, with one error line."""

    def __init__(self, keys: Keys, path: Path | None = None) -> None:
        self._keys = keys
        self.path = path
        self._seen = _fingerprint(path) if path is not None else None
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        return cls(read_key_file(path), path)

    @property
    def keys(self) -> Keys:
        if self.path is None or time.monotonic() - self._checked < RELOAD_EVERY_S:
            return self._keys
        with self._lock:
            self._checked = time.monotonic()
            seen = _fingerprint(self.path)
            if seen != self._seen:
                self._seen = seen
                try:
                    keys = read_key_file(self.path)
                except UsageError as exc:
                    log.error("kept the signing keys %s: %s", ",".join(self._keys.ids), exc)
                else:
                    if keys != self._keys:
                        log.warning("signing keys now %s (from %s)", ",".join(keys.ids), self.path)
                    self._keys = keys
        return self._keys

    def seal(self, task: str, payload: bytes) -> bytes:
        return self.keys.seal(task, payload)

    def open(self, task: str, data: bytes) -> bytes:
        return self.keys.open(task, data)


def _fingerprint(path: Path) -> tuple[int, ...] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode, info.st_uid)


def from_env(env: Mapping[str, str] | None = None, key_file: Path | None = None) -> Keyring:
    """The keyring of a farm service: `key_file`, else FARM_SIGNING_KEY_FILE, else FARM_SIGNING_KEY.

    No key at all is a usage error: a service that ran unsigned would accept forged messages."""
    env = os.environ if env is None else env
    path = key_file or (Path(env["FARM_SIGNING_KEY_FILE"]) if env.get("FARM_SIGNING_KEY_FILE") else None)
    if path is not None:
        if env.get("FARM_SIGNING_KEY"):
            raise UsageError("both a signing key file and FARM_SIGNING_KEY are set: use one")
        return Keyring.from_file(path)
    if env.get("FARM_SIGNING_KEY"):
        return Keyring(parse(env["FARM_SIGNING_KEY"], "FARM_SIGNING_KEY"))
    raise UsageError("no signing key: set FARM_SIGNING_KEY_FILE to a file only this user can read, "
                     "holding a key made with `openssl rand -hex 32` (docs/operations.md, Message signing)")
