"""Resolve command-line inputs into an ordered list of files.

Inputs may mix image files, folders (recursed, sorted, hidden entries skipped), quoted globs,
``@list.txt`` (one path per line) and ``-`` (paths on stdin). An input that does not exist or
cannot be read (a symbolic link loop, a named pipe, an unreadable folder) becomes an
:class:`InputItem` with ``error`` set, never an exception: a bad input must not stop a batch.

Shared rules for every stage:

- ``resolve_inputs(inputs, exclude=out_dir)``: folders and globs do not yield the outputs that
  cnntool recorded in ``-o`` (its output ledger, see :mod:`cnntool.data.writers`).
- :func:`require_inputs`: an empty batch (an empty folder, no images in it) is a usage error
  (exit 2) with a hint, never a run that reports "0 images" and passes.
- ``InputItem.rel``: outputs mirror relative paths under folder inputs; a file named directly
  writes ``out/<name>``.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from cnntool.errors import UsageError, one_line

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
        Where its outputs go under ``--out``: the path relative to the folder (or a glob's fixed
        folder) it was found in; the file name for a file named directly; the relative path as
        listed for ``@list.txt`` and stdin entries (the file name for absolute and ``..`` paths).
    error : str or None
        Why this input cannot be used, if it cannot.
    """

    path: str
    rel: PurePath
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ResolvedInputs(list):
    """The list :func:`resolve_inputs` returns; ``excluded`` holds the paths it left out because
    they are outputs that cnntool recorded under an ``exclude`` folder."""

    def __init__(self, items: Iterable[InputItem] = (), excluded: Iterable[str] = ()):
        super().__init__(items)
        self.excluded: list[str] = list(excluded)


def resolve_inputs(
    inputs: Sequence[str],
    *,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    stdin=None,
    exclude: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
) -> ResolvedInputs:
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
    exclude : path or paths, optional
        The run's output folder(s) (``-o``). A folder or glob does not yield a file under one of
        them that the folder's output ledger lists as made by cnntool
        (:func:`cnntool.data.writers.is_recorded_output`), so ``-o`` equal to or inside an input
        folder never turns yesterday's outputs into today's inputs. Files named directly are
        always taken.

    Returns
    -------
    ResolvedInputs
        A list of :class:`InputItem`; its ``excluded`` lists the outputs left out. Inputs that
        cannot be used (missing, a symbolic link loop, a named pipe, an unreadable folder...) are
        items with ``error`` set.

    Examples
    --------
    >>> items = resolve_inputs(["samples/photos"])  # doctest: +SKIP
    >>> [str(i.rel) for i in items][:2]  # doctest: +SKIP
    ['astronaut.png', 'chelsea.png']
    """
    exts = frozenset(e.lower() for e in extensions)
    roots = [] if exclude is None else [exclude] if isinstance(exclude, (str, os.PathLike)) else list(exclude)
    roots = [os.path.join(os.path.abspath(os.fspath(r)), "") for r in roots]
    items = ResolvedInputs()
    seen: set[str] = set()

    def add(item: InputItem, found: bool) -> None:
        key = os.path.normcase(os.path.abspath(item.path)) if item.ok else f"error:{item.path}"
        if key in seen:
            return
        seen.add(key)
        if found and item.ok and roots and _is_excluded(item.path, roots):
            items.excluded.append(item.path)
            return
        items.append(item)

    for raw in inputs:
        for item, found in _expand(raw, exts, stdin, named=True):
            add(item, found)
    return items


def _is_excluded(path: str, roots: list[str]) -> bool:
    full = os.path.abspath(path)
    if not any(full.startswith(root) for root in roots):
        return False
    from cnntool.data.writers import is_recorded_output

    return is_recorded_output(full)


def require_inputs(items: Sequence[InputItem], inputs: Sequence[str], *,
                   extensions: Iterable[str] = IMAGE_EXTENSIONS, what: str = "images") -> None:
    """Refuse an empty batch: a :class:`~cnntool.errors.UsageError` (exit 2) saying where nothing
    was found and why, instead of a run that reports "0 images" and passes.

    Inputs that were found but cannot be used are not an empty batch: they become error records.

    Examples
    --------
    >>> import tempfile
    >>> empty = tempfile.mkdtemp()
    >>> require_inputs(resolve_inputs([empty]), [empty])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnntool.errors.UsageError: no images found in /...
    >>> require_inputs([InputItem("a.png", PurePath("a.png"))], ["a.png"])  # fine: returns None
    """
    if len(items):
        return
    names = [str(i) for i in inputs] or ["-"]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    excluded = getattr(items, "excluded", [])
    if excluded:
        from cnntool.data.writers import LEDGER_NAME

        hint = (f"the {len(excluded)} file(s) found there are earlier outputs in -o (listed in {LEDGER_NAME}), "
                "which folders and globs do not take as inputs; name a file directly to use it")
    else:
        exts = " ".join(sorted(e.lower() for e in extensions))
        hint = (f"folders and globs take files ending in {exts} (hidden files skipped); "
                "a file named directly is taken whatever its extension")
    raise UsageError(f"no {what} found in {shown}", hint=hint)


def describe_os_error(exc: OSError, path: str | os.PathLike | None = None) -> str:
    """A one-line reason for an :class:`OSError` met while opening an input.

    Examples
    --------
    >>> describe_os_error(FileNotFoundError(errno.ENOENT, "No such file"))
    'no such file or directory'
    >>> describe_os_error(OSError(errno.ELOOP, "Too many levels of symbolic links"))
    'symbolic link loop (the link leads back to itself)'
    """
    code = exc.errno
    if code == errno.ELOOP:
        return "symbolic link loop (the link leads back to itself)"
    if code == errno.ENOENT:
        if path is not None and os.path.islink(path):
            try:
                return f"broken symbolic link (its target {os.readlink(path)} does not exist)"
            except OSError:
                return "broken symbolic link (its target does not exist)"
        return "no such file or directory"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.EISDIR:
        return "is a directory, not a file"
    if code == errno.ENOTDIR:
        return "not a directory (a part of the path is a file)"
    if code == errno.ENAMETOOLONG:
        return "file name too long"
    if exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return one_line(exc)


def file_kind_problem(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is not a file to read pixels from (None for a regular file).

    Examples
    --------
    >>> file_kind_problem(stat.S_IFIFO), file_kind_problem(stat.S_IFREG) is None
    ('not a regular file: a named pipe (FIFO)', True)
    """
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "not a plain file")
    return f"not a regular file: {kind}"


