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

Threshold names: those of :class:`~cnntool.audit.checks.Thresholds` plus ``class_imbalance``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from cnntool.audit.checks import IMAGE_CHECKS, Thresholds
from cnntool.audit.duplicates import HASH_METHODS
from cnntool.data.limits import DEFAULT_MAX_PIXELS
from cnntool.errors import UsageError

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
        Missing or unreadable file, bad TOML, unknown keys.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise UsageError("--config needs Python 3.11, or the tomli package on Python 3.10") from None
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file {os.fspath(path)!r} not found") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read config file {os.fspath(path)!r}: {exc}") from None
    if isinstance(data.get("audit"), dict):
        data = data["audit"]
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise UsageError(f"unknown keys in {os.fspath(path)}: {', '.join(sorted(unknown))}",
                         hint="known keys: " + ", ".join(sorted(_FILE_KEYS)))
    return data


def parse_threshold_options(values) -> dict[str, float]:
    """``["dark=0.3", "blurry_sharpness=0.4"]`` -> ``{"dark": 0.3, ...}``.

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
            out[name] = float(number)
        except ValueError:
            raise UsageError(f"--threshold {name} needs a number, got {number.strip()!r}") from None
    return out


def parse_checks(spec) -> tuple[str, ...]:
    """``"dark,light"`` or a list -> validated check names in report order; ``all`` for every one.

    Examples
    --------
    >>> parse_checks("near_duplicates,dark")
    ('corrupt', 'dark', 'near_duplicates')
    """
    names = [spec] if isinstance(spec, str) else list(spec)
    wanted: set[str] = {"corrupt"}  # reading the files is never optional
    for name in (n.strip().lower() for item in names for n in str(item).split(",")):
        if not name:
            continue
        if name == "all":
            wanted.update(ALL_CHECKS)
            continue
        if name not in ALL_CHECKS:
            import difflib

            close = difflib.get_close_matches(name, ALL_CHECKS, n=1)
            raise UsageError(f"unknown check {name!r}",
                             hint=f"did you mean {close[0]}?" if close else "checks: " + ", ".join(ALL_CHECKS))
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
    chosen = parse_checks(checks if checks is not None else s.get("checks", DEFAULT_CHECKS))
    if labels or s.get("labels"):
        chosen = parse_checks([*chosen, *LABEL_CHECKS])
    if against:
        chosen = parse_checks([*chosen, "leaks"])
    method = (dedup or s.get("dedup") or "phash").lower()
    if method not in DEDUP_METHODS:
        raise UsageError(f"unknown --dedup method {method!r}", hint="use one of: " + ", ".join(DEDUP_METHODS))
    merged = {**dict(s.get("thresholds") or {}), **(thresholds or {})}
    distance = merged.pop("max_distance", None)
    similarity = merged.pop("min_similarity", None)
    imbalance = merged.pop("class_imbalance", None)
    unknown = set(merged) - set(_THRESHOLD_NAMES)
    if unknown:
        raise UsageError(f"unknown threshold {', '.join(sorted(unknown))}",
                         hint="thresholds: " + ", ".join([*_THRESHOLD_NAMES, *_OTHER_THRESHOLDS]))
    distance = _first(max_distance, distance, s.get("max_distance"), DEFAULT_MAX_DISTANCE)
    if float(distance) != int(distance) or not 0 <= int(distance) <= 64:
        raise UsageError(f"--max-distance must be a whole number of bits in 0..64, got {distance}")
    similarity = _first(min_similarity, similarity, s.get("min_similarity"), DEFAULT_MIN_SIMILARITY)
    if not -1.0 <= float(similarity) <= 1.0:
        raise UsageError(f"--min-similarity must be in -1..1, got {similarity}")
    folds = int(s.get("folds", DEFAULT_FOLDS))
    if folds < 2:
        raise UsageError(f"folds must be at least 2, got {folds}")
    file_rules = s.get("fail_on") or ()
    rules = tuple(fail_on) if fail_on else ((file_rules,) if isinstance(file_rules, str) else tuple(file_rules))
    return AuditConfig(
        checks=chosen,
        thresholds=dataclasses.replace(Thresholds(), **{k: float(v) for k, v in merged.items()}),
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
