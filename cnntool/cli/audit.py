"""``cnntool audit``: dataset quality checks a CI job can trust.

Thin: parse options, build the config, run :func:`cnntool.audit.pipeline.run_audit`, move the
flagged files with ``--quarantine`` (:mod:`cnntool.audit.quarantine`), emit the records (schema in
the pipeline module), print the summary, write the HTML report, return the gate's exit code: 0
passed, 1 a ``--fail-on`` rule tripped (unreadable files trip the implicit ``corrupt`` rule) or a
file could not be moved, 2 usage errors. ``--restore MANIFEST`` undoes a quarantine instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnntool.cli._options import (BatchSize, Device, Format, MaxPixels, Quiet, Seed, Verbose, Workers,
                                  default_workers, make_output)
from cnntool.data.limits import DEFAULT_MAX_PIXELS


AuditInputs = Annotated[Optional[list[str]], typer.Argument(
    help="Image files, folders (recursed), quoted globs, @list.txt, or - for paths on stdin (none with --restore).",
    show_default=False)]
Checks = Annotated[Optional[str], typer.Option(
    "--checks", help="Comma-separated checks to run, or 'all' [default: all but label and leak checks]: corrupt, dark, "
                     "light, blurry, low_information, grayscale, odd_size, odd_aspect_ratio, exact_duplicates, "
                     "near_duplicates, leaks, label_issues, class_imbalance.")]
Labels = Annotated[bool, typer.Option(
    "--labels", help="The folder is a labelled ImageFolder (ROOT/<class>/...): find likely mislabelled images "
                     "(cleanlab on cross-validated probes over CNN embeddings) and report class balance.")]
Dedup = Annotated[Optional[str], typer.Option(
    "--dedup", help="Near-duplicate method: phash|dhash|whash|ahash (imagededup's hashes) or cnn (embeddings "
                    "from -m) [default: phash].")]
MaxDistance = Annotated[Optional[int], typer.Option(
    "--max-distance", min=0, max=64,
    help="Hash methods: most differing bits (of 64) for near duplicates [default: 4].")]
MinSimilarity = Annotated[Optional[float], typer.Option(
    "--min-similarity", help="--dedup cnn: least cosine similarity for near duplicates [default: 0.9].")]
EmbedModel = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="Embedding model for --dedup cnn and --labels: a registry name, NAME:WEIGHTS or a "
                          "checkpoint [default: resnet18, with ImageNet weights when cached].")]
Against = Annotated[Optional[list[str]], typer.Option(
    "--against", help="Another set (folder, files, globs): report leaks, images of the audited set that are "
                      "exact or near duplicates of one there (train vs test). Repeatable.")]
ThresholdOpt = Annotated[Optional[list[str]], typer.Option(
    "--threshold", "-t", help="NAME=VALUE, repeatable: dark, light, light_median, light_clipped, blurry, "
                              "blurry_sharpness, blurry_relative, low_information, odd_aspect_ratio, odd_size_ratio, "
                              "grayscale (scores in 0..1; 0 turns a criterion off), odd_size_iqr (>= 0), "
                              "max_distance (0..64), min_similarity (-1..1), class_imbalance (0..1).")]
FailOn = Annotated[Optional[list[str]], typer.Option(
    "--fail-on", help="Exit 1 when a rule trips: CHECK, CHECK>N, CHECK>=N, CHECK>N% or any; comma-separated, "
                      "repeatable. Unreadable files fail the run unless a rule names corrupt.")]
ConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", help="TOML file with checks, thresholds, fail_on, dedup... (command-line options win).",
    dir_okay=False)]
Report = Annotated[Optional[Path], typer.Option(
    "--report", help="Write a self-contained HTML report (thumbnails per finding, duplicate groups side by side).",
    dir_okay=False)]
CacheDir = Annotated[Optional[Path], typer.Option(
    "--cache", help="Cache folder for per-image results (keep it between CI runs) [default: $CNNTOOL_CACHE_DIR, "
                    "else $XDG_CACHE_HOME/cnntool/audit, else ~/.cache/cnntool/audit].", file_okay=False)]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Measure everything again; read and write no cache.")]
Quarantine = Annotated[Optional[Path], typer.Option(
    "--quarantine", file_okay=False,
    help="Move every flagged file into DIR (never delete), at its path relative to the audited folder: files "
         "with a finding of the checks that run (--checks), all duplicates but each group's keeper; never "
         "--against files or --keep files. Writes DIR/quarantine-<time>.json, the manifest that --restore "
         "undoes. A name taken in DIR gets ~1, ~2 (nothing is replaced). DIR must be outside the audited folders.")]
Restore = Annotated[Optional[Path], typer.Option(
    "--restore", dir_okay=False,
    help="Undo a --quarantine: move the files of MANIFEST (DIR/quarantine-<time>.json) back where they were, "
         "never over a file that is there again; no inputs. One record per file.")]
Keep = Annotated[Optional[Path], typer.Option(
    "--keep", dir_okay=False,
    help="A text file of paths (one per line, # comments) that are always their duplicate group's keeper and "
         "that --quarantine never moves.")]


def audit_command(
    inputs: AuditInputs = None,
    checks: Checks = None,
    labels: Labels = False,
    dedup: Dedup = None,
    max_distance: MaxDistance = None,
    min_similarity: MinSimilarity = None,
    model: EmbedModel = None,
    against: Against = None,
    threshold: ThresholdOpt = None,
    fail_on: FailOn = None,
    config: ConfigFile = None,
    report: Report = None,
    cache: CacheDir = None,
    no_cache: NoCache = False,
    quarantine: Quarantine = None,
    restore: Restore = None,
    keep: Keep = None,
    format: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    workers: Workers = 0,
    batch_size: BatchSize = 32,
    device: Device = "auto",
    seed: Seed = 0,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
) -> int:
    """Find corrupt, dark, light, blurry, low-information, grayscale, odd-sized, duplicate, leaked and
    mislabelled images; exit 1 when a --fail-on rule trips.

    Examples: cnntool audit ./images;  cnntool audit data/train --against data/test --fail-on leaks;
    cnntool audit data/train --labels --report audit.html --fail-on 'near_duplicates,blurry>2%';
    cnntool audit data --checks exact_duplicates,near_duplicates --keep keep.txt --quarantine ../dupes;
    cnntool audit --restore ../dupes/quarantine-20250101-120000.json
    """
    from cnntool.audit.config import build_config, load_config_file, parse_threshold_options
    from cnntool.audit.pipeline import run_audit
    from cnntool.audit.quarantine import check_quarantine_dir, read_keep_list
    from cnntool.audit.report import summary_lines, write_html_report
    from cnntool.data.sources import resolve_inputs
    from cnntool.device import check_device_spec
    from cnntool.errors import UsageError

    check_device_spec(device)
    out = make_output(format, quiet, verbose)
    if restore is not None:
        return _restore(restore, inputs, quarantine, keep, report, out)
    if not inputs:
        raise UsageError("give the image files or folders to audit",
                         hint="cnntool audit DATA [options]; --restore MANIFEST undoes a --quarantine")
    settings = load_config_file(config) if config is not None else None
    cfg = build_config(file_settings=settings, checks=checks, labels=labels, against=bool(against), dedup=dedup,
                       max_distance=max_distance, min_similarity=min_similarity, model=model,
                       thresholds=parse_threshold_options(threshold), fail_on=tuple(fail_on or ()), seed=seed,
                       max_pixels=max_pixels)
    items = resolve_inputs(inputs)
    if not items:
        raise UsageError("no image files found in " + " ".join(inputs),
                         hint="give image files or folders holding .jpg/.png/.bmp/... files")
    against_items = resolve_inputs(against) if against else None
    if against_items is not None and not any(item.ok for item in against_items):
        raise UsageError("--against names no image files: " + " ".join(against),
                         hint="give the folder (or files) of the other set, e.g. --against data/test")
    keep_files = read_keep_list(keep) if keep is not None else frozenset()
    folder = check_quarantine_dir(quarantine, inputs) if quarantine is not None else None
    store = None if no_cache else _open_cache(cache, out)
    workers = default_workers(workers)
    try:
        result = run_audit(items, cfg, cache=store, workers=workers, against_items=against_items, device=device,
                           batch_size=batch_size, label=" ".join(inputs), progress=out.progress, log=out.log,
                           keep=keep_files)
    finally:
        if store is not None:
            store.close()
    exit_code = result.exit_code
    moved: dict[str, str] = {}
    if folder is not None:
        moved, failed = _quarantine(result, folder, keep_files, " ".join(inputs), out)
        exit_code = max(exit_code, 1 if failed else 0)
    columns = _table_columns(result.records) if out.format == "table" else None
    for record in result.records:
        out.emit({k: record.get(k) for k in columns} if columns else record)
    out.emit_summary(result.summary)  # a table reader gets the summary on stderr instead
    out.close()
    for line in summary_lines(result):
        out.log(line)
    for caveat in result.summary.get("caveats", ()):
        out.warn(caveat)
    if report is not None:
        write_html_report(report, result, max_pixels=max_pixels, workers=workers, locate=moved)
        out.log(f"report: {report}")
    return exit_code


def _quarantine(result, folder: Path, keep_files: frozenset, label: str, out) -> tuple[dict[str, str], int]:
    """Move the flagged files; mark their records (``moved_to`` or ``move_error``); put the
    counts in the summary. Returns {old path: new path} and how many could not be moved."""
    from cnntool.audit.quarantine import new_manifest_path, plan_moves, quarantine

    moves = plan_moves(result.records, {s.path: s.rel for s in result.images}, folder, keep=keep_files)
    manifest = new_manifest_path(folder) if moves else None
    if moves:
        quarantine(moves, manifest, root=label)
    by_source = {m.source: m for m in moves}
    for record in result.records:
        m = by_source.get(record["path"])
        if m is not None and record["check"] in m.checks:
            if m.done:
                record["moved_to"] = m.target
            else:
                record["move_error"] = m.error
    done = [m for m in moves if m.done]
    failed = [m for m in moves if not m.done]
    result.summary["quarantine"] = {"folder": str(folder), "manifest": str(manifest) if manifest else None,
                                    "moved": len(done), "failed": len(failed)}
    for m in failed:
        out.warn(f"{m.source}: {m.error}")
    if manifest:
        out.log(f"quarantine: moved {len(done)} files to {folder}; undo with: cnntool audit --restore {manifest}")
    else:
        out.log(f"quarantine: nothing to move to {folder}")
    return {m.source: m.target for m in done}, len(failed)


def _restore(manifest: Path, inputs, quarantine, keep, report, out) -> int:
    from cnntool.audit.quarantine import restore
    from cnntool.errors import UsageError

    extra = [name for name, value in (("inputs", inputs), ("--quarantine", quarantine), ("--keep", keep),
                                      ("--report", report)) if value]
    if extra:
        raise UsageError(f"--restore takes no {', '.join(extra)}", hint="cnntool audit --restore MANIFEST")
    records = restore(manifest)
    for record in records:
        out.emit(record)
    restored = sum(r["restored"] for r in records)
    failed = sum(1 for r in records if r["error"])
    out.emit_summary({"manifest": str(manifest), "files": len(records), "restored": restored, "failed": failed})
    out.close()
    out.log(f"restore: {restored} of {len(records)} files moved back" + (f", {failed} left in quarantine" if failed else ""))
    return 1 if failed else 0


def _open_cache(directory: Path | None, out):
    from cnntool.audit.cache import AuditCache, default_cache_dir
    from cnntool.errors import one_line

    directory = directory or default_cache_dir()
    try:
        return AuditCache(directory, warn=out.warn)
    except OSError as exc:
        out.warn(f"cannot use the cache folder {directory} ({exc.strerror or exc}); measuring without it")
        return None
    except Exception as exc:  # sqlite3.Error: a damaged cache must not stop an audit
        out.warn(f"cannot use the cache in {directory} ({one_line(exc)}); measuring without it")
        return None


def _table_columns(records: list[dict]) -> list[str]:
    """Tables show the columns some finding fills, score before detail, nothing a person can't read."""
    order = ["path", "check", "score", "threshold", "group", "keeper", "label", "suggested_label", "count", "detail",
             "moved_to", "move_error"]
    return [k for k in order if any(r.get(k) is not None for r in records)]
