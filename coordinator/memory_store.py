"""A stub store in memory, for unit tests of the driver (dramatiq's StubBroker): `SuiteStore` without Redis.

Same semantics as `coordinator.state.SuiteState` (the decisions are the same pure functions:
`coordinator.aggregate.merge`, `coordinator.transitions`); one lock makes every method atomic.
The scenario tests in tests/unit/test_suite_machine.py run over it, and over a real
redis-server in tests/integration/test_suite_scenarios.py. Leases, workers and submissions,
which other processes write, are set with `hold_lease`, `add_worker` and `submit`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Container, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from coordinator import deadlines, transitions
from coordinator.aggregate import PENDING, After, Merge, merge, not_given
from coordinator.machine import SuiteView, collection_order
from coordinator.memory_suite import Suite, atomic
from coordinator.staging import StagePlan
from coordinator.store import COLLECTION_OWNER, FINISH_TRIES, Finished
from farm import events as eventlog
from farm import keys
from farm.attempts import Attempt
from farm.errors import SuiteNotFound
from farm.model import Collection, SuiteSpec, TestRecord, TestRun, WorkerInfo
from farm.outcomes import FAILURES, Outcome
from farm.protocol import decode, encode
from farm.run_history import DEFAULT_RUNS, RunEntry, appended, encode_run, ring_items
from farm.states import AttemptState, SuiteStatus

T = TypeVar("T")
log = logging.getLogger("farm.coordinator")


@atomic
class MemoryStore:
    """One farm's state in memory (satisfies `coordinator.store.SuiteStore`); every public method
    holds one lock, so each is atomic as SuiteState's are."""

    def __init__(self, clock: Callable[[], float] = time.time, name: str = "1") -> None:
        self.clock = clock  # the time events are stamped with
        self.name = name  # the coordinator's: a finish claim names its holder
        self._lock = threading.RLock()
        self._suites: dict[str, Suite] = {}
        self._submitted: dict[str, float] = {}
        self._active: set[str] = set()
        self._workers: dict[str, tuple[WorkerInfo, bool]] = {}
        self._history: dict[str, dict[str, float]] = {}
        self.history_runs = DEFAULT_RUNS  # runs a project's run history keeps (Settings.history_runs)
        self._runs: dict[str, list[bytes]] = {}  # project -> its run entries, oldest first
        self._rings: dict[str, dict[str, bytes]] = {}  # project -> test id -> its duration ring
        self._taken: dict[tuple[str, str], tuple[bytes, float]] = {}  # held completions taken: (completion, when)

    def peer(self, name: str) -> MemoryStore:
        """Another coordinator (named `name`) over this same farm: it shares everything but its name."""
        other = MemoryStore.__new__(MemoryStore)
        other.__dict__.update(self.__dict__, name=name)
        return other

    # --- what other processes write -----------------------------------------------------

    def submit(self, spec: SuiteSpec) -> None:
        """Store a suite as `farm submit-suite` does."""
        self._suites[spec.suite_id] = Suite({"spec": encode(spec), "status": SuiteStatus.SUBMITTED.value,
                                              "submitted_at": spec.submitted_at})
        self._submitted[spec.suite_id] = spec.submitted_at
        self._log(spec.suite_id, eventlog.submitted(spec))

    def add_worker(self, info: WorkerInfo, *, alive: bool = True) -> None:
        self._workers[info.name] = (info, alive)

    def hold_lease(self, suite_id: str, name: str, worker: str | None) -> None:
        """A worker takes (or, with None, lets lapse) the lease `name` ("collect", or an attempt key)."""
        s = self._suite(suite_id)
        if worker is None:
            s.leases.pop(name, None)
        else:
            s.leases[name] = worker
        if name == "collect" and worker is not None:
            s.fields["collect_started"] = worker

    def report(self, suite_id: str) -> str | None:
        return self._suite(suite_id).report

    def current(self, suite_id: str) -> dict[str, str]:
        """Assignment id → its current attempt ("N", "N!" once ended), as workers read it."""
        return dict(self._suite(suite_id).current)

    def events(self, suite_id: str) -> list[eventlog.Event]:
        """The suite's event log, oldest first."""
        return [eventlog.unpack(e) for e in self._suite(suite_id).log]

    def _log(self, suite_id: str, *logged: eventlog.Event) -> None:
        """Append to the suite's log, keeping the newest `eventlog.cap(tests)` entries."""
        s = self._suite(suite_id)
        s.log.extend(eventlog.pack(e) for e in logged)
        s.logged += len(logged)
        del s.log[:max(0, len(s.log) - eventlog.cap(int(s.fields.get("total") or 0)))]

    def _suite(self, suite_id: str) -> Suite:
        s = self._suites.get(suite_id)
        if s is None:
            raise SuiteNotFound(f"no suite {suite_id!r}")
        return s

    # --- suites --------------------------------------------------------------------------

    def spec(self, suite_id: str) -> SuiteSpec:
        return decode(self._suite(suite_id).fields["spec"], SuiteSpec)

    def field(self, suite_id: str, name: str) -> str | None:
        s = self._suites.get(suite_id)
        value = None if s is None else s.fields.get(name)
        return None if value is None else str(value)

    def view(self, suite_id: str) -> SuiteView:
        f = self._suite(suite_id).fields
        return SuiteView(SuiteStatus(f["status"]), float(f.get("cancel") or 0), str(f.get("stop") or ""),
                         float(f.get("complete_at") or 0), bool(f.get("collect_started")),
                         float(f.get("collect_published") or 0), float(f.get("collecting_since") or 0))

    def set_fields(self, suite_id: str, **fields: Any) -> None:
        self._suite(suite_id).fields.update(fields)

    def start_collecting(self, suite_id: str, now: float) -> bool:
        self._submitted.pop(suite_id, None)
        s = self._suite(suite_id)
        if s.fields["status"] != SuiteStatus.SUBMITTED:
            return False
        s.fields.update(status=SuiteStatus.COLLECTING.value, collecting_since=now)
        self._active.add(suite_id)
        return True

    def forget_submitted(self, suite_id: str) -> None:
        self._submitted.pop(suite_id, None)

    def submitted_before(self, before: float) -> list[str]:
        return [sid for sid, at in self._submitted.items() if at <= before]

    def request_cancel(self, suite_id: str, now: float) -> None:
        f = self._suite(suite_id).fields
        if "cancel" not in f:
            f["cancel"] = now
            self._log(suite_id, eventlog.Event(eventlog.Kind.CANCEL, self.clock(), detail="requested"))

    def request_stop(self, suite_id: str, reason: str) -> bool:
        f = self._suite(suite_id).fields
        if "stop" in f:
            return False
        f["stop"] = reason
        return True

    def canceled(self, suite_id: str) -> bool:
        return "cancel" in self._suite(suite_id).fields

    def stop_reason(self, suite_id: str) -> str:
        return str(self._suite(suite_id).fields.get("stop") or "")

    def maxfail(self, suite_id: str) -> int:
        return int(self._suite(suite_id).fields.get("maxfail") or 0)

    def active_suites(self) -> list[str]:
        return sorted(self._active)

    # --- planning and merging ------------------------------------------------------------

    def plan(self, collection: Collection, test_ids: list[str], attempts: list[Attempt], *, now: float,
             maxfail: int = 0, stages: StagePlan | None = None) -> bool:
        s = self._suite(collection.suite_id)
        if s.fields["status"] != SuiteStatus.COLLECTING:
            return False
        all_ids = collection_order(collection, test_ids)
        decided_ids = all_ids[len(test_ids):]
        s.outcomes.update({t: PENDING for t in all_ids})
        for a in attempts:
            s.attempts[a.key] = a
            s.current[a.assignment_id] = str(a.number)
            s.owners.update({t: a.key for t in a.test_ids})
        s.owners.update({t: COLLECTION_OWNER for t in decided_ids})
        s.fields.update(status=SuiteStatus.RUNNING.value, collection=encode(collection), order=all_ids,
                        total=len(all_ids), done=0, started_at=now, maxfail=maxfail)
        if stages is not None:
            s.fields.update(stages=stages.pack(), **stages.fields(len(all_ids)))
        self._log(collection.suite_id, eventlog.collected(collection, all_ids, attempts, self.clock()))
        return True

    def total_and_done(self, suite_id: str) -> tuple[int, int]:
        f = self._suite(suite_id).fields
        return int(f.get("stage_total") or f.get("total") or 0), int(f.get("done") or 0)

    def _merged_after(self, suite_id: str, assignment: str, attempt: int) -> After:
        """What a merge says of the suite (the whole suite's total, as MERGE reads it)."""
        f = self._suite(suite_id).fields
        return After(int(f.get("total") or 0), int(f.get("done") or 0),
                     self.held_completion(suite_id, assignment, attempt))

    def stages(self, suite_id: str) -> StagePlan | None:
        data = self._suite(suite_id).fields.get("stages")
        return None if data is None else StagePlan.unpack(data)

    def advance_stage(self, suite_id: str, from_stage: int, plan: StagePlan, attempts: list[Attempt]) -> bool:
        s = self._suite(suite_id)
        if s.fields.get("stage") is None or int(s.fields["stage"]) != from_stage:
            return False
        s.fields.update(stages=plan.pack(), **plan.fields(int(s.fields.get("total") or 0)))
        s.fields.pop("complete_at", None)
        for a in attempts:
            s.attempts[a.key] = a
            s.current[a.assignment_id] = str(a.number)
            s.owners.update({t: a.key for t in a.test_ids})
        self._log(suite_id, *eventlog.stage_started(plan.current, attempts, self.clock()))
        return True

    def merge(self, suite_id: str, records: list[TestRecord], *, assignment: str, attempt: int, worker: str,
              node: str, fence: bool = True, kind: eventlog.Kind = eventlog.Kind.RECORDS,
              count_received: bool = False, given: Callable[[], Container[str]] | None = None,
              batch: int = 0) -> Merge:
        s = self._suite(suite_id)
        name = keys.attempt_key(assignment, attempt)
        member = keys.batch_member(name, batch) if batch else ""
        if member in s.batches:  # delivered again after its merge: as MERGE, nothing changes
            return Merge(repeated=True, after=self._merged_after(suite_id, assignment, attempt))
        ids = list(dict.fromkeys(r.test_id for r in records))
        owners = {t: s.owners[t] for t in ids if t in s.owners}
        kept = not_given(records, owners, keys.attempt_key(assignment, attempt), given if fence else None)
        dropped, records = len(records) - len(kept), kept
        result = merge({t: s.outcomes.get(t) for t in ids}, records, assignment=assignment, attempt=attempt,
                       worker=worker, node=node, owners=owners if fence else None,
                       rerun={t for t in ids if t in s.reruns})
        result.dropped = dropped
        for t, r in result.counted.items():
            s.outcomes[t] = r.outcome.value
            s.records[t] = r
        s.runs.update(result.runs)
        for k, run in result.verdicts.items():
            s.runs.setdefault(k, run)
        for outcome, delta in result.deltas.items():
            if delta:
                s.counts[outcome] = s.counts.get(outcome, 0) + delta
        s.fields["done"] = int(s.fields.get("done") or 0) + result.newly_final
        if member:
            s.batches.add(member)
        if count_received and name in s.attempts:  # keys.received, counted with the merge
            s.attempts[name] = s.attempts[name].but(received=s.attempts[name].received + len(records))
        self._log(suite_id, *eventlog.merged(result.counted, result.runs, result.verdicts, assignment=assignment,
                                           attempt=attempt, worker=worker, node=node, at=self.clock(), kind=kind,
                                           fenced=result.fenced))
        result.after = self._merged_after(suite_id, assignment, attempt)
        return result

    def pending_in(self, suite_id: str, test_ids: Sequence[str], owner: str | None = None) -> list[str]:
        s = self._suite(suite_id)
        return [t for t in test_ids if s.outcomes.get(t) == PENDING and (owner is None or s.owners.get(t) == owner)]

    def all_pending(self, suite_id: str) -> list[str]:
        return [t for t, v in self._suite(suite_id).outcomes.items() if v == PENDING]

    # --- attempts ------------------------------------------------------------------------

    def attempt(self, suite_id: str, assignment_id: str, number: int) -> Attempt | None:
        return self._suite(suite_id).attempts.get(keys.attempt_key(assignment_id, number))

    def attempts(self, suite_id: str) -> list[Attempt]:
        return sorted(self._suite(suite_id).attempts.values(), key=lambda a: (a.assignment_id, a.number))

    def change_attempt(self, suite_id: str, assignment_id: str, number: int,
                       change: Callable[[Attempt], Attempt]) -> Attempt | None:
        s, name = self._suite(suite_id), keys.attempt_key(assignment_id, number)
        if name not in s.attempts:
            return None
        old, s.attempts[name] = s.attempts[name], change(s.attempts[name])
        self._log(suite_id, *filter(None, [eventlog.changed(old, s.attempts[name], self.clock())]))
        return s.attempts[name]

    def held_completion(self, suite_id: str, assignment_id: str, number: int) -> tuple[bytes, int] | None:
        a = self.attempt(suite_id, assignment_id, number)
        return None if a is None or a.waiting_completion is None else (a.waiting_completion, a.received)

    def take_held(self, suite_id: str, assignment_id: str, number: int, completion: bytes, *, now: float) -> bool:
        s, name = self._suite(suite_id), keys.attempt_key(assignment_id, number)
        a = s.attempts.get(name)
        if a is None or a.waiting_completion != completion:
            return False
        taken = self._taken.get((suite_id, name))
        if taken is not None and taken[0] == completion and not deadlines.taken_too_long(taken[1], now):
            return False
        self._taken[(suite_id, name)] = (completion, now)  # the end (transitions.ended) clears the completion
        return True

    def requeue(self, suite_id: str, old: Attempt, why: str, *, now: float, state: AttemptState = AttemptState.LOST,
                avoid: str = "", from_state: AttemptState | None = None) -> list[str]:
        s = self._suite(suite_id)
        stored = s.attempts.get(old.key)
        if stored is None:
            return []
        change = transitions.requeue(stored, s.outcomes, s.owners, state=state, why=why, avoid=avoid, now=now,
                                     from_state=from_state)
        if change is None:
            return []
        ended, new = change
        s.attempts[ended.key] = ended
        self._log(suite_id, *eventlog.given_up_on(ended, new, self.clock()))
        if new is None:
            return []
        s.attempts[new.key] = new
        s.owners.update({t: new.key for t in new.test_ids})
        s.current[new.assignment_id] = str(new.number)
        return list(new.test_ids)

    def failing_for_rerun(self, suite_id: str, limit: int) -> list[str]:
        s = self._suite(suite_id)
        failing = {o.value for o in FAILURES if o is not Outcome.CRASHED}
        return [t for t, v in s.outcomes.items() if v in failing and s.reruns.get(t, 0) < limit]

    def crashed_for_retry(self, suite_id: str) -> list[str]:
        s = self._suite(suite_id)
        return [t for t, v in s.outcomes.items() if v == Outcome.CRASHED.value and t not in s.crash_retries]

    def start_rerun(self, suite_id: str, new: Attempt, *, crash_retry: bool = False) -> list[str]:
        s = self._suite(suite_id)
        failing = {o.value for o in FAILURES}
        moving = [(t, s.outcomes[t]) for t in new.test_ids if s.outcomes.get(t) in failing]
        if not moving:
            return []
        counter = s.crash_retries if crash_retry else s.reruns
        for t, outcome in moving:
            s.outcomes[t] = PENDING
            s.owners[t] = new.key
            s.counts[outcome] -= 1
            counter[t] = counter.get(t, 0) + 1
        names = [t for t, _ in moving]
        s.fields["done"] = int(s.fields.get("done") or 0) - len(names)
        s.attempts[new.key] = new.but(test_ids=tuple(names))
        s.current[new.assignment_id] = str(new.number)
        s.fields.pop("complete_at", None)
        self._log(suite_id, eventlog.run_again(s.attempts[new.key], self.clock(), crash_retry=crash_retry))
        return names

    def ask_split(self, suite_id: str, attempt_key: str, seq: int, tail: tuple[str, ...]) -> bool:
        s = self._suite(suite_id)
        if s.splits.get(attempt_key, (0, ()))[0] >= seq:
            return False
        s.splits[attempt_key] = (seq, tuple(tail))
        return True

    def split_asks(self, suite_id: str) -> dict[str, int]:
        return {k: seq for k, (seq, _) in self._suite(suite_id).splits.items()}

    def split_request(self, suite_id: str, attempt_key: str) -> tuple[int, tuple[str, ...]] | None:
        """What a worker polling `attempt_key`'s split request reads (tests)."""
        return self._suite(suite_id).splits.get(attempt_key)

    def split_off(self, suite_id: str, assignment_id: str, number: int, seq: int, tail: tuple[str, ...], *,
                  now: float) -> Attempt | None:
        s = self._suite(suite_id)
        old = s.attempts.get(keys.attempt_key(assignment_id, number))
        change = None if old is None else transitions.split_off(old, tail, s.outcomes, s.owners, seq=seq, now=now)
        if change is None:
            return None
        head, new = change
        s.attempts[head.key], s.attempts[new.key] = head, new
        s.owners.update({t: new.key for t in new.test_ids})
        s.current[new.assignment_id] = str(new.number)
        self._log(suite_id, *eventlog.split(head, new, self.clock()))
        return new

    def mark_ended(self, suite_id: str, assignment_id: str, number: int) -> None:
        s = self._suite(suite_id)
        if s.current.get(assignment_id) == str(number):
            s.current[assignment_id] = f"{number}!"

    def lease_alive(self, suite_id: str, name: str) -> bool:
        return name in self._suite(suite_id).leases

    def lease_holders(self, suite_id: str, attempts: Sequence[Attempt]) -> dict[str, str]:
        leases = self._suite(suite_id).leases
        return {a.key: leases[a.key] for a in attempts if a.key in leases}

    def collection_retry(self, suite_id: str) -> int:
        f = self._suite(suite_id).fields
        f["collect_lost"] = int(f.get("collect_lost") or 0) + 1
        f.pop("collect_started", None)
        self._log(suite_id, eventlog.Event(eventlog.Kind.LEASE_LOST, self.clock(), "collect", int(f["collect_lost"]),
                                         detail="the collection was lost"))
        return int(f["collect_lost"])

    # --- reading for the report ----------------------------------------------------------

    def collection(self, suite_id: str) -> Collection | None:
        data = self._suite(suite_id).fields.get("collection")
        return None if data is None else decode(data, Collection)

    def order(self, suite_id: str) -> list[str]:
        return list(self._suite(suite_id).fields.get("order") or [])

    def counted(self, suite_id: str) -> dict[str, TestRecord]:
        return dict(self._suite(suite_id).records)

    def each_counted(self, suite_id: str) -> Iterator[TestRecord]:
        return iter(list(self._suite(suite_id).records.values()))

    def records_count(self, suite_id: str) -> int:
        return len(self._suite(suite_id).records)

    def records_of(self, suite_id: str, test_ids: Sequence[str]) -> list[TestRecord | None]:
        records = self._suite(suite_id).records
        return [records.get(t) for t in test_ids]

    def test_runs(self, suite_id: str) -> list[TestRun]:
        return list(self._suite(suite_id).runs.values())

    def counts(self, suite_id: str) -> dict[str, int]:
        return dict(self._suite(suite_id).counts)

    def workers(self) -> list[WorkerInfo]:
        return [w for w, _ in self._workers.values()]

    def pool_slots(self, pool: str) -> int:
        return sum(w.slots for w, alive in self._workers.values() if alive and w.pool == pool)

    # --- finishing -----------------------------------------------------------------------

    def note_complete(self, suite_id: str, now: float) -> None:
        self._suite(suite_id).fields.setdefault("complete_at", now)

    def last_workers(self, suite_id: str, test_ids: list[str]) -> dict[str, str]:
        s = self._suite(suite_id)
        found = {}
        for t in test_ids:
            owner = s.owners.get(t)
            if owner is not None:
                assignment, _, attempt = owner.rpartition("#")
                run = s.runs.get(f"{t}\0{assignment}\0{attempt}")
                if run is not None and run.worker:
                    found[t] = run.worker
        return found

    def release_finish_claim(self, suite_id: str) -> bool:
        f = self._suite(suite_id).fields
        if f.get("finalized") != self.name:
            return False
        del f["finalized"]
        return True

    def claim_finish(self, suite_id: str) -> bool:
        f = self._suite(suite_id).fields
        if "finalized" in f:
            return False
        f["finalized"] = self.name
        return True

    def store_report(self, suite_id: str, build: Callable[[], Finished]) -> bool:
        s = self._suite(suite_id)
        for _ in range(FINISH_TRIES):
            if s.fields.get("finalized") != self.name or suite_id not in self._active:
                log.warning("suite %s: not storing its report: %s", suite_id, "it finished already"
                            if suite_id not in self._active else "its finish claim is not ours")
                return False
            logged = s.logged
            done = build()  # under the lock: only what `build` itself calls can log meanwhile
            if s.logged == logged:
                break
        else:
            raise RuntimeError(f"suite {suite_id}: its log kept moving while its report was built")
        self.record_durations(done.project, done.durations)
        if done.run is not None:
            self._add_run(done.project, done.run, done.durations)
        s.report = b"".join(done.report).decode()
        self._log(suite_id, done.event)
        s.fields.update(done.fields)
        self._active.discard(suite_id)
        self._submitted.pop(suite_id, None)
        return True

    def durations(self, project: str) -> dict[str, float]:
        return dict(self._history.get(project, {}))

    def record_durations(self, project: str, durations: dict[str, float]) -> None:
        self._history.setdefault(project, {}).update({k: round(v, 6) for k, v in durations.items()})

    def _add_run(self, project: str, run: RunEntry, durations: dict[str, float]) -> None:
        """As `coordinator.redis_runs.RunHistoryWriter.write`: the last `history_runs` entries and durations."""
        keep = self.history_runs
        runs = self._runs.setdefault(project, [])
        runs.append(encode_run(run))
        del runs[:-keep]
        rings = self._rings.setdefault(project, {})
        ids = [t for t in durations if t != keys.HISTORY_OVERHEAD_FIELD]
        for test_id, item in zip(ids, ring_items([durations[t] for t in ids]), strict=True):
            rings[test_id] = appended(rings.get(test_id), item, keep)

    def run_history(self, project: str) -> tuple[list[bytes], dict[str, bytes]]:
        return list(self._runs.get(project, [])), dict(self._rings.get(project, {}))

    def run_entries(self, project: str) -> list[bytes]:
        return list(self._runs.get(project, []))


if TYPE_CHECKING:  # mypy proves both stores satisfy the one interface
    from coordinator.state import SuiteState
    from coordinator.store import SuiteStore

    def _both(memory: MemoryStore, redis_store: SuiteState) -> tuple[SuiteStore, SuiteStore]:
        return memory, redis_store
