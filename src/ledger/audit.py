"""The audit operations: verify the chain and the side tables, take a checkpoint, export and import.

Verification recomputes the whole chain (`ledger.integrity.verify`) and checks what the chain allows
checking beside it (the unique source index). An export is the log as JSONL with every hash; an import
verifies a whole export before writing anything, then appends it in batches that the store chains again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Final, TypeVar

import msgspec
from eventsourcing.persistence import IntegrityError

from ledger.domain.cadre import Recorded, stream_of
from ledger.domain.errors import IntegrityFailure, InvalidInput
from ledger.domain.events import Event, EventBase
from ledger.integrity.chain import GENESIS_HASH, canonical_bytes, chain_hash, parse_recorded_at
from ledger.integrity.verify import (
    Checkpoint,
    SigningKeyRecord,
    VerifyOutcome,
    check_checkpoint,
    verify_rows,
)
from ledger.reader import CATCH_UP_PAGE
from ledger.results import TableFinding, VerifyReport
from ledger.signing import Signer
from ledger.store.application import LedgerApplication
from ledger.store.batch import BatchWrite
from ledger.store.mapper import encode_event, topic_of
from ledger.store.recorders import SOURCE_INDEX
from ledger.store.tree import TREE_TABLE
from ledger.writer import BATCH_SIZE_MAX, Writer
from ledger_verify.checkpoint import CheckpointDocument, CheckpointError, signed_bytes

__all__ = ["EXPORT_FORMAT", "Audit", "ExportHeader"]

EXPORT_FORMAT: Final = "cadre-ledger-export/1"


class ExportHeader(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The first line of an export: which ledger, and the head it was taken at."""

    format: str
    ledger_id: str
    position: int
    head_hash: str


class _ExportLine(msgspec.Struct):
    """The server fields an export line carries beside the event."""

    position: int
    recorded_at: str
    hash: str
    prev_hash: str


