"""Writing files: output paths that mirror the inputs, atomic writes, the output ledger, encoders.

Every file cnntool writes goes through :func:`atomic_open` (or :func:`atomic_write_bytes`,
which uses it): the bytes go to a hidden temporary file in the destination folder, which is
then renamed over the destination, so a killed run never leaves a half-written file behind.
The temporary file's name carries the writer's process id (``.a.png.x1y2z3w4.cnntool-4711-
<host>-<token>.tmp``); the first write of a process into a folder removes the temporary files
that dead cnntool processes of this machine left there (``kill -9`` in the middle of a write).

**The output ledger.** A stage that writes ``-o`` outputs passes a :class:`Recipe` (the stage
and every option that changes the content) and the input's path to the writer, which then
records the file in ``.cnntool-outputs.jsonl``, a hidden JSON-lines file in the file's folder.
The ledger is the one mechanism behind two rules every stage shares:

- *Outputs are not inputs.* ``resolve_inputs(..., exclude=out_dir)`` does not take a file that
  the ledger lists as a cnntool output from a folder or glob under ``out_dir``, so ``-o`` equal
  to (or inside) an input folder does not feed yesterday's outputs back in
  (:func:`is_recorded_output`).
- *The skip rule.* An existing output is skipped only when the ledger says it was made by the
  same recipe from the same input; made with other options, from another input, or not by
  cnntool at all, it is an error for that input, with ``--overwrite`` as the hint
  (:func:`should_skip`, :func:`skipped_message`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import IO, NamedTuple

import numpy as np

from cnntool.errors import InputError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()

#: Extensions OpenCV can encode, mapped to the name users give to ``--ext``.
IMAGE_WRITE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm"}

#: The ledger's file name, in every folder that holds recorded outputs (hidden: folder walks skip it).
LEDGER_NAME = ".cnntool-outputs.jsonl"


def image_extension(rel: PurePath) -> str:
    """The extension a picture drawn over an input gets: the input's when OpenCV writes it, else
    ``.png`` (a GIF or ICO input).

    Examples
    --------
    >>> image_extension(PurePath("a.JPG")), image_extension(PurePath("b.gif"))
    ('.jpg', '.png')
    """
    ext = PurePath(rel).suffix.lower()
    return ext if ext in IMAGE_WRITE_EXTENSIONS else ".png"


def output_path(rel: PurePath, out_dir: str | os.PathLike, *, ext: str | None = None, suffix: str = "") -> Path:
    """Where the output for an input goes: ``out_dir / rel``, with ``suffix`` added to the stem
    and the extension replaced by ``ext`` (with or without the dot) when given.

    Examples
    --------
    >>> str(output_path(PurePath("a/b.jpg"), "out", ext="png"))
    'out/a/b.png'
    >>> str(output_path(PurePath("b.jpg"), "out", suffix="_cam", ext=".npy"))
    'out/b_cam.npy'
    """
    rel = PurePath(rel)
    new_ext = rel.suffix if ext is None else (ext if ext.startswith(".") else f".{ext}")
    return Path(out_dir, *rel.parent.parts, f"{rel.stem}{suffix}{new_ext}")


class OutputPlan(NamedTuple):
    """Where one input's outputs go: ``paths`` (empty without ``-o`` or for an input that
    failed already), or ``error`` (one line) when they must not be written."""

    paths: tuple[Path, ...]
    error: str | None = None


def plan_outputs(items: Sequence, out_dir: str | os.PathLike | None,
                 outputs: Callable[[PurePath], Path | Iterable[Path]] | None = None, *,
                 ext: str | None = None, suffix: str = "") -> list[OutputPlan]:
    """Decide every input's output paths up front, before anything is written.

    Parameters
    ----------
    items : sequence of InputItem
        The batch (anything with ``path``, ``rel`` and ``ok``).
    out_dir : path or None
        ``-o``; None plans no outputs at all.
    outputs : callable, optional
        ``rel -> path or paths``: an input's output file(s) (say an overlay and a ``.npy``).
        Default: :func:`output_path` of ``rel`` under ``out_dir`` with ``ext`` and ``suffix``.

    Returns
    -------
    list of OutputPlan
        One per input, in order. An input gets an ``error`` instead of paths when one of its
        outputs would land on any input of the batch, or on an output already planned for an
        earlier input (``a.jpg`` and ``a.png``, or ``a/x.png`` and ``b/x.png`` given as two
        folders, both mapping to ``x.png``): the first input keeps the path.

    Examples
    --------
    >>> from types import SimpleNamespace as Item
    >>> items = [Item(path="in/a.jpg", rel=PurePath("a.jpg"), ok=True),
    ...          Item(path="in/a.png", rel=PurePath("a.png"), ok=True)]
    >>> [(list(map(str, p.paths)), p.error) for p in plan_outputs(items, "out", ext="png")]
    [(['out/a.png'], None), ([], 'output out/a.png would also be written for in/a.jpg')]
    """
    if out_dir is None:
        return [OutputPlan(()) for _ in items]
    if outputs is None:
        def outputs(rel):
            return output_path(rel, out_dir, ext=ext, suffix=suffix)
    inputs = {_path_key(i.path) for i in items if i.ok}
    taken: dict[str, str] = {}
    plans: list[OutputPlan] = []
    for item in items:
        if not item.ok:
            plans.append(OutputPlan(()))
            continue
        planned = outputs(item.rel)
        paths = (Path(planned),) if isinstance(planned, (str, os.PathLike)) else tuple(map(Path, planned))
        error = None
        for out in paths:
            key = _path_key(out)
            if key in inputs:
                error = f"refusing to overwrite the input file {out}"
            elif key in taken:
                error = f"output {out} would also be written for {taken[key]}"
            if error:
                break
        if error:
            plans.append(OutputPlan((), error))
            continue
        for out in paths:
            taken[_path_key(out)] = item.path
        plans.append(OutputPlan(paths))
    return plans


def _path_key(path) -> str:
    return os.path.normcase(os.path.abspath(os.fspath(path)))


def _source_key(path) -> str:
    """An input's identity in the ledger: its absolute path with symbolic links resolved."""
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def check_not_input(out: Path, source: str | os.PathLike) -> None:
    """Refuse to write over an input file."""
    try:
        if out.exists() and os.path.samefile(out, source):
            raise InputError(f"refusing to overwrite the input file {source}")
    except OSError:
        return


