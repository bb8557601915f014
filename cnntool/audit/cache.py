"""The incremental cache: per-image measurements keyed on content, so a re-audit decodes only
new or changed files.

One SQLite file, ``audit.sqlite``, in the cache folder (``--cache DIR``; default
``$CNNTOOL_CACHE_DIR``, else ``$XDG_CACHE_HOME/cnntool/audit``, else ``~/.cache/cnntool/audit``).
Two tables:

- ``files(path, size, mtime_ns, content)``: a fast pre-key. A file whose absolute path, size and
  modification time are unchanged is taken to have the same content, without reading it.
- ``results(content, measure, value)``: what was measured on that content. ``content`` is a
  BLAKE2b digest of the file's bytes; ``measure`` names the measurement with its version and
  parameters (``props:v1:px268435456``, ``hash:phash:v1``, ``embed:resnet18:IMAGENET1K_V1:v1``),
  so a new version or another parameter is a miss, never a stale hit. A decode failure is
  cached too (as ``{"error": reason}``), so a corrupt file is not re-read every run.

Thresholds are not part of any key: findings are decided again on every run from the cached
measurements. Writes are batched in transactions (atomic: a killed run leaves the cache as it
was after the last commit), and several runs may share a cache (SQLite locks it).

A damaged cache (not a database, overwritten pages, another schema, values that are not what
cnntool wrote) never stops an audit: :class:`AuditCache` sets the file aside, starts a new one
and warns once; the audit's records and exit code are those of a run without a cache.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from cnntool.errors import one_line

CACHE_FILE = "audit.sqlite"

#: Pending writes committed together (a kill loses at most this many measurements).
COMMIT_EVERY = 256

#: Seconds a run waits for another run's write lock.
LOCK_TIMEOUT = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, content TEXT);
CREATE TABLE IF NOT EXISTS results (content TEXT, measure TEXT, value BLOB, PRIMARY KEY (content, measure));
"""


