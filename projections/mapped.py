"""Read models on disk: the in-memory index persisted as one file and mapped when the read models open.

Opening the read models used to read every persisted fact back from the database and fold it again (6 s
of a CLI read at a million events). Instead the index itself — its NumPy columns (`index.py`) and the few
Python-side structures beside them — is written to one file bound to a log position; an open maps the
file, checks the binding, and folds only the facts after that position. The arrays are mapped
copy-on-write: processes on one machine share the file's pages, and what a process appends (or marks
reversed) lands in pages of its own, never in the file.

The file is a cache: every check that fails at open (`IndexUnusable`) makes the read models load from the
facts table as before and write a fresh file. What is checked (see docs/operations.md#read-models-on-disk):
the header's SHA-256; the SHA-256 of every array's bytes and of the Python-side parts; that the facts'
stream in the file hashes to the facts digest the header binds (the same `FactsDigest` the tracking row
holds, so the running digest continues from the file without reading a row); the binding itself — this
ledger, this version, this facts format, a position the tracking row has reached, and the log's chain hash
there (`IndexUnusable.critical` when the log disagrees: a log rewritten or restored behind the file). The
file's layout: `index_file.py`.

Files are written to a temporary name and renamed, never changed in place, so a process maps either the old
file or the new one whole; two processes writing at once each rename a complete file (the later stands).
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import msgspec

from ledger.projections.facts import Fact, FactsDigest
from ledger.projections.index import Index
from ledger.projections.index_file import ALIGN, INDEX_FORMAT, Binding, IndexUnusable, read_index, write_index
from ledger.store.application import environment_for

__all__ = [
    "INDEX_FORMAT",
    "Binding",
    "IndexFiles",
    "IndexUnusable",
    "Opened",
    "StreamDigest",
    "check_binding",
    "index_directory",
]

# Temporary files of a writer that died: removed by the next writer once this old.
STALE_TEMPORARY_SECONDS: Final = 600.0
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]")
_FILE_VERSION: Final = re.compile(r"v([0-9]{1,9})\.index")
_encoder = msgspec.msgpack.Encoder()


class StreamDigest(FactsDigest):
    """`FactsDigest` that also keeps what it hashed: the facts' stream a persisted index stores, so writing
    one encodes nothing again. Copies (`extended`) share the list of chunks and each knows how many are its
    own, so a copy discarded (a page another process wrote first) leaves the others intact."""

    __slots__ = ("_chunks", "_count")

    def __init__(self, state: Any = None, chunks: list[Any] | None = None, count: int = 0) -> None:
        super().__init__(state)
        self._chunks = chunks if chunks is not None else []
        self._count = count if chunks is not None else 0

    def update(self, facts: Sequence[Fact]) -> None:
        if facts:
            # The bytes FactsDigest hashes: the encoded list without its array header.
            encoded = memoryview(_encoder.encode(facts))[_array_header_length(len(facts)) :]
            self._hash.update(encoded)
            self._keep(encoded)

    def _keep(self, chunk: Any) -> None:
        if len(self._chunks) != self._count:  # another copy appended to the shared list: branch off
            self._chunks = self._chunks[: self._count]
        self._chunks.append(chunk)
        self._count += 1

    def extended(self, facts: Sequence[Fact]) -> StreamDigest:
        copy = StreamDigest(self._hash.copy(), self._chunks, self._count)
        copy.update(facts)
        return copy

    def stream(self) -> list[Any]:
        """The bytes digested so far, in chunks."""
        return self._chunks[: self._count]

    def plain(self) -> FactsDigest:
        """The same running digest, keeping nothing (for a process that will not write an index)."""
        return FactsDigest(self._hash.copy())


def _array_header_length(count: int) -> int:
    """Bytes of MessagePack's array header for `count` items (as `facts.FactsDigest` strips it)."""
    return 1 if count < 16 else 3 if count < 1 << 16 else 5


@dataclass(frozen=True, slots=True)
class Opened:
    """A persisted index mapped and checked: the index at `binding.position`, the running digest of its
    facts there (continuing from the file's stream), and the file."""

    index: Index
    digest: StreamDigest
    binding: Binding
    path: Path


