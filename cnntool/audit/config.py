"""Audit settings: which checks, thresholds, duplicate search, gate rules; from defaults, a TOML
file (``--config audit.toml``) and the command line, in that order of precedence.

A config file holds top-level keys (or the same keys under an ``[audit]`` table)::

    checks = ["dark", "light", "blurry", "exact_duplicates", "near_duplicates"]
    fail_on = ["corrupt", "near_duplicates", "blurry>2%"]
    dedup = "phash"          # phash | dhash | whash | ahash | cnn
    max_distance = 4         # Hamming bits, hash methods
    min_similarity = 0.9     # cosine, --dedup cnn
    labels = false
    model = "resnet18:DEFAULT"

    [thresholds]
    dark = 0.32
    blurry_sharpness = 0.40

Threshold names: those of :class:`~cnntool.audit.checks.Thresholds` plus ``max_distance``,
``min_similarity`` and ``class_imbalance``. Every value is checked when read: a file that is
not UTF-8 TOML, a key of the wrong type (``thresholds = 5``, ``dark = "abc"``), an unknown name
or a threshold out of its range (``dark = 5``, NaN) is a usage error naming the key, with the
valid range or an example as the hint.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

from cnntool.audit.checks import IMAGE_CHECKS, THRESHOLD_RANGES, Thresholds, check_threshold
from cnntool.audit.duplicates import HASH_METHODS
from cnntool.data.limits import DEFAULT_MAX_PIXELS
from cnntool.errors import UsageError, did_you_mean, one_line, unknown_choice

#: Every check, in report order.
ALL_CHECKS = ("corrupt", *IMAGE_CHECKS, "exact_duplicates", "near_duplicates", "leaks",
              "label_issues", "class_imbalance")
#: What runs without ``--checks``: everything but the label checks (``--labels``) and leaks
#: (``--against``).
DEFAULT_CHECKS = ("corrupt", *IMAGE_CHECKS, "exact_duplicates", "near_duplicates")
LABEL_CHECKS = ("label_issues", "class_imbalance")

DEDUP_METHODS = (*HASH_METHODS, "cnn")

#: Hamming distance (of 64 bits) under which two hashes are near duplicates. imagededup's
#: default of 10 groups distinct crops of one photo; resized and re-encoded copies sit at 0-2.
DEFAULT_MAX_DISTANCE = 4
#: Cosine similarity of CNN embeddings over which two images are near duplicates (imagededup's).
DEFAULT_MIN_SIMILARITY = 0.9
#: A class with fewer images than this share of the largest class is flagged.
DEFAULT_CLASS_IMBALANCE = 0.1
#: Cross-validation folds of the linear probes behind label_issues.
DEFAULT_FOLDS = 5

_THRESHOLD_NAMES = tuple(f.name for f in dataclasses.fields(Thresholds))
_OTHER_THRESHOLDS = ("max_distance", "min_similarity", "class_imbalance")
_FILE_KEYS = {"checks", "fail_on", "dedup", "max_distance", "min_similarity", "labels", "model",
              "thresholds", "folds"}


@dataclass(frozen=True)
class AuditConfig:
    """Everything that decides what ``cnntool audit`` reports (not where or how fast)."""

    checks: tuple[str, ...] = DEFAULT_CHECKS           # which checks run and report
    thresholds: Thresholds = field(default_factory=Thresholds)
    dedup: str = "phash"                               # near-duplicate method
    max_distance: int = DEFAULT_MAX_DISTANCE           # hash methods: Hamming bits
    min_similarity: float = DEFAULT_MIN_SIMILARITY     # cnn: cosine similarity
    class_imbalance: float = DEFAULT_CLASS_IMBALANCE   # class size / largest class under this
    model: str | None = None                           # embeddings for cnn dedup and labels
    folds: int = DEFAULT_FOLDS                         # label_issues cross-validation
    fail_on: tuple[str, ...] = ()                      # --fail-on rules (as written)
    seed: int = 0                                      # random-init models, CV splits
    max_pixels: int = DEFAULT_MAX_PIXELS               # decompression-bomb guard

    def wants(self, check: str) -> bool:
        return check in self.checks

    @property
    def needs_labels(self) -> bool:
        return any(c in self.checks for c in LABEL_CHECKS)

    def effective_thresholds(self) -> dict:
        """The thresholds in force, as echoed in the summary record."""
        values = dataclasses.asdict(self.thresholds)
        out: dict = {name: values[name] for name in _THRESHOLD_NAMES}
        if self.dedup == "cnn":
            out["min_similarity"] = self.min_similarity
        else:
            out["max_distance"] = self.max_distance
        out["dedup"] = self.dedup
        if self.needs_labels:
            out["class_imbalance"] = self.class_imbalance
        return out


def load_config_file(path: str | os.PathLike) -> dict:
    """Read an audit TOML file into a dict of settings (checked, not yet applied).

    Raises
    ------
    UsageError
        Missing or unreadable file, bad TOML or text that is not UTF-8, unknown keys, values of
        the wrong type or out of range.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise UsageError("--config needs Python 3.11, or the tomli package on Python 3.10") from None
    where = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file {where!r} not found") from None
    except IsADirectoryError:
        raise UsageError(f"config file {where!r} is a folder", hint="give a TOML file, e.g. --config audit.toml") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read config file {where!r}: byte 0x{exc.object[exc.start]:02x} at offset "
                         f"{exc.start} is not UTF-8", hint="TOML files are UTF-8 text; save it as UTF-8") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read config file {where!r}: {one_line(exc)}",
                         hint="see https://toml.io for the syntax; an example is in `cnntool audit --help`") from None
    if isinstance(data.get("audit"), dict):
        data = data["audit"]
    for key in sorted(set(data) - _FILE_KEYS):
        raise UsageError(f"unknown key {key!r} in {where}",
                         hint=did_you_mean(key, sorted(_FILE_KEYS), fallback="keys: " + ", ".join(sorted(_FILE_KEYS))))
    for key, value in data.items():
        _check_file_value(key, value, where)
    return data


