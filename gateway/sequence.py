"""Which sequence numbers of one agent have reached the gateway: open holes, gaps, resets, late records.

Every agent numbers its records 1, 2, 3, … (``seq``: one counter for health records and alerts, kept
across restarts). The gateway keeps, per agent, a compact account of what arrived:

- ``contiguous``: every seq up to it arrived or was declared missing;
- ``ranges``: the runs that arrived above it, sorted, disjoint and not touching, each ``(first, last)``.

A seq between ``contiguous`` and a run is an *open hole*: it may still come, because alerts travel in a
priority lane and overtake the older health records queued behind them after an outage. Only the agent
knows when nothing more is coming: a status saying ``buffered_records == 0`` with ``last_seq = L`` means
every seq up to ``L`` has left it (acknowledged by the broker, or thinned to stay within its disk budget).
:meth:`AgentSequence.confirm` then declares every seq up to ``L`` still missing a *gap* (also above the
highest seq seen, up to ``L``) and moves ``contiguous`` past it.

A record whose seq is already covered (up to ``contiguous`` or inside a run) and whose id the gateway does
not know (the caller drops known ids as duplicates before asking) is one of two things:

- a *reset*: the agent lost its database and numbers from 1 again. Its records are new, so their UUIDv7
  ids, which order by creation time, are newer than every id seen from the agent, and the seq drops far
  below the highest seen (at least :data:`RESET_DROP`). Tracking restarts at that seq; the holes still
  open are abandoned (they were lost with the agent's database) and reported with the reset.
- otherwise a *late* record: a seq declared missing that came after all, a copy resent after the
  gateway forgot its id, or (after a reset revealed by an alert) a record of the new run queued behind
  that alert. It is accepted; the account does not change.

The first record seen from an agent starts the account: nothing below it is missing.

Pure: no SQLite, no clock; the gateway's store persists :meth:`AgentSequence.ranges_json`.

>>> account = AgentSequence.start(seq=1, message_id="id-01")
>>> account.observe(4, "id-04").arrival  # an alert overtakes seqs 2 and 3
<Arrival.NEW: 'new'>
>>> account.contiguous, account.ranges, account.open_holes
(1, [(4, 4)], 2)
>>> account.observe(2, "id-02").arrival  # the backlog comes; 3 was thinned by the agent
<Arrival.NEW: 'new'>
>>> account.confirm(last_seq=5).gaps  # drained status: 3 and 5 never came
[Gap(first=3, last=3), Gap(first=5, last=5)]
>>> account.contiguous, account.ranges, account.open_holes
(5, [], 0)
"""

from __future__ import annotations

import bisect
import enum
import json
from dataclasses import dataclass, field

RESET_DROP = 100
"""How far (in seqs) below the highest seq seen a new record must be to count as a reset.

A reset drops the numbering by the agent's whole history; a record a few seqs below the top with a newer
id is more likely a late one around a clock adjustment. Missing a reset costs little (its records are
accepted as late ones; the new run is tracked once it passes the old top), taking a late record for a
reset costs much (tracking restarts low, and the agent's next record opens a hole the size of its
history), hence the margin. A reset within an agent's first hundred records is taken for late records.
"""


class Arrival(enum.Enum):
    """What a record with an id not seen before means for its agent's account."""

    NEW = "new"
    """A seq not seen before: in order, filling an open hole, or above a new hole."""
    LATE = "late"
    """A seq already covered (arrived or declared missing): accepted, the account unchanged."""
    RESET = "reset"
    """The agent numbers from the start again: tracking restarted at this seq."""


@dataclass(frozen=True)
class Gap:
    """Seqs ``first`` … ``last`` (inclusive) declared missing."""

    first: int
    last: int

    @property
    def missing(self) -> int:
        """How many seqs the gap spans."""
        return self.last - self.first + 1


@dataclass(frozen=True)
class Observation:
    """What :meth:`AgentSequence.observe` made of a record.

    For a reset, ``previous_highest`` is the highest seq seen before it and ``abandoned`` the number of
    seqs that were still open (lost with the agent's database); both are 0 otherwise.
    """

    arrival: Arrival
    previous_highest: int = 0
    abandoned: int = 0


@dataclass(frozen=True)
class Confirmation:
    """What a drained status (:meth:`AgentSequence.confirm`) declared missing.

    ``thinned`` is how many records the agent says it thinned since its previous drained status (all of
    them for the first), or ``None`` when the status does not say.
    """

    gaps: list[Gap]
    thinned: int | None = None

    @property
    def missing(self) -> int:
        """Seqs declared missing in all."""
        return sum(gap.missing for gap in self.gaps)


