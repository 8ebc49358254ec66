"""Names of every key farm keeps in the state store (Redis), in one place."""

from __future__ import annotations

PREFIX = "farm"


def text(reply: bytes | str) -> str:
    """A string reply from the state store as text (redis-py types replies as bytes or str)."""
    return reply.decode() if isinstance(reply, bytes) else reply


def bundle(digest: str) -> str:
    """Bytes of a bundle archive, by its sha256 digest."""
    return f"{PREFIX}:bundle:{digest}"


def collection_cache(key: str) -> str:
    """Bytes (msgpack Collection) of a cached collection, by its key (workers/collection_cache.py);
    with `:files` a hash: file → how many items it holds."""
    return f"{PREFIX}:collection:{key}"


def suite(suite_id: str) -> str:
    """Hash: the suite's spec, status, totals and timestamps; `finalized`: who holds its finish claim."""
    return f"{PREFIX}:suite:{suite_id}"


def outcomes(suite_id: str) -> str:
    """Hash: test id → the outcome that counts."""
    return f"{PREFIX}:suite:{suite_id}:outcomes"


def records(suite_id: str) -> str:
    """Hash: test id → the msgpack record whose outcome counts."""
    return f"{PREFIX}:suite:{suite_id}:records"


def attempts(suite_id: str) -> str:
    """Hash: "test id NUL assignment NUL attempt" → msgpack `farm.model.TestRun`: every test run (one
    test's result in one attempt). Named `attempts` for compatibility; the attempts are in `assignments`."""
    return f"{PREFIX}:suite:{suite_id}:attempts"


def counts(suite_id: str) -> str:
    """Hash: outcome → how many tests hold it."""
    return f"{PREFIX}:suite:{suite_id}:counts"


def assignments(suite_id: str) -> str:
    """Hash: `attempt_key` ("ID#N") → msgpack `farm.attempts.Attempt`: every attempt of every assignment."""
    return f"{PREFIX}:suite:{suite_id}:assignments"


def received(suite_id: str) -> str:
    """Hash: attempt key ("ID#N") → how many of its records were merged (HINCRBY, in the merge's
    own transaction): counted apart from the attempt, so a batch never rewrites its attempt."""
    return f"{PREFIX}:suite:{suite_id}:received"


def batches(suite_id: str) -> str:
    """Set: "ATTEMPT#N:SEQ" (`batch_member`) for every numbered batch merged (`RecordBatch.seq`),
    added in the merge's own step: a batch delivered again is found here and neither merged,
    counted in `received` nor logged again."""
    return f"{PREFIX}:suite:{suite_id}:batches"


def batch_member(attempt_key: str, seq: int) -> str:
    """A batch's member of `batches`: its attempt's key and its number."""
    return f"{attempt_key}:{seq}"


def held(suite_id: str) -> str:
    """Hash: attempt key ("ID#N") → msgpack [completion, since]: a completion waiting for records it
    says were sent (`farm.attempts.Attempt.waiting_completion`), apart from the attempt so a batch
    can check for one without reading the attempt's test ids."""
    return f"{PREFIX}:suite:{suite_id}:held"


def owners(suite_id: str) -> str:
    """Hash: test id → the attempt ("assignment#attempt") whose record for it counts."""
    return f"{PREFIX}:suite:{suite_id}:owners"


def reruns(suite_id: str) -> str:
    """Hash: test id → how many times it was run again after failing (--rerun-failures)."""
    return f"{PREFIX}:suite:{suite_id}:reruns"


def crash_retries(suite_id: str) -> str:
    """Hash: test id → 1 once it was run again, elsewhere, after it crashed its runner."""
    return f"{PREFIX}:suite:{suite_id}:crash-retries"


def current(suite_id: str) -> str:
    """Hash: assignment id → its current attempt ("N", or "N!" once it ended): workers drop the rest."""
    return f"{PREFIX}:suite:{suite_id}:current"


def ended(suite_id: str) -> str:
    """Stream: one entry, added with the report in the finish's transaction. A waiting client
    blocks on it (XREAD) between its polls: the end is seen at once, and nothing of the suite's
    log (its records, with their output) is sent to every waiting client for it."""
    return f"{PREFIX}:suite:{suite_id}:ended"


def claims(suite_id: str) -> str:
    """Hash: attempt key ("ID#N") → the worker that claimed it. An attempt is claimed once: a
    delivery that comes after its lease lapsed (the worker died, before the sweep took it as lost)
    must not run it again under the same number."""
    return f"{PREFIX}:suite:{suite_id}:claims"


