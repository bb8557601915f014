"""Resolve command-line inputs into an ordered list of files.

Inputs may mix image files, folders (recursed, sorted, hidden entries skipped), quoted globs,
``@list.txt`` (one path per line) and ``-`` (paths on stdin). An input that does not exist
becomes an :class:`InputItem` with ``error`` set, never an exception: a bad input must not stop
a batch.
"""

from __future__ import annotations

import glob
import hashlib
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

#: Extensions picked up when recursing a folder (compared case-insensitively).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".gif", ".tif", ".tiff", ".webp",
     ".ppm", ".pgm", ".pbm", ".pnm", ".jp2", ".ico", ".tga"}
)
ARRAY_EXTENSIONS = frozenset({".npy"})

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputItem:
    """One resolved input.

    Attributes
    ----------
    path : str
        The path as the user will recognise it (as given, or joined under the folder given).
    rel : PurePath
        Where its outputs go under ``--out``: the path relative to the folder it was found in,
        or the relative path as given, or the file name for absolute paths and ``..`` paths.
    error : str or None
        Why this input cannot be used, if it cannot.
    """

    path: str
    rel: PurePath
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def resolve_inputs(
    inputs: Sequence[str],
    *,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    stdin=None,
) -> list[InputItem]:
    """Expand command-line inputs into files, in order, without duplicates.

    Parameters
    ----------
    inputs : sequence of str
        Files, folders, globs, ``@list.txt`` files and ``-``.
    extensions : iterable of str
        Which files a folder or glob contributes (lower-case, with the dot). Files named
        explicitly are always taken, whatever their extension.
    stdin : text stream, optional
        Where ``-`` reads paths from (default ``sys.stdin``).

    Returns
    -------
    list of InputItem

    Examples
    --------
    >>> items = resolve_inputs(["samples/photos"])  # doctest: +SKIP
    >>> [str(i.rel) for i in items][:2]  # doctest: +SKIP
    ['astronaut.png', 'chelsea.png']
    """
    exts = frozenset(e.lower() for e in extensions)
    items: list[InputItem] = []
    seen: set[str] = set()

    def add(item: InputItem) -> None:
        key = os.path.normcase(os.path.abspath(item.path)) if item.ok else f"error:{item.path}"
        if key not in seen:
            seen.add(key)
            items.append(item)

    for raw in inputs:
        for item in _expand(raw, exts, stdin):
            add(item)
    return items


def _expand(raw: str, exts: frozenset[str], stdin) -> Iterable[InputItem]:
    if raw == "-":
        stream = stdin if stdin is not None else sys.stdin
        for line in stream:
            yield from _expand_listed(line, exts)
        return
    if raw.startswith("@") and len(raw) > 1:
        list_file = Path(raw[1:])
        try:
            lines = list_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            yield InputItem(raw, PurePath(list_file.name), f"cannot read list file: {exc.strerror or exc}")
            return
        for line in lines:
            yield from _expand_listed(line, exts)
        return
    path = Path(raw)
    if path.is_dir():
        yield from _walk(path, exts)
    elif path.exists():
        yield InputItem(raw, _rel_for_file(raw))
    elif _GLOB_CHARS & set(raw):
        matches = sorted(glob.glob(raw, recursive=True))
        files = [m for m in matches if os.path.isfile(m) and Path(m).suffix.lower() in exts
                 and not _is_hidden(Path(m))]
        if not files:
            yield InputItem(raw, PurePath(Path(raw).name), "no files match this pattern")
        base = _glob_base(raw)
        for f in files:
            yield InputItem(f, PurePath(os.path.relpath(f, base)) if base else _rel_for_file(f))
    else:
        yield InputItem(raw, PurePath(path.name or raw), "no such file or directory")


def _expand_listed(line: str, exts: frozenset[str]) -> Iterable[InputItem]:
    entry = line.strip()
    if not entry or entry.startswith("#"):
        return
    if entry == "-" or entry.startswith("@"):  # no recursion through list files
        yield InputItem(entry, PurePath(entry), "list entries must be paths, not '-' or '@list'")
        return
    yield from _expand(entry, exts, None)


def _walk(root: Path, exts: frozenset[str]) -> Iterable[InputItem]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in exts:
                found.append(Path(dirpath) / name)
    found.sort(key=lambda p: p.relative_to(root).parts)
    for p in found:
        yield InputItem(str(p), PurePath(p.relative_to(root)))


def _is_hidden(path: Path) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in path.parts)


def _glob_base(pattern: str) -> str | None:
    """The folder part of a glob before its first wildcard, so outputs mirror below it."""
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts:
        if _GLOB_CHARS & set(part):
            break
        base.append(part)
    return str(Path(*base)) if base else None


def _rel_for_file(raw: str) -> PurePath:
    p = PurePath(raw)
    if p.is_absolute() or ".." in p.parts:
        return PurePath(p.name)
    return PurePath(*[part for part in p.parts if part != "."])


def content_digest(path: str | os.PathLike) -> str:
    """A file's identity by content: its size and BLAKE2b (128-bit) digest, ``"SIZE-HEX"``.

    Examples
    --------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x.bin"); _ = open(p, "wb").write(b"abc")
    >>> content_digest(p)[:2]
    '3-'
    """
    digest = hashlib.blake2b(digest_size=16)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            size += len(chunk)
            digest.update(chunk)
    return f"{size}-{digest.hexdigest()}"