@dataclass
class AgentSequence:
    """One agent's account of arrived seqs (see the module docstring); mutable, copy with :meth:`copy`."""

    contiguous: int
    ranges: list[tuple[int, int]] = field(default_factory=list)
    newest_id: str = ""
    """The newest message id seen (UUIDv7 ids sort by creation time)."""
    records_thinned: int | None = None
    """The agent's thinned-records counter at its last drained status, if it reported one."""

    @classmethod
    def start(cls, *, seq: int, message_id: str) -> AgentSequence:
        """The account opened by the first record seen from an agent: nothing below ``seq`` is missing."""
        return cls(contiguous=seq, newest_id=message_id)

    def copy(self) -> AgentSequence:
        """An independent copy (the store changes copies and keeps them only once they are committed)."""
        return AgentSequence(self.contiguous, list(self.ranges), self.newest_id, self.records_thinned)

    @property
    def highest(self) -> int:
        """The highest seq that arrived or was declared missing."""
        return self.ranges[-1][1] if self.ranges else self.contiguous

    @property
    def open_holes(self) -> int:
        """How many seqs below :attr:`highest` are missing but may still come."""
        return self.highest - self.contiguous - sum(last - first + 1 for first, last in self.ranges)

    def covers(self, seq: int) -> bool:
        """Whether ``seq`` arrived or was declared missing."""
        if seq <= self.contiguous:
            return True
        index = bisect.bisect_right(self.ranges, seq, key=lambda run: run[0])
        return index > 0 and self.ranges[index - 1][1] >= seq

    def observe(self, seq: int, message_id: str) -> Observation:
        """Account for a record with ``seq`` whose ``message_id`` is not a known duplicate."""
        if not self.covers(seq):
            self._add(seq)
            self.newest_id = max(self.newest_id, message_id)
            return Observation(Arrival.NEW)
        if message_id > self.newest_id and self.highest - seq >= RESET_DROP:
            previous_highest, abandoned = self.highest, self.open_holes
            self.contiguous, self.ranges, self.newest_id = seq, [], message_id
            self.records_thinned = None  # the agent's counters went with its database
            return Observation(Arrival.RESET, previous_highest=previous_highest, abandoned=abandoned)
        self.newest_id = max(self.newest_id, message_id)
        return Observation(Arrival.LATE)

    def confirm(self, last_seq: int, records_thinned: int | None = None) -> Confirmation:
        """The agent has nothing left to send up to ``last_seq``: declare what is missing up to it a gap.

        ``records_thinned`` is the agent's cumulative count of thinned records from the same status.
        """
        gaps: list[Gap] = []
        while self.contiguous < last_seq:
            next_run = self.ranges[0] if self.ranges else None
            hole_last = last_seq if next_run is None else min(last_seq, next_run[0] - 1)
            gaps.append(Gap(self.contiguous + 1, hole_last))
            self.contiguous = hole_last
            if next_run is not None and next_run[0] == hole_last + 1:
                self.contiguous = self.ranges.pop(0)[1]
        thinned = None
        if records_thinned is not None:
            previous = self.records_thinned
            thinned = (
                records_thinned
                if previous is None or records_thinned < previous
                else records_thinned - previous
            )
            self.records_thinned = records_thinned
        return Confirmation(gaps, thinned)

    def ranges_json(self) -> str:
        """:attr:`ranges` as JSON ``[[first, last], …]``."""
        return json.dumps([list(run) for run in self.ranges], separators=(",", ":"))

    @staticmethod
    def ranges_from_json(text: str) -> list[tuple[int, int]]:
        """The inverse of :meth:`ranges_json`."""
        return [(int(first), int(last)) for first, last in json.loads(text)]

    def _add(self, seq: int) -> None:
        # seq is not covered: it touches the run before it (or contiguous), the run after it, both or none
        index = bisect.bisect_right(self.ranges, seq, key=lambda run: run[0])
        joins_next = index < len(self.ranges) and self.ranges[index][0] == seq + 1
        if index == 0 and seq == self.contiguous + 1:
            self.contiguous = self.ranges.pop(0)[1] if joins_next else seq
        elif index > 0 and self.ranges[index - 1][1] == seq - 1:
            first = self.ranges[index - 1][0]
            if joins_next:
                self.ranges[index - 1 : index + 1] = [(first, self.ranges[index][1])]
            else:
                self.ranges[index - 1] = (first, seq)
        elif joins_next:
            self.ranges[index] = (seq, self.ranges[index][1])
        else:
            self.ranges.insert(index, (seq, seq))
