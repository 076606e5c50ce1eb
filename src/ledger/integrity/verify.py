"""Verification: recompute the chain over the stored log and name the first position that fails.

The store hands over one `LogRow` per position, in position order, from a full outer join of the event
rows and the chain rows, so that a row missing on either side shows up. Each row is checked for:

- `missing`   — a position with no event (a deleted row), or a gap in the positions;
- `inserted`  — an event with no chain entry (a forged row);
- `reordered` — an event whose content belongs at another position (rows swapped);
- `altered`   — content, recording time, stream columns or hash that no longer match;
- `time_reversed` — a recording time earlier than the one before it (the writers never stamp so; an
  event chained by other code, or a clock that was allowed to go back).

A checkpoint `{ledger_id, position, hash, recorded_at}` pins a prefix of the log: verifying against it
proves the log still extends it, so truncation and a consistent rewrite are caught.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import NamedTuple

import msgspec

from ledger.domain.cadre import own_stream
from ledger.integrity.chain import GENESIS_HASH

__all__ = ["Checkpoint", "LogRow", "VerifyOutcome", "check_checkpoint", "verify_rows"]

POLICY_STREAM = "$policy"


class LogRow(NamedTuple):
    """One position of the stored log; a field is None where that side of the join is absent."""

    position: int
    state: bytes | None
    originator_id: str | None
    originator_version: int | None
    topic: str | None
    chain_event_id: str | None
    recorded_at: str | None
    hash: bytes | None


class _Probe(msgspec.Struct):
    """The few fields verification reads from an event's stored JSON."""

    type: str
    event_id: str
    cadre_id: str | None = None


class _TopicCache(dict[str, str | None]):
    """`topic_of` memoized as a dict."""

    def __init__(self, topic_of: Callable[[str], str | None]) -> None:
        super().__init__()
        self._topic_of = topic_of

    def __missing__(self, event_type: str) -> str | None:
        topic = self[event_type] = self._topic_of(event_type)
        return topic


class Checkpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A position of one ledger and the chain hash there; keep it away from the database."""

    ledger_id: str
    position: int
    hash: str
    recorded_at: str


class VerifyOutcome(msgspec.Struct, frozen=True):
    """Where verification stopped: `first_bad_position` is None when every position checked out."""

    verified_through: int
    head_hash: bytes
    first_bad_position: int | None = None
    reason: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_position is None


_probe_decoder = msgspec.json.Decoder(_Probe)


def verify_rows(
    rows: Iterable[
        tuple[int, bytes | None, str | None, int | None, str | None, str | None, str | None, bytes | None]
    ],
    *,
    topic_of: Callable[[str], str | None],
    position_of_event: Callable[[str], int | None],
) -> VerifyOutcome:
    """Recompute the chain over `rows` (tuples laid out as `LogRow`); stop at the first position that fails.

    `topic_of(type)` gives the stored topic expected for an event type; `position_of_event(event_id)`
    finds where the chain places an event id (to tell a swap from an alteration). The loop is the whole
    cost of verifying a log, so it hashes `canonical_bytes` in two updates rather than concatenating them.
    """
    previous = GENESIS_HASH
    verified = 0
    previous_recorded_at = ""
    versions: dict[str, int] = {}
    decode = _probe_decoder.decode
    sha256 = hashlib.sha256
    # The expected topic of each type, looked up once per type rather than called once per event.
    topics: dict[str, str | None] = _TopicCache(topic_of)

    def failure(position: int, reason: str, detail: str) -> VerifyOutcome:
        return VerifyOutcome(verified, previous, position, reason, detail)

    for (
        position,
        state,
        originator_id,
        originator_version,
        topic,
        chain_event_id,
        recorded_at,
        stored,
    ) in rows:
        if position != verified + 1:
            return failure(verified + 1, "missing", f"positions jump from {verified} to {position}")
        if state is None:
            return failure(position, "missing", "the chain has an entry but the event row is gone")
        if stored is None or recorded_at is None or chain_event_id is None:
            return failure(position, "inserted", "an event row with no chain entry")
        try:
            probe = decode(state)
        except msgspec.DecodeError as error:
            return failure(position, "altered", f"the stored event no longer decodes: {error}")
        # chain_hash(previous, canonical_bytes(position, recorded_at, state)), without the copies.
        digest = sha256(previous)
        digest.update(b'{"position":%d,"recorded_at":"%s",' % (position, recorded_at.encode()))
        digest.update(memoryview(state)[1:])
        if digest.digest() != stored or not state.startswith(b"{"):
            if probe.event_id != chain_event_id:
                elsewhere = position_of_event(probe.event_id)
                if elsewhere is not None and elsewhere != position:
                    return failure(position, "reordered", f"holds the event recorded at position {elsewhere}")
            return failure(position, "altered", "the hash does not match the event's content")
        if probe.event_id != chain_event_id:
            return failure(position, "altered", "the chain entry names another event")
        if recorded_at < previous_recorded_at:
            return failure(
                position,
                "time_reversed",
                f"recorded at {recorded_at}, before the event ahead of it ({previous_recorded_at})",
            )
        stream = probe.cadre_id if probe.cadre_id is not None else own_stream(probe.type)
        version = versions.get(stream, 0) + 1
        if originator_id != stream or originator_version != version or topic != topics[probe.type]:
            return failure(
                position,
                "altered",
                "the stream columns (originator, version, topic) do not match the event",
            )
        versions[stream] = version
        previous = stored
        previous_recorded_at = recorded_at
        verified = position
    return VerifyOutcome(verified, previous)


def check_checkpoint(
    checkpoint: Checkpoint,
    ledger_id: str,
    outcome: VerifyOutcome,
    hash_at: Callable[[int], bytes | None],
) -> VerifyOutcome:
    """`outcome` held to `checkpoint`: the log must still reach the checkpoint with the same hash."""
    if checkpoint.ledger_id != ledger_id:
        return VerifyOutcome(
            outcome.verified_through,
            outcome.head_hash,
            checkpoint.position,
            "altered",
            f"the checkpoint is of ledger {checkpoint.ledger_id}, this is ledger {ledger_id}",
        )
    if (
        not outcome.ok
        and outcome.first_bad_position is not None
        and outcome.first_bad_position <= checkpoint.position
    ):
        return outcome
    if outcome.verified_through < checkpoint.position and outcome.ok:
        return VerifyOutcome(
            outcome.verified_through,
            outcome.head_hash,
            outcome.verified_through + 1,
            "missing",
            f"the log ends at {outcome.verified_through}, before the checkpoint "
            f"at {checkpoint.position}: it was truncated",
        )
    stored = hash_at(checkpoint.position)
    if stored is None or stored.hex() != checkpoint.hash:
        return VerifyOutcome(
            min(outcome.verified_through, checkpoint.position - 1),
            outcome.head_hash,
            checkpoint.position,
            "altered",
            "the hash at the checkpoint's position differs: the log was rewritten",
        )
    return outcome
