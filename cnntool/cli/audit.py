"""``cnntool audit``: dataset quality checks a CI job can trust.

Thin: parse options, build the config, run :func:`cnntool.audit.pipeline.run_audit`, emit the
records (schema in that module), print the summary, write the HTML report, return the gate's
exit code: 0 passed, 1 a ``--fail-on`` rule tripped (unreadable files trip the implicit
``corrupt`` rule), 2 usage errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnntool.cli._options import (BatchSize, Device, Format, Inputs, MaxPixels, Quiet, Seed, Verbose, Workers,
                                  default_workers, make_output)
from cnntool.data.limits import DEFAULT_MAX_PIXELS


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
                              "blurry_sharpness, "
                              "low_information, odd_aspect_ratio, odd_size_iqr, grayscale, max_distance, "
                              "min_similarity, class_imbalance.")]
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


def audit_command(
    inputs: Inputs,
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
    cnntool audit data/train --labels --report audit.html --fail-on 'near_duplicates,blurry>2%'
    """
    from cnntool.audit.config import build_config, load_config_file, parse_threshold_options
    from cnntool.audit.pipeline import run_audit
    from cnntool.audit.report import summary_lines, write_html_report
    from cnntool.data.sources import resolve_inputs
    from cnntool.device import check_device_spec
    from cnntool.errors import UsageError

    check_device_spec(device)
    out = make_output(format, quiet, verbose)
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
    store = None if no_cache else _open_cache(cache, out)
    workers = default_workers(workers)
    try:
        result = run_audit(items, cfg, cache=store, workers=workers, against_items=against_items, device=device,
                           batch_size=batch_size, label=" ".join(inputs), progress=out.progress, log=out.log)
    finally:
        if store is not None:
            store.close()
    columns = _table_columns(result.records) if out.format == "table" else None
    for record in result.records:
        out.emit({k: record.get(k) for k in columns} if columns else record)
    out.emit_summary(result.summary)  # a table reader gets the summary on stderr instead
    out.close()
    for line in summary_lines(result):
        out.log(line)
    if report is not None:
        write_html_report(report, result, max_pixels=max_pixels, workers=workers)
        out.log(f"report: {report}")
    return result.exit_code


def _open_cache(directory: Path | None, out):
    from cnntool.audit.cache import AuditCache, default_cache_dir

    directory = directory or default_cache_dir()
    try:
        return AuditCache(directory)
    except OSError as exc:
        out.warn(f"cannot use the cache folder {directory} ({exc.strerror or exc}); measuring without it")
        return None
    except Exception as exc:  # sqlite3.Error: a damaged cache must not stop an audit
        out.warn(f"cannot use the cache in {directory} ({exc}); measuring without it")
        return None


def _table_columns(records: list[dict]) -> list[str]:
    """Tables show the columns some finding fills, score before detail, nothing a person can't read."""
    order = ["path", "check", "score", "threshold", "group", "keeper", "label", "suggested_label", "count", "detail"]
    return [k for k in order if any(r.get(k) is not None for r in records)]
