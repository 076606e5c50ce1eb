"""An export held to a checkpoint, in one streaming pass: the chain and the Merkle tree recomputed.

An export (docs/audit.md) is a header line, then one line per event from position 1, each the event's
canonical bytes with `,"hash":"<64 hex>","prev_hash":"<64 hex>"}` in place of the closing brace. So the
canonical bytes of a line are the line without its last 155 bytes (that suffix and the newline) plus `}`,
and every line is checked without decoding its JSON:

- it begins `{"position":P,` with P one more than the line before (1 for the first);
- its suffix is framed exactly, its `prev_hash` is the hash computed for the line before (32 zero bytes
  before the first) and its `hash` is SHA-256(prev ‖ canonical bytes), recomputed;
- leaf `P - 1` of the Merkle tree (RFC 9162, `merkle`) is SHA-256(0x00 ‖ canonical bytes);
- at the checkpoint's `tree_size` the chain hash must be its `chain_hash`, MTH(D[0:tree_size]) its
  `root_hash` (not for a checkpoint of the chain only) and the line's `recorded_at` its `recorded_at`;
- the export may go on past the checkpoint (the log grew) but not end before it, and the header's
  `position` and `head_hash` must be the last line's.

The first line that fails is reported, with why. The file is read in big blocks and split in C, and the
loop does one hash per line and a few slice comparisons (JSON is decoded only for the header). The
Merkle tree costs as much again (a leaf and, on average, one node per line), and it is independent of the
chain until the end, so a big export file gets a second process for it (`_tree_worker`), which reads the
same file on its own. That is as sound as one reading: each half holds what it read to the checkpoint —
the chain its chain hash, the tree its root — so a file changed between the two readings fails one of
them, or both halves read the checkpointed log.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Final

from ledger_verify.checkpoint import CheckpointDocument, CheckpointError, strict_json
from ledger_verify.merkle import EMPTY_ROOT, HASH_SIZE, Frontier, node_hash, perfect_subtrees

__all__ = [
    "EXPORT_FORMAT",
    "SUFFIX_LENGTH",
    "ExportError",
    "ExportHeader",
    "ExportReport",
    "parse_header",
    "verify_export",
]

EXPORT_FORMAT: Final = "cadre-ledger-export/1"
GENESIS_HASH: Final = bytes(HASH_SIZE)

_HASH_OPEN: Final = b',"hash":"'
_PREVIOUS_OPEN: Final = b'","prev_hash":"'
_CLOSE: Final = b'"}'
# The suffix of a line after its canonical bytes' last field, without the newline (155 bytes with it).
SUFFIX_LENGTH: Final = len(_HASH_OPEN) + 2 * HASH_SIZE + len(_PREVIOUS_OPEN) + 2 * HASH_SIZE + len(_CLOSE)
_HASH_AT: Final = slice(-SUFFIX_LENGTH + len(_HASH_OPEN), -SUFFIX_LENGTH + len(_HASH_OPEN) + 2 * HASH_SIZE)
_PREVIOUS_AT: Final = slice(-len(_CLOSE) - 2 * HASH_SIZE, -len(_CLOSE))

BLOCK_SIZE: Final = 8 << 20
HEADER_LENGTH_MAX: Final = 64 << 10
# No event comes near this; a file without line breaks must not be held in memory whole.
LINE_LENGTH_MAX: Final = 4 << 20
# Leaves hashed into one perfect subtree at a time (a power of two): the tree's nodes are built level by
# level over lists, and only the roots of these chunks go through a Frontier.
CHUNK_LEAVES: Final = 1 << 10
# Below this the second process costs more to start (tens of milliseconds) than it saves.
PARALLEL_MIN_BYTES: Final = 32 << 20
_WORKER_CODE = (
    "import sys\nfrom ledger_verify.export import _tree_worker\n_tree_worker(*map(int, sys.argv[1:]))"
)

_POSITION_PREFIX: Final = re.compile(rb'\{"position":(0|[1-9][0-9]{0,17}),')
_RECORDED_AT: Final = re.compile(rb'"recorded_at":"([^"\\]{0,64})"')
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_HEX64_BYTES: Final = re.compile(rb"[0-9a-f]{64}")


class ExportError(ValueError):
    """Raised when a file is not an export at all (no header line of this format): names the field."""


@dataclass(frozen=True, slots=True)
class ExportHeader:
    """The first line of an export: which ledger, and the position and hash it ends at."""

    ledger_id: str
    position: int
    head_hash: str


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What checking an export against a checkpoint found; `failure` is None when it holds.

    `verified_through` is the last position whose line checked out and `head_hash` the chain hash there;
    `line` and `position` locate the failure when it is one line's (the header is line 1).
    """

    header: ExportHeader
    checkpoint: CheckpointDocument
    verified_through: int
    head_hash: str
    failure: str | None = None
    line: int | None = None
    position: int | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def parse_header(raw: bytes) -> ExportHeader:
    """The header line of an export; ExportError naming the field otherwise."""
    if not raw.endswith(b"\n"):
        raise ExportError("line 1: not an export header (no line of at most 64 KiB)")
    try:
        document = strict_json(raw)
    except CheckpointError as error:
        raise ExportError(f"line 1: the header: {error}") from None
    if not isinstance(document, dict):
        raise ExportError("line 1: the header is not a JSON object")
    if document.get("format") != EXPORT_FORMAT:
        raise ExportError(f"format: expected {EXPORT_FORMAT!r}, got {json.dumps(document.get('format'))}")
    ledger_id, position, head_hash = (document.get(name) for name in ("ledger_id", "position", "head_hash"))
    if not isinstance(ledger_id, str):
        raise ExportError(f"ledger_id: expected a string, got {json.dumps(ledger_id)}")
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise ExportError(f"position: expected a position (an integer >= 0), got {json.dumps(position)}")
    if not isinstance(head_hash, str) or not _HEX64.fullmatch(head_hash):
        raise ExportError(f"head_hash: expected 64 lowercase hex digits, got {json.dumps(head_hash)}")
    return ExportHeader(ledger_id, position, head_hash)