def default_cache_dir() -> Path:
    """``$CNNTOOL_CACHE_DIR``, else ``$XDG_CACHE_HOME/cnntool/audit``, else ``~/.cache/cnntool/audit``."""
    if os.environ.get("CNNTOOL_CACHE_DIR"):
        return Path(os.environ["CNNTOOL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnntool" / "audit"


class AuditCache:
    """Thread-safe access to the cache database; a damaged cache never stops an audit.

    A file that is not a database, has overwritten pages or another schema is set aside (renamed
    ``audit.sqlite.damaged``) and a new cache is started; a value that cannot be decoded is a
    miss, measured again and overwritten. Either is reported once, through ``warn``. When even a
    new cache cannot be opened (or another run holds the lock past :data:`LOCK_TIMEOUT`), the run
    goes on without one.

    Parameters
    ----------
    directory : path-like
        Created if missing.
    warn : callable, optional
        Receives the one-line notice about a damaged cache (the CLI passes its ``warn``).

    Examples
    --------
    >>> import tempfile
    >>> cache = AuditCache(tempfile.mkdtemp())
    >>> cache.put("abc", "props:v1", {"width": 3})
    >>> cache.get("abc", "props:v1")
    {'width': 3}
    >>> cache.close()
    """

    def __init__(self, directory: str | os.PathLike, *, warn: Callable[[str], None] | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / CACHE_FILE
        self._warn = warn or (lambda message: None)
        self._lock = threading.Lock()
        self._pending_files: dict[str, tuple] = {}
        self._pending_results: dict[tuple[str, str], bytes] = {}
        self.hits = 0
        self.misses = 0
        #: Why the cache was found damaged (None while it is sound): reported once.
        self.damage: str | None = None
        self._db = None
        try:
            self._db = _connect(self.path)
        except sqlite3.DatabaseError as exc:
            self._rebuild(exc)

    @property
    def usable(self) -> bool:
        """False once the run goes on without a cache."""
        return self._db is not None

    # damage ----------------------------------------------------------------------------
    def report(self, reason: str) -> None:
        """Report damage once: later reasons are only counted by the caller."""
        if self.damage is None:
            self.damage = reason
            self._warn(reason)

    def _rebuild(self, exc: BaseException) -> None:
        """Set the damaged file aside and start a new one; without one if that fails too."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
        if _is_busy(exc):
            self.report(f"the audit cache {self.path} is busy ({one_line(exc)}); measuring without it")
            return
        try:
            for suffix in ("", "-wal", "-shm"):
                damaged = Path(f"{self.path}{suffix}")
                if damaged.exists():
                    os.replace(damaged, Path(f"{self.path}.damaged{suffix}"))
            self._db = _connect(self.path)
        except (OSError, sqlite3.Error) as again:
            self.report(f"the audit cache {self.path} is damaged ({one_line(exc)}) and cannot be replaced "
                        f"({one_line(again)}); measuring without it")
            self._db = None
            return
        self.report(f"the audit cache {self.path} was damaged ({one_line(exc)}); set it aside as "
                    f"{CACHE_FILE}.damaged and started a new one")

    def _execute(self, work):
        """Run ``work(db)`` (under the lock); on damage rebuild and run it once more on the new cache."""
        for attempt in (1, 2):
            if self._db is None:
                return None
            try:
                return work(self._db)
            except sqlite3.DatabaseError as exc:
                self._rebuild(exc)
        return None

    # files: path, size, mtime -> content ---------------------------------------------------
    def known_contents(self, stats: list[tuple[str, int, int]]) -> dict[str, str]:
        """``{path: content}`` for the (path, size, mtime_ns) triples the cache has seen unchanged."""
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(stats), 500):
                chunk = stats[start:start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT path, size, mtime_ns, content FROM files WHERE path IN ({marks})"
                rows = self._execute(lambda db: db.execute(query, [s[0] for s in chunk]).fetchall()) or []
                wanted = {s[0]: (s[1], s[2]) for s in chunk}
                rows += [self._pending_files[p] for p in wanted if p in self._pending_files]
                for row in rows:
                    if len(row) == 4 and wanted.get(row[0]) == (row[1], row[2]) and isinstance(row[3], str):
                        found[row[0]] = row[3]
        return found

    def remember_file(self, path: str, size: int, mtime_ns: int, content: str) -> None:
        with self._lock:
            self._pending_files[path] = (path, size, mtime_ns, content)
            self._maybe_commit()

    # results: content, measure -> value ----------------------------------------------------
    def get_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], object]:
        """Cached values for (content, measure) keys; missing and unreadable keys are absent."""
        found: dict[tuple[str, str], object] = {}
        query = "SELECT value FROM results WHERE content = ? AND measure = ?"
        with self._lock:
            for key in keys:
                blob = self._pending_results.get(key)
                if blob is None:
                    row = self._execute(lambda db: db.execute(query, key).fetchone())
                    blob = None if row is None else row[0]
                if blob is None:
                    continue
                try:
                    found[key] = _decode(blob)
                except ValueError as exc:
                    self.report(f"the audit cache {self.path} holds values it cannot read ({one_line(exc)}); "
                                f"measuring those files again")
            self.hits += len(found)
            self.misses += len(keys) - len(found)
        return found

    def get(self, content: str, measure: str):
        return self.get_many([(content, measure)]).get((content, measure))

    def put(self, content: str, measure: str, value) -> None:
        """Store a JSON-able value, or raw ``bytes`` (embeddings)."""
        with self._lock:
            self._pending_results[(content, measure)] = _encode(value)
            self._maybe_commit()

    def _maybe_commit(self) -> None:
        if len(self._pending_files) + len(self._pending_results) >= COMMIT_EVERY:
            self._commit()

    def _commit(self) -> None:
        if not (self._pending_files or self._pending_results):
            return

        def write(db):
            with db:
                db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", self._pending_files.values())
                db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                               [(c, m, v) for (c, m), v in self._pending_results.items()])

        self._execute(write)
        self._pending_files.clear()
        self._pending_results.clear()

    def flush(self) -> None:
        with self._lock:
            self._commit()

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._db is not None:
                try:
                    self._db.close()
                except sqlite3.Error:
                    pass
                self._db = None


def _connect(path: Path) -> sqlite3.Connection:
    """Open (or create) the cache and check it: raises sqlite3.DatabaseError when it is not a
    database, is damaged where the schema lives, or has another schema."""
    db = sqlite3.connect(path, timeout=LOCK_TIMEOUT, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        for table, columns in _COLUMNS.items():
            found = tuple(row[1] for row in db.execute(f"PRAGMA table_info({table})"))
            if found != columns:
                raise sqlite3.DatabaseError(f"table {table} has columns {', '.join(found) or 'none'}, "
                                            f"not {', '.join(columns)}")
    except sqlite3.Error:
        db.close()
        raise
    return db


_COLUMNS = {"files": ("path", "size", "mtime_ns", "content"), "results": ("content", "measure", "value")}


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and any(w in str(exc).lower() for w in ("locked", "busy"))


def _encode(value) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return b"B" + bytes(value)
    return b"J" + json.dumps(value, separators=(",", ":")).encode()


def _decode(blob) -> object:
    """A stored value back; ValueError when it is not one cnntool wrote.

    Examples
    --------
    >>> _decode(_encode({"a": 1})), _decode(_encode(b"xy"))
    ({'a': 1}, b'xy')
    >>> _decode(b"Jnot json")
    Traceback (most recent call last):
    ...
    ValueError: a value that is not JSON
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ValueError(f"a value of type {type(blob).__name__}")
    blob = bytes(blob)
    if blob[:1] == b"B":
        return blob[1:]
    if blob[:1] == b"J":
        try:
            return json.loads(blob[1:])
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError("a value that is not JSON") from None
    raise ValueError("a value of unknown kind")
