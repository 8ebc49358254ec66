"""Simulated first runs (no history) of skewed suites under the coordinator's plan and balancing rules.

    python bench/first_run_policies.py [--seeds 100] [--collect 1.2] [--wave 2.0] [--start 0.6]

A model, not a measurement of farm: each of `slots` slots takes the next queued assignment; an
assignment pays `--wave` seconds before its first test if it is one of the plan's first `slots`
(they all start at once), else `--start`; a slot that finds the queue empty asks one running
assignment to split (the request is seen within `POLL_S`, the cut is after the test then
running), and the tail runs as a new assignment. Compared: the plan's size without history
(16 = the small-suite rule's one per slot, 20 = by `min_assignment_tests`, 64 = 4 per slot) and
the balancing rule (none; `cut`: coordinator/balance.py's time-balanced cut by each attempt's own
pace, most time left first, worth it when it gains the start-up `threshold`; `cut-mean`: the same
with every test at the suite's mean; `half`: the later half of the unstarted tests of the attempt
with the most of them, worth it when that half's time by pace is the threshold). Printed: makespan over the
lower bound max(total / slots, longest) for seed 1 (bench/suites.py's suite) and the median and
90th percentile over `--seeds` suites (400 lognormal σ 1.2 tests, 120 s).
"""

from __future__ import annotations

import argparse
import heapq
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.suites import lower_bound, skewed_durations  # noqa: E402

MEAN_S = [0.3]  # the suite's mean per test (set per suite)
POLL_S = 0.25  # the worker polls its split request every 0.5 s: seen after a quarter second on average


def plan(n: int, count: int) -> list[list[int]]:
    """Contiguous cuts of equal test counts (coordinator/splitting.py without durations)."""
    size, extra = divmod(n, count)
    out, i = [], 0
    for k in range(count):
        j = i + size + (1 if k < extra else 0)
        out.append(list(range(i, j)))
        i = j
    return out


def simulate(d: list[float], *, slots: int, count: int, rule: str, threshold: float, collect: float, wave: float,
             start: float) -> float:
    queue = plan(len(d), count)
    MEAN_S[0] = sum(d) / len(d)
    runs: dict[int, dict[str, list[float] | list[int]]] = {}
    ends: list[tuple[float, int]] = []
    serial = 0

    def begin(at: float, tests: list[int], pay: float) -> None:
        nonlocal serial
        serial += 1
        starts, t = [], at + pay
        for x in tests:
            starts.append(t)
            t += d[x]
        runs[serial] = {"tests": tests, "starts": starts}
        heapq.heappush(ends, (t, serial))

    for _ in range(min(slots, len(queue))):
        begin(collect, queue.pop(0), wave)
    makespan = 0.0
    while ends:
        at, key = heapq.heappop(ends)
        run = runs.get(key)
        if run is None or _end(run, d) != at:
            continue  # cut short by a split: its new end is queued
        del runs[key]
        makespan = max(makespan, at)
        if queue:
            begin(at, queue.pop(0), start)
            continue
        if rule != "none":
            _split_one(runs, d, at + POLL_S, rule, threshold, ends, begin, start)
    return makespan / lower_bound(d, slots)


def _end(run: dict, d: list[float]) -> float:
    return run["starts"][-1] + d[run["tests"][-1]]


def _split_one(runs: dict, d: list[float], seen: float, rule: str, threshold: float, ends: list, begin,
               start: float) -> None:
    best = None
    for key, run in runs.items():
        unstarted = [k for k, s in enumerate(run["starts"]) if s > seen]
        if not unstarted:
            continue
        done = sum(1 for k, s in enumerate(run["starts"]) if s + d[run["tests"][k]] <= seen)
        pace = (seen - run["starts"][0] + start) / max(1, done)
        if rule == "cut-mean":  # every unstarted test expected to take the suite's mean so far
            pace = MEAN_S[0]
        if rule == "half":
            first = unstarted[len(unstarted) // 2]
            if (len(unstarted) - len(unstarted) // 2) * pace < threshold:
                continue
            rank = len(unstarted)
        else:  # cut: the head keeps the running test and as many as balance the tail's start-up
            pending = [unstarted[0] - 1] + unstarted if unstarted[0] > 0 else unstarted
            total, head, found = pace * len(pending), 0.0, None
            for k in range(1, len(pending)):
                head += pace
                after = max(head, threshold + total - head)
                if found is None or after < found[1]:
                    found = (pending[k], after)
            if found is None or total - found[1] < threshold:
                continue
            first, rank = found[0], total
        if best is None or rank > best[0]:
            best = (rank, key, first)
    if best is None:
        return
    _, key, first = best
    run = runs[key]
    tail = run["tests"][first:]
    run["tests"], run["starts"] = run["tests"][:first], run["starts"][:first]
    heapq.heappush(ends, (_end(run, d), key))
    begin(seen, tail, start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--slots", type=int, default=16)
    p.add_argument("--collect", type=float, default=1.2, help="submission to the plan's publication (s)")
    p.add_argument("--wave", type=float, default=2.0, help="start-up of the plan's first assignments (s)")
    p.add_argument("--start", type=float, default=0.6, help="start-up of a later assignment or a tail (s)")
    args = p.parse_args()
    suites = [skewed_durations(400, 120.0, 1.2, seed) for seed in range(1, args.seeds + 1)]
    assumed = 1.0  # coordinator/balance.py DEFAULT_OVERHEAD_S
    measured = min(args.wave, assumed)  # start_cost: the least start-up of an ended attempt, capped
    print(f"collect {args.collect} s, first wave {args.wave} s, later starts {args.start} s, {args.seeds} seeds")
    print("| assignments | balancing | threshold (s) | seed 1 | median | p90 |")
    print("|---:|---|---:|---:|---:|---:|")
    for count in (16, 20, 64):
        rules = (("none", 0.0), ("cut", assumed), ("cut", measured), ("cut-mean", measured), ("half", measured))
        for rule, threshold in rules:
            kw = dict(slots=args.slots, count=count, rule=rule, threshold=threshold, collect=args.collect,
                      wave=args.wave, start=args.start)
            ratios = sorted(simulate(d, **kw) for d in suites)
            print(f"| {count} | {rule} | {threshold:.2f} | {simulate(suites[0], **kw):.2f} | "
                  f"{statistics.median(ratios):.2f} | {ratios[int(0.9 * len(ratios)) - 1]:.2f} |")


if __name__ == "__main__":
    main()