# --- recipes and the skip rule -------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """What makes an output: the stage, a digest of every option that changes the content, and a
    short text for messages (``gaussian:sigma=2 | sobel``).

    Build it with :meth:`of`; give it to the writers (``recipe=``) and to :func:`should_skip`.

    Examples
    --------
    >>> a = Recipe.of("filter", {"ops": ["gaussian:sigma=2"], "scale": "clip"}, summary="gaussian:sigma=2")
    >>> b = Recipe.of("filter", {"scale": "clip", "ops": ["gaussian:sigma=2"]})
    >>> a.digest == b.digest, a.digest == Recipe.of("filter", {"ops": ["sobel"]}).digest
    (True, False)
    """

    stage: str
    digest: str
    summary: str = ""

    @classmethod
    def of(cls, stage: str, options: Mapping, *, summary: str = "") -> Recipe:
        """A recipe from plain options (dicts, lists, numbers, strings, paths, NumPy arrays),
        independent of key order; arrays count by their dtype, shape and bytes."""
        text = json.dumps({"stage": stage, "options": _canonical(options)}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False)
        return cls(stage, hashlib.blake2b(text.encode("utf-8"), digest_size=10).hexdigest(), summary)


def _canonical(value):
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_canonical(v) for v in value), key=repr)
    if isinstance(value, np.ndarray):
        digest = hashlib.blake2b(np.ascontiguousarray(value).tobytes(), digest_size=16).hexdigest()
        return {"array": digest, "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return "nan"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot put {type(value).__name__} into a recipe")


#: Why a stage skips an output (the only reason it may).
SKIP_REASON = "already made with the same options"


def skipped_message(count: int) -> str:
    """The stderr line a stage prints when it skipped outputs.

    Examples
    --------
    >>> skipped_message(3)
    '3 outputs skipped: already made with the same options (--overwrite to redo)'
    >>> skipped_message(1)
    '1 output skipped: already made with the same options (--overwrite to redo)'
    """
    return f"{count} output{'' if count == 1 else 's'} skipped: {SKIP_REASON} (--overwrite to redo)"


def should_skip(paths: str | os.PathLike | Iterable[str | os.PathLike], recipe: Recipe, *,
                source: str | os.PathLike | None = None, overwrite: bool = False) -> bool:
    """The skip rule for one input's output file(s), decided before any work is done.

    Returns True (skip the input: nothing to compute) when every path exists and the ledger says
    it was made by ``recipe`` from ``source``; False (compute and write) when ``overwrite`` is set
    or some path does not exist yet.

    Raises
    ------
    InputError
        One line, ending in the ``--overwrite`` hint, when a path exists but was made with other
        options, from another input, or not by cnntool (no ledger entry).

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp(), "a.png")
    >>> blur = Recipe.of("filter", {"ops": "gaussian"}, summary="gaussian")
    >>> edges = Recipe.of("filter", {"ops": "sobel"}, summary="sobel")
    >>> should_skip(out, blur)  # not there yet
    False
    >>> atomic_write_bytes(out, b"pixels", recipe=blur)
    >>> should_skip(out, blur), should_skip(out, edges, overwrite=True)
    (True, False)
    >>> should_skip(out, edges)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnntool.errors.InputError: .../a.png exists, made with other options (gaussian); --overwrite replaces it
    """
    if overwrite:
        return False
    paths = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    existing = [p for p in paths if os.path.lexists(p)]
    for path in existing:
        _check_same(path, recipe, source)
    return bool(paths) and len(existing) == len(paths)


def _check_same(path: Path, recipe: Recipe, source) -> None:
    entry = ledger_entries(path.parent).get(path.name)
    hint = "--overwrite replaces it"
    if entry is None:
        raise InputError(f"{path} exists and cnntool has no record of making it; {hint}")
    if entry.get("recipe") != recipe.digest:
        about = entry.get("about") or ""
        if entry.get("stage") != recipe.stage:
            made = f"made by cnntool {entry.get('stage', '?')}" + (f" ({about})" if about else "")
        else:
            made = "made with other options" + (f" ({about})" if about else "")
        raise InputError(f"{path} exists, {made}; {hint}")
    if source is not None and entry.get("source") not in (None, _source_key(source)):
        raise InputError(f"{path} exists, made from another input ({entry['source']}); {hint}")


# --- the ledger ------------------------------------------------------------------------------

class _LedgerView:
    __slots__ = ("ident", "offset", "entries")

    def __init__(self, ident, offset: int, entries: dict):
        self.ident, self.offset, self.entries = ident, offset, entries


_LEDGER_CACHE: dict[str, _LedgerView] = {}
_LEDGER_LOCK = threading.Lock()
#: Rewrite a ledger without its superseded lines once it is this large and mostly superseded.
_COMPACT_BYTES = 1 << 20


def ledger_entries(folder: str | os.PathLike) -> dict[str, dict]:
    """The ledger of one folder: file name -> its latest entry (``stage``, ``recipe``, ``about``,
    ``source``, ``time``); empty when the folder has none. Reads only what was appended since the
    last call, so checking many files of one folder costs one read of its ledger.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> atomic_write_bytes(os.path.join(folder, "a.bin"), b"1", recipe=Recipe.of("demo", {}))
    >>> sorted(ledger_entries(folder)), ledger_entries(folder)["a.bin"]["stage"]
    (['a.bin'], 'demo')
    """
    key = _path_key(folder)
    path = os.path.join(key, LEDGER_NAME)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        with _LEDGER_LOCK:
            _LEDGER_CACHE.pop(key, None)
        return {}
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        ident = (st.st_dev, st.st_ino)
        with _LEDGER_LOCK:
            view = _LEDGER_CACHE.get(key)
            if view is None or view.ident != ident or view.offset > st.st_size:
                view = _LedgerView(ident, 0, {})
            if view.offset < st.st_size:
                f.seek(view.offset)
                data = f.read()
                end = data.rfind(b"\n") + 1  # a line still being appended waits for the next read
                entries = dict(view.entries)
                for line in data[:end].splitlines():
                    entry = _parse(line)
                    if entry is not None:
                        entries[entry["file"]] = entry
                view = _LedgerView(ident, view.offset + end, entries)
            _LEDGER_CACHE[key] = view
            return view.entries


def _parse(line: bytes) -> dict | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None  # a damaged line costs that entry only
    return entry if isinstance(entry, dict) and isinstance(entry.get("file"), str) else None


def is_recorded_output(path: str | os.PathLike) -> bool:
    """True when the ledger of the file's folder lists it as a cnntool output.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> atomic_write_bytes(os.path.join(folder, "out.png"), b"1", recipe=Recipe.of("demo", {}))
    >>> is_recorded_output(os.path.join(folder, "out.png")), is_recorded_output(os.path.join(folder, "in.png"))
    (True, False)
    """
    path = Path(path)
    return path.name in ledger_entries(path.parent)


def record_output(path: str | os.PathLike, recipe: Recipe, *, source: str | os.PathLike | None = None) -> None:
    """Add a file to its folder's ledger (the writers do this when given ``recipe=``; call it for
    a file made another way, such as a hard link). Appends one line under an exclusive lock."""
    path = Path(path)
    entry = {"file": path.name, "stage": recipe.stage, "recipe": recipe.digest, "about": recipe.summary,
             "source": _source_key(source) if source is not None else None,
             "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    ledger = path.parent / LEDGER_NAME
    for _ in range(5):  # retried only when another process compacted the ledger meanwhile
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            _lock(fd)
            try:
                if os.fstat(fd).st_ino != os.stat(ledger).st_ino:
                    continue
            except FileNotFoundError:
                continue
            os.write(fd, line)
            if os.fstat(fd).st_size > _COMPACT_BYTES:
                _compact(ledger)
            return
        finally:
            os.close(fd)  # closing releases the lock
    raise OSError(errno.EAGAIN, f"could not append to {ledger}")


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: appends of one short line are still whole
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


def _compact(ledger: Path) -> None:
    """Keep the latest entry of every file that still exists (called with the ledger locked)."""
    lines = ledger.read_bytes().splitlines()
    latest: dict[str, bytes] = {}
    for line in lines:
        entry = _parse(line)
        if entry is not None:
            latest.pop(entry["file"], None)
            latest[entry["file"]] = line
    kept = [line for name, line in latest.items() if os.path.lexists(ledger.parent / name)]
    if 2 * len(kept) > len(lines):
        return  # mostly current: not worth a rewrite yet
    _atomic_replace(ledger, b"".join(line + b"\n" for line in kept))


# --- atomic writes and stale temporary files ------------------------------------------------------

_TEMP_RE = re.compile(r"\.cnntool-(\d+)-([0-9a-f]{6})-([0-9a-f]{6})\.tmp(\.[A-Za-z0-9]+)?$")
_HOST = hashlib.blake2b(socket.gethostname().encode("utf-8", "replace"), digest_size=3).hexdigest()
_TOKENS: dict[int, str] = {}  # pid -> this process's token (a forked child gets a new one)
_CLEANED: set[tuple[int, str]] = set()
_CLEAN_LOCK = threading.Lock()


def _token() -> str:
    pid = os.getpid()
    token = _TOKENS.get(pid)
    return token if token is not None else _TOKENS.setdefault(pid, secrets.token_hex(3))


def _temp_tag() -> str:
    return f".cnntool-{os.getpid()}-{_HOST}-{_token()}.tmp"


def remove_stale_temp_files(folder: str | os.PathLike) -> list[str]:
    """Remove the temporary files that cnntool processes of this machine which no longer run left
    in ``folder`` (a run killed in the middle of a write); returns their names. Files of live
    processes, of other machines and of other programs are left alone. The writers call this
    once per process and folder.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> dead = os.path.join(folder, ".a.png.abcdefgh" + _temp_tag().replace(f"-{os.getpid()}-", "-999999999-"))
    >>> open(dead, "wb").close()
    >>> remove_stale_temp_files(folder) == [os.path.basename(dead)], os.listdir(folder)
    (True, [])
    """
    if os.name == "nt":  # os.kill would end the process there; Windows temps stay
        return []
    removed = []
    pid, token = os.getpid(), _token()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if not name.startswith("."):
            continue
        match = _TEMP_RE.search(name)
        if match is None or match.group(2) != _HOST:
            continue
        owner = int(match.group(1))
        alive = match.group(3) == token if owner == pid else _pid_alive(owner)
        if not alive:
            with contextlib.suppress(OSError):
                if stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                    os.unlink(entry.path)
                    removed.append(name)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or not ours to judge
    return True


def _clean_once(folder: Path) -> None:
    key = (os.getpid(), _path_key(folder))
    with _CLEAN_LOCK:
        if key in _CLEANED:
            return
        _CLEANED.add(key)
    remove_stale_temp_files(folder)


def temporary_path(path: str | os.PathLike, *, keep_extension: bool = False) -> str:
    """A new hidden temporary file next to ``path`` (its folder created), named so that a later
    run's clean-up removes it if this process dies before renaming it over ``path``: for writers
    that must hand a file name to a library (a video encoder). ``keep_extension`` appends
    ``path``'s extension, for libraries that choose a format by it. The caller renames it with
    :func:`finish_temporary` or removes it.

    Examples
    --------
    >>> import tempfile
    >>> tmp = temporary_path(os.path.join(tempfile.mkdtemp(), "clip.mp4"), keep_extension=True)
    >>> os.path.basename(tmp).startswith(".clip.mp4."), tmp.endswith(".tmp.mp4")
    (True, True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_once(path.parent)
    suffix = _temp_tag() + (path.suffix if keep_extension else "")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:80]}.", suffix=suffix)
    os.close(fd)
    return tmp