# The chain: one pass over a block's lines, the slow explanation only for the line that fails.


def _check_lines(lines: Sequence[bytes], position: int, previous: bytes) -> tuple[int, bytes, bool]:
    """Check `lines`, the positions after `position` whose predecessor hashed to `previous`:
    (the last position that checked out, its hash, whether every line did)."""
    sha256 = hashlib.sha256
    hexlify = binascii.hexlify
    hash_open, previous_open, close = _HASH_OPEN, _PREVIOUS_OPEN, _CLOSE
    cut = -SUFFIX_LENGTH
    previous_hex = hexlify(previous)
    for line in lines:
        digest = sha256(previous + line[:cut] + b"}").digest()
        digest_hex = hexlify(digest)
        position += 1
        # One comparison checks the framing, the hash and the link to the line before.
        suffix = hash_open + digest_hex + previous_open + previous_hex + close
        if line[cut:] != suffix or not line.startswith(b'{"position":%d,' % position):
            return position - 1, previous, False
        previous, previous_hex = digest, digest_hex
    return position, previous, True


def _why(line: bytes, position: int, previous: bytes) -> str:
    """Why `line`, expected at `position` after the hash `previous`, fails (`_check_lines` said it does)."""
    tail = line[-SUFFIX_LENGTH:]
    framed = (
        len(line) > SUFFIX_LENGTH
        and tail.startswith(_HASH_OPEN)
        and tail[len(_HASH_OPEN) + 2 * HASH_SIZE :].startswith(_PREVIOUS_OPEN)
        and tail.endswith(_CLOSE)
    )
    if not framed:
        return 'it does not end in ,"hash":"…","prev_hash":"…"} (it was cut, joined or altered)'
    prefix = _POSITION_PREFIX.match(line)
    if prefix is None:
        return 'it does not begin with {"position":<number>, (it was altered)'
    said = int(prefix.group(1))
    if said > position:
        return f"it says position {said}: lines before it are missing or out of order"
    if said < position:
        return f"it says position {said}: lines are repeated or out of order"
    stored_hash, stored_previous = line[_HASH_AT], line[_PREVIOUS_AT]
    if not _HEX64_BYTES.fullmatch(stored_hash) or not _HEX64_BYTES.fullmatch(stored_previous):
        return "its hash or prev_hash is not 64 lowercase hex digits (it was altered)"
    if stored_previous != binascii.hexlify(previous):
        before = "the genesis hash (64 zeros)" if position == 1 else "the hash of the line before it"
        return f"its prev_hash is not {before}: a line was removed, inserted or altered"
    return "the hash does not match its content (it was altered)"


