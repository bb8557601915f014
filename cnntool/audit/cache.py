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
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

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
    """Thread-safe access to the cache database.

    Parameters
    ----------
    directory : path-like
        Created if missing.

    Examples
    --------
    >>> import tempfile
    >>> cache = AuditCache(tempfile.mkdtemp())
    >>> cache.put("abc", "props:v1", {"width": 3})
    >>> cache.get("abc", "props:v1")
    {'width': 3}
    >>> cache.close()
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.directory / CACHE_FILE, timeout=LOCK_TIMEOUT, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._pending_files: dict[str, tuple] = {}
        self._pending_results: dict[tuple[str, str], bytes] = {}
        self.hits = 0
        self.misses = 0

    # files: path, size, mtime -> content ---------------------------------------------------
    def known_contents(self, stats: list[tuple[str, int, int]]) -> dict[str, str]:
        """``{path: content}`` for the (path, size, mtime_ns) triples the cache has seen unchanged."""
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(stats), 500):
                chunk = stats[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT path, size, mtime_ns, content FROM files WHERE path IN ({marks})",
                                        [s[0] for s in chunk]).fetchall()
                wanted = {s[0]: (s[1], s[2]) for s in chunk}
                rows += [self._pending_files[p] for p in wanted if p in self._pending_files]
                for path, size, mtime_ns, content in rows:
                    if wanted.get(path) == (size, mtime_ns):
                        found[path] = content
        return found

    def remember_file(self, path: str, size: int, mtime_ns: int, content: str) -> None:
        with self._lock:
            self._pending_files[path] = (path, size, mtime_ns, content)
            self._maybe_commit()

    # results: content, measure -> value ----------------------------------------------------
    def get_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], object]:
        """Cached values for (content, measure) keys; missing keys are absent."""
        found: dict[tuple[str, str], object] = {}
        with self._lock:
            for key in keys:
                blob = self._pending_results.get(key)
                if blob is None:
                    row = self._db.execute("SELECT value FROM results WHERE content = ? AND measure = ?",
                                           key).fetchone()
                    blob = None if row is None else row[0]
                if blob is not None:
                    found[key] = _decode(blob)
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
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", self._pending_files.values())
            self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                                 [(c, m, v) for (c, m), v in self._pending_results.items()])
        self._pending_files.clear()
        self._pending_results.clear()

    def flush(self) -> None:
        with self._lock:
            self._commit()

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()


def _encode(value) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return b"B" + bytes(value)
    return b"J" + json.dumps(value, separators=(",", ":")).encode()


def _decode(blob: bytes):
    blob = bytes(blob)
    if blob[:1] == b"B":
        return blob[1:]
    return json.loads(blob[1:])