def _expand(raw: str, exts: frozenset[str], stdin, *, named: bool) -> Iterator[tuple[InputItem, bool]]:
    """Items for one input, each with ``found`` (True: from a folder or glob, False: named)."""
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
            yield InputItem(raw, PurePath(list_file.name), f"cannot read list file: {describe_os_error(exc, list_file)}"), False
            return
        except UnicodeDecodeError:
            yield InputItem(raw, PurePath(list_file.name), "cannot read list file: not UTF-8 text"), False
            return
        for line in lines:
            yield from _expand_listed(line, exts)
        return
    try:
        mode = os.stat(raw).st_mode
    except (OSError, ValueError) as exc:
        if _GLOB_CHARS & set(raw) and not os.path.lexists(raw):
            yield from _expand_glob(raw, exts)
            return
        reason = describe_os_error(exc, raw) if isinstance(exc, OSError) else one_line(exc)
        yield InputItem(raw, PurePath(Path(raw).name or raw), reason), False
        return
    if stat.S_ISDIR(mode):
        yield from _walk(Path(raw), exts)
        return
    rel = PurePath(Path(raw).name) if named else _rel_for_file(raw)
    yield InputItem(raw, rel, file_kind_problem(mode)), False


def _expand_glob(raw: str, exts: frozenset[str]) -> Iterator[tuple[InputItem, bool]]:
    matches = sorted(glob.glob(raw, recursive=True))
    files = [m for m in matches if Path(m).suffix.lower() in exts and not _is_hidden(Path(m))
             and not os.path.isdir(m) and os.path.lexists(m)]
    if not files:
        yield InputItem(raw, PurePath(Path(raw).name), "no files match this pattern"), False
    base = _glob_base(raw)
    for f in files:
        rel = PurePath(os.path.relpath(f, base)) if base else _rel_for_file(f)
        yield InputItem(f, rel, _problem(f)), True


def _expand_listed(line: str, exts: frozenset[str]) -> Iterator[tuple[InputItem, bool]]:
    entry = line.strip()
    if not entry or entry.startswith("#"):
        return
    if entry == "-" or entry.startswith("@"):  # no recursion through list files
        yield InputItem(entry, PurePath(entry), "list entries must be paths, not '-' or '@list'"), False
        return
    yield from _expand(entry, exts, None, named=False)


def _problem(path: str) -> str | None:
    """Why a file found in a folder or by a glob cannot be read (None when it can be tried)."""
    try:
        return file_kind_problem(os.stat(path).st_mode)
    except OSError as exc:
        return describe_os_error(exc, path)


def _walk(root: Path, exts: frozenset[str]) -> Iterator[tuple[InputItem, bool]]:
    """Files under ``root`` with a wanted extension, sorted by relative path; hidden entries and
    symbolic links to folders are not followed; an unreadable folder is an error item."""
    found: list[tuple[tuple[str, ...], str, str | None]] = []
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            rel = folder.relative_to(root).parts
            found.append((rel, str(folder), f"cannot read folder: {describe_os_error(exc, folder)}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                pending.append(Path(entry.path))
            elif Path(entry.name).suffix.lower() in exts:
                problem = None
                try:
                    plain = entry.is_file(follow_symlinks=False)
                except OSError:
                    plain = False
                if not plain:
                    problem = _problem(entry.path)
                    if problem == "is a directory, not a file":
                        continue  # a link to a folder named like an image: not followed
                path = Path(entry.path)
                found.append((path.relative_to(root).parts, str(path), problem))
    found.sort(key=lambda f: f[0])
    for parts, path, problem in found:
        yield InputItem(path, PurePath(*parts) if parts else PurePath(Path(path).name), problem), True


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
