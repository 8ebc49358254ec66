"""What Flower shows of a farm task's arguments: one readable line per message, never a secret.

A farm task's only argument is msgpack bytes (`farm.protocol`), which Flower would show as hex.
Each message gets a label instead, sent as the task's `argsrepr`: the suite, the assignment and
attempt, how many tests and the first of their ids. Labels never carry pytest arguments,
messages, output or URLs (any of which may hold a secret); node ids are the user's test names.
"""

from __future__ import annotations

from farm.model import Assignment, Collection, Completion, RecordBatch, SuiteSpec

#: Test ids named in a label; the rest are counted.
FIRST_IDS = 3
#: Longest label (Celery's own argsrepr limit is 1024).
MAX_LABEL = 512


def label(message: object) -> str:
    """The one-line label of a farm message (the type's name for an unknown one)."""
    if isinstance(message, Assignment):
        text = (f"suite {message.suite_id} {_short(message.assignment_id, message.suite_id)} "
                f"attempt {message.attempt}: {_tests(message.test_ids)}")
    elif isinstance(message, SuiteSpec):
        text = f"suite {message.suite_id} collect (project {message.project}, pool {message.pool})"
    elif isinstance(message, Collection):
        text = (f"suite {message.suite_id} collected on {message.worker}: {_count(len(message.test_ids))} "
                f"(pytest exit {message.exit_code})")
    elif isinstance(message, RecordBatch):
        text = (f"suite {message.suite_id} {_short(message.assignment_id, message.suite_id)} attempt "
                f"{message.attempt} on {message.worker}: {len(message.records)} records")
    elif isinstance(message, Completion):
        text = (f"suite {message.suite_id} {_short(message.assignment_id, message.suite_id)} attempt "
                f"{message.attempt} {message.state} on {message.worker}: {message.reported} records, "
                f"exit {message.exit_code}")
    else:
        text = type(message).__name__
    return text if len(text) <= MAX_LABEL else text[:MAX_LABEL - 3] + "..."


def _short(assignment_id: str, suite_id: str) -> str:
    """An assignment's id without its suite's prefix (`a003`, `r01`, `c01`)."""
    return assignment_id.removeprefix(f"{suite_id}-") or assignment_id


def _count(n: int) -> str:
    return f"{n} test" if n == 1 else f"{n} tests"


def _tests(test_ids: tuple[str, ...]) -> str:
    shown = ", ".join(test_ids[:FIRST_IDS])
    more = f", ... (+{len(test_ids) - FIRST_IDS})" if len(test_ids) > FIRST_IDS else ""
    return f"{_count(len(test_ids))}: {shown}{more}" if test_ids else _count(0)
