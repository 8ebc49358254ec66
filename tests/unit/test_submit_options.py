"""submit-suite's --stage, --requirements and --install read into the model (farm/submit_options.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.errors import UsageError
from farm.model import Stage
from farm.submit_options import expand_requirements, stages, suite_env
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


def test_r_lines_are_inlined_relative_to_the_file_naming_them_and_c_lines_refused() -> None:
    files = {"/p/req/dev.txt": "-r base.txt\nflake8\n", "/p/req/base.txt": "--requirement=../common/pins.txt\nattrs\n",
             "/p/req/../common/pins.txt": "pytest>=9  # pinned\n"}
    read = lambda path, where: files[str(path)]  # noqa: E731
    assert expand_requirements("attrs\n", "/p/req.txt", read) == "attrs\n"  # nothing to follow: the text as it is
    assert expand_requirements("-r https://example.invalid/r.txt\n", "/p/req.txt", read) == \
        "-r https://example.invalid/r.txt\n"  # pip fetches URLs itself
    assert expand_requirements(files["/p/req/dev.txt"], "/p/req/dev.txt", read).splitlines() == [
        "# farm: -r base.txt",
        "# farm: --requirement=../common/pins.txt",
        "pytest>=9  # pinned", "attrs", "flake8"]
    with pytest.raises(UsageError, match=r"^--requirements /p/r.txt, line 2: `-c pins.txt`: constraint files"):
        expand_requirements("attrs\n-c pins.txt\n", "/p/r.txt", read)
    loop = {"/p/a.txt": "-r b.txt\n", "/p/b.txt": "-ra.txt\n"}
    with pytest.raises(UsageError, match=r"^--requirements /p/b.txt, line 1: `-ra.txt`: /p/a.txt includes itself"):
        expand_requirements(loop["/p/a.txt"], "/p/a.txt", lambda path, where: loop[str(path)])
    deep = {f"/p/{i}.txt": f"-r {i + 1}.txt\n" for i in range(20)}
    with pytest.raises(UsageError, match="nest deeper than 8 files"):
        expand_requirements(deep["/p/0.txt"], "/p/0.txt", lambda path, where: deep[str(path)])
    wide = {"/p/w.txt": "-r big.txt\n" * 3, "/p/big.txt": "x" * 100_000 + "\n"}  # 300 kB made of one file
    with pytest.raises(UsageError, match=r"^--requirements /p/w.txt: 300\d+ bytes with the files its `-r` lines"):
        expand_requirements(wide["/p/w.txt"], "/p/w.txt", lambda path, where: wide[str(path)])


def test_the_same_files_in_another_checkout_make_the_same_environment(tmp_path: Path) -> None:
    for where in ("one", "two"):
        (tmp_path / where / "req").mkdir(parents=True)
        (tmp_path / where / "req" / "base.txt").write_text("pytest>=9\n")
        (tmp_path / where / "req" / "dev.txt").write_text("-r base.txt\n")
    one, two = (suite_env((tmp_path / w / "req" / "dev.txt",), (), "editable") for w in ("one", "two"))
    assert one.requirements[0][1] == two.requirements[0][1] == "# farm: -r base.txt\npytest>=9\n"
    assert one.digest() == two.digest()


def test_a_file_an_r_line_names_is_read_beside_it_and_a_missing_one_named(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.txt").write_text("pytest>=9\n")
    req = tmp_path / "dev.txt"
    req.write_text("-r sub/base.txt\n-r gone.txt\n")
    with pytest.raises(UsageError, match=rf"^--requirements {req}, line 2: cannot read {tmp_path}/gone.txt: "):
        suite_env((req,), (), "editable")
    req.write_text("-r sub/base.txt\n")
    assert suite_env((req,), (), "editable").requirements[0][1].splitlines()[1:] == ["pytest>=9"]
