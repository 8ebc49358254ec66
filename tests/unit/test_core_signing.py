"""Message signing (farm.signing): only a message sealed by a key of the keyring opens, for its own task."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from farm import signing
from farm.celery_app import ASSIGNMENT_COMPLETED, RECORD_BATCH
from farm.errors import SignatureError, UsageError
from farm.model import Completion
from farm.protocol import encode

OLD, NEW, OTHER = (signing.generate_secret().encode() for _ in range(3))
PAYLOAD = encode(Completion("s1", "s1-a000", 1, "w@h", "n", "done", 1.0, 2.0, 0, 3))


def _keys(*secrets: bytes) -> signing.Keys:
    return signing.Keys(secrets)


def test_a_sealed_message_opens_to_its_exact_payload() -> None:
    sealed = _keys(NEW).seal(RECORD_BATCH, PAYLOAD)
    assert sealed != PAYLOAD and sealed.endswith(PAYLOAD)
    assert _keys(NEW).open(RECORD_BATCH, sealed) == PAYLOAD


def test_every_byte_changed_anywhere_in_a_sealed_message_is_refused() -> None:
    sealed = _keys(NEW).seal(ASSIGNMENT_COMPLETED, PAYLOAD)
    for i in range(len(sealed)):
        tampered = sealed[:i] + bytes([sealed[i] ^ 0x01]) + sealed[i + 1:]
        with pytest.raises(SignatureError):
            _keys(NEW).open(ASSIGNMENT_COMPLETED, tampered)


def test_a_message_cut_short_or_grown_is_refused() -> None:
    sealed = _keys(NEW).seal(ASSIGNMENT_COMPLETED, PAYLOAD)
    for data in (sealed[:-1], sealed + b"\x00", sealed[: signing._HEADER - 1], sealed[:4]):
        with pytest.raises(SignatureError):
            _keys(NEW).open(ASSIGNMENT_COMPLETED, data)


def test_an_unsigned_payload_in_the_protocols_own_format_is_refused() -> None:
    with pytest.raises(SignatureError, match="unsigned farm.assignment_completed message"):
        _keys(NEW).open(ASSIGNMENT_COMPLETED, PAYLOAD)
    for other in ("text", None, [PAYLOAD]):  # what else a forged Celery message may carry as the argument
        with pytest.raises(SignatureError, match="unsigned"):
            _keys(NEW).open(ASSIGNMENT_COMPLETED, other)  # type: ignore[arg-type]


def test_a_message_signed_with_a_key_not_in_the_keyring_is_refused_as_unknown() -> None:
    forged = _keys(OTHER).seal(ASSIGNMENT_COMPLETED, PAYLOAD)
    with pytest.raises(SignatureError, match=f"unknown key {signing.key_id(OTHER).hex()}"):
        _keys(NEW, OLD).open(ASSIGNMENT_COMPLETED, forged)


def test_a_wrong_key_under_a_known_key_id_is_a_bad_signature() -> None:
    forged = bytearray(_keys(OTHER).seal(ASSIGNMENT_COMPLETED, PAYLOAD))
    forged[4:12] = signing.key_id(NEW)  # claims to be the farm's key
    with pytest.raises(SignatureError, match="bad signature"):
        _keys(NEW).open(ASSIGNMENT_COMPLETED, bytes(forged))


def test_a_message_signed_for_one_task_does_not_open_for_another() -> None:
    sealed = _keys(NEW).seal(RECORD_BATCH, PAYLOAD)
    with pytest.raises(SignatureError, match="bad signature"):
        _keys(NEW).open(ASSIGNMENT_COMPLETED, sealed)


def test_rotation_the_previous_key_verifies_while_the_new_one_is_rolled_out() -> None:
    before = _keys(OLD)  # a process not yet given the new key
    accepting = _keys(OLD, NEW)  # step 1: the new key is accepted everywhere, the old one still signs
    signing_new = _keys(NEW, OLD)  # step 2: the new key signs, the old one still verifies
    after = _keys(NEW)  # step 3: the old key is gone
    from_old = before.seal(RECORD_BATCH, PAYLOAD)
    from_new = signing_new.seal(RECORD_BATCH, PAYLOAD)
    assert accepting.open(RECORD_BATCH, from_old) == signing_new.open(RECORD_BATCH, from_old) == PAYLOAD
    assert accepting.open(RECORD_BATCH, from_new) == after.open(RECORD_BATCH, from_new) == PAYLOAD
    assert accepting.seal(RECORD_BATCH, PAYLOAD) == from_old  # the first key signs
    with pytest.raises(SignatureError, match="unknown key"):
        after.open(RECORD_BATCH, from_old)


def test_keys_are_read_from_lines_commas_or_spaces_with_comments_and_short_ones_are_refused() -> None:
    text = f"# rotated 2026-12-01\n{NEW.decode()}  # current\n\n{OLD.decode()},{OTHER.decode()}\n"
    assert signing.parse(text, "f").secrets == (NEW, OLD, OTHER)
    with pytest.raises(UsageError, match="key 2 is shorter than 32 characters"):
        signing.parse(f"{NEW.decode()}\nshort", "f")
    with pytest.raises(UsageError, match="holds no signing key"):
        signing.parse("# nothing\n", "f")


def test_a_key_file_open_to_others_is_refused_in_one_line(tmp_path: Path) -> None:
    path = signing.write_key_file(tmp_path / "key")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert len(signing.read_key_file(path).secrets) == 1
    os.chmod(path, 0o400)
    signing.read_key_file(path)
    for mode in (0o640, 0o604, 0o644):
        os.chmod(path, mode)
        with pytest.raises(UsageError, match=f"is open to others \\(mode {mode:04o}\\): chmod 600 {path}$"):
            signing.read_key_file(path)
    with pytest.raises(UsageError, match="cannot read signing key file .*No such file"):
        signing.read_key_file(tmp_path / "missing")
    with pytest.raises(UsageError, match="not a regular file"):
        signing.read_key_file(tmp_path)


def test_a_service_without_a_key_or_with_two_sources_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="^no signing key: set FARM_SIGNING_KEY_FILE"):
        signing.from_env({})
    path = signing.write_key_file(tmp_path / "key")
    with pytest.raises(UsageError, match="use one"):
        signing.from_env({"FARM_SIGNING_KEY_FILE": str(path), "FARM_SIGNING_KEY": NEW.decode()})
    assert signing.from_env({"FARM_SIGNING_KEY": f"{NEW.decode()},{OLD.decode()}"}).keys.secrets == (NEW, OLD)
    assert signing.from_env({}, key_file=path).path == path


def test_a_key_file_is_read_again_when_it_changes_and_kept_when_it_turns_bad(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(signing, "RELOAD_EVERY_S", 0.0)
    path = tmp_path / "key"
    path.write_text(OLD.decode() + "\n")
    path.chmod(0o600)
    caplog.set_level(logging.WARNING, logger="farm.signing")
    keyring = signing.Keyring.from_file(path)
    from_old = keyring.seal(RECORD_BATCH, PAYLOAD)
    path.write_text(f"{NEW.decode()}\n{OLD.decode()}\n")  # the new key signs, the old one still verifies
    assert keyring.open(RECORD_BATCH, from_old) == PAYLOAD
    assert _keys(NEW).open(RECORD_BATCH, keyring.seal(RECORD_BATCH, PAYLOAD)) == PAYLOAD
    path.chmod(0o644)
    assert keyring.keys.secrets == (NEW, OLD)
    assert [r.getMessage() for r in caplog.records] == [
        f"signing keys now {signing.key_id(NEW).hex()},{signing.key_id(OLD).hex()} (from {path})",
        f"kept the signing keys {signing.key_id(NEW).hex()},{signing.key_id(OLD).hex()}: signing key file {path} "
        f"is open to others (mode 0644): chmod 600 {path}"]
