"""Job states and the legal transitions between them, as a table (cf. pynetdicom's fsm.py).

received → complete → deidentified → queued → running → results_built → delivered, plus the
side exits not_eligible, quarantined, failed and superseded. An illegal transition raises.
"""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    RECEIVED = "received"
    COMPLETE = "complete"
    DEIDENTIFIED = "deidentified"
    QUEUED = "queued"
    RUNNING = "running"
    RESULTS_BUILT = "results_built"
    DELIVERED = "delivered"
    NOT_ELIGIBLE = "not_eligible"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    SUPERSEDED = "superseded"


S = JobState
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.RECEIVED: frozenset({S.COMPLETE, S.QUARANTINED, S.SUPERSEDED}),
    S.COMPLETE: frozenset({S.DEIDENTIFIED, S.NOT_ELIGIBLE, S.QUARANTINED, S.FAILED, S.SUPERSEDED}),
    S.DEIDENTIFIED: frozenset({S.QUEUED, S.FAILED, S.SUPERSEDED}),
    # running → queued: a retry after a transient error, or an expired lease put back
    S.QUEUED: frozenset({S.RUNNING, S.SUPERSEDED}),
    S.RUNNING: frozenset({S.RESULTS_BUILT, S.QUEUED, S.FAILED, S.SUPERSEDED}),
    S.RESULTS_BUILT: frozenset({S.DELIVERED, S.SUPERSEDED}),
    # a late instance re-opens a delivered study: the new version's results replace these
    S.DELIVERED: frozenset({S.SUPERSEDED}),
    # the not-eligible SR still goes to the PACS
    S.NOT_ELIGIBLE: frozenset({S.DELIVERED, S.SUPERSEDED}),
    S.FAILED: frozenset({S.QUEUED, S.SUPERSEDED}),  # an operator's retry
    S.QUARANTINED: frozenset({S.SUPERSEDED}),
    S.SUPERSEDED: frozenset(),
}
TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt or nxt == {S.SUPERSEDED})
ACTIVE = frozenset(set(JobState) - TERMINAL)


class IllegalTransition(ValueError):
    """A job was asked to move along an edge the table does not have."""


def check_transition(current: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"job state {current.value} → {new.value} is not allowed")