def _recorded_at(line: bytes) -> str | None:
    """The `recorded_at` right after the position prefix of a line that checked out."""
    prefix = _POSITION_PREFIX.match(line)
    found = _RECORDED_AT.match(line, prefix.end()) if prefix is not None else None
    return None if found is None else found.group(1).decode("utf-8", "replace")


# The Merkle tree over the lines' canonical bytes.


def _perfect_root(hashes: list[bytes]) -> bytes:
    """The root of the perfect subtree over `hashes` (a power of two of them), level by level."""
    sha256 = hashlib.sha256
    while len(hashes) > 1:
        pairs = iter(hashes)
        hashes = [sha256(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=True)]
    return hashes[0]


class _Tree:
    """MTH over the canonical bytes of export lines added in order.

    Leaves are hashed a block at a time and folded in aligned chunks of CHUNK_LEAVES into perfect subtrees;
    a Frontier over the chunks' roots is the tree above them (a tree of n·C leaves is the tree of its n
    chunks, since every split of it is a multiple of C), and `root` adds the last, partial chunk's perfect
    subtrees on the right.
    """

    __slots__ = ("_chunks", "_pending", "size")

    def __init__(self) -> None:
        self._chunks = Frontier()
        self._pending: list[bytes] = []
        self.size = 0

    def add_lines(self, lines: Sequence[bytes]) -> None:
        sha256 = hashlib.sha256
        cut = -SUFFIX_LENGTH
        pending = self._pending
        pending += [sha256(b"\x00" + line[:cut] + b"}").digest() for line in lines]
        self.size += len(lines)
        if len(pending) >= CHUNK_LEAVES:
            full = len(pending) - len(pending) % CHUNK_LEAVES
            for start in range(0, full, CHUNK_LEAVES):
                self._chunks.append(_perfect_root(pending[start : start + CHUNK_LEAVES]))
            del pending[:full]

    def root(self) -> bytes:
        hashes = self._chunks.subtrees()
        if self._pending:
            for level, index in perfect_subtrees(0, len(self._pending)):
                start = index << level
                hashes.append(_perfect_root(self._pending[start : start + (1 << level)]))
        if not hashes:
            return EMPTY_ROOT
        result = hashes[-1]
        for hash_ in reversed(hashes[:-1]):
            result = node_hash(hash_, result)
        return result


def _tree_worker(descriptor: int, offset: int, count: int, block_size: int) -> None:
    """The Merkle half of a parallel check: the first `count` lines from byte `offset` of the file open as
    `descriptor`, read in blocks of `block_size` with pread (the parent's file position is left alone);
    `<leaves> <root hex>` on stdout."""
    tree = _Tree()
    carry = b""
    while tree.size < count and (block := os.pread(descriptor, block_size, offset)):
        offset += len(block)
        lines = block.split(b"\n")
        lines[0] = carry + lines[0]
        carry = lines.pop()
        if len(carry) > LINE_LENGTH_MAX:
            break  # not an export: the parent finds the same line and says so
        tree.add_lines(lines[: count - tree.size])
    sys.stdout.write(f"{tree.size} {tree.root().hex()}\n")