#: What each config-file key holds, for the error message when it holds something else.
_FILE_TYPES = {
    "checks": "a list of check names (or one comma-separated string)",
    "fail_on": "a list of rules (or one comma-separated string)",
    "dedup": "a method name (a string)",
    "model": "a model spec (a string)",
    "labels": "true or false",
    "max_distance": "a whole number of bits in 0..64",
    "min_similarity": "a number in -1..1",
    "folds": "a whole number, at least 2",
    "thresholds": "a table: [thresholds] with NAME = number lines",
}


def _check_file_value(key: str, value, where: str) -> None:
    def is_number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if key in ("checks", "fail_on"):
        ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    elif key in ("dedup", "model"):
        ok = isinstance(value, str)
    elif key == "labels":
        ok = isinstance(value, bool)
    elif key in ("max_distance", "folds"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif key == "min_similarity":
        ok = is_number(value)
    else:  # thresholds
        ok = isinstance(value, dict)
        if ok:
            for name, number in value.items():
                check_threshold_value(name, number, f"threshold {name} in {where}")
    if not ok:
        raise UsageError(f"{key} in {where} must be {_FILE_TYPES[key]}, got {value!r}",
                         hint="for example: " + _FILE_EXAMPLES[key])


_FILE_EXAMPLES = {
    "checks": 'checks = ["dark", "blurry", "near_duplicates"]', "fail_on": 'fail_on = ["corrupt", "blurry>2%"]',
    "dedup": 'dedup = "phash"', "model": 'model = "resnet18:DEFAULT"', "labels": "labels = true",
    "max_distance": "max_distance = 4", "min_similarity": "min_similarity = 0.9", "folds": "folds = 5",
    "thresholds": "[thresholds] then dark = 0.32 on the next line",
}

#: Valid ranges of the thresholds that are not image-score thresholds: (low, high, whole number).
_OTHER_RANGES = {"max_distance": (0, 64, True), "min_similarity": (-1.0, 1.0, False),
                 "class_imbalance": (0.0, 1.0, False)}
_THRESHOLD_ABOUT = {
    "max_distance": "Hamming bits of 64 within which two hashes are near duplicates",
    "min_similarity": "the cosine similarity over which two embeddings are near duplicates",
    "class_imbalance": "a class smaller than this share of the largest class is flagged",
}


def check_threshold_value(name: str, value, what: str) -> float:
    """A threshold's value checked against its name and range; ``what`` says where it came from.

    Raises
    ------
    UsageError
        An unknown name (with a did-you-mean hint), or a value that is not a finite number in
        the threshold's range (the hint gives the range).

    Examples
    --------
    >>> check_threshold_value("dark", 0.3, "--threshold dark")
    0.3
    >>> check_threshold_value("dark", float("nan"), "--threshold dark")
    Traceback (most recent call last):
    ...
    cnntool.errors.UsageError: --threshold dark must be a number in 0..1, got nan
    """
    if name not in _THRESHOLD_NAMES and name not in _OTHER_RANGES:
        raise unknown_choice("threshold", name, [*_THRESHOLD_NAMES, *_OTHER_RANGES])
    if name in _OTHER_RANGES:
        low, high, whole = _OTHER_RANGES[name]
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and low <= value <= high and (not whole or float(value).is_integer()))
        if not ok:
            kind = "a whole number" if whole else "a number"
            raise UsageError(f"{what} must be {kind} in {low:g}..{high:g}, got {value!r}",
                             hint=f"{name}: {_THRESHOLD_ABOUT[name]}")
        return float(value)
    try:
        return check_threshold(name, value)
    except ValueError:
        low, high = THRESHOLD_RANGES[name]
        raise UsageError(f"{what} must be a number in {low:g}..{high:g}, got {value!r}",
                         hint=f"an image is flagged when its {name} score is below the threshold; scores lie in "
                              f"0..1, and 0 turns the criterion off" if high == 1.0 else
                         f"{name} is a Tukey fence factor: 0 or more (CleanVision uses 3)") from None


