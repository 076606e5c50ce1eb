"""The stored format: each event is kept as the msgspec JSON of its struct (the `state` column).

JSON rather than MessagePack because auditors read the database with ordinary tools and because the hash
chain is computed over exactly these bytes (see `ledger.integrity.chain`). The encoding is msgspec's: the
`type` tag first, fields in declaration order, decimals as strings with two places, dates `YYYY-MM-DD`,
UUIDs in canonical text form, `null` for absent optional values. Golden tests pin it.

The mapper plugs into eventsourcing (`MAPPER_TOPIC`) and replaces its JSON transcoder: the event type is
read from the tagged union, the topic column names the struct class for tools that look at it.
"""

from __future__ import annotations

from typing import Any

import msgspec
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic

from ledger.domain.cadre import Recorded
from ledger.domain.events import EVENT_TYPES, Event, EventBase

__all__ = ["TOPICS", "EventMapper", "decode_event", "encode_event", "topic_of"]

TOPICS: dict[str, str] = {name: get_topic(cls) for name, cls in EVENT_TYPES.items()}

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode_event(event: EventBase) -> bytes:
    """The stored bytes of `event`."""
    return _encoder.encode(event)


def decode_event(state: bytes) -> EventBase:
    """The event stored as `state`."""
    event: EventBase = _decoder.decode(state)
    return event


def topic_of(event_type: str) -> str | None:
    """The topic column expected for an event type."""
    return TOPICS.get(event_type)


class EventMapper(Mapper[Any]):
    """Maps `Recorded` envelopes to stored events and back with msgspec."""

    def __init__(self, transcoder: Transcoder | None = None, **_: Any) -> None:
        self.transcoder = transcoder  # type: ignore[assignment]
        self.compressor = None
        self.cipher = None

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        assert isinstance(domain_event, Recorded)
        event = domain_event.event
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=TOPICS[event.type],
            state=encode_event(event),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return Recorded(
            str(stored_event.originator_id),
            stored_event.originator_version,
            decode_event(stored_event.state),
        )
