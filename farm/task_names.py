"""Celery task names and the coordinator's queue: named once, importable without Celery (the
submitting client publishes its one message without it: farm.task_message)."""

#: The coordinator's queue: suite lifecycle, record batches, completions.
COORDINATOR_QUEUE = "farm.coordinator"

#: Explicit task names (never derived from module paths, so moving code strands no message).
SUITE_SUBMITTED = "farm.suite_submitted"
SUITE_COLLECTED = "farm.suite_collected"
RECORD_BATCH = "farm.record_batch"
ASSIGNMENT_COMPLETED = "farm.assignment_completed"
ASSIGNMENT_SPLIT = "farm.assignment_split"  # a runner confirmed a split: its unstarted tail moves on
CANCEL_SUITE = "farm.cancel_suite"
COLLECT_SUITE = "farm.collect_suite"
RUN_ASSIGNMENT = "farm.run_assignment"