def parse_threshold_options(values) -> dict[str, float]:
    """``["dark=0.3", "blurry_sharpness=0.4"]`` -> ``{"dark": 0.3, ...}``, each name and value checked.

    Examples
    --------
    >>> parse_threshold_options(["dark=0.3", "max_distance=6"])
    {'dark': 0.3, 'max_distance': 6.0}
    """
    out: dict[str, float] = {}
    for value in values or ():
        name, sep, number = str(value).partition("=")
        name = name.strip()
        if not sep:
            raise UsageError(f"cannot read --threshold {value!r}", hint="write NAME=VALUE, for example dark=0.3")
        try:
            parsed = float(number)
        except ValueError:
            raise UsageError(f"--threshold {name} needs a number, got {number.strip()!r}",
                             hint="write NAME=VALUE, for example dark=0.3") from None
        out[name] = check_threshold_value(name, parsed, f"--threshold {name}")
    return out


def parse_checks(spec, *, option: str = "--checks") -> tuple[str, ...]:
    """``"dark,light"`` or a list -> validated check names in report order; ``all`` for every one.

    Examples
    --------
    >>> parse_checks("near_duplicates,dark")
    ('corrupt', 'dark', 'near_duplicates')
    """
    names = [spec] if isinstance(spec, str) else list(spec)
    parts = [n.strip().lower() for item in names for n in str(item).split(",")]
    if not parts or not any(parts):
        raise UsageError(f"{option} names no check", hint="name some, e.g. --checks dark,blurry, or --checks all")
    if "" in parts:
        raise UsageError(f"{option} has an empty name in {','.join(map(str, names))!r}",
                         hint="separate check names with single commas, e.g. dark,blurry")
    wanted: set[str] = {"corrupt"}  # reading the files is never optional
    for name in parts:
        if name == "all":
            wanted.update(ALL_CHECKS)
            continue
        if name not in ALL_CHECKS:
            raise unknown_choice("check", name, ALL_CHECKS, fallback="checks: " + ", ".join(ALL_CHECKS))
        wanted.add(name)
    return tuple(c for c in ALL_CHECKS if c in wanted)