class _RemoteTree:
    """A `_Tree` of the first `count` event lines computed by a second process (`start`: None if it
    cannot run on this stream)."""

    def __init__(self, process: subprocess.Popen[bytes], count: int) -> None:
        self._process = process
        self._count = count
        self._finished = False

    @classmethod
    def start(cls, stream: IO[bytes], count: int) -> _RemoteTree | None:
        if not sys.executable or not hasattr(os, "pread"):  # pread and pass_fds: POSIX only
            return None
        try:
            descriptor = stream.fileno()
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                return None
            offset = stream.tell()
        except (OSError, AttributeError, ValueError):
            return None
        arguments = (descriptor, offset, count, BLOCK_SIZE)
        command = [sys.executable, "-c", _WORKER_CODE, *map(str, arguments)]
        try:
            # Its stderr is dropped: if it fails, this process checks the tree itself, and says nothing more.
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=(descriptor,),
            )
        except (OSError, ValueError):
            return None
        return cls(process, count)

    def root(self) -> bytes | None:
        """The worker's root, or None if it failed or counted other leaves than asked."""
        self._finished = True
        output, _ = self._process.communicate()
        fields = output.decode("ascii", "replace").split()
        if self._process.returncode != 0 or len(fields) != 2 or fields[0] != str(self._count):
            return None
        if not _HEX64.fullmatch(fields[1]):
            return None
        return bytes.fromhex(fields[1])

    def stop(self) -> None:
        """End the worker if it still runs (the pass stopped early)."""
        if self._finished:
            return
        self._finished = True
        self._process.kill()
        self._process.communicate()


# The pass.


