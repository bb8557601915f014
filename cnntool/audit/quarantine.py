"""Acting on an audit: move flagged files out of the dataset (never delete them), and undo it.

``cnntool audit DATA --quarantine DIR`` moves every file with a finding into ``DIR``, at the same
path relative to the folder it was found in (``DATA/cat/x.jpg`` -> ``DIR/cat/x.jpg``), and writes
a manifest, ``DIR/quarantine-<time>.json``, that lists each move; ``cnntool audit --restore
MANIFEST`` moves the files back. Which files move:

- a file flagged by an image check, ``corrupt``, ``leaks`` or ``label_issues``;
- every member of an exact or near duplicate group but its keeper;
- never a file of the ``--against`` set, a class folder (``class_imbalance``), or a file on the
  keep-list (``--keep FILE``: one path per line; such a file is also made its group's keeper).

Moves are safe: a move never replaces an existing file (a name taken in ``DIR`` gets ``~1``,
``~2``... before its extension), and a file is never in neither place: within one file system
it is hard-linked into place (which fails rather than replace) and then unlinked; across file
systems it is copied to a temporary file beside its destination, flushed, linked into place,
and only then removed from the dataset. The manifest is written before the first move and after
the last, so even a killed run can be restored. A restore also never replaces a file: a path
that has been taken again since stays in quarantine, with an error in its record.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath

from cnntool.errors import UsageError, one_line

#: Identifies a manifest (and its version) when it is read back.
MANIFEST_FORMAT = "cnntool-audit-quarantine"
MANIFEST_VERSION = 1

#: Checks whose findings are about a file that can be moved (duplicates: all but the keeper).
MOVABLE = ("corrupt", "dark", "light", "blurry", "low_information", "grayscale", "odd_size", "odd_aspect_ratio",
           "exact_duplicates", "near_duplicates", "leaks", "label_issues")


@dataclass
class Move:
    """One file to move: from the dataset (``source``) into quarantine (``target``)."""

    source: str
    target: str
    checks: list[str]
    size: int | None = None
    content: str | None = None
    done: bool = False
    error: str | None = None

    def as_dict(self) -> dict:
        return {"from": os.path.abspath(self.source), "to": os.path.abspath(self.target), "checks": self.checks, "size": self.size,
                "content": self.content, "done": self.done, "error": self.error}


def file_key(path) -> str:
    """How two spellings of one file compare (keep-lists, inputs): its real, absolute path."""
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def read_keep_list(path) -> frozenset[str]:
    """The files of a keep-list (one path per line; blank lines and ``#`` comments skipped),
    as :func:`file_key` strings. Relative paths are taken from the current folder.

    Examples
    --------
    >>> import tempfile, os
    >>> name = os.path.join(tempfile.mkdtemp(), "keep.txt")
    >>> _ = open(name, "w").write("# keepers\\n/data/a.png\\n\\n")
    >>> sorted(read_keep_list(name)) == [file_key("/data/a.png")]
    True
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise UsageError(f"keep-list {os.fspath(path)!r} not found", hint="--keep FILE: a text file, one path per line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read keep-list {os.fspath(path)!r}: {one_line(exc)}",
                         hint="--keep FILE: a UTF-8 text file, one path per line") from None
    return frozenset(file_key(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#"))


def check_quarantine_dir(folder, inputs: Iterable[str]) -> Path:
    """The quarantine folder, refused when it is (inside) an audited folder: the next audit, or
    a training run on that folder, would take the quarantined files back in."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--quarantine {folder} is a file", hint="give a folder (it is created when missing)")
    target = file_key(folder)
    for raw in inputs:
        if raw in ("-",) or raw.startswith("@") or not os.path.isdir(raw):
            continue
        root = file_key(raw)
        if target == root or target.startswith(os.path.join(root, "")):
            raise UsageError(f"--quarantine {folder} is inside the audited folder {raw}",
                             hint="quarantined files there would be audited (and trained on) again; "
                                  "choose a folder outside it, e.g. --quarantine ../quarantine")
    return folder


def plan_moves(records: list[dict], rels: dict[str, PurePath], folder, *, keep: frozenset[str] = frozenset()
               ) -> list[Move]:
    """The moves that quarantine the files ``records`` flag (see the module's rules).

    Parameters
    ----------
    records : list of dict
        The audit's records (``path``, ``check``, ``keeper``).
    rels : dict
        Each audited file's path -> its path relative to the folder it was found in.
    folder : path-like
        The quarantine folder.
    keep : frozenset of str
        :func:`file_key` of files that never move.

    Examples
    --------
    >>> recs = [{"path": "d/a.png", "check": "dark", "keeper": None},
    ...         {"path": "d/b.png", "check": "exact_duplicates", "keeper": "d/c.png"},
    ...         {"path": "d/c.png", "check": "exact_duplicates", "keeper": "d/c.png"}]
    >>> rels = {p: PurePath(p).relative_to("d") for p in ("d/a.png", "d/b.png", "d/c.png")}
    >>> [(m.source, m.target, m.checks) for m in plan_moves(recs, rels, "q")]
    [('d/a.png', 'q/a.png', ['dark']), ('d/b.png', 'q/b.png', ['exact_duplicates'])]
    """
    folder = Path(folder)
    wanted: dict[str, list[str]] = {}
    for r in records:
        path, check = r["path"], r["check"]
        if check not in MOVABLE or path not in rels:
            continue
        if check in ("exact_duplicates", "near_duplicates") and r.get("keeper") == path:
            continue
        if file_key(path) in keep:
            continue
        checks = wanted.setdefault(path, [])
        if check not in checks:
            checks.append(check)
    return [Move(path, str(folder / rels[path]), checks) for path, checks in wanted.items()]


def new_manifest_path(folder) -> Path:
    """``folder/quarantine-YYYYmmdd-HHMMSS.json``, with ``-2``, ``-3``... when that one exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(folder) / f"quarantine-{stamp}.json"
    n = 2
    while path.exists():
        path = Path(folder) / f"quarantine-{stamp}-{n}.json"
        n += 1
    return path


def quarantine(moves: list[Move], manifest, *, root: str = "") -> list[Move]:
    """Carry out ``moves`` and write the manifest (before the first move and after the last).

    Each move's ``done`` or ``error`` is set; a move's ``target`` changes when that name was
    taken. Files are never deleted and nothing is replaced.
    """
    from cnntool.data.sources import content_digest

    manifest = Path(manifest)
    for m in moves:
        try:
            m.size = os.stat(m.source).st_size
            m.content = content_digest(m.source)
        except OSError as exc:
            m.error = f"cannot read: {exc.strerror or exc}"
    _write_manifest(manifest, moves, root)
    for m in moves:
        if m.error is None:
            try:
                m.target = move_file(m.source, m.target)
                m.done = True
            except OSError as exc:
                m.error = f"cannot move to {m.target}: {exc.strerror or one_line(exc)}"
    _write_manifest(manifest, moves, root)
    return moves


def _write_manifest(path: Path, moves: list[Move], root: str) -> None:
    from cnntool.data.writers import atomic_write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "audited": root, "cwd": os.getcwd(), "undo": f"cnntool audit --restore {path}",
        "moves": [m.as_dict() for m in moves]})


def move_file(source, target) -> str:
    """Move ``source`` to ``target`` (or ``target`` with ``~N`` before its extension, when that
    name is taken); returns where it went. Never replaces a file, never loses one.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for name in ("a.png", "b.png"):
    ...     _ = open(os.path.join(d, name), "w").write(name)
    >>> os.path.basename(move_file(os.path.join(d, "a.png"), os.path.join(d, "q", "x.png")))
    'x.png'
    >>> os.path.basename(move_file(os.path.join(d, "b.png"), os.path.join(d, "q", "x.png")))
    'x~1.png'
    """
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for candidate in _candidates(target):
        try:
            _place(source, candidate)
        except FileExistsError:
            continue
        return str(candidate)
    raise OSError(f"no free name for {target}")


def _candidates(target: Path, limit: int = 10000):
    yield target
    for n in range(1, limit):
        yield target.with_name(f"{target.stem}~{n}{target.suffix}")


def _place(source: Path, target: Path) -> None:
    """Link ``source`` at ``target`` (FileExistsError when taken), then unlink ``source``."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:  # another file system, or one without hard links: copy beside the target first
        temp = target.with_name(f".{target.name}.cnntool-move-{os.getpid()}.tmp")
        shutil.copy2(source, temp)
        with open(temp, "rb") as f:
            os.fsync(f.fileno())
        try:
            _link_or_create(temp, target)
        finally:
            if temp.exists():
                temp.unlink()
    os.unlink(source)


def _link_or_create(temp: Path, target: Path) -> None:
    try:
        os.link(temp, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links at all: claim the name exclusively, then rename over the claim
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.close(fd)
        os.replace(temp, target)


def read_manifest(path) -> dict:
    """A manifest written by :func:`quarantine`, checked.

    Raises
    ------
    UsageError
        Missing, unreadable, or not a cnntool quarantine manifest.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"manifest {os.fspath(path)!r} not found",
                         hint="give the quarantine-*.json file that --quarantine wrote in its folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read manifest {os.fspath(path)!r}: {one_line(exc)}") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise UsageError(f"{os.fspath(path)} is not a cnntool quarantine manifest",
                         hint="give the quarantine-*.json file that --quarantine wrote in its folder")
    moves = data.get("moves")
    if data.get("version") != MANIFEST_VERSION or not isinstance(moves, list) or not all(
            isinstance(m, dict) and isinstance(m.get("from"), str) and isinstance(m.get("to"), str) for m in moves):
        raise UsageError(f"{os.fspath(path)} is a quarantine manifest of another version or damaged",
                         hint="restore its files by hand: each move lists 'from' and 'to'")
    return data


def restore(manifest) -> list[dict]:
    """Move the files of a manifest back; one record per file.

    A file goes back only when its original path is free (nothing is replaced). The manifest is
    then rewritten with the moves still undone, or, when none is left, renamed
    ``*.restored.json`` (kept, not deleted).

    Returns
    -------
    list of dict
        ``path`` (the original place), ``quarantined`` (where it was), ``restored`` (bool),
        ``detail`` and ``error`` (why it stayed).
    """
    manifest = Path(manifest)
    data = read_manifest(manifest)
    records, remaining = [], []
    for move in data["moves"]:
        source, target = move["from"], move["to"]
        record = {"path": move["from"], "quarantined": move["to"], "restored": False, "detail": "", "error": None}
        if not os.path.lexists(target):
            if not move.get("done"):
                record["detail"] = "was not moved"
                records.append(record)
                continue
            record["error"] = f"not in quarantine any more ({move['to']} is missing)"
        else:
            try:
                if os.path.lexists(source):
                    raise FileExistsError
                move_back = Path(source)
                move_back.parent.mkdir(parents=True, exist_ok=True)
                _place(Path(target), move_back)
                record["restored"] = True
                record["detail"] = "moved back"
            except FileExistsError:
                record["error"] = f"{move['from']} exists again; left in quarantine at {move['to']}"
            except OSError as exc:
                record["error"] = f"cannot move back: {exc.strerror or one_line(exc)}"
        if not record["restored"]:
            remaining.append(move)
        records.append(record)
    if remaining:
        from cnntool.data.writers import atomic_write_json

        atomic_write_json(manifest, {**data, "moves": remaining})
    else:
        done = manifest.with_name(manifest.stem + ".restored.json")
        n = 2
        while done.exists():
            done = manifest.with_name(f"{manifest.stem}.restored-{n}.json")
            n += 1
        os.replace(manifest, done)
    return records
