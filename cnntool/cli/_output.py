"""The one output module: records to stdout, everything else to stderr.

Every subcommand writes its records through :class:`Output`. ``jsonl`` streams one JSON object
per line; ``csv`` and ``table`` collect the records and write them at the end so that the
columns are the union of the records' fields (first-seen order, ``path`` first). Logs, warnings
and progress bars go to stderr; progress bars appear only when stderr is a terminal.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

FORMATS = ("jsonl", "csv", "table")

#: ``path`` of every command's closing summary record (``predict --eval``, ``audit``, ``detect
#: --eval``...): ``jq 'select(.path == "<summary>")'`` finds it whatever the command.
SUMMARY_PATH = "<summary>"


def default_format(stream=None) -> str:
    """``table`` for a person at a terminal, ``jsonl`` for a pipe or a file."""
    stream = stream if stream is not None else sys.stdout
    return "table" if _isatty(stream) else "jsonl"


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """Make a value JSON-friendly: numpy scalars/arrays, paths, tuples, NaN."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array, torch tensor
        return _plain(value.tolist())
    return str(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # as in jsonl
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(_rounded(value), separators=(",", ":"))
    return str(value)


def _rounded(value: Any) -> Any:
    """Floats inside lists and dicts at the precision cells show (6 significant digits)."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def flatten_columns(record: dict) -> dict:
    """A record for csv and table: a list of same-keyed dicts (a top-k list) becomes numbered
    columns, ``topk_1_label, topk_1_score, topk_2_label...``, rather than a quoted JSON blob;
    other values stay as they are.

    Examples
    --------
    >>> flatten_columns({"path": "a.png", "topk": [{"label": "3", "score": 0.9}, {"label": "5", "score": 0.1}]})
    {'path': 'a.png', 'topk_1_label': '3', 'topk_1_score': 0.9, 'topk_2_label': '5', 'topk_2_score': 0.1}
    """
    flat: dict = {}
    for key, value in record.items():
        if (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
                and len({tuple(v) for v in value}) == 1
                and all(not isinstance(x, (list, dict)) for v in value for x in v.values())):
            for i, item in enumerate(value, 1):
                for sub, x in item.items():
                    flat[f"{key}_{i}_{sub}"] = x
        else:
            flat[key] = value
    return flat


class Output:
    """Writes records to stdout in one format and messages to stderr.

    Parameters
    ----------
    format : {"jsonl", "csv", "table"} or None
        None picks :func:`default_format`.
    quiet : bool
        Silence logs and progress (warnings and errors still show).
    verbose : bool
        Show :meth:`debug` messages.
    """

    def __init__(self, format: str | None = None, *, quiet: bool = False, verbose: bool = False,
                 stdout=None, stderr=None):
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.format = format or default_format(self.stdout)
        self.quiet = quiet
        self.verbose = verbose
        self.count = 0
        self.failed = 0
        self._held: list[dict] = []

    # records -------------------------------------------------------------------------------
    def emit(self, record: dict) -> None:
        """Write one record (``path`` first). A record with ``error`` counts as a failure."""
        record = _plain(record)
        if "path" in record:
            record = {"path": record["path"], **{k: v for k, v in record.items() if k != "path"}}
        self.count += 1
        if record.get("error"):
            self.failed += 1
        if self.format == "jsonl":
            self.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.stdout.flush()
        else:
            self._held.append(record)

    def emit_one(self, record: dict) -> None:
        """Write a command's single record; at a terminal as field/value rows, since one wide row
        is unreadable there."""
        if self.format != "table":
            self.emit(record)
            return
        for key, value in _plain(record).items():
            self.emit({"field": key, "value": value})

    def emit_summary(self, record: dict) -> bool:
        """The command's closing summary record, with ``path`` :data:`SUMMARY_PATH` first.

        In jsonl and csv it is the last record on stdout; a table is for a person, who gets the
        summary as text on stderr from the command instead (returns False: nothing emitted).
        """
        if self.format == "table":
            return False
        record = {"path": SUMMARY_PATH, **{k: v for k, v in record.items() if k != "path"}}
        plain = _plain(record)
        if self.format == "jsonl":
            self.stdout.write(json.dumps(plain, ensure_ascii=False) + "\n")
            self.stdout.flush()
        else:
            self._held.append(plain)
        return True

    def close(self) -> None:
        """Write held csv/table records. Safe to call twice."""
        records, self._held = self._held, []
        if not records:
            return
        records = [flatten_columns(r) for r in records]
        columns: list[str] = []
        for record in records:
            columns.extend(k for k in record if k not in columns)
        if self.format == "csv":
            writer = csv.writer(self.stdout, lineterminator="\n")
            writer.writerow(columns)
            for record in records:
                writer.writerow([_cell(record.get(c)) for c in columns])
        else:
            rows = [[_cell(r.get(c)) for c in columns] for r in records]
            widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
            self.stdout.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
            for row in rows:
                self.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")
        self.stdout.flush()

    # messages ------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        if not self.quiet:
            print(message, file=self.stderr)

    def debug(self, message: str) -> None:
        if self.verbose and not self.quiet:
            print(message, file=self.stderr)

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=self.stderr)

    def progress(self, iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
        """Wrap an iterable in a tqdm bar on stderr, only when stderr is a terminal."""
        if self.quiet or not _isatty(self.stderr):
            yield from iterable
            return
        from tqdm import tqdm

        yield from tqdm(iterable, total=total, desc=desc, file=self.stderr, unit="img",
                        dynamic_ncols=True, leave=False)

    def bar(self, total: int | None, desc: str = "", *, unit: str = "batch", interval: float = 30.0) -> "Bar":
        """Progress inside a long step (an epoch): a tqdm bar with rate and ETA when stderr is a
        terminal, else one plain line every ``interval`` seconds; nothing with ``--quiet``."""
        return Bar(self, total, desc, unit=unit, interval=interval)

    def summary(self, what: str = "inputs") -> None:
        """One closing line on stderr: how many records, how many failed."""
        if self.failed:
            self.log(f"{self.count} {what}, {self.failed} failed")
        else:
            self.log(f"{self.count} {what}")

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


class Bar:
    """What :meth:`Output.bar` returns: ``update(n, images=k)`` after each step, ``close()`` at the end.

    Examples
    --------
    >>> import io
    >>> err = io.StringIO()
    >>> bar = Output("jsonl", stderr=err).bar(4, "epoch 1/2", interval=0.0)
    >>> bar.update(images=64); bar.close()
    >>> err.getvalue().startswith("epoch 1/2: 1/4 batches")
    True
    """

    def __init__(self, output: Output, total: int | None, desc: str, *, unit: str, interval: float):
        import time

        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.done = self.images = 0
        self.start = self.last = time.perf_counter()
        self.output = output
        self.tqdm = None
        if output.quiet:
            self.interval = None
        elif _isatty(output.stderr):
            from tqdm import tqdm

            self.tqdm = tqdm(total=total, desc=desc, unit=unit, file=output.stderr, dynamic_ncols=True, leave=False)

    def update(self, n: int = 1, *, images: int = 0) -> None:
        import time

        self.done += n
        self.images += images
        now = time.perf_counter()
        if self.tqdm is not None:
            self.tqdm.update(n)
            if images:
                self.tqdm.set_postfix_str(f"{self.images / max(1e-9, now - self.start):.0f} img/s", refresh=False)
        elif self.interval is not None and now - self.last >= self.interval:
            self.last = now
            rate = self.images / max(1e-9, now - self.start)
            eta = ""
            if self.total:
                left = (self.total - self.done) * (now - self.start) / max(1, self.done)
                eta = f", eta {left:.0f} s"
            total = f"/{self.total}" if self.total else ""
            units = self.unit + ("es" if self.unit.endswith(("ch", "s", "x")) else "s")
            print(f"{self.desc}: {self.done}{total} {units}, {rate:.0f} img/s{eta}", file=self.output.stderr)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