def lease(suite_id: str, attempt_key: str) -> str:
    """String with a TTL: held by the worker running that attempt, refreshed while it runs."""
    return f"{PREFIX}:lease:{suite_id}:{attempt_key}"


def attempt_key(assignment_id: str, attempt: int) -> str:
    """How an assignment's attempt is named in `owners`, `lease` keys and the `assignments` hash: "ID#N"."""
    return f"{assignment_id}#{attempt}"


def report(suite_id: str) -> str:
    """String: the finished suite's JSON report."""
    return f"{PREFIX}:suite:{suite_id}:report"


def finished(suite_id: str) -> str:
    """Stream (bounded): per merged batch, the tests that got an outcome, their worker (`farm submit-suite -v`)."""
    return f"{PREFIX}:suite:{suite_id}:finished"


def events(suite_id: str) -> str:
    """Stream (bounded, `farm.events.cap`): the suite's event log, one msgpack `farm.events.Event` per entry."""
    return f"{PREFIX}:suite:{suite_id}:events"


def splits(suite_id: str) -> str:
    """Hash: attempt key ("ID#N") → msgpack split request {seq, tail} the coordinator asks of that
    attempt's worker (run-time balancing); the worker polls its own field."""
    return f"{PREFIX}:suite:{suite_id}:splits"


def suite_keys(suite_id: str) -> tuple[str, ...]:
    """Every key a suite owns (for expiry and deletion)."""
    return (
        suite(suite_id),
        outcomes(suite_id),
        records(suite_id),
        attempts(suite_id),
        counts(suite_id),
        assignments(suite_id),
        report(suite_id),
        owners(suite_id),
        current(suite_id),
        reruns(suite_id),
        crash_retries(suite_id),
        finished(suite_id),
        events(suite_id),
        splits(suite_id),
        received(suite_id),
        batches(suite_id),
        held(suite_id),
        claims(suite_id),
        ended(suite_id),
    )


def history(project: str) -> str:
    """Hash: test id → recorded duration in seconds, for splitting the next run.

    Any other history of a project (runs, flake rates...) goes under `history(project) + ":NAME"`:
    the embedded farm saves and restores every key matching `history_patterns(project)`."""
    return f"{PREFIX}:history:{project}"


#: The field of a project's durations hash holding the median per-assignment overhead (not a node
#: id: it has a NUL).
HISTORY_OVERHEAD_FIELD = "\0assignment-overhead"


def history_patterns(project: str) -> tuple[str, str]:
    """SCAN patterns matching every history key of a project: its durations hash and its `:NAME` keys."""
    base = scan_literal(history(project))
    return base, base + ":*"


def scan_literal(key: str) -> str:
    """`key` as a SCAN pattern that matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in key)


#: The suffixes of a project's run history (farm.run_history) after `history(project)`.
HISTORY_RUNS, HISTORY_TIMES = ":runs", ":times"


def history_runs(project: str) -> str:
    """List: the project's last K run entries (msgpack, farm.run_history), oldest first."""
    return history(project) + HISTORY_RUNS


def history_times(project: str) -> str:
    """Hash: test id -> its last K durations, float16 each (farm.run_history's rings)."""
    return history(project) + HISTORY_TIMES


WORKERS = f"{PREFIX}:workers"  # hash: worker name → msgpack WorkerInfo
DEAD_LETTERS = f"{PREFIX}:dead-letters"  # list: messages no consumer could decode, newest first (bounded)
ACTIVE = f"{PREFIX}:active"  # set: suites not finished yet (the coordinator's sweeper walks it)
# Sorted set: suites submitted and not yet taken up by a coordinator, by submission time (the
# sweeper takes up any whose message was lost).
SUBMITTED = f"{PREFIX}:submitted"


def coordinator(name: str) -> str:
    """String with a TTL: a coordinator that is alive, renewed every second (coordinator/peers.py)."""
    return f"{PREFIX}:coordinator:{name}"


#: String with a TTL: the name of the one coordinator that sweeps, renewed before each tick.
SWEEP_LEASE = f"{PREFIX}:sweep-lease"

#: Hash: farm-wide counters for `/metrics` (farm.counters), a fixed set of fields: `suites:STATUS`,
#: `tests:OUTCOME`, `records`, `lease_losses`, `hand_backs`, `vm_boots`, `vm_boot_failures`.
METRICS = f"{PREFIX}:metrics"
