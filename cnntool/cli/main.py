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

from cnntool.cli import audit as audit_cmd
from cnntool.cli import doctor as doctor_cmd
from cnntool.cli import export as export_cmd
from cnntool.cli import explain as explain_cmd
from cnntool.cli import filter as filter_cmd
from cnntool.cli import models as models_cmd
from cnntool.cli import predict as predict_cmd
from cnntool.cli import train as train_cmd


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


app = typer.Typer(
    name="cnntool",
    help="Image analysis with convolutional neural networks: filter, audit, train, predict, explain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Image analysis with convolutional neural networks."""


app.command("filter")(handle_errors(filter_cmd.filter_command))
app.command("audit", no_args_is_help=True)(handle_errors(audit_cmd.audit_command))
app.command("train", no_args_is_help=True)(handle_errors(train_cmd.train_command))
app.command("finetune", no_args_is_help=True)(handle_errors(train_cmd.finetune_command))
app.command("predict", no_args_is_help=True)(handle_errors(predict_cmd.predict_command))
app.command("explain", no_args_is_help=True)(handle_errors(explain_cmd.explain_command))

app.command("export", no_args_is_help=True)(handle_errors(export_cmd.export_command))
app.command("doctor")(handle_errors(doctor_cmd.doctor_command))

models_app = typer.Typer(help="The model registry: list, describe, summarise.", no_args_is_help=True)
models_app.command("list")(handle_errors(models_cmd.list_command))
models_app.command("info")(handle_errors(models_cmd.info_command))
models_app.command("summary")(handle_errors(models_cmd.summary_command))
app.add_typer(models_app, name="models")


def main() -> None:
    app(prog_name="cnntool")
