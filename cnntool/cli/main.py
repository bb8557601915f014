"""The ``cnntool`` Typer app: the routing table of subcommands and the one error handler.

Command modules are imported here but import nothing heavy at module level: ``cnntool --help``
and ``cnntool filter`` must start without importing torch.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

import typer

from cnntool import __version__
from cnntool.errors import EXIT_FAILURES, CnnToolError

from cnntool.cli._help import Command
from cnntool.cli import audit as audit_cmd
from cnntool.cli import detect as detect_cmd
from cnntool.cli import doctor as doctor_cmd
from cnntool.cli import export as export_cmd
from cnntool.cli import explain as explain_cmd
from cnntool.cli import filter as filter_cmd
from cnntool.cli import models as models_cmd
from cnntool.cli import predict as predict_cmd
from cnntool.cli import segment as segment_cmd
from cnntool.cli import train as train_cmd
from cnntool.cli import video as video_cmd


def handle_errors(func: Callable) -> Callable:
    """Turn a command's return value into its exit code, and errors into one-line messages.

    CnnToolError -> its message, hint and exit code; anything else -> a one-line internal
    error (exit 1), with the traceback only when ``CNNTOOL_DEBUG=1``.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            code = func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except CnnToolError as exc:
            if os.environ.get("CNNTOOL_DEBUG"):
                raise
            print(f"error: {exc.message}", file=sys.stderr)
            if exc.hint:
                print(f"hint: {exc.hint}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            # the reader went away (`| head`): stop quietly, like other Unix tools
            _silence_stdout()
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except Exception as exc:  # a bug: one line unless debugging
            if os.environ.get("CNNTOOL_DEBUG"):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(f"error: internal error: {type(exc).__name__}: {first}", file=sys.stderr)
            print("hint: set CNNTOOL_DEBUG=1 to see the traceback, and report it", file=sys.stderr)
            raise typer.Exit(EXIT_FAILURES) from None
        raise typer.Exit(code or 0)

    return wrapper


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _version(value: bool) -> None:
    if value:
        print(f"cnntool {__version__}")
        raise typer.Exit()


ROOT_HELP = """Image analysis with convolutional neural networks, from the command line.

Records go to stdout (jsonl, csv or a table), everything else to stderr; exit 0 when every
input was processed, 1 when some failed or a gate tripped, 2 for usage errors. Every command
takes files, folders, quoted globs, @list.txt and - (paths on stdin).
"""

ROOT_EPILOG = """\b
Examples:
  cnntool filter photos/ -k gaussian:sigma=2 -k sobel:axis=magnitude -o edges/
  cnntool audit data/train --fail-on 'corrupt,near_duplicates,blurry>2%'
  cnntool train samples/digits --arch lenet5
  cnntool predict inbox/ -m runs/lenet5-1 --topk 3
  cnntool explain cat.jpg -m resnet18:DEFAULT --method gradcam -o cams/
  cnntool detect photos/ -m fasterrcnn_mobilenet_v3_large_320_fpn:COCO_V1 -o boxes/
  cnntool segment coins.png --method watershed -o masks/
  cnntool video clip.mp4 --task flow -o flow/
  cnntool models list --task detect
\b
Run `cnntool COMMAND --help` for a command's options and examples; `cnntool doctor` for a bug report.
"""

app = typer.Typer(
    name="cnntool",
    help=ROOT_HELP,
    epilog=ROOT_EPILOG,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Image analysis with convolutional neural networks."""


def command(typer_app, name: str, func: Callable, short: str, *, needs_args: bool = True) -> None:
    """Register a subcommand: the one error handler, plain metavars and option groups
    (:class:`~cnntool.cli._help.Command`), and a one-line summary for the command list."""
    typer_app.command(name, cls=Command, short_help=short, no_args_is_help=needs_args)(handle_errors(func))


command(app, "filter", filter_cmd.filter_command, "Convolution, pooling and edges over images and .npy arrays",
        needs_args=False)
command(app, "audit", audit_cmd.audit_command, "Check a dataset: corrupt, dark, blurry, duplicate, mislabelled images")
command(app, "train", train_cmd.train_command, "Train a classifier, detector, segmenter or video model")
command(app, "finetune", train_cmd.finetune_command, "Fine-tune a pretrained model or a checkpoint on new classes")
command(app, "predict", predict_cmd.predict_command, "Classify images (top-k), evaluate against labelled folders")
command(app, "explain", explain_cmd.explain_command, "Grad-CAM and relatives, feature maps, kernels, maximisation")
command(app, "detect", detect_cmd.detect_command, "Boxes, labels and scores per image; mAP against COCO or YOLO labels")
command(app, "segment", segment_cmd.segment_command, "Semantic, instance and classical segmentation: masks, overlays, mIoU")
command(app, "export", export_cmd.export_command, "Export a model to ONNX or TorchScript, checked against PyTorch")
command(app, "doctor", doctor_cmd.doctor_command, "Versions, devices, caches: what to paste into a bug report",
        needs_args=False)
command(app, "video", video_cmd.video_command, "Every frame through a stage, clip classification, optical flow")

models_app = typer.Typer(help="The model registry: list, describe, summarise.", no_args_is_help=True)
command(models_app, "list", models_cmd.list_command, "Every model: task, parameters, input size, weights",
        needs_args=False)
command(models_app, "info", models_cmd.info_command, "One model, pretrained weights or checkpoint, every field")
command(models_app, "summary", models_cmd.summary_command, "A model's layers with output shapes and parameters")
app.add_typer(models_app, name="models", short_help="The model registry: list, info, summary")


def main() -> None:
    app(prog_name="cnntool")
