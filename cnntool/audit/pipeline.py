"""The audit pipeline: measure every file once (cached, on all cores), then decide every check.

:func:`run_audit` takes resolved inputs and an :class:`~cnntool.audit.config.AuditConfig` and
returns an :class:`AuditResult`: the records, the summary and the gate's exit code. It prints
nothing; progress goes through the ``progress`` callable the caller passes.

Records (one per finding; the schema is stable, fields are only ever added)::

    path       the file (class folder for class_imbalance)
    check      corrupt | dark | light | blurry | low_information | grayscale | odd_size |
               odd_aspect_ratio | exact_duplicates | near_duplicates | leaks | label_issues |
               class_imbalance
    score      the check's score (see cnntool.audit.checks); duplicates and leaks: the distance
               to the nearest match (Hamming bits, or cosine distance for --dedup cnn);
               label_issues: cleanlab's label quality; corrupt: null
    threshold  what the score was compared with (image checks: flagged when score < threshold;
               duplicates and leaks: flagged when score <= threshold)
    group      duplicate group number (per check, from 1), else null
    keeper     the group's suggested keeper (largest, then sharpest, then first path), else null
    detail     one line for people
    error      corrupt only: why the file cannot be read (so the record counts as a failed input)

plus, where they apply: ``distance`` (duplicates, leaks), ``matches`` (leaks: files of the
other set), ``label`` and ``suggested_label`` (label_issues), ``count`` (class_imbalance).

The summary (last record in jsonl/csv, ``check == "summary"``; the CLI gives it ``path: "<summary>"``
as every command's summary record) holds ``root`` (the folder audited), ``images``, ``readable``,
``counts`` per check, ``groups``, the effective ``thresholds``, the ``rules`` with their counts and
whether each tripped, ``gate`` (passed/failed), ``classes`` (with --labels), and cache use
(``measured``, ``from_cache``), ``notes`` (dataset-level observations, such as a grayscale
dataset, which then gets no per-image ``grayscale`` findings) and ``caveats`` (reasons to trust a
finding less, such as embeddings from random weights).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from cnntool.audit import checks as image_checks
from cnntool.audit.config import ALL_CHECKS, AuditConfig
from cnntool.audit.duplicates import (HASH_METHODS, HASH_VERSION, choose_keeper, connected_groups, exact_groups,
                                      hamming_pairs, pil_image_hash, similar_pairs)
from cnntool.audit.quarantine import file_key
from cnntool.audit.rules import evaluate_rules, parse_rules
from cnntool.errors import InputError, UsageError

@dataclass
class ImageState:
    """What the audit knows about one file."""

    path: str
    rel: PurePath
    content: str | None = None
    error: str | None = None
    measurement: dict | None = None
    hash: int | None = None
    embedding: np.ndarray | None = None
    from_cache: bool = False

    @property
    def ok(self) -> bool:
        return self.measurement is not None


@dataclass
class AuditResult:
    records: list[dict]
    summary: dict
    images: list[ImageState]
    against: list[ImageState] = field(default_factory=list)
    exit_code: int = 0


def _identity(iterable, **_):
    return iterable


def run_audit(items, config: AuditConfig, *, cache=None, workers: int = 2, against_items=None,
              device: str = "cpu", batch_size: int = 32, label: str = "", progress: Callable = _identity,
              log: Callable[[str], None] = lambda message: None, keep: frozenset = frozenset()) -> AuditResult:
    """Audit resolved inputs.

    Parameters
    ----------
    items : list of InputItem
        From :func:`cnntool.data.sources.resolve_inputs`.
    config : AuditConfig
    cache : AuditCache or None
        Where measurements are looked up and stored; None measures everything.
    workers : int
        Threads for reading, decoding and measuring.
    against_items : list of InputItem, optional
        A second set (``--against``): leaks between the two are reported.
    device, batch_size :
        For CNN embeddings (``--dedup cnn``, ``--labels``).
    label : str
        The ``path`` of the summary record (what was audited, as the user wrote it).
    progress : callable
        ``progress(iterable, total=, desc=)`` -> iterable (a progress bar, or nothing).
    log : callable
        Receives one-line notes (which model embeds, skipped label checks).
    keep : frozenset of str
        :func:`~cnntool.audit.quarantine.file_key` of files that are always their duplicate
        group's keeper (``--keep``).

    Returns
    -------
    AuditResult
    """
    started = time.perf_counter()
    rules = parse_rules(config.fail_on, set(ALL_CHECKS))
    _refuse_rules_that_cannot_trip(rules, config)
    labels = class_sizes = None
    if config.needs_labels:
        from cnntool.audit.labels import class_labels

        class_labels([i.rel for i in items if i.ok])  # fail fast on a folder that is no ImageFolder
    embedder = _make_embedder(config, device, log) if _needs_embeddings(config) else None
    try:
        measure = _Measurer(config, cache, embedder, batch_size)
        images = measure.run(items, workers, progress, "audit")
        others = measure.run(against_items, workers, progress, "against") if against_items else []
    finally:
        if cache is not None:
            cache.flush()
    records: dict[str, list[dict]] = {c: [] for c in ALL_CHECKS}
    groups: dict[str, int] = {}
    ok = [s for s in images if s.ok]
    records["corrupt"] = [_record(s.path, "corrupt", detail=s.error, error=s.error) for s in images if not s.ok]
    _image_records(ok, config, records)
    notes = []
    if len(ok) >= 2 and len(records["grayscale"]) == len(ok):  # a grayscale dataset, not gray images in one
        records["grayscale"] = []
        notes.append(f"every one of the {len(ok)} readable images is grayscale: a grayscale dataset, so no "
                     f"image is flagged as grayscale")
    caveats = [embedder.caveat] if embedder is not None and embedder.caveat else []
    problems = _problems(ok, records)
    if config.wants("exact_duplicates"):
        groups["exact_duplicates"] = _exact_records(ok, records["exact_duplicates"], problems, keep)
    if config.wants("near_duplicates"):
        groups["near_duplicates"] = _near_records(ok, config, records["near_duplicates"], problems, keep)
    if config.wants("leaks") and against_items is not None:
        readable_others = [s for s in others if s.ok]
        for s in others:
            if not s.ok:
                log(f"--against {s.path}: {s.error}")
        if not readable_others:
            raise UsageError("no --against file could be read, so leaks cannot be checked",
                             hint="point --against at a folder of readable images")
        _leak_records(ok, readable_others, config, records["leaks"])
    if config.needs_labels:
        labels, class_sizes = _label_records(ok, config, records, log)
    ordered = [r for check in ALL_CHECKS if check in config.checks for r in records[check]]
    counts = {check: len({r["path"] for r in records[check]}) for check in config.checks}
    counts["any"] = len({r["path"] for r in ordered})
    results = evaluate_rules(rules, counts, len(images))
    tripped = any(r.tripped for r in results)
    summary = {
        **_record(label or (images[0].path if images else ""), "summary",
                  detail=f"{len(images)} files, {counts['any']} with findings, "
                         f"gate {'failed' if tripped else 'passed'}"),
        "root": label or (images[0].path if images else ""),
        "images": len(images),
        "readable": len(ok),
        "counts": {c: counts[c] for c in config.checks},
        "groups": groups,
        "thresholds": config.effective_thresholds(),
        "rules": [r.as_dict() for r in results],
        "gate": "failed" if tripped else "passed",
        "measured": sum(1 for s in images + others if not s.from_cache),
        "from_cache": sum(1 for s in images + others if s.from_cache),
        "seconds": round(time.perf_counter() - started, 3),
        "notes": notes,
        "caveats": caveats,
    }
    if labels is not None:
        summary["classes"] = class_sizes
    if against_items is not None:
        summary["against"] = len(others)
    return AuditResult(ordered, summary, images, others, 1 if tripped else 0)


def _refuse_rules_that_cannot_trip(rules, config: AuditConfig) -> None:
    """A --fail-on rule on a check that is not running would always pass: a gate that cannot fail."""
    idle = sorted({r.check for r in rules if r.check != "any" and not config.wants(r.check)})
    if not idle:
        return
    needs = {"leaks": "add --against DIR", "label_issues": "add --labels", "class_imbalance": "add --labels"}
    hint = "; ".join(needs.get(check, f"add {check} to --checks") for check in idle)
    raise UsageError(f"--fail-on names {', '.join(idle)}, which this audit does not run", hint=hint)


# --- measuring ---------------------------------------------------------------------------

def _needs_embeddings(config: AuditConfig) -> bool:
    near = config.wants("near_duplicates") or config.wants("leaks")
    return (near and config.dedup == "cnn") or config.needs_labels


def _make_embedder(config: AuditConfig, device: str, log):
    from cnntool.models.embed import default_embedding_spec
    from cnntool.models.registry import get_entry, is_checkpoint_spec

    spec = config.model or default_embedding_spec()
    if is_checkpoint_spec(spec):
        if not os.path.isfile(spec):
            from cnntool.errors import CheckpointError

            raise CheckpointError(f"checkpoint {spec!r} not found", hint="give a cnntool checkpoint or a registry name")
    else:
        get_entry(spec.partition(":")[0])  # an unknown name is a usage error now, not mid-run
    return _LazyEmbedder(spec, config.seed, device, log)


class _LazyEmbedder:
    """Loads the model on the first image that needs an embedding: a run served from the cache
    never imports torch."""

    def __init__(self, spec: str, seed: int, device: str, log):
        from cnntool.models.loading import model_identity

        self.spec, self.seed, self.device, self.log = spec, seed, device, log
        self.identity = model_identity(spec, seed=seed)
        #: Said on the report page and on stderr, even when every embedding comes from the cache.
        self.caveat = None
        if ":random-seed" in self.identity:
            self.caveat = (f"embeddings come from {spec} with random weights (seed {seed}), not a trained model: "
                           f"label issues and CNN near duplicates are weak evidence; use a pretrained model "
                           f"(-m {spec.partition(':')[0]}:DEFAULT, from the torch cache) or a trained checkpoint")
        self._embedder = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._embedder is None:
                from cnntool.device import resolve_device
                from cnntool.models.embed import Embedder, load_embedding_model

                device = str(resolve_device(self.device))
                loaded = load_embedding_model(self.spec, device=device, seed=self.seed)
                if self.caveat is None:  # the caveat is said once, with the summary
                    self.log(f"embedding with {self.spec}")
                self._embedder = Embedder(loaded, device=device)
            return self._embedder

    def prepare(self, image: np.ndarray) -> np.ndarray:
        return (self._embedder or self._load()).prepare(image)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return (self._embedder or self._load())(batch)


class _Measurer:
    """Reads, decodes and measures each file once, using and filling the cache."""

    def __init__(self, config: AuditConfig, cache, embedder, batch_size: int):
        self.config = config
        self.cache = cache
        self.embedder = embedder
        self.batch_size = batch_size
        self.props_key = f"props:v{image_checks.MEASURE_VERSION}:px{config.max_pixels}"
        near = config.wants("near_duplicates") or config.wants("leaks")
        self.hash_key = f"hash:{config.dedup}:v{HASH_VERSION}" if near and config.dedup in HASH_METHODS else None
        self.embed_key = None
        if embedder is not None:
            from cnntool.models.embed import EMBED_VERSION

            self.embed_key = f"embed:{embedder.identity}:v{EMBED_VERSION}"

    def run(self, items, workers: int, progress, desc: str) -> list[ImageState]:
        from cnntool.data.loaders import thread_map

        states = [ImageState(i.path, i.rel, error=i.error) for i in items]
        known = self._known_contents(states)
        pending: list[tuple[ImageState, np.ndarray]] = []
        work = thread_map(lambda s: self._measure(s, known), states, workers=workers)
        for state, prepared in progress(work, total=len(states), desc=desc):
            if prepared is not None:
                pending.append((state, prepared))
                if len(pending) >= self.batch_size:
                    self._embed(pending)
                    pending = []
        if pending:
            self._embed(pending)
        if self.embed_key:
            self._reembed_odd_sizes(states)
        return states

    def _reembed_odd_sizes(self, states: list[ImageState]) -> None:
        """Cached embeddings of another length than the model gives are damage: embed those again."""
        from collections import Counter

        sizes = Counter(s.embedding.size for s in states if s.embedding is not None)
        if len(sizes) < 2:
            return
        fresh = [s.embedding.size for s in states if s.embedding is not None and not s.from_cache]
        size = fresh[0] if fresh else sizes.most_common(1)[0][0]
        odd = [s for s in states if s.embedding is not None and s.embedding.size != size]
        self.cache.report(f"the audit cache {self.cache.path} holds embeddings of the wrong size; "
                          f"embedding {len(odd)} files again")
        pending = []
        for state in odd:
            state.from_cache = False
            _, prepared = self._decode_and_measure(state, [self.embed_key])
            if prepared is not None:
                pending.append((state, prepared))
        for start in range(0, len(pending), self.batch_size):
            self._embed(pending[start:start + self.batch_size])

    def _known_contents(self, states: list[ImageState]) -> dict[str, tuple[str, int, int, str | None]]:
        stats: dict[str, tuple[str, int, int, str | None]] = {}
        for s in states:
            if s.error is not None:
                continue
            try:
                st = os.stat(s.path)
            except OSError:
                continue  # reported when the file is read
            stats[s.path] = (os.path.abspath(s.path), st.st_size, st.st_mtime_ns, None)
        if self.cache is None or not stats:
            return stats
        found = self.cache.known_contents([v[:3] for v in stats.values()])
        return {p: (*v[:3], found.get(v[0])) for p, v in stats.items()}

    def _measure(self, state: ImageState, known) -> tuple[ImageState, np.ndarray | None]:
        if state.error is not None:
            return state, None
        try:
            content = self._content(state, known.get(state.path))
        except OSError as exc:
            state.error = f"cannot read: {exc.strerror or exc}"
            return state, None
        state.content = content
        wanted = [k for k in (self.props_key, self.hash_key, self.embed_key) if k]
        cached = self.cache.get_many([(content, k) for k in wanted]) if self.cache is not None else {}
        cached = self._usable(cached, content)
        props = cached.get((content, self.props_key))
        if isinstance(props, dict) and "error" in props:
            state.error, state.from_cache = props["error"], True
            return state, None
        missing = [k for k in wanted if (content, k) not in cached]
        if props is not None:
            state.measurement = props
        if self.hash_key and (content, self.hash_key) in cached:
            state.hash = cached[(content, self.hash_key)]
        if self.embed_key and (content, self.embed_key) in cached:
            state.embedding = np.frombuffer(cached[(content, self.embed_key)], dtype=np.float32)
        if not missing:
            state.from_cache = True
            return state, None
        return self._decode_and_measure(state, missing)

    def _usable(self, cached: dict, content: str) -> dict:
        """Cached values that are what this cnntool writes; the others are measured again (a
        measurement from an older cnntool silently, anything else reported once as damage)."""
        out = {}
        for (c, key), value in cached.items():
            if key == self.props_key:
                ok = (isinstance(value, dict) and isinstance(value.get("error"), str) and len(value) == 1
                      or image_checks.valid_measurement(value))
                if not ok and isinstance(value, dict) and set(value) < set(image_checks.MEASUREMENT_KEYS):
                    continue  # an incomplete measurement (another cnntool's): measured again, no alarm
            elif key == self.hash_key:
                ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64
            else:
                ok = isinstance(value, bytes) and value and len(value) % 4 == 0 and bool(
                    np.isfinite(np.frombuffer(value, dtype=np.float32)).all())
            if ok:
                out[(c, key)] = value
            else:
                self.cache.report(f"the audit cache {self.cache.path} holds a {key.split(':')[0]} value that is "
                                  f"not what cnntool writes; measuring those files again")
        return out

    def _content(self, state: ImageState, stat) -> str:
        from cnntool.data.sources import content_digest

        if stat is not None and stat[3] is not None:
            return stat[3]
        content = content_digest(state.path)
        if self.cache is not None and stat is not None:
            self.cache.remember_file(stat[0], stat[1], stat[2], content)
        return content

    def _decode_and_measure(self, state: ImageState, missing: list[str]) -> tuple[ImageState, np.ndarray | None]:
        from PIL import Image

        from cnntool.data.decode import decode_image

        try:
            image = decode_image(state.path, mode="auto", max_pixels=self.config.max_pixels)
        except InputError as exc:
            state.error = str(exc)
            self._store(state, self.props_key, {"error": state.error})
            return state, None
        pil = Image.fromarray(image)  # one Pillow copy for the measurements and the hash
        if self.props_key in missing:
            state.measurement = image_checks.measure_image(image, pil_image=pil)
            self._store(state, self.props_key, state.measurement)
        if self.hash_key in missing:
            state.hash = pil_image_hash(pil, method=self.config.dedup)
            self._store(state, self.hash_key, state.hash)
        prepared = self.embedder.prepare(image) if self.embed_key in missing else None
        return state, prepared

    def _store(self, state: ImageState, key: str, value) -> None:
        if self.cache is not None and state.content is not None:
            self.cache.put(state.content, key, value)

    def _embed(self, pending: list[tuple[ImageState, np.ndarray]]) -> None:
        features = self.embedder(np.stack([p for _, p in pending]))
        for (state, _), row in zip(pending, features):
            state.embedding = np.ascontiguousarray(row, dtype=np.float32)
            self._store(state, self.embed_key, state.embedding.tobytes())


# --- deciding ----------------------------------------------------------------------------

def _record(path: str, check: str, *, score=None, threshold=None, group=None, keeper=None, detail="", error=None,
            **extra) -> dict:
    return {"path": path, "check": check, "score": score, "threshold": threshold, "group": group,
            "keeper": keeper, "detail": detail, "error": error, **extra}


def _image_records(ok: list[ImageState], config: AuditConfig, records: dict) -> None:
    wanted = {c for c in image_checks.IMAGE_CHECKS if config.wants(c)}
    findings = image_checks.image_findings([s.measurement for s in ok], config.thresholds, wanted)
    for f in findings:
        records[f.check].append(_record(ok[f.index].path, f.check, score=f.score, threshold=f.threshold,
                                        detail=f.detail))


def _problems(ok: list[ImageState], records: dict) -> list[int]:
    """Image-check findings per image: the keeper of a duplicate group is the cleanest member."""
    index = {s.path: k for k, s in enumerate(ok)}
    counts = [0] * len(ok)
    for check in image_checks.IMAGE_CHECKS:
        for r in records[check]:
            counts[index[r["path"]]] += 1
    return counts


def _group_records(ok: list[ImageState], groups: list[list[int]], check: str, threshold, nearest: dict,
                   describe: Callable[[int, int], str], problems: list[int], keep: frozenset = frozenset()
                   ) -> list[dict]:
    out = []
    for number, group in enumerate(groups, start=1):
        kept = [m for m in group if keep and file_key(ok[m].path) in keep]  # the keep-list decides first
        keeper = choose_keeper(kept or group, [s.measurement for s in ok], problems)
        for member in group:
            detail = f"keep (group of {len(group)})" if member == keeper else describe(member, keeper)
            out.append(_record(ok[member].path, check, score=nearest[member], threshold=threshold, group=number,
                               keeper=ok[keeper].path, detail=detail, distance=nearest[member]))
    return out


def _exact_records(ok: list[ImageState], out: list[dict], problems: list[int], keep: frozenset) -> int:
    groups = exact_groups([s.measurement["pixels"] for s in ok])
    nearest = {m: 0 for g in groups for m in g}
    out.extend(_group_records(ok, groups, "exact_duplicates", 0, nearest,
                              lambda m, k: f"same pixels as {ok[k].path}", problems, keep))
    return len(groups)


def _near_pairs(a: list[ImageState], config: AuditConfig, b: list[ImageState] | None = None):
    """Near pairs among non-uniform images (of a, or between a and b): (i, j, distance) in list positions."""
    usable_a = [k for k, s in enumerate(a) if not image_checks.is_uniform(s.measurement)]
    usable_b = usable_a if b is None else [k for k, s in enumerate(b) if not image_checks.is_uniform(s.measurement)]
    other = a if b is None else b
    if config.dedup == "cnn":
        if not usable_a or not usable_b:
            return [], [], []
        fa = np.stack([a[k].embedding for k in usable_a])
        fb = None if b is None else np.stack([other[k].embedding for k in usable_b])
        i, j, sim = similar_pairs(fa, config.min_similarity, others=fb)
        distance = np.maximum(0.0, np.round(1.0 - sim, 6))
    else:
        ha = [a[k].hash for k in usable_a]
        hb = None if b is None else [other[k].hash for k in usable_b]
        i, j, distance = hamming_pairs(ha, config.max_distance, others=hb)
    ia = np.array(usable_a, dtype=np.int64)[i] if len(i) else np.zeros(0, np.int64)
    jb = np.array(usable_b, dtype=np.int64)[j] if len(j) else np.zeros(0, np.int64)
    return ia, jb, distance


def _near_threshold(config: AuditConfig):
    return round(1.0 - config.min_similarity, 6) if config.dedup == "cnn" else config.max_distance


def _near_records(ok: list[ImageState], config: AuditConfig, out: list[dict], problems: list[int],
                  keep: frozenset) -> int:
    i, j, distance = _near_pairs(ok, config)
    groups = connected_groups(len(ok), np.asarray(i), np.asarray(j))
    if config.wants("exact_duplicates"):  # a group whose members all have the same pixels is reported there
        groups = [g for g in groups if len({ok[m].measurement["pixels"] for m in g}) > 1]
    nearest: dict[int, float] = {}
    between: dict[tuple[int, int], float] = {}
    for a, b, d in zip(np.asarray(i).tolist(), np.asarray(j).tolist(), np.asarray(distance).tolist()):
        nearest[a] = min(nearest.get(a, d), d)
        nearest[b] = min(nearest.get(b, d), d)
        between[(a, b)] = between[(b, a)] = d

    def describe(member: int, keeper: int) -> str:
        d = between.get((member, keeper))
        how = f"distance {d:g}" if d is not None else "through other members"
        return f"near duplicate of {ok[keeper].path} ({how})"

    out.extend(_group_records(ok, groups, "near_duplicates", _near_threshold(config), nearest, describe, problems,
                              keep))
    return len(groups)


def _leak_records(ok: list[ImageState], others: list[ImageState], config: AuditConfig, out: list[dict]) -> None:
    matches: dict[int, dict[int, float]] = {}
    by_pixels: dict[str, list[int]] = {}
    for k, s in enumerate(others):
        by_pixels.setdefault(s.measurement["pixels"], []).append(k)
    for a, s in enumerate(ok):
        for b in by_pixels.get(s.measurement["pixels"], []):
            matches.setdefault(a, {})[b] = 0
    i, j, distance = _near_pairs(ok, config, others)
    for a, b, d in zip(np.asarray(i).tolist(), np.asarray(j).tolist(), np.asarray(distance).tolist()):
        found = matches.setdefault(a, {})
        found[b] = min(found.get(b, d), d)
    for a in sorted(matches):
        ranked = sorted(matches[a].items(), key=lambda kv: (kv[1], kv[0]))
        best, d = ranked[0]
        same = others[best].measurement["pixels"] == ok[a].measurement["pixels"]
        match = others[best].path
        detail = f"same pixels as {match}" if same else f"near duplicate of {match} (distance {d:g})"
        if len(ranked) > 1:
            detail += f" and {len(ranked) - 1} more"
        out.append(_record(ok[a].path, "leaks", score=d, threshold=_near_threshold(config), detail=detail,
                           distance=d, matches=[others[b].path for b, _ in ranked]))


def _label_records(ok: list[ImageState], config: AuditConfig, records: dict, log):
    from cnntool.audit.labels import (class_counts, class_labels, find_label_issues,
                                      out_of_sample_probabilities)

    labels, classes = class_labels([s.rel for s in ok])
    counts = class_counts(labels, classes)
    if config.wants("class_imbalance"):
        largest = max(counts, key=counts.get)
        for k, name in enumerate(classes):
            share = counts[name] / counts[largest]
            if share < config.class_imbalance:
                folder = str(Path(next(s.path for s, y in zip(ok, labels) if y == k)).parent)
                records["class_imbalance"].append(_record(
                    folder, "class_imbalance", score=round(share, 6), threshold=config.class_imbalance,
                    detail=f"{counts[name]} images; the largest class, {largest}, has {counts[largest]}",
                    count=counts[name]))
    if config.wants("label_issues"):
        too_small = [c for c, n in counts.items() if n < 2]
        if too_small:
            log(f"label_issues skipped: class {too_small[0]} has fewer than 2 images to cross-validate")
        else:
            features = np.stack([s.embedding for s in ok])
            probs = out_of_sample_probabilities(features, labels, folds=config.folds, seed=config.seed)
            for issue in sorted(find_label_issues(labels, probs), key=lambda issue: issue.index):
                records["label_issues"].append(_record(
                    ok[issue.index].path, "label_issues", score=round(issue.quality, 6),
                    detail=(f"labelled {classes[issue.given]}, looks like {classes[issue.suggested]} "
                            f"(p={issue.suggested_probability:.2f})"),
                    label=classes[issue.given], suggested_label=classes[issue.suggested]))
    return labels, counts

