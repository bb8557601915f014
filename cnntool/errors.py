"""The errors cnntool raises on purpose, each with the exit code and a hint for the user.

Anything else that escapes a command is a bug: the CLI reports it in one line and shows the
traceback only when ``CNNTOOL_DEBUG=1``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURES = 1  # some inputs failed, or a --fail-on / --fail-under gate tripped
EXIT_USAGE = 2  # bad option, bad kernel spec, unknown model, missing file


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as a one-line reason for a record's ``error``: its message with whitespace
    runs (newlines included) collapsed, or its type's name when it has none, cut at ``limit``
    characters (ending in ``...``).

    Examples
    --------
    >>> one_line(ValueError("bad\\n  value"))
    'bad value'
    >>> one_line(OSError()), one_line(ValueError("x" * 10), limit=8)
    ('OSError', 'xxxxx...')
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's first message line (its type's name when it has none), cut at ``limit``.

    For multi-line messages (PyTorch's ``load_state_dict`` lists every key) where the first
    line says it all and :func:`one_line` would glue the rest on.

    Examples
    --------
    >>> first_line(RuntimeError("Error(s) in loading:\\n\\tMissing key(s)")), first_line(KeyError())
    ('Error(s) in loading:', 'KeyError')
    """
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else type(exc).__name__
    return text if limit is None else text[:limit]


def close_matches(word: str, choices, *, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The choices that look most like ``word`` (case-insensitive), best first.

    Examples
    --------
    >>> close_matches("gausian", ["gaussian", "median", "sobel"])
    ['gaussian']
    """
    import difflib

    choices = [str(c) for c in choices]
    folded = {c.lower(): c for c in choices}
    found = difflib.get_close_matches(str(word).lower(), list(folded), n=n, cutoff=cutoff)
    return [folded[f] for f in found]


def did_you_mean(word: str, choices, *, n: int = 3, fallback: str | None = None) -> str | None:
    """A hint for an unknown ``word``: "did you mean a, b?" with the close ``choices``, else
    ``fallback`` (or the choices themselves when there are few).

    Examples
    --------
    >>> did_you_mean("resnt18", ["resnet18", "resnet34", "vgg16"])
    'did you mean resnet18, resnet34?'
    >>> did_you_mean("xyz", ["a", "b"])
    'use one of: a, b'
    """
    close = close_matches(word, choices, n=n)
    if close:
        return f"did you mean {', '.join(close)}?"
    if fallback is not None:
        return fallback
    choices = [str(c) for c in choices]
    if len(choices) <= 12:
        return "use one of: " + ", ".join(choices)
    return None


def unknown_choice(what: str, word, choices, *, fallback: str | None = None) -> "UsageError":
    """The one "unknown X" usage error, with a did-you-mean hint; raise what it returns.

    Examples
    --------
    >>> err = unknown_choice("--method", "gradkam", ["gradcam", "scorecam"])
    >>> err.message, err.hint
    ("unknown --method 'gradkam'", 'did you mean gradcam?')
    """
    return UsageError(f"unknown {what} {word!r}", hint=did_you_mean(str(word), choices, fallback=fallback))


class CnnToolError(Exception):
    """Base class: a message for the user, an optional hint, and an exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(CnnToolError):
    """A bad option value, op spec or combination of options."""


class UnknownModelError(CnnToolError):
    """A model name that is not in the registry."""


class MissingWeightsError(CnnToolError):
    """Pretrained weights that are neither cached nor downloadable."""


class CheckpointError(CnnToolError):
    """A checkpoint that is missing, corrupted, foreign, or for another task."""


class DatasetError(CnnToolError):
    """A dataset folder that does not have the expected layout."""


class GateFailed(CnnToolError):
    """A --fail-on / --fail-under rule tripped: exit 1, not a usage error."""

    exit_code = EXIT_FAILURES


class InputError(Exception):
    """One input could not be used (unreadable, corrupt, too large...).

    Never stops a batch: the stage turns it into a record with ``error`` set to ``str(exc)``,
    which is always one line.
    """