def index_directory(url: str, ledger_id: str) -> Path:
    """Where the persisted index of the ledger at `url` lives: beside a SQLite file (`<file>.index/`); for
    PostgreSQL under the user's cache directory, keyed by ledger and schema. `LEDGER_INDEX_DIR` overrides
    both (a SQLite ledger is then keyed by its file's path too: copies of one ledger keep their own)."""
    override = os.environ.get("LEDGER_INDEX_DIR")
    parts = urlsplit(url)
    ledger = _UNSAFE.sub("_", ledger_id)
    if parts.scheme == "sqlite":
        path = os.path.abspath(environment_for(url)["SQLITE_DBNAME"])
        if not override:
            return Path(f"{path}.index")
        return Path(override) / f"{ledger}-sqlite-{hashlib.sha256(path.encode()).hexdigest()[:12]}"
    schema = parse_qs(parts.query).get("schema", [""])[0] or "public"
    if override:
        base = Path(override)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = Path(cache) / "cadre-ledger" / "index"
    return base / f"{ledger}-{_UNSAFE.sub('_', schema)}"


class IndexFiles:
    """The persisted indexes of one ledger: a file per version of the read models, written with `mode`
    (a file holds what the database holds: beside a SQLite file, that file's permissions; else the
    owner's only)."""

    def __init__(self, directory: Path, mode: int = 0o600) -> None:
        self.directory = directory
        self.mode = mode

    @classmethod
    def of(cls, url: str, ledger_id: str) -> IndexFiles:
        """The files of the ledger at `url` (see `index_directory`)."""
        mode = 0o600
        if urlsplit(url).scheme == "sqlite":
            with contextlib.suppress(OSError):
                mode = os.stat(environment_for(url)["SQLITE_DBNAME"]).st_mode & 0o666
        return cls(index_directory(url, ledger_id), mode)

    def path(self, version: int) -> Path:
        return self.directory / f"v{int(version)}.index"

    # Writing.

    def write(self, binding: Binding, index: Index, stream: Sequence[Any]) -> Path:
        """Write `index` (folded through `binding.position`, its facts' stream `stream`) as version
        `binding.version`'s file, atomically; OSError if the directory cannot be written."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        handle, name = tempfile.mkstemp(
            prefix=f".v{binding.version}.{os.getpid()}.", suffix=".tmp", dir=self.directory
        )
        temporary = Path(name)
        try:
            os.fchmod(handle, self.mode)
            with os.fdopen(handle, "wb") as file:
                write_index(file, binding, index, stream)
            os.replace(temporary, self.path(binding.version))
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return self.path(binding.version)

    def _remove_stale_temporaries(self) -> None:
        now = time.time()
        for path in self.directory.glob(".v*.tmp"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                    path.unlink()

    def remove_older(self, version: int) -> None:
        """Remove the files of the versions before `version` (a rebuild dropped them); best effort. A
        process still mapping one keeps its pages; opening that version again loads it from the database."""
        with contextlib.suppress(OSError):
            for path in self.directory.glob("v*.index"):
                number = _FILE_VERSION.fullmatch(path.name)
                if number is not None and int(number[1]) < version:
                    with contextlib.suppress(OSError):
                        path.unlink()

    # Reading.

    def open(self, version: int, *, verify: bool = True) -> Opened | None:
        """Map version's file and check it against itself (None if there is none); IndexUnusable if it is
        damaged. `verify=False` skips the digests of the arrays (a file this process just wrote). The
        binding is the caller's to check against the log and the tracking row (`check_binding`)."""
        path = self.path(version)
        try:
            with open(path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size < ALIGN:
                    raise IndexUnusable(f"it is truncated ({size} bytes)")
                mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise IndexUnusable(f"it cannot be mapped: {error}") from None
        index, binding, running, stream = read_index(mapped, size, verify=verify)
        return Opened(index, StreamDigest(running, [stream], 1), binding, path)


def check_binding(
    binding: Binding,
    *,
    ledger_id: str,
    version: int,
    facts_format: int,
    tracked: int,
    hash_at: Callable[[int], bytes | None],
) -> None:
    """IndexUnusable unless `binding` is of this ledger, version and facts format, at a position the
    tracking row has reached (`tracked`), and the log still holds its hash there (critical if not)."""
    if binding.ledger_id != ledger_id:
        raise IndexUnusable(f"it is ledger {binding.ledger_id}'s, not this ledger's ({ledger_id})")
    if binding.version != version:
        raise IndexUnusable(f"it is of version {binding.version}, not the current {version}")
    if binding.facts_format != facts_format:
        raise IndexUnusable(f"it is of facts format {binding.facts_format}, not {facts_format}")
    if binding.position > tracked:
        raise IndexUnusable(
            f"it is at position {binding.position}, beyond the position {tracked} the facts are tracked at"
        )
    held = hash_at(binding.position)
    if held != binding.log_hash:
        shown = "nothing" if held is None else held.hex()[:16]
        raise IndexUnusable(
            f"the log holds {shown} at position {binding.position}, not the hash "
            f"{binding.log_hash.hex()[:16]} the index was folded from: the log was rewritten or restored "
            "behind it",
            critical=True,
        )