def build_config(*, file_settings: dict | None = None, checks=None, labels: bool = False, against: bool = False,
                 dedup: str | None = None, max_distance: int | None = None, min_similarity: float | None = None,
                 model: str | None = None, thresholds: dict | None = None, fail_on=(), seed: int = 0,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> AuditConfig:
    """Merge defaults, a config file's settings and command-line values (which win).

    Examples
    --------
    >>> c = build_config(file_settings={"max_distance": 6, "thresholds": {"dark": 0.2}}, thresholds={"dark": 0.25})
    >>> c.max_distance, c.thresholds.dark
    (6, 0.25)
    """
    s = dict(file_settings or {})
    chosen = parse_checks(checks) if checks is not None else parse_checks(s.get("checks", DEFAULT_CHECKS),
                                                                          option="checks in the config file")
    if labels or s.get("labels"):
        chosen = parse_checks([*chosen, *LABEL_CHECKS])
    if against:
        chosen = parse_checks([*chosen, "leaks"])
    method = (dedup or s.get("dedup") or "phash").lower()
    if method not in DEDUP_METHODS:
        raise unknown_choice("--dedup method", method, DEDUP_METHODS)
    file_thresholds = {k: check_threshold_value(k, v, f"threshold {k} in the config file")
                       for k, v in dict(s.get("thresholds") or {}).items()}
    merged = {**file_thresholds, **{k: check_threshold_value(k, v, f"--threshold {k}")
                                    for k, v in (thresholds or {}).items()}}
    distance = merged.pop("max_distance", None)
    similarity = merged.pop("min_similarity", None)
    imbalance = merged.pop("class_imbalance", None)
    distance = _first(max_distance, distance, s.get("max_distance"), DEFAULT_MAX_DISTANCE)
    if float(distance) != int(distance) or not 0 <= int(distance) <= 64:
        raise UsageError(f"--max-distance must be a whole number of bits in 0..64, got {distance}",
                         hint=f"max_distance: {_THRESHOLD_ABOUT['max_distance']}")
    similarity = _first(min_similarity, similarity, s.get("min_similarity"), DEFAULT_MIN_SIMILARITY)
    if not -1.0 <= float(similarity) <= 1.0:
        raise UsageError(f"--min-similarity must be in -1..1, got {similarity}",
                         hint=f"min_similarity: {_THRESHOLD_ABOUT['min_similarity']}")
    folds = s.get("folds", DEFAULT_FOLDS)
    if folds < 2:
        raise UsageError(f"folds must be at least 2, got {folds}", hint="folds = 5 cross-validates on five folds")
    file_rules = s.get("fail_on", ())
    rules = tuple(fail_on) if fail_on else ((file_rules,) if isinstance(file_rules, str) else tuple(file_rules))
    return AuditConfig(
        checks=chosen,
        thresholds=dataclasses.replace(Thresholds(), **merged),
        dedup=method,
        max_distance=int(distance),
        min_similarity=float(similarity),
        class_imbalance=float(imbalance) if imbalance is not None else DEFAULT_CLASS_IMBALANCE,
        model=model or s.get("model"),
        folds=folds,
        fail_on=rules,
        seed=seed,
        max_pixels=max_pixels,
    )


def _first(*values):
    """The first value that is not None."""
    return next(v for v in values if v is not None)