class Audit:
    """Verification, checkpoints, export and import of one ledger."""

    def __init__(self, application: LedgerApplication, writer: Writer, analyze: Callable[[], None]) -> None:
        self._application = application
        self._recorder = application.ledger_recorder
        self._writer = writer
        self._analyze = analyze
        # The ledger's identity, kept in the log's database and named in every checkpoint and export.
        self.ledger_id = self._recorder.set_meta_if_absent("ledger_id", str(uuid.uuid4()))

    def _verify(
        self, roots_at: tuple[int, ...] = (), progress: Callable[[int], None] | None = None
    ) -> VerifyOutcome:
        # One bound for every read, taken first: what is appended while the pages are read is the next
        # verification's, and cannot look like damage (a chain row ahead of its event, a tree row ahead).
        extent = self._recorder.log_extent()
        rows = self._recorder.log_rows(extent)
        return verify_rows(
            rows if progress is None else _counted(rows, progress),
            topic_of=topic_of,
            position_of_event=self._recorder.position_of_event,
            tree_rows=self._recorder.tree.rows(extent),
            roots_at=roots_at,
            row_past_the_log=self._recorder.tree.row_past_the_log,
        )

    def verify(
        self,
        against: CheckpointDocument | None = None,
        signing_key_of: Callable[[str], SigningKeyRecord | None] = lambda _key_id: None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        """Recompute the whole chain and the Merkle tree; with a checkpoint, also prove the log still
        extends it (and that a signed one is signed by a key the log publishes: `signing_key_of`)."""
        outcome = self._verify(() if against is None else (against.tree_size,), progress)
        if against is not None:
            outcome = check_checkpoint(
                against,
                self.ledger_id,
                outcome,
                hash_at=self._recorder.hash_at,
                recorded_at_of=self._recorded_at_of,
                signing_key_of=signing_key_of,
            )
        return VerifyReport(
            ok=outcome.ok,
            verified_through=outcome.verified_through,
            head_hash=outcome.head_hash.hex(),
            first_bad_position=outcome.first_bad_position,
            reason=outcome.reason,
            detail=outcome.detail,
            root_hash=outcome.root_hash.hex(),
        ).with_findings(self._source_findings() + self._tree_findings(outcome))

    def _recorded_at_of(self, position: int) -> str | None:
        row = self._recorder.event_at(position)
        return None if row is None else row[2]

    @staticmethod
    def _tree_findings(outcome: VerifyOutcome) -> list[TableFinding]:
        if outcome.tree is None:
            return []
        finding = outcome.tree
        return [
            TableFinding(
                TREE_TABLE,
                f"position {finding.position}",
                finding.reason,
                f"{finding.detail}; proofs from it would not verify: `ledger rebuild --tree` recomputes "
                "the tree from the log",
            )
        ]

    def _source_findings(self) -> list[TableFinding]:
        """Every `(system, key)` recorded once: guaranteed by the unique index over the events' sources
        while it exists, so check that it does, and look for duplicates the hard way when it does not."""
        problem = self._recorder.source_index_problem()
        if problem is None:
            return []
        table = self._recorder.events_table.split(".")[-1].strip('"')
        findings = [
            TableFinding(
                table,
                f"index {SOURCE_INDEX}",
                "index_missing" if problem == "missing" else "index_altered",
                f"the unique index over the events' sources is {problem}, so a retry could record a "
                "second event with the same (system, key); reopening the ledger rebuilds it",
            )
        ]
        findings += [
            TableFinding(table, f"source {system}/{key}", "duplicate", f"recorded {count} times")
            for system, key, count in self._recorder.duplicate_sources()
        ]
        return findings

    def checkpoint(self, signer: Signer | None = None) -> Checkpoint:
        """The head of the log as a checkpoint, signed by `signer` if given. The whole chain and the stored
        Merkle tree are verified first: a checkpoint of a broken log, or of a log whose stored tree would
        give proofs that do not verify against it, is refused (IntegrityFailure)."""
        outcome = self._verify()
        if not outcome.ok:
            raise IntegrityFailure(
                f"the log fails verification at {outcome.first_bad_position} "
                f"({outcome.reason}); no checkpoint taken",
                position=outcome.first_bad_position,
                reason=outcome.reason or "",
            )
        if outcome.tree is not None:
            raise IntegrityFailure(
                f"the stored Merkle tree ({TREE_TABLE}) disagrees with the log at position "
                f"{outcome.tree.position} ({outcome.tree.reason}); no checkpoint taken: run "
                "`ledger rebuild --tree`",
                position=outcome.tree.position,
                reason=outcome.tree.reason,
            )
        # The head verification reached, not the head now: the root and the hash are of the same log.
        size = outcome.verified_through
        row = self._recorder.event_at(size) if size else None
        recorded_at = row[2] if row is not None else ""
        root_hash, chain_hash = outcome.root_hash.hex(), outcome.head_hash.hex()
        key_id = signature = None
        if signer is not None:
            key_id = signer.key_id
            try:
                message = signed_bytes(self.ledger_id, size, root_hash, chain_hash, recorded_at, key_id)
            except CheckpointError as error:  # a ledger id or a time with a line break: changed by hand
                raise IntegrityFailure(
                    f"the ledger's own fields cannot be signed ({error}): ledger_meta or the chain was "
                    "changed by hand; run `ledger verify`",
                    position=size,
                    reason="altered",
                ) from None
            signature = signer.sign(message).hex()
        return Checkpoint(
            ledger_id=self.ledger_id,
            tree_size=size,
            root_hash=root_hash,
            chain_hash=chain_hash,
            recorded_at=recorded_at,
            key_id=key_id,
            signature=signature,
        )

    # Export and import.

    def export(self, stream: IO[bytes], *, progress: Callable[[int], None] | None = None) -> int:
        """Write the log as JSONL: a header line, then each event with position, time and hashes."""
        head = self._recorder.head()
        header = ExportHeader(EXPORT_FORMAT, self.ledger_id, head.position, head.hash.hex())
        stream.write(msgspec.json.encode(header) + b"\n")
        previous = GENESIS_HASH
        written = 0
        after = 0
        while after < head.position:
            rows = self._recorder.events_after(after, CATCH_UP_PAGE)
            rows = [row for row in rows if row[0] <= head.position]
            if not rows:
                break
            for position, state, recorded_at, hash_ in rows:
                line = canonical_bytes(position, recorded_at, state)[:-1] + (
                    b',"hash":"%s","prev_hash":"%s"}\n' % (hash_.hex().encode(), previous.hex().encode())
                )
                stream.write(line)
                previous = hash_
                written += 1
            after = rows[-1][0]
            if progress is not None:
                progress(len(rows))
        return written

    def import_(self, stream: IO[bytes], *, progress: Callable[[int], None] | None = None) -> int:
        """Load an export into an empty ledger; the number of events imported.

        The whole file is verified before anything is written — consecutive positions, every hash
        recomputed from the re-encoded event, the header's head — so a damaged or truncated file records
        nothing (IntegrityFailure or InvalidInput). Then it is appended in batches, which the store chains
        again. The ledger takes over the export's `ledger_id`, so checkpoints of the original still apply.
        The stream must be seekable (a file).
        """
        header = self._read_export_header(stream)
        if self._recorder.head().position != 0:
            raise InvalidInput(
                "an export is imported into an empty ledger",
                field="database",
                rule="import_target_must_be_empty",
            )
        start = stream.tell()
        self._verify_export(stream, header)
        stream.seek(start)
        with self._writer.lock:
            self._force_ledger_id(header.ledger_id)
            # A kept writer state belongs to the log this one replaces (emptied by hand, or restored).
            self._recorder.drop_writer_state()
            imported = 0
            versions: dict[str, int] = {}
            batch_lines: list[tuple[int, str, bytes, bytes, EventBase]] = []
            try:
                for number, raw in enumerate(stream, start=2):
                    batch_lines.append(self._parse_export_line(raw, number))
                    if len(batch_lines) == BATCH_SIZE_MAX:
                        imported += self._import_batch(batch_lines, versions)
                        batch_lines = []
                        if progress is not None:
                            progress(BATCH_SIZE_MAX)
                if batch_lines:
                    imported += self._import_batch(batch_lines, versions)
                    if progress is not None:
                        progress(len(batch_lines))
            finally:
                # The writer learns the imported log from the log itself.
                self._writer.knowledge.forget()
            self._analyze()
            # Fold it once now and keep the fold, so that the first post after the import is decided at
            # once instead of folding the whole log.
            self._writer.knowledge.catch_up()
            self._writer.knowledge.persist(at_least=0)
            return imported

    @staticmethod
    def _read_export_header(stream: IO[bytes]) -> ExportHeader:
        try:
            header = msgspec.json.decode(stream.readline(), type=ExportHeader)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise InvalidInput(
                f"not a ledger export: {error}", field="line 1", rule="export_header_invalid"
            ) from None
        if header.format != EXPORT_FORMAT:
            raise InvalidInput(
                f"unknown export format {header.format!r}", field="line 1", rule="export_header_invalid"
            )
        return header

    def _verify_export(self, stream: IO[bytes], header: ExportHeader) -> None:
        """Recompute an export's chain from the genesis hash; raise at the first line that breaks it."""
        previous = GENESIS_HASH
        position = 0
        for number, raw in enumerate(stream, start=2):
            line_position, recorded_at, hash_, prev_hash, event = self._parse_export_line(raw, number)
            position += 1
            if line_position != position:
                raise IntegrityFailure(
                    f"line {number} holds position {line_position}, expected {position}",
                    position=position,
                    reason="missing" if line_position > position else "reordered",
                )
            recomputed = chain_hash(previous, canonical_bytes(position, recorded_at, encode_event(event)))
            if prev_hash != previous or recomputed != hash_:
                raise IntegrityFailure(
                    f"line {number} (position {position}) does not chain: it was altered",
                    position=position,
                    reason="altered",
                )
            previous = hash_
        if position != header.position or previous.hex() != header.head_hash:
            raise IntegrityFailure(
                f"the export ends at position {position} but its header says {header.position}: "
                "the file is incomplete or its header was changed",
                position=position + 1,
                reason="missing",
            )

    def _force_ledger_id(self, ledger_id: str) -> None:
        stored = self._recorder.meta("ledger_id")
        if stored != ledger_id:
            with self._recorder._cursor(write=True) as cursor:
                cursor.execute(
                    self._recorder._sql("UPDATE {meta} SET value = ? WHERE name = ?"),
                    (ledger_id, "ledger_id"),
                )
        self.ledger_id = ledger_id

    @staticmethod
    def _parse_export_line(raw: bytes, number: int) -> tuple[int, str, bytes, bytes, EventBase]:
        try:
            server = msgspec.json.decode(raw, type=_ExportLine)
            fields = msgspec.json.decode(raw)
            for name in ("position", "recorded_at", "hash", "prev_hash"):
                fields.pop(name)
            event: EventBase = msgspec.convert(fields, type=Event, strict=False)
            parse_recorded_at(server.recorded_at)
            return (
                server.position,
                server.recorded_at,
                bytes.fromhex(server.hash),
                bytes.fromhex(server.prev_hash),
                event,
            )
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, KeyError) as error:
            raise InvalidInput(
                f"line {number} is not an exported event: {error}",
                field=f"line {number}",
                rule="export_line_invalid",
            ) from None

    def _import_batch(
        self, lines: list[tuple[int, str, bytes, bytes, EventBase]], versions: dict[str, int]
    ) -> int:
        """Append one batch of an export; `versions` carries each stream's version from batch to batch."""
        head = self._recorder.head()
        if lines[0][0] != head.position + 1 or lines[0][3] != head.hash:
            raise IntegrityFailure(
                f"the export's position {lines[0][0]} does not continue this log at {head.position}",
                position=lines[0][0],
                reason="missing",
            )
        plan = []
        for _position, _recorded_at, _hash, _previous, event in lines:
            stream = stream_of(event)
            versions[stream] = version = versions.get(stream, 0) + 1
            plan.append(Recorded(stream, version, event))
        batch = BatchWrite(head.position, [str(r.event.event_id) for r in plan])
        try:
            self._application.append(plan, batch=batch, imported=[(line[1], line[2]) for line in lines])
        except IntegrityError as error:
            raise IntegrityFailure(
                f"the import breaks the chain or repeats an event: {error}",
                position=lines[0][0],
                reason="altered",
            ) from None
        return len(lines)

    # The ledger's own streams (API keys: `ledger.access`, stream `$keys`). Kept apart from `post`, which
    # decides cadre events and policies: these count nothing and obey no rule but idempotency by source.


_Row = TypeVar("_Row")
PROGRESS_EVERY: Final = 4096  # rows between progress reports: a call per row would cost B6 a few percent


def _counted(rows: Iterable[_Row], progress: Callable[[int], None]) -> Iterator[_Row]:
    """`rows`, telling `progress` every `PROGRESS_EVERY` rows and at the end how many went by."""
    seen = 0
    for row in rows:
        yield row
        seen += 1
        if seen == PROGRESS_EVERY:
            progress(seen)
            seen = 0
    if seen:
        progress(seen)