def _should_run_parallel(stream: IO[bytes], tree_size: int) -> bool:
    if tree_size < CHUNK_LEAVES:
        return False
    try:
        size = os.fstat(stream.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        return False
    return size >= PARALLEL_MIN_BYTES


class _Failed(Exception):
    """One pass found the export wrong: the report says where and why."""

    def __init__(self, report: ExportReport) -> None:
        super().__init__(report.failure)
        self.report = report


class _WorkerFailed(Exception):
    """The second process could not compute the tree: the pass starts again without it."""


class _Pass:
    """One reading of an export: the state between blocks."""

    def __init__(
        self, header: ExportHeader, checkpoint: CheckpointDocument, remote: _RemoteTree | None
    ) -> None:
        self.header, self.checkpoint = header, checkpoint
        self.remote = remote
        self.tree = _Tree()
        self.position = 0
        self.previous = GENESIS_HASH

    def fail(self, failure: str, position: int | None = None) -> _Failed:
        return _Failed(
            ExportReport(
                self.header,
                self.checkpoint,
                self.position,
                self.previous.hex(),
                failure,
                None if position is None else position + 1,
                position,
            )
        )

    def run(self, stream: IO[bytes]) -> ExportReport:
        tree_size = self.checkpoint.tree_size
        if tree_size == 0:
            self.at_checkpoint(None)
        carry = b""
        while block := stream.read(BLOCK_SIZE):
            lines = block.split(b"\n")
            # Only the line cut by the last block is joined, not the whole block copied.
            lines[0] = carry + lines[0]
            carry = lines.pop()
            if lines:
                self.feed_tree(lines)
                self.check(lines)
            if len(carry) > LINE_LENGTH_MAX:
                raise self.fail(f"the line is longer than {LINE_LENGTH_MAX} bytes", self.position + 1)
        if carry:
            raise self.fail("the line does not end in a newline (the file was cut)", self.position + 1)
        return self.conclude()

    def feed_tree(self, lines: list[bytes]) -> None:
        """Add the leaves of `lines` up to the checkpoint's size (unless the second process does)."""
        wanted = min(len(lines), self.checkpoint.tree_size - self.position)
        if wanted > 0 and self.remote is None:
            self.tree.add_lines(lines if wanted == len(lines) else lines[:wanted])

    def check(self, lines: list[bytes]) -> None:
        """The chain over `lines`, stopping at the checkpoint's size to hold the log to it."""
        until = self.checkpoint.tree_size - self.position
        segments = (lines[:until], lines[until:]) if 0 < until < len(lines) else (lines,)
        for segment in segments:
            start = self.position
            self.position, self.previous, ok = _check_lines(segment, start, self.previous)
            if not ok:
                bad = segment[self.position - start]
                raise self.fail(_why(bad, self.position + 1, self.previous), self.position + 1)
            if self.position == self.checkpoint.tree_size:
                self.at_checkpoint(segment[-1])

    def at_checkpoint(self, line: bytes | None) -> None:
        """The log has reached the checkpoint's size (`line` its last line, None for size 0)."""
        checkpoint, size = self.checkpoint, self.checkpoint.tree_size
        where = None if size == 0 else size
        if self.previous.hex() != checkpoint.chain_hash:
            raise self.fail(
                f"the chain hash at position {size} is {self.previous.hex()}, the checkpoint's chain_hash "
                f"is {checkpoint.chain_hash}: the log was rewritten, or the checkpoint altered",
                where,
            )
        recorded_at = "" if line is None else _recorded_at(line)
        if recorded_at != checkpoint.recorded_at:
            raise self.fail(
                f"position {size} was recorded at {json.dumps(recorded_at)}, the checkpoint's recorded_at "
                f"is {json.dumps(checkpoint.recorded_at)}: the checkpoint was altered",
                where,
            )
        if checkpoint.root_hash is None:  # a checkpoint of the chain only
            return
        root = self.root()
        if root.hex() != checkpoint.root_hash:
            raise self.fail(
                f"the Merkle tree head of the first {size} events is {root.hex()}, the checkpoint's "
                f"root_hash is {checkpoint.root_hash}: the checkpoint was altered",
                where,
            )

    def root(self) -> bytes:
        if self.remote is None:
            return self.tree.root()
        root = self.remote.root()
        if root is None:
            raise _WorkerFailed
        return root

    def conclude(self) -> ExportReport:
        header, size = self.header, self.checkpoint.tree_size
        if self.position < size:
            raise self.fail(
                f"the export ends at position {self.position}, before the checkpoint's tree size {size}: "
                "it is truncated, or the log was cut back"
            )
        if header.position != self.position:
            raise self.fail(
                f"the header says the export ends at position {header.position}, its last line is "
                f"position {self.position}: lines were cut off or added"
            )
        if header.head_hash != self.previous.hex():
            raise self.fail(
                f"the header's head_hash {header.head_hash} is not the hash of the last line, "
                f"{self.previous.hex()}"
            )
        return ExportReport(header, self.checkpoint, self.position, self.previous.hex())


def verify_export(
    stream: IO[bytes], checkpoint: CheckpointDocument, *, parallel: bool | None = None
) -> ExportReport:
    """Check the export read from `stream` (binary, at its start) against `checkpoint`.

    `parallel` computes the Merkle tree in a second process when the stream is a regular file (default:
    for a file of at least PARALLEL_MIN_BYTES); if that process fails, the check starts again in this
    one. Raises ExportError when the stream is not an export (its header).
    """
    header = parse_header(stream.readline(HEADER_LENGTH_MAX))
    if header.ledger_id != checkpoint.ledger_id:
        return ExportReport(
            header,
            checkpoint,
            0,
            GENESIS_HASH.hex(),
            f"the export is of ledger {header.ledger_id}, the checkpoint of ledger {checkpoint.ledger_id}",
        )
    if parallel is None:
        parallel = _should_run_parallel(stream, checkpoint.tree_size)
    remote = _RemoteTree.start(stream, checkpoint.tree_size) if parallel else None
    if remote is not None:
        start = stream.tell()  # a regular file: `start` made sure
        try:
            return _Pass(header, checkpoint, remote).run(stream)
        except _Failed as failed:
            return failed.report
        except _WorkerFailed:
            stream.seek(start)
        finally:
            remote.stop()
    try:
        return _Pass(header, checkpoint, None).run(stream)
    except _Failed as failed:
        return failed.report
