"""Writes pytest's rewritten test modules into a worker's kept tree, as pytest itself caches them.

Run by the worker (workers.bundles.compile_tree) as `PYTHON -I pytest_rewrites.py TREE` under
the runners' interpreter, beside `compileall`: standard library and pytest only, no project code
(the modules are parsed and compiled, never imported). A plain `pytest` in a writable checkout
keeps these files in `__pycache__/NAME.cpython-XY-pytest-VERSION.pyc` and reuses them on its next
run; farm's runners write no bytecode (each run is a throw-away copy), so before this every run
rewrote every test module's asserts again (toolz's 15 test modules: ~1.2 s of CPU a session).

Written only where a runner's pytest can use them as its own:
- a pytest whose rewritten pyc is checked by the source's hash and whose loader points the code
  at the file it was loaded from (`_fix_code_filename`): the runners' copies have other paths;
  an older pytest (7.2: pyc checked by mtime and size, code named after the path it was written
  at) gets nothing, and rewrites as before;
- the default file names pytest rewrites (`test_*.py`, `*_test.py`, `conftest.py`); a project
  with other `python_files` has those rewritten in the run as before, and a file pytest does not
  rewrite has its pyc ignored (pytest reads these only through its own import hook);
- not when the project's configuration mentions `enable_assertion_pass_hook` (the one setting the
  rewritten code depends on; these are written without the hook). A run that passes it with `-o`
  gets a copy without them (workers.bundles.ProjectTrees.copy).
Every failure is silent: what is not written here is rewritten in the run, as pytest always does.
"""

from __future__ import annotations

import os
import re
import sys
import types
import warnings

#: pytest's default `python_files`, and conftest.py: the modules pytest rewrites itself (and
#: workers.bundles.compile_tree leaves out of compileall, whose bytecode of them would go unused).
REWRITTEN = re.compile(r"(^|/)(test_[^/]*|[^/]*_test|conftest)\.py$")
PASS_HOOK = "enable_assertion_pass_hook"  # noqa: S105 (an ini option's name)
#: what a pytest configuration can be named (pytest.toml and .pytest.toml since pytest 9, any
#: name through `-c FILE`): every file with these endings is read for the pass hook
CONFIG_SUFFIXES = (".ini", ".toml", ".cfg")


def asks_pass_hook(tree: str) -> bool:
    """Whether a configuration file anywhere in `tree` names the pass hook (or cannot be read)."""
    for top, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(CONFIG_SUFFIXES):
                try:
                    with open(os.path.join(top, name), "rb") as f:
                        if PASS_HOOK.encode() in f.read():
                            return True
                except OSError:
                    return True
    return False


def main(tree: str) -> int:
    try:
        from _pytest.assertion import rewrite
    except Exception:
        return 0
    if not hasattr(rewrite, "_fix_code_filename") or not hasattr(rewrite, "_write_pyc"):
        return 0
    if asks_pass_hook(tree):
        return 0
    from pathlib import Path

    state = types.SimpleNamespace(trace=lambda message: None)
    for top, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = os.path.join(top, name)
            if not REWRITTEN.search(path.replace(os.sep, "/")) or os.path.islink(path):
                continue
            fn = Path(path)
            try:
                cache_dir = rewrite.get_cache_dir(fn)
                if os.path.islink(cache_dir):  # written only inside the tree
                    continue
                # No config: written as pytest rewrites without the pass hook; state: only its trace.
                with warnings.catch_warnings(record=True) as warned:
                    warnings.simplefilter("always")
                    checked, code = rewrite._rewrite_test(fn, None)  # type: ignore[arg-type]
                if warned:
                    # pytest warns while it rewrites ("assertion is always true"): left to the run,
                    # which shows the warning (or fails on it under -W error) as plain pytest does.
                    continue
                cache_dir.mkdir(exist_ok=True)
                rewrite._write_pyc(state, code, checked,  # type: ignore[arg-type]
                                   cache_dir / (name[:-3] + rewrite.PYC_TAIL))
            except Exception:  # noqa: S112 (a module that does not parse fails, and says why, in the run)
                continue
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