def finish_temporary(tmp: str | os.PathLike, path: str | os.PathLike, *, recipe: Recipe | None = None,
                     source: str | os.PathLike | None = None) -> None:
    """Give a finished temporary file (:func:`temporary_path`) normal permissions and rename it
    over ``path``; with ``recipe``, record it in the folder's ledger."""
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    os.replace(tmp, path)
    if recipe is not None:
        record_output(path, recipe, source=source)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, *, recipe: Recipe | None = None,
                source: str | os.PathLike | None = None) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through: a temporary file in the same folder (created with
    its parents) renamed over ``path`` when the block ends without an exception, removed when it
    does not. With ``recipe``, the file is then recorded in the folder's ledger.

    Examples
    --------
    >>> import tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "sub", "x.bin")
    >>> with atomic_open(target) as f:
    ...     _ = f.write(b"abc")
    >>> open(target, "rb").read(), sorted(os.listdir(os.path.dirname(target)))
    (b'abc', ['x.bin'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_once(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:80]}.", suffix=_temp_tag())
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if recipe is not None:
        record_output(path, recipe, source=source)


def _atomic_replace(path: Path, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, recipe: Recipe | None = None,
                       source: str | os.PathLike | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); creates parent folders."""
    with atomic_open(path, recipe=recipe, source=source) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, **ledger) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text (``recipe``/``source`` as there)."""
    atomic_write_bytes(path, text.encode("utf-8"), **ledger)


def atomic_write_json(path: str | os.PathLike, obj, **ledger) -> None:
    """:func:`atomic_write_text` of indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n", **ledger)


# --- encoders -----------------------------------------------------------------------------------

def encode_image(image: np.ndarray, ext: str, *, quality: int = 95) -> bytes:
    """Encode an RGB (H, W, 3), RGBA (H, W, 4) or grayscale (H, W) array with OpenCV.

    ``uint8`` for every format; ``uint16`` too for PNG and TIFF. Other dtypes are refused:
    the caller decides how floats are scaled.
    """
    import cv2

    ext = ext.lower() if ext.startswith(".") else f".{ext.lower()}"
    if ext not in IMAGE_WRITE_EXTENSIONS:
        raise ValueError(f"cannot write images as {ext}")
    if image.dtype == np.uint16 and ext not in (".png", ".tif", ".tiff"):
        raise ValueError(f"{ext} cannot hold 16-bit images")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"encode_image needs uint8 or uint16, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    else:
        bgr = image
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode {ext}")
    return buf.tobytes()


def write_image(path: str | os.PathLike, image: np.ndarray, *, quality: int = 95,
                recipe: Recipe | None = None, source: str | os.PathLike | None = None) -> None:
    """Encode ``image`` by the path's extension and write it atomically (ledger: ``recipe``)."""
    atomic_write_bytes(path, encode_image(image, Path(path).suffix, quality=quality), recipe=recipe, source=source)


def write_npy(path: str | os.PathLike, array: np.ndarray, *, recipe: Recipe | None = None,
              source: str | os.PathLike | None = None) -> None:
    """Write an array as ``.npy`` atomically, streamed (no in-memory copy of the file)."""
    with atomic_open(path, recipe=recipe, source=source) as f:
        np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)


