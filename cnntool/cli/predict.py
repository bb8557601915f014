"""``cnntool predict``: classify images with a registry model or a checkpoint.

Thin on purpose: resolve the inputs, load the model, stream
:func:`cnntool.infer.predict.predict_records` to the output; ``--eval`` adds the folder labels
and a closing summary record; ``--sort-into`` files each image under its predicted class.

Records: ``path``, ``label``, ``score``, ``topk`` (list of ``{label, score}``), ``error``;
with ``--eval`` also ``true`` and ``correct``, and a last record with ``path: "<summary>"``
(``accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1``, ``per_class``,
``classes``, ``predicted_classes``, ``confusion`` rows true x columns predicted, ``images``,
``evaluated``, ``errors``, ``excluded``; in jsonl and csv, not in a table, which gets the
evaluation as text on stderr, like every format does); with ``--sort-into`` also ``sorted_to``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnntool.cli._options import (BatchSize, Device, Format, ImgSize, Inputs, MaxPixels, Model, OutDir, Overwrite, Quiet,
                                  Verbose, Workers, make_output)
from cnntool.data.limits import DEFAULT_MAX_PIXELS
from cnntool.errors import GateFailed, UsageError



def predict_command(
    inputs: Inputs,
    model: Model = "",
    topk: Annotated[int, typer.Option("--topk", min=1, help="Classes listed per image.")] = 5,
    threshold: Annotated[Optional[float], typer.Option("--threshold", min=0.0, max=1.0,
                                                       help="Answer 'unknown' when the top probability is below this.",
                                                       show_default=False)] = None,
    evaluate: Annotated[bool, typer.Option("--eval", help="Inputs are an ImageFolder (<class>/image.png): add the "
                                                          "true label to each record and a closing summary record "
                                                          "(accuracy, per-class precision/recall/F1, confusion).")] = False,
    fail_under: Annotated[Optional[float], typer.Option("--fail-under", min=0.0, max=1.0,
                                                        help="With --eval: exit 1 when accuracy is below this "
                                                             "(a CI gate).", show_default=False)] = None,
    sort_into: Annotated[Optional[Path], typer.Option("--sort-into", file_okay=False,
                                                      help="Copy each image to DIR/<predicted label>/<its relative "
                                                           "path>.", show_default=False)] = None,
    link: Annotated[bool, typer.Option("--link", help="With --sort-into: symlink instead of copying.")] = False,
    out: OutDir = None,
    overwrite: Overwrite = False,
    imgsz: ImgSize = None,
    batch_size: BatchSize = 64,
    workers: Workers = 0,
    device: Device = "auto",
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    format: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> int:
    """Classify images: top-k labels and probabilities per image, optionally evaluated.

    -m takes a checkpoint from `cnntool train`/`finetune`, or NAME:WEIGHTS (pretrained, e.g.
    resnet18:DEFAULT). With --eval and -o DIR, evaluation.json and confusion.png go to DIR.
    Exit 1 when some inputs could not be read or --fail-under trips; 2 for a model that is not
    a classifier.

    Examples:

    \b
      cnntool predict photos/ -m runs/lenet5-1/best.pt --topk 3
      cnntool predict samples/digits/val -m runs/lenet5-1/best.pt --eval -o eval/ --fail-under 0.95
      cnntool predict inbox/ -m best.pt --threshold 0.8 --sort-into sorted/ --link
    """
    output = make_output(format, quiet, verbose)
    if not model:
        raise UsageError("no model given", hint="-m runs/NAME/best.pt, or a registry NAME:WEIGHTS")
    if fail_under is not None and not evaluate:
        raise UsageError("--fail-under needs --eval", hint="add --eval (inputs must be class folders)")
    if link and sort_into is None:
        raise UsageError("--link needs --sort-into DIR")
    if evaluate and out is not None:
        from cnntool.infer.predict import check_evaluation_outputs

        check_evaluation_outputs(out, overwrite)  # before predicting, not after
    from cnntool.cli._options import default_workers
    from cnntool.data.pixels import read_images, watch_sizes
    from cnntool.data.sources import resolve_inputs
    from cnntool.device import resolve_device
    from cnntool.data.sources import require_inputs
    from cnntool.infer.predict import Evaluation, Sorter, predict_records
    from cnntool.models.loading import load

    torch_device = resolve_device(device)
    from cnntool.cli._options import with_imgsz

    loaded = with_imgsz(load(model, task="classification", device=str(torch_device)), imgsz)
    if loaded.random_weights:
        output.warn(f"{model} has random weights (no checkpoint or pretrained weights): its predictions mean nothing")
    if out is not None and not evaluate:
        output.warn("-o only receives --eval's evaluation.json and confusion.png; nothing will be written")
    items = resolve_inputs(inputs, exclude=[p for p in (out, sort_into) if p is not None])
    require_inputs(items, inputs)
    sorter = Sorter(sort_into, link=link, overwrite=overwrite) if sort_into is not None else None
    evaluation = Evaluation(loaded.classes, unknown_column=threshold is not None) if evaluate else None
    pre = loaded.preprocessing
    samples = read_images(items, mode=pre.decode_mode, max_pixels=max_pixels, workers=default_workers(workers),
                          prepare=pre.resize, keep_image=False, chunk=max(1, -(-batch_size // default_workers(workers))))
    samples = watch_sizes(samples, lambda sizes: _warn_unlike(loaded, sizes, output))
    records = predict_records(loaded, samples, device=torch_device, batch_size=batch_size, topk=topk,
                              threshold=threshold)
    for item, record in zip(items, output.progress(records, total=len(items), desc="predict")):
        if evaluation is not None:
            record = evaluation.add(record)
        if sorter is not None and not record.get("error"):
            record = _sorted(record, item, sorter)
        output.emit(record)
    summary = _finish_evaluation(evaluation, out, output, overwrite) if evaluation is not None else None
    output.close()
    output.log(f"{len(items)} images" + (f", {output.failed} failed" if output.failed else ""))
    if summary is not None and fail_under is not None and summary["accuracy"] < fail_under:
        raise GateFailed(f"accuracy {summary['accuracy']:.4f} is under --fail-under {fail_under:g}")
    return output.exit_code


def _warn_unlike(loaded, sizes, output) -> None:
    """Warn when the inputs are unlike the images the model was trained on."""
    from cnntool.data.datasets import profile_warning

    message = profile_warning(loaded.checkpoint.get("data_profile"), sizes)
    if message:
        output.warn(message)


def _sorted(record: dict, item, sorter) -> dict:
    from cnntool.errors import InputError

    try:
        dest, _ = sorter.place(item.path, item.rel, record["label"])
    except InputError as exc:
        return {**record, "sorted_to": None, "error": str(exc)}
    return {**record, "sorted_to": dest}


def _finish_evaluation(evaluation, out: Path | None, output, overwrite: bool) -> dict:
    from cnntool.infer.predict import evaluation_lines, write_evaluation

    summary = evaluation.summary()
    if evaluation.excluded:
        output.warn(f"{evaluation.excluded} images are in folders that are not model classes; "
                    "--eval left them out")
    if out is not None:
        for path in write_evaluation(summary, out, overwrite=overwrite):
            output.debug(f"wrote {path}")
    output.emit_summary(summary)  # a table reader gets the summary on stderr instead
    for line in evaluation_lines(summary):
        output.log(line)
    return summary
