"""Classify images in batches: top-k labels and probabilities, evaluation against folder labels.

The stage takes pixel samples (:mod:`cnntool.data.pixels`: image files decoded and prepared on
threads while the model works on the previous batch, or video frames) and gives one record per
sample::

    {"path": "val/3/img_0042.png", "label": "3", "score": 0.993,
     "topk": [{"label": "3", "score": 0.993}, {"label": "5", "score": 0.004}, ...], "error": null}

With a confidence ``threshold``, a top score below it gives ``label: "unknown"`` (``topk``
still lists the classes). A bad input gives a record with ``error`` set and null predictions.

Evaluation (:func:`evaluation_summary`) reads the true class from each image's parent folder
(``val/<class>/image.png``, an ImageFolder) and adds ``true`` and ``correct`` to its record.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np

#: The label given to predictions below ``--threshold``.
UNKNOWN = "unknown"


def predict_records(loaded, samples, *, device, batch_size: int = 64, topk: int = 5,
                    threshold: float | None = None) -> Iterator[dict]:
    """One prediction record per sample, in order.

    Parameters
    ----------
    loaded : LoadedModel
        A classifier from :func:`cnntool.models.loading.load` (on ``device``, in eval mode).
    samples : iterable of Sample
        From :func:`cnntool.data.pixels.read_images` (best with ``prepare=loaded.preprocessing.resize``,
        so images are prepared on the decode threads) or a video's frames.
    device : torch.device
    batch_size : int
    topk : int
        Classes listed per image (capped at the number of classes).
    threshold : float, optional
        Below this top probability the label is ``unknown``.

    Yields
    ------
    dict
        ``path``, ``label``, ``score``, ``topk`` (list of ``{label, score}``), ``error``; a video
        frame's record also has ``frame`` and ``time``.

    Examples
    --------
    >>> loaded = load("runs/lenet5-1/best.pt", task="classification")  # doctest: +SKIP
    >>> samples = read_images(resolve_inputs(["samples/digits/val"]), prepare=loaded.preprocessing.resize)  # doctest: +SKIP
    >>> next(predict_records(loaded, samples, device=torch.device("cpu")))  # doctest: +SKIP
    {'path': 'samples/digits/val/0/0000.png', 'label': '0', 'score': 0.99, 'topk': [...], 'error': None}
    """
    import torch

    from cnntool.data.pixels import batches
    from cnntool.data.transforms import normalize_batch
    from cnntool.device import amp_dtype, channels_last_for_inference, use_amp

    preprocess = loaded.preprocessing
    classes = list(loaded.classes)
    k = max(1, min(topk, len(classes)))
    model = loaded.model
    channels_last = channels_last_for_inference(model, device)
    amp = use_amp(device, None)
    with torch.inference_mode():
        for batch in batches(samples, batch_size, prepare=preprocess.resize, stack=True):
            scores = indices = None
            if batch.inputs is not None:
                x = normalize_batch(torch.from_numpy(batch.inputs).to(device), *preprocess.scale_and_offset())
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device_type=device.type, dtype=amp_dtype(device)) if amp else nullcontext():
                    logits = model(x)
                probs = torch.softmax(logits.float(), dim=1)
                top = probs.topk(k, dim=1)
                scores, indices = top.values.cpu().tolist(), top.indices.cpu().tolist()
            yield from _batch_records(batch.samples, scores, indices, classes, threshold)


def _batch_records(samples, scores, indices, classes, threshold) -> Iterator[dict]:
    row = 0
    for sample in samples:
        where = {"frame": sample.frame, "time": sample.time} if sample.frame is not None else {}
        if not sample.ok:
            yield {"path": sample.path, **where, "label": None, "score": None, "topk": None, "error": sample.error}
            continue
        top_scores, top_indices = scores[row], indices[row]
        row += 1
        if not all(math.isfinite(v) for v in top_scores):
            yield {"path": sample.path, **where, "label": None, "score": None, "topk": None,
                   "error": "the model's output is not a number (NaN/inf): its weights or the input are broken"}
            continue
        label = classes[top_indices[0]]
        if threshold is not None and top_scores[0] < threshold:
            label = UNKNOWN
        yield {"path": sample.path, **where, "label": label, "score": top_scores[0],
               "topk": [{"label": classes[i], "score": s} for i, s in zip(top_indices, top_scores)],
               "error": None}


def true_label(path: str) -> str:
    """The class an ImageFolder image belongs to: its parent folder's name.

    Examples
    --------
    >>> true_label("data/val/cat/001.png")
    'cat'
    """
    return Path(path).parent.name


class Evaluation:
    """Accumulates (true, predicted) pairs from records and summarises them.

    Records whose folder is not one of the model's classes are counted in ``excluded`` and
    left out of the metrics; error records in ``errors``.

    Examples
    --------
    >>> ev = Evaluation(["a", "b"])
    >>> ev.add({"path": "x/a/1.png", "label": "a", "error": None})["correct"]
    True
    >>> ev.summary()["accuracy"]
    1.0
    """

    def __init__(self, classes: Sequence[str], *, unknown_column: bool = False):
        self.classes = list(classes)
        self.columns = self.classes + ([UNKNOWN] if unknown_column else [])
        self._index = {c: i for i, c in enumerate(self.columns)}
        self._class_set = set(self.classes)
        self.y_true: list[int] = []
        self.y_pred: list[int] = []
        self.images = 0
        self.errors = 0
        self.excluded = 0

    def add(self, record: dict) -> dict:
        """Add ``true`` and ``correct`` to a record (a new dict) and count it."""
        self.images += 1
        truth = true_label(record["path"])
        record = {**record, "true": truth, "correct": None}
        if record.get("error"):
            self.errors += 1
            return record
        if truth not in self._class_set:
            self.excluded += 1
            return record
        predicted = self._index.get(record["label"])
        if predicted is None:  # "unknown" without an unknown column cannot happen; be safe
            predicted = len(self.columns)
            self.columns.append(record["label"])
            self._index[record["label"]] = predicted
        self.y_true.append(self._index[truth])
        self.y_pred.append(predicted)
        record["correct"] = record["label"] == truth
        return record

    def confusion(self) -> np.ndarray:
        from cnntool.metrics.classification import confusion_matrix

        return confusion_matrix(self.y_true, self.y_pred, num_classes=len(self.classes),
                                num_predicted=len(self.columns))

    def summary(self) -> dict:
        """The summary record (the CLI gives it ``path: "<summary>"``): accuracy, macro and per-class
        precision/recall/F1, the confusion matrix (rows: true ``classes``, columns:
        ``predicted_classes``), and counts of images, evaluated, errors and excluded."""
        from cnntool.metrics.classification import classification_report

        confusion = self.confusion()
        report = classification_report(confusion, self.classes)
        return {
            "images": self.images,
            "evaluated": len(self.y_true),
            "errors": self.errors,
            "excluded": self.excluded,
            "accuracy": report["accuracy"],
            "macro_precision": report["macro_precision"],
            "macro_recall": report["macro_recall"],
            "macro_f1": report["macro_f1"],
            "per_class": report["per_class"],
            "classes": list(self.classes),
            "predicted_classes": list(self.columns),
            "confusion": confusion.tolist(),
        }


class Sorter:
    """Files images under ``root/<label>/<rel>`` (copies, or symlinks with ``link``), never losing one.

    Destinations are planned across the run: two inputs that would land on the same file (the
    same relative name and label from two folders) make the second an error record, whatever
    ``overwrite`` says. A destination that exists from an earlier run is kept when it came from
    the same input the same way (the output ledger), and is an error otherwise unless ``overwrite``.
    Copies are atomic (temporary file, then rename); an input is never overwritten.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> src = pathlib.Path(tempfile.mkdtemp()); (src / "a").mkdir(); (src / "b").mkdir()
    >>> _ = (src / "a" / "x.png").write_bytes(b"1"); _ = (src / "b" / "x.png").write_bytes(b"2")
    >>> sorter = Sorter(src / "sorted")
    >>> sorter.place(str(src / "a" / "x.png"), pathlib.PurePath("x.png"), "dog")[1]
    True
    >>> sorter.place(str(src / "b" / "x.png"), pathlib.PurePath("x.png"), "dog")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnntool.errors.InputError: .../sorted/dog/x.png would also be written for .../a/x.png
    """

    def __init__(self, root: str | os.PathLike, *, link: bool = False, overwrite: bool = False):
        self.root, self.link, self.overwrite = Path(root), link, overwrite
        self.taken: dict[str, str] = {}

    def place(self, path: str, rel, label: str) -> tuple[str, bool]:
        """Copy or link ``path`` to ``root/label/rel``; returns (destination, written).

        Raises
        ------
        InputError
            The destination is another input's in this run, was made from another input or
            another way (without ``overwrite``), would overwrite an input, or cannot be written.
        """
        from cnntool.data.writers import (Recipe, atomic_write_bytes, check_not_input, output_path, record_output,
                                          should_skip)
        from cnntool.errors import InputError

        dest = output_path(Path(label) / rel, self.root)
        key = os.path.normcase(os.path.abspath(dest))
        if key in self.taken and self.taken[key] != path:
            raise InputError(f"{dest} would also be written for {self.taken[key]}")
        self.taken[key] = path
        check_not_input(dest, path)
        made_by = Recipe.of("predict", {"sort_into": "link" if self.link else "copy"},
                            summary=f"sorted {'link' if self.link else 'copy'}")
        if should_skip(dest, made_by, source=path, overwrite=self.overwrite):
            return str(dest), False
        try:
            if self.link:
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f".{dest.name}.link.tmp")
                if tmp.is_symlink() or tmp.exists():
                    tmp.unlink()
                os.symlink(os.path.abspath(path), tmp)
                os.replace(tmp, dest)
                record_output(dest, made_by, source=path)
            else:
                atomic_write_bytes(dest, Path(path).read_bytes(), recipe=made_by, source=path)
        except OSError as exc:
            raise InputError(f"cannot write {dest}: {exc.strerror or exc}") from None
        return str(dest), True


#: What ``--eval -o DIR`` writes in DIR.
EVALUATION_FILES = ("evaluation.json", "confusion.png")


def check_evaluation_outputs(out_dir: str | os.PathLike, overwrite: bool) -> None:
    """:class:`UsageError` if :data:`EVALUATION_FILES` exist in ``out_dir`` and not ``overwrite``."""
    from cnntool.errors import UsageError

    existing = [str(Path(out_dir) / name) for name in EVALUATION_FILES if (Path(out_dir) / name).exists()]
    if existing and not overwrite:
        raise UsageError(f"{existing[0]} exists; the evaluation was not written",
                         hint="add --overwrite to replace it, or choose another -o folder")


def write_evaluation(summary: dict, out_dir: str | os.PathLike, *, overwrite: bool = False) -> list[str]:
    """``evaluation.json`` (the summary) and ``confusion.png`` in ``out_dir``; returns the paths.

    Raises
    ------
    UsageError
        Either file exists and ``overwrite`` is false (a re-run never replaces outputs silently).
    """
    from cnntool.data.writers import atomic_write_json
    from cnntool.metrics.plots import plot_confusion

    out_dir = Path(out_dir)
    check_evaluation_outputs(out_dir, overwrite)
    json_path, png_path = (out_dir / name for name in EVALUATION_FILES)
    atomic_write_json(json_path, summary)
    plot_confusion(np.asarray(summary["confusion"]), summary["classes"], png_path,
                   predicted_classes=summary["predicted_classes"],
                   title=f"accuracy {summary['accuracy']:.4f} ({summary['evaluated']} images)")
    return [str(json_path), str(png_path)]


def evaluation_lines(summary: dict) -> list[str]:
    """The evaluation as text for stderr: accuracy, a per-class table, the confusion matrix.

    Examples
    --------
    >>> s = Evaluation(["a", "b"]); _ = s.add({"path": "d/a/1.png", "label": "a", "error": None})
    >>> evaluation_lines(s.summary())[0]
    'accuracy 1.0000 over 1 images (macro F1 0.5000)'
    """
    lines = [f"accuracy {summary['accuracy']:.4f} over {summary['evaluated']} images "
             f"(macro F1 {summary['macro_f1']:.4f})"]
    rows = [("class", "precision", "recall", "f1", "support")]
    for name, m in summary["per_class"].items():
        rows.append((name, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}", str(m["support"])))
    lines += _aligned(rows)
    lines.append("confusion (rows: true class, columns: predicted):")
    header = ("", *summary["predicted_classes"])
    lines += _aligned([header, *[(name, *map(str, row)) for name, row in zip(summary["classes"], summary["confusion"])]])
    if summary["excluded"] or summary["errors"]:
        lines.append(f"left out: {summary['excluded']} images outside the model's classes, "
                     f"{summary['errors']} unreadable")
    return lines


def _aligned(rows: list[tuple]) -> list[str]:
    widths = [max(len(str(r[k])) for r in rows) for k in range(len(rows[0]))]
    return ["  ".join(str(v).rjust(w) if k else str(v).ljust(w) for k, (v, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]
