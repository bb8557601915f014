"""``--help`` pages a person can scan: plain metavars, options in groups, one default each.

Every subcommand is built with :class:`Command` (``app.command(cls=Command)``):

- an option without a metavar of its own gets a plain one from its type (``N`` for whole
  numbers, ``X`` for numbers, ``DIR``/``FILE``/``PATH``, the choices joined by ``|``, or the
  option's name in capitals), never a Python type (``<int range>``, ``<list[str]>``);
- arguments read ``INPUTS...`` in the usage line;
- options are listed under the group (``rich_help_panel``) they declare, in the order the groups
  first appear, arguments first and the common output options last.
"""

from __future__ import annotations

from typer.core import TyperCommand

#: Where options without a group of their own are listed.
DEFAULT_GROUP = "Options"
#: Listed last, whatever the command: how records come out.
OUTPUT_GROUP = "Output"
_OUTPUT_PARAMS = {"format", "quiet", "verbose", "help"}

#: Metavars by option name, where the name says more than the type.
NAMED = {"model": "SPEC", "imgsz": "SIZE", "device": "DEVICE", "out": "DIR", "inputs": "INPUTS", "data": "DATA",
         "spec": "SPEC", "arch": "NAME", "init_from": "SPEC", "format": "jsonl|csv|table", "resume": "RUN",
         "config": "FILE", "seed": "N", "method": "METHOD", "layer": "LAYER", "target": "CLASS"}


def plain_metavar(param) -> str | None:
    """The metavar a person reads for ``param`` (None for flags).

    Examples
    --------
    >>> from types import SimpleNamespace as P
    >>> plain_metavar(P(name="batch_size", is_flag=False, param_type_name="option",
    ...                 type_descriptor=P(annotation=int, is_choice=False, is_path=False)))
    'N'
    """
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if param.name in NAMED:
        return NAMED[param.name]
    desc = getattr(param, "type_descriptor", None)
    annotation = getattr(desc, "annotation", None)
    if desc is not None and getattr(desc, "is_choice", False) and desc.choices:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices)
    if desc is not None and getattr(desc, "is_path", False):
        kind = str(getattr(desc, "path_type", "path")).upper()
        return kind if kind in ("DIR", "FILE") else "PATH"
    element = getattr(annotation, "__args__", (annotation,))[0] if getattr(annotation, "__origin__", None) is list \
        else annotation
    if element is int:
        return "N"
    if element is float:
        return "X"
    return param.name.upper().replace("_", "-")


class Command(TyperCommand):
    """A Typer command whose help has plain metavars and grouped options."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if getattr(param, "metavar", None) is None:
                metavar = plain_metavar(param)
                if metavar is not None:
                    param.metavar = metavar

    def collect_usage_pieces(self, ctx) -> list[str]:
        """``[OPTIONS] INPUTS...`` (or ``[DATA]`` when optional), not ``{inputs}...``."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                continue
            name = (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")
            pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx, formatter) -> None:
        arguments, groups = [], {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":  # NAME..., not NAME <list[str]>
                name = (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")
                arguments.append((name, record[1]))
                continue
            group = getattr(param, "rich_help_panel", None) or (
                OUTPUT_GROUP if param.name in _OUTPUT_PARAMS else DEFAULT_GROUP)
            groups.setdefault(group, []).append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        order = [g for g in groups if g not in (DEFAULT_GROUP, OUTPUT_GROUP)]
        for name in ([DEFAULT_GROUP] if DEFAULT_GROUP in groups else []) + order + (
                [OUTPUT_GROUP] if OUTPUT_GROUP in groups else []):
            with formatter.section(name):
                formatter.write_dl(groups[name])
