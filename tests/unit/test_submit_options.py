"""submit-suite's --stage, --requirements and --install read into the model (farm/submit_options.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.errors import UsageError
from farm.model import Stage
from farm.submit_options import stages, suite_env
from farm.suite_env import SuiteEnv


def test_stages_keep_their_order_and_split_their_args_as_a_shell_does() -> None:
    assert stages(("smoke=-m smoke", "rest=-m 'not smoke' -k \"a or b\"", "all=")) == (
        Stage("smoke", ("-m", "smoke")), Stage("rest", ("-m", "not smoke", "-k", "a or b")), Stage("all", ()))


@pytest.mark.parametrize("value, says", [
    ("smoke", "expected NAME=PYTEST_ARGS"), ("=-m x", "expected NAME=PYTEST_ARGS"),
    ("1st=-x", "expected NAME=PYTEST_ARGS"), ("a=-m 'open", "--stage a: No closing quotation"),
])
def test_a_bad_stage_is_a_usage_error_naming_it(value: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        stages((value,))
    with pytest.raises(UsageError, match="--stage a: given twice"):
        stages(("a=-x", "a=-q"))


def test_requirement_files_travel_by_text_and_the_digest_follows_it(tmp_path: Path) -> None:
    req = tmp_path / "req.txt"
    req.write_text("pytest>=9\n")
    env = suite_env((req,), (" .[test] ",), "plain")
    assert env.requirements == ((str(req), "pytest>=9\n"),) and env.install == (".[test]",)
    assert env.describe() == f"{req}, .[test] (plain)"
    req.write_text("pytest>=9.0.1\n")
    assert suite_env((req,), (".[test]",), "plain").digest() != env.digest()
    assert suite_env((req,), (".[test]",), "plain").digest() == suite_env((req,), (".[test]",), "plain").digest()
    assert not SuiteEnv() and suite_env((), ("attrs",), "editable")


def test_an_unreadable_requirement_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="not UTF-8 text"):
        suite_env((tmp_path / "bin.txt",), (), "editable")
    with pytest.raises(UsageError, match="cannot read it"):
        suite_env((tmp_path / "gone.txt",), (), "editable")
    with pytest.raises(UsageError, match="--install: an empty spec"):
        suite_env((), ("  ",), "editable")