def write_npy_rows(path: str | os.PathLike, shape: Sequence[int], blocks: Iterable[np.ndarray], *,
                   dtype=np.float64, recipe: Recipe | None = None, source: str | os.PathLike | None = None) -> None:
    """Write a ``.npy`` of ``shape`` from consecutive blocks of rows (``blocks`` stacked along axis
    0 make the array), so an array larger than memory can be streamed to disk, atomically.

    Raises ``ValueError`` (and writes nothing) when the blocks do not add up to ``shape``.

    Examples
    --------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "r.npy")
    >>> write_npy_rows(p, (3, 2), iter([np.zeros((2, 2)), np.ones((1, 2))]))
    >>> np.load(p).tolist()
    [[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]
    """
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    with atomic_open(path, recipe=recipe, source=source) as f:
        try:
            np.lib.format.write_array_header_1_0(f, header)
        except ValueError:  # a header over 64 KiB
            np.lib.format.write_array_header_2_0(f, header)
        rows = 0
        for block in blocks:
            block = np.ascontiguousarray(block, dtype=dtype)
            if block.shape[1:] != shape[1:]:
                raise ValueError(f"a block of shape {block.shape} does not fit an array of shape {shape}")
            rows += block.shape[0]
            if rows > shape[0]:
                raise ValueError(f"more than {shape[0]} rows given for an array of shape {shape}")
            f.write(block.data)
        if rows != shape[0]:
            raise ValueError(f"{rows} rows given for an array of shape {shape}")
